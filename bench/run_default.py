"""`golive run` as a user runs it, with no PREFECT_API_URL (golive's local PostgreSQL-backed Prefect server, started
by the warm-up and reused), against `golive check` (no Prefect), as whole processes on the sandbox's config.

    .venv/bin/python bench/run_default.py [--pairs 3]
    .venv/bin/python bench/run_default.py --demo 3      # `golive demo --readiness-only`, after a warm-up

Default: starts the sandbox, runs one warm-up of each (the first `golive run` starts the local server), then
`--pairs` interleaved pairs (check, run); prints each one's median wall time with min-max, the CPU seconds of the
process and its waited-for children, the local server's own CPU during each run (a detached process: read from
/proc), and the ratio run/check (issue 16's goal: <= 1.3). The server's data goes to a temporary XDG_DATA_HOME (never the
user's own server), stopped and removed at the end; the per-user cache of Prefect's migrated database is used as is.

`--demo N`: one warm-up demo (which fills the cache of Prefect's migrated database if empty), then N demos; prints
the median wall time and CPU seconds (children included: the sandbox's processes, the Prefect server), min-max,
and each demo's own phase line.

On a shared machine the figures move with the load: run it more than once and read the min-max.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0, 1, 2)) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its waited-for children, stdout) of one whole `golive` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *argv], env=env, cwd=REPO, capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode not in ok:
        sys.exit(f"golive {' '.join(argv)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return wall, cpu, p.stdout


def server_cpu(data_home: Path) -> float:
    """CPU seconds so far of the local server: its supervisor, PostgreSQL (and backends) and Prefect's server."""
    import json

    from golive.sandbox.procs import descendants

    try:
        pid = json.loads((data_home / "golive" / "server" / "server.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return 0.0
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, and of its exited children (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):6.2f}  (min {min(xs):.2f}, max {max(xs):.2f})"


def machine() -> str:
    load = os.getloadavg()[0]
    return f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, Python {platform.python_version()}"


def bench_run(pairs: int) -> int:
    from golive.sandbox import Sandbox

    data_home = Path(tempfile.mkdtemp(prefix="golive-bench-data-"))
    # no PREFECT_API_URL (nor any client setting); an operator's tuning of the server's services is kept
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k.startswith("PREFECT_SERVER_SERVICES_")
    }
    env |= {"XDG_DATA_HOME": str(data_home), "PREFECT_HOME": str(data_home / "prefect-client")}
    with Sandbox.start() as sb:
        env |= sb.env
        out = Path(tempfile.mkdtemp(prefix="golive-bench-reports-"))
        run = ["run", "--mode", "ci", "--config", str(sb.config_path), "--out", str(out)]
        check = ["check", "--config", str(sb.config_path)]
        try:
            wall, _, stdout = timed(run, env)
            first = next((ln for ln in stdout.splitlines() if ln.startswith("golive: ")), "")
            print(f"warm-up run {wall:.2f} s: {first}")
            timed(check, env)
            c_wall, c_cpu, r_wall, r_cpu, s_cpu = [], [], [], [], []
            for i in range(pairs):
                w, c, _ = timed(check, env)
                c_wall.append(w)
                c_cpu.append(c)
                before = server_cpu(data_home)
                w, c, stdout = timed(run, env)
                r_wall.append(w)
                r_cpu.append(c)
                s_cpu.append(server_cpu(data_home) - before)
                assert "reused" in stdout.splitlines()[0], stdout.splitlines()[0]
                print(f"  pair {i + 1}: check {c_wall[-1]:.2f} s, run {r_wall[-1]:.2f} s")
        finally:
            timed(["server", "stop", "--purge"], env, ok=(0,))
    print(machine() + f"; {pairs} interleaved pairs after one warm-up each")
    print(f"golive check               wall {spread(c_wall)} s; CPU {spread(c_cpu)} s")
    print(f"golive run (local server)  wall {spread(r_wall)} s; CPU {spread(r_cpu)} s")
    print(f"  the local server's own CPU during each run: {spread(s_cpu)} s")
    ratio = statistics.median(r_wall) / statistics.median(c_wall)
    print(f"ratio run/check (median wall) {ratio:.2f}  (goal <= 1.3)")
    return 0


def bench_demo(runs: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    out = tempfile.mkdtemp(prefix="golive-bench-demo-")
    argv = ["demo", "--readiness-only", "--out", out]
    wall, _, stdout = timed(argv, env)
    print(f"warm-up demo {wall:.2f} s")
    walls, cpus = [], []
    for i in range(runs):
        w, c, stdout = timed(argv, env)
        walls.append(w)
        cpus.append(c)
        phases = next((ln for ln in stdout.splitlines() if ln.startswith("demo phases:")), "")
        print(f"  demo {i + 1}: {w:.2f} s wall, {c:.1f} CPU-s; {phases}")
    print(machine() + f"; {runs} demos after one warm-up")
    print(f"golive demo --readiness-only  wall {spread(walls)} s; CPU (children included) {spread(cpus)} s")
    print("goal: median wall <= 20 s, <= 25 CPU-s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3, help="interleaved (check, run) pairs (default 3)")
    ap.add_argument("--demo", type=int, metavar="N", help="time N demos (after a warm-up) instead")
    args = ap.parse_args()
    if args.demo is not None:
        if args.demo < 1:
            ap.error("--demo must be >= 1")
        return bench_demo(args.demo)
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")
    return bench_run(args.pairs)


if __name__ == "__main__":
    raise SystemExit(main())
