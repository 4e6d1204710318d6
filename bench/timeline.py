"""Where the readiness flow's time goes, phase by phase, beside the plain runner's: the same checks on the sandbox.

    .venv/bin/python bench/timeline.py [--runs 3]

For each run of each (interleaved, after one warm-up), from the start of the run: when the first check started,
when the quiet window closed (the last timing check ended), when the last light check ended, when the first heavy
check started, when the last check ended, and the whole run (for the flow: its report, artifacts and Prefect's
bookkeeping included). Prints the medians. Check times are the ones the results carry (the body's start and end).
Sandbox and server start-up are excluded, as in bench/overhead.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PHASES = ("first check", "window closed", "light ended", "heavy started", "last check", "whole run")


def phases(results: list, t0: float, total: float, board) -> dict[str, float]:  # type: ignore[no-untyped-def]
    res = {r.id: r for r in results}
    start = {i: r.started_at.timestamp() - t0 for i, r in res.items()}
    end = {i: r.finished_at.timestamp() - t0 for i, r in res.items()}
    light, timing = set(board.light_ids()), set(board.timing_ids())
    heavy = [i for i in res if board.specs[i].heavy]
    return {
        "first check": min(start.values()),
        "window closed": max((end[i] for i in timing), default=0.0),
        "light ended": max(end[i] for i in light),
        "heavy started": min((start[i] for i in heavy), default=float("nan")),
        "last check": max(end.values()),
        "whole run": total,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from golive.deployments.prefect_server import PrefectServer, export_client_env
    from golive.sandbox import Sandbox

    with Sandbox.start() as sb:
        os.environ.update(sb.env)
        with PrefectServer(sb.prefect_database_url(), Path(tempfile.mkdtemp(prefix="golive-bench-"))) as _srv:
            export_client_env(_srv.client_env())
            from golive.deployments.cli import _drain_prefect
            from golive.flows import readiness
            from golive.flows.config import load_config
            from golive.tasks.core import Board, Redactor, run_plain

            cfg = load_config(sb.config_path)
            specs = readiness.plan(cfg)
            board = Board(specs)

            def plain() -> dict[str, float]:
                t0 = time.time()
                results = run_plain(specs, cfg, redact=Redactor(cfg.secrets()))
                return phases(results, t0, time.time() - t0, board)

            def flow() -> dict[str, float]:
                t0 = time.time()
                state = asyncio.run(
                    readiness.go_live_readiness(
                        config=str(sb.config_path), mode="rehearsal", output_dir=None, return_state=True
                    )
                )
                total = time.time() - t0
                report = readiness.REPORTS.pop(str(state.state_details.flow_run_id))
                return phases(report.results, t0, total, board)

            plain(), flow()  # warm-up
            p, f = [], []
            for _ in range(args.runs):
                p.append(plain())
                f.append(flow())
            _drain_prefect()
    print(f"{args.runs} interleaved runs after a warm-up, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'seconds from the start (median)':34s} {'plain':>7s} {'flow':>7s}")
    for k in PHASES:
        print(f"{k:34s} {statistics.median(x[k] for x in p):7.2f} {statistics.median(x[k] for x in f):7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
