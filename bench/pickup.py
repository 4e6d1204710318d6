"""How fast `golive serve` picks up a triggered run: create_flow_run -> Running, over the REST API.

    .venv/bin/python bench/pickup.py [--runs 5]

Starts the sandbox, a PostgreSQL-backed Prefect server and `golive serve --poll-seconds 1` (a child process),
triggers the `go-live-readiness/ci` deployment `--runs` times one after the other, and prints the pickup latency
(API accepted the run -> the run is Running) and the whole run time, median and max.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from golive.deployments.demo import start_serve
    from golive.deployments.prefect_server import PrefectServer, export_client_env, stop_child
    from golive.deployments.signoff_client import api_client, wait_final
    from golive.sandbox import Sandbox

    pickup, total = [], []
    with Sandbox.start() as sb:
        os.environ.update(sb.env)
        with PrefectServer(sb.prefect_database_url(), Path(tempfile.mkdtemp(prefix="golive-pickup-"))) as srv:
            export_client_env(srv.client_env())
            serve = start_serve(Path(sb.config_path), Path(sb.base_dir) / "serve.log", srv.api_url)
            try:
                with api_client(srv.api_url) as api:
                    dep = api.get("deployments/name/go-live-readiness/ci").json()
                    for _ in range(args.runs):
                        t0 = time.monotonic()
                        run = api.post(f"deployments/{dep['id']}/create_flow_run", json={}).json()
                        created = datetime.fromisoformat(run["created"])
                        final = wait_final(api, run["id"], timeout=300)
                        total.append(time.monotonic() - t0)
                        started = datetime.fromisoformat(final["start_time"])
                        pickup.append((started - created).total_seconds())
            finally:
                stop_child(serve, 20)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.runs} runs of go-live-readiness/ci, `golive serve --poll-seconds 1`"
    )
    print(f"pickup (created -> Running)  median {statistics.median(pickup):.2f} s, max {max(pickup):.2f} s")
    print(f"whole run (trigger -> final) median {statistics.median(total):.2f} s, max {max(total):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
