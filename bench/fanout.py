"""Fan-out of the load balancer's backend-pool probe: N local backend instances probed at a bounded concurrency.

    .venv/bin/python bench/fanout.py [--instances 200] [--concurrency 20] [--delay-ms 50] [--runs 5]

Starts `--instances` backend instances (sandbox/netfakes.py: one process, one listening port each, answering
`GET /api/health` after `--delay-ms`, like a health endpoint that checks its database), then:
1. measures the per-probe latency the way the check probes (a new connection, `Connection: close`, the same httpx
   client): 40 probes one at a time (concurrency 1), wall / 40;
2. probes all instances with `tasks.loadbalancer.probe_instances` at `--concurrency` (what
   `infrastructure.lb.backend_pool` runs), `--runs` times;
and prints the ratio of each fan-out's wall time to the ideal: instances / concurrency x per-probe latency
(target <= 2x), with the machine it ran on.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def start_instances(n: int, delay_ms: float) -> tuple[subprocess.Popen, list[int]]:
    from golive.sandbox.procs import free_ports

    ports = free_ports(n)
    faults = Path(tempfile.mkdtemp(prefix="golive-fanout-")) / "faults.json"
    argv = [
        sys.executable,
        "-m",
        "golive.sandbox.parts.network_edge",
        "--faults",
        str(faults),
        "--backend-delay-ms",
        str(delay_ms),
    ]
    for p in ports:
        argv += ["--backend-port", str(p)]
    proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 30
    pending = list(ports)
    while pending:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the backend instances did not start")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", pending[-1])) == 0:
                pending.pop()
                continue
        time.sleep(0.05)
    return proc, ports


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    from golive.tasks.core import RunContext
    from golive.tasks.loadbalancer import probe_instances

    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    proc, ports = start_instances(a.instances, a.delay_ms)
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        probe_instances(urls[:5], "/api/health", concurrency=5, timeout_s=5, ctx=RunContext(timeout=30))  # warm-up
        seq_n = 40
        t0 = time.perf_counter()
        res = probe_instances(urls[:seq_n], "/api/health", concurrency=1, timeout_s=5, ctx=RunContext(timeout=60))
        per_probe = (time.perf_counter() - t0) / seq_n
        assert all(r["status"] == 200 for r in res), res
        ideal = a.instances / a.concurrency * per_probe
        print(
            f"per-probe latency (sequential, {seq_n} probes): {per_probe * 1000:.1f} ms "
            f"(server-side delay {a.delay_ms:g} ms)"
        )
        print(f"ideal: {a.instances} / {a.concurrency} x {per_probe * 1000:.1f} ms = {ideal:.3f} s")
        ratios = []
        for i in range(a.runs):
            t0 = time.perf_counter()
            res = probe_instances(
                urls, "/api/health", concurrency=a.concurrency, timeout_s=5, ctx=RunContext(timeout=60)
            )
            wall = time.perf_counter() - t0
            ok = sum(r["status"] == 200 for r in res)
            ratios.append(wall / ideal)
            print(
                f"run {i + 1}: {a.instances} instances, concurrency {a.concurrency}: wall {wall:.3f} s, "
                f"{ok}/{len(res)} healthy, ratio {wall / ideal:.2f}x"
            )
        print(
            f"ratio wall / ideal: median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x "
            f"(target <= 2x: {'met' if max(ratios) <= 2 else 'NOT met'})"
        )
    finally:
        proc.kill()
        proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
