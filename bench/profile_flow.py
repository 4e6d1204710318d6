"""Where the readiness flow's own time goes: a statistical profile (pyinstrument) of the flow on the sandbox.

    .venv/bin/python -m pip install pyinstrument   # (the `bench` extra)
    .venv/bin/python bench/profile_flow.py [--floor] [--top 10] [--html out.html]

Starts the sandbox and a PostgreSQL-backed Prefect server (not profiled), runs the flow once to warm up, then once
under the profiler, and prints the top frames by own time (where the CPU of this process went) and by total time
under golive's code. `--floor` replaces every check body with a no-op (as bench/overhead.py's floor does), so what is
left is orchestration: Prefect's task runs, golive's engine, report and artifacts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
NOOP = "bench/profile_flow.py floor: body not run"
REPO = Path(__file__).resolve().parents[1]
OURS: set[str] = set()


def _walk(frame: Any, own: Counter[str], total: Counter[str], seen: tuple[str, ...] = ()) -> None:
    """Own time per frame, keyed with its two callers (a builtin like `urandom` is only useful with who called it);
    total time per frame. pyinstrument's synthetic `[self]`/`[await]` frames count for their parent."""
    if frame.function.startswith("["):
        return
    name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
    path = str(frame.file_path)
    if "/site-packages/" not in path and path.startswith(str(REPO) + "/") or "/site-packages/golive/" in path:
        OURS.add(name)  # golive's own code, installed or in this checkout
    own[" <- ".join((name, *reversed(seen[-2:])))] += frame.total_self_time
    if name not in seen:  # a recursive frame counts once in its own total
        total[name] += frame.time
    for child in frame.children:
        _walk(child, own, total, (*seen, name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--floor", action="store_true", help="no-op check bodies: orchestration alone")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--html", help="also write pyinstrument's interactive HTML profile here")
    args = ap.parse_args()
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("bench/profile_flow.py needs pyinstrument: .venv/bin/python -m pip install pyinstrument", file=sys.stderr)
        return 3
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from golive.deployments.prefect_server import PrefectServer, export_client_env
    from golive.sandbox import Sandbox

    with Sandbox.start() as sb:
        os.environ.update(sb.env)
        with PrefectServer(sb.prefect_database_url(), Path(tempfile.mkdtemp(prefix="golive-bench-"))) as srv:
            export_client_env(srv.client_env())
            from golive.deployments.cli import _drain_prefect
            from golive.flows import engine, readiness
            from golive.tasks.core import Status, make_result

            if args.floor:

                async def noop(spec: Any, config: Any, *, redact: Any = None, memo: Any = None) -> Any:
                    import time

                    return make_result(
                        spec, Status.PASS, started=datetime.now(UTC), t0=time.monotonic(), observed="no-op",
                        expected="no-op", evidence=NOOP,
                    )  # fmt: skip

                engine.execute = noop  # type: ignore[assignment]

            def flow() -> float:
                state = asyncio.run(
                    readiness.go_live_readiness(
                        config=str(sb.config_path), mode="rehearsal", output_dir=None, return_state=True
                    )
                )
                report = readiness.REPORTS.pop(str(state.state_details.flow_run_id))
                if args.floor:
                    assert all(r.evidence == NOOP for r in report.results), "a check body ran in the floor"
                return report.duration_s

            flow()  # warm-up: imports, connection pools, the server's first queries
            prof = Profiler(interval=0.001, async_mode="disabled")
            prof.start()
            took = flow()
            prof.stop()
            _drain_prefect()
    session = prof.last_session
    assert session is not None
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    _walk(prof.last_session.root_frame(), own, total)  # type: ignore[union-attr]
    wall = session.duration
    print(f"{'floor' if args.floor else 'flow'}: {took:.2f} s in the flow, {wall:.2f} s profiled, "
          f"{session.cpu_time:.2f} CPU-s in this process")  # fmt: skip
    print(f"top {args.top} frames by own time (this process's threads, sampled every 1 ms):")
    for name, t in own.most_common(args.top):
        print(f"  {t:7.2f} s  {100 * t / wall:5.1f} %  {name}")
    print(f"top {args.top} of golive's frames by total time:")
    ours = Counter({k: v for k, v in total.items() if k in OURS})
    for name, t in ours.most_common(args.top):
        print(f"  {t:7.2f} s  {100 * t / wall:5.1f} %  {name}")
    if args.html:
        Path(args.html).write_text(prof.output_html(), encoding="utf-8")
        print(f"html profile: {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
