"""What Prefect costs: the same checks against the sandbox, through the plain runner and through the readiness flow.

    .venv/bin/python bench/overhead.py [--runs 5]

Prints the median wall time of each over interleaved pairs (plain: `tasks.core.run_plain`; flow:
`go-live-readiness` with its 9 section subflows, one Prefect task per check, on a PostgreSQL-backed Prefect server,
report and artifacts included), their ratio, the Prefect server's CPU per run, and Prefect's own floor: the same flow, DAG and artifacts with every check body replaced by a no-op,
i.e. what the orchestration costs before any check does any work. Sandbox and server start-up are excluded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
NOOP = "bench/overhead.py floor: body not run"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from golive.deployments.prefect_server import PrefectServer, export_client_env
    from golive.sandbox import Sandbox

    with Sandbox.start() as sb:
        os.environ.update(sb.env)
        with PrefectServer(sb.prefect_database_url(), Path(tempfile.mkdtemp(prefix="golive-bench-"))) as srv:
            export_client_env(srv.client_env())
            from prefect.settings import get_current_settings

            from golive.deployments.cli import _drain_prefect
            from golive.flows import readiness
            from golive.flows.config import load_config
            from golive.tasks.core import Redactor, Status, make_result, run_plain

            if get_current_settings().api.url != srv.api_url:  # (settings read before the URL was exported)
                print(f"overhead.py: Prefect would not use the bench's server {srv.api_url}", file=sys.stderr)
                return 1

            cfg = load_config(sb.config_path)
            specs = readiness.plan(cfg)
            redact = Redactor(cfg.secrets())

            def plain() -> float:
                t = time.perf_counter()
                results = run_plain(specs, cfg, redact=redact)
                assert len(results) == len(specs)
                return time.perf_counter() - t

            def flow(floor: bool = False) -> float:
                t = time.perf_counter()
                state = asyncio.run(
                    readiness.go_live_readiness(
                        config=str(sb.config_path), mode="rehearsal", output_dir=None, return_state=True
                    )
                )
                dt = time.perf_counter() - t
                report = readiness.REPORTS.pop(str(state.state_details.flow_run_id))
                assert len(report.results) == len(specs), "the flow ran a different set of checks"
                if floor:  # the floor's bodies are the no-op's, or it measures checks, not orchestration
                    assert all(r.evidence == NOOP for r in report.results), "a check body ran in the floor"
                return dt

            def server_cpu() -> float:
                """CPU-s the Prefect server process has used so far (Linux: /proc/<pid>/stat utime + stime)."""
                assert srv.proc is not None
                fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            def flow_with_server_cpu(floor: bool = False) -> tuple[float, float]:
                c0 = server_cpu()
                dt = flow(floor)
                time.sleep(1.5)  # what the server records after the run ends (task runs, events) belongs to it
                return dt, server_cpu() - c0

            plain(), flow()  # warm-up: imports, connection pools, the server's first queries
            p, f, cpu = [], [], []
            for _ in range(args.runs):  # interleaved: a busy moment of the machine hits both alike
                p.append(plain())
                dt, c = flow_with_server_cpu()
                f.append(dt)
                cpu.append(c)
            from golive.flows import engine

            real_execute = engine.execute  # what the engine's task runs call (patching readiness would miss it)

            async def noop(spec, config, *, redact=None, memo=None):
                t = time.monotonic()
                return make_result(
                    spec,
                    Status.PASS,
                    started=datetime.now(UTC),
                    t0=t,
                    observed="no-op",
                    expected="no-op",
                    evidence=NOOP,
                )

            engine.execute = noop
            try:
                n, ncpu = zip(*(flow_with_server_cpu(floor=True) for _ in range(args.runs)), strict=True)
            finally:
                engine.execute = real_execute
            _drain_prefect()
    mp, mf, mn = statistics.median(p), statistics.median(f), statistics.median(n)
    ratios = [b / a for a, b in zip(p, f, strict=True)]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{len(specs)} checks, {args.runs} interleaved pairs, load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(f"plain runner  median {mp:.3f} s  (min {min(p):.3f}, max {max(p):.3f})")
    print(f"prefect flow  median {mf:.3f} s  (min {min(f):.3f}, max {max(f):.3f})")
    print(
        f"prefect floor median {mn:.3f} s  (min {min(n):.3f}, max {max(n):.3f}; same flow with no-op bodies: "
        "orchestration alone; target <= 2 s)"
    )
    print(
        f"Prefect server CPU per run: flow median {statistics.median(cpu):.2f} CPU-s, "
        f"floor median {statistics.median(ncpu):.2f} CPU-s"
    )
    print(
        f"ratio flow/plain {mf / mp:.2f} (pairs: min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 1.25); "
        f"per check {1000 * (mf - mp) / len(specs):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
