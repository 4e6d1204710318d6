"""Ports are reserved machine-wide: under pytest-xdist (and a demo beside a test run) two sandboxes start at once,
and a port one process picked but has not bound yet is free to the kernel: another process's bind(0) may pick it
too, and its service then talks to the other sandbox's (seen in CI: a demo's S3 user "already exists")."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from golive.sandbox import procs

HOLDER = """
import sys, time
from golive.sandbox import procs
print(",".join(map(str, procs.free_ports(5))), flush=True)
time.sleep(60)
"""


def test_a_port_another_live_process_reserved_is_never_handed_out_and_a_dead_ones_is(monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        theirs = [int(p) for p in child.stdout.readline().split(",")]
        assert len(theirs) == 5
        # the kernel offers exactly their ports first (as it may: they are not bound), then any
        offered = iter(theirs + [0] * 20)

        class Offering(socket.socket):
            def bind(self, address):
                super().bind((address[0], next(offered)))

        monkeypatch.setattr(procs.socket, "socket", Offering)
        mine = procs.free_ports(3)
        assert not set(mine) & set(theirs) and len(set(mine)) == 3
        procs.release_ports(mine)
    finally:
        child.kill()
        child.wait()
    # their process is gone: the ports are free again
    time.sleep(0.1)
    registry = procs._port_registry()
    assert all(procs._reserve(registry, p) for p in theirs)
    procs.release_ports(theirs)
    assert not any((registry / str(p)).exists() for p in theirs)
