"""The `hosts` section (seed 1.1): network reach of the server roles (TCP connect time to the load balancer / the
database), the backend's Python, and the machine golive itself runs on. The servers' resources read from
node_exporter are monitoring/servers.py's (they read `monitoring`; the uplink settings they use are this section's)."""

from __future__ import annotations

import re
import shlex
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, field_validator

from .clients.http import http_client, req_timeout
from .core import (
    Observation,
    RunContext,
    check,
    compare,
    failed,
    failed_if,
    given,
    meets,
    passed,
    service_down,
    warned,
)
from .models import CaFile, Target, default_roles

GiB = 1024**3


def _gib(v: float) -> str:
    return f"{v / GiB:.1f} GiB"


def _hostport(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {v!r}")
    return v


def split_hostport(v: str) -> tuple[str, int]:
    host, _, port = v.rpartition(":")
    return host.strip("[]"), int(port)


class LocalHost(Target):
    """The machine golive itself runs on, measured locally (what `top`, `free -h` and `df -h /` show there): for a
    golive run on a server of the role, or to make sure the gate's own host is fit. Unset thresholds are reported
    only."""

    role: str | None = Field(
        None,
        description="a monitoring.roles name whose thresholds apply to this machine "
        "(the seed's defaults when there is no monitoring section)",
    )
    min_cores: int | None = Field(None, ge=1, description="overrides the role's")
    max_cpu_ratio: float | None = Field(None, gt=0, le=1, description="overrides the role's")
    min_free_memory_bytes: int | None = Field(None, ge=0, description="overrides the role's")
    min_free_disk_bytes: int | None = Field(None, ge=0, description="overrides the role's")
    disk_path: Path = Field(Path("/"), description="the filesystem whose free space counts")
    cpu_sample_s: float = Field(1.0, gt=0, le=5, description="CPU busy is measured over this window (/proc/stat)")


class HostsTarget(Target):
    """What the servers' checks need besides Prometheus: where the load balancer and the database are, the
    backend's health URLs (which report its Python), and the thresholds the monitoring section has no place for."""

    load_balancer: str | None = Field(
        None,
        description="host:port of the load balancer the frontend servers use "
        "(TCP connect time measured from where golive runs)",
    )
    database: str | None = Field(None, description="host:port of the database the backend servers use")
    max_lb_latency_ms: float = Field(50.0, gt=0, description="seed 1.1: < 50 ms from frontend to load balancer")
    max_db_latency_ms: float = Field(10.0, gt=0, description="seed 1.1: < 10 ms from backend to database")
    latency_samples: int = Field(5, ge=1, le=50, description="TCP connects per latency check (median compared)")
    min_link_speed_mbps: float = Field(1000.0, gt=0, description="seed 1.1: link speed 1000 Mb/s or higher")
    link_device_regex: str = Field(
        "eth.*|en.*|ens.*|eno.*|bond.*", description="node_exporter `device` label of the servers' uplinks"
    )
    link_speed_mbps: float | None = Field(
        None,
        gt=0,
        description="the uplinks' speed where the NIC reports none "
        "(virtual NICs: AWS ENA, virtio, veth report -1 or nothing): the instance "
        "type's bandwidth, reported as declared",
    )
    backend_health_urls: list[AnyHttpUrl] = Field(
        default_factory=list, description="backend health endpoints reporting the runtime (JSON with `python_field`)"
    )
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https health URLs")
    python_field: str = Field("python", description="JSON key of the health answer holding the Python version")
    min_python: str = Field("3.10", pattern=r"^\d+\.\d+$", description="seed 1.1: Python 3.10+")
    preferred_python: str | None = Field(
        "3.11", pattern=r"^\d+\.\d+$", description="seed 1.1: ideally 3.11.x (another minor is a WARN)"
    )

    local: LocalHost | None = Field(None, description="the machine golive runs on (measured locally)")

    @field_validator("load_balancer", "database")
    @classmethod
    def _hp(cls, v: str | None) -> str | None:
        return None if v is None else _hostport(v)


# --------------------------------------------------------------------------- TCP connect time


def connect_times(address: str, samples: int, ctx: RunContext) -> list[float]:
    host, port = split_hostport(address)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with socket.create_connection((host, port), timeout=min(5.0, ctx.remaining)):
            out.append(round((time.perf_counter() - t0) * 1000, 2))
    return out


def _latency(address: str, limit: float, what: str, h: HostsTarget, ctx: RunContext) -> Observation:
    host, port = split_hostport(address)
    try:
        samples = connect_times(address, h.latency_samples, ctx)
    except OSError:  # refused or silent: where a service golive checks listens, that check reports it
        if (down := service_down(ctx, host, port)) is not None:
            return down
        raise
    med = statistics.median(samples)
    evidence = (
        f"{len(samples)} TCP connects to {address} from the host golive runs on (run golive next to the "
        f"{what} servers for the seed's meaning), median compared; re-run: "
        f"`curl -so /dev/null -w '%{{time_connect}}\\n' --max-time 2 telnet://{host}:{port} </dev/null`"
    )
    obs = compare(round(med, 2), "<", limit, unit="ms", evidence=evidence, samples_ms=samples)
    return obs


@check(
    "infrastructure.frontend.lb_latency",
    title="Load balancer answers a TCP connect fast",
    seed=["1.1 Frontend Server(s): Network Connectivity"],
    timeout=10,
    target="hosts",
    timing=True,
    needs=["hosts.load_balancer"],
)
def lb_latency(h: HostsTarget, ctx: RunContext) -> Observation:
    """Median TCP connect time to hosts.load_balancer < max_lb_latency_ms (latency_samples connects). An address
    that does not accept, where the web endpoint (or another service golive checks) listens, is that check's failure:
    SKIPPED naming it."""
    return _latency(given(h.load_balancer), h.max_lb_latency_ms, "frontend", h, ctx)


@check(
    "infrastructure.backend.db_latency",
    title="Database answers a TCP connect fast",
    seed=["1.1 Backend Server(s): Network Connectivity"],
    timeout=10,
    target="hosts",
    timing=True,
    needs=["hosts.database"],
)
def db_latency(h: HostsTarget, ctx: RunContext) -> Observation:
    """Median TCP connect time to hosts.database < max_db_latency_ms (latency_samples connects). An address that
    does not accept, where the `postgres` database (or another service golive checks) listens, is that check's
    failure: SKIPPED naming it."""
    return _latency(given(h.database), h.max_db_latency_ms, "backend", h, ctx)


# --------------------------------------------------------------------------- the backend's Python


def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^\s*(?:Python\s+)?(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


@check(
    "infrastructure.backend.python",
    title="Backend runs a supported Python",
    seed=["1.1 Backend Server(s): Python Environment"],
    timeout=10,
    target="hosts",
    needs=["hosts.backend_health_urls"],
)
def backend_python(h: HostsTarget, ctx: RunContext) -> Observation:
    """Each of hosts.backend_health_urls answers 200 JSON whose `python_field` is >= min_python (the version the
    running app reports, not the one on some PATH); another minor than preferred_python is a WARN."""
    want = tuple(int(x) for x in h.min_python.split("."))
    observed: dict[str, str] = {}
    bad, other = [], []
    with http_client(ctx, h.ca_file) as c:
        for url in map(str, h.backend_health_urls):
            r = c.get(url, timeout=req_timeout(ctx))
            try:
                body = r.json()
            except ValueError:
                body = None
            raw = body.get(h.python_field) if isinstance(body, dict) else None
            ver = _version(raw) if raw is not None else None
            observed[url] = f"{r.status_code}, {h.python_field}={raw!r}"
            if r.status_code != 200 or ver is None or ver[:2] < want:
                bad.append(url)
            elif h.preferred_python and ".".join(map(str, ver[:2])) != h.preferred_python:
                other.append(url)
    ca = f" --cacert {shlex.quote(str(h.ca_file))}" if h.ca_file else ""
    evidence = (
        f"GET each health URL, JSON key {h.python_field!r}; re-run: "
        f"`curl -sS{ca} {str(h.backend_health_urls[0])} | jq -r .{h.python_field}`"
    )
    expected = f">= {h.min_python}" + (f" (ideally {h.preferred_python}.x)" if h.preferred_python else "")
    if bad:
        return failed(observed, expected, evidence, failing=bad)
    if other:
        return warned(observed, expected, evidence, not_preferred=other)
    return passed(observed, expected, evidence)


# --------------------------------------------------------------------------- the machine golive runs on


def _cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


@check(
    "infrastructure.local.resources",
    title="The machine golive runs on has the resources of its role",
    seed=[
        "1.1 Frontend Server(s): CPU Resources",
        "1.1 Frontend Server(s): Memory Resources",
        "1.1 Frontend Server(s): Disk Space",
        "1.1 Backend Server(s): CPU Resources",
        "1.1 Backend Server(s): Memory Resources",
        "1.1 Backend Server(s): Disk Space",
    ],
    timeout=10,
    target="hosts",
    needs=["hosts.local"],
    uses=["monitoring"],
)
def local_resources(h: HostsTarget, ctx: RunContext, *, monitoring: Any) -> Observation:
    """Measured on this machine: usable cores (sched_getaffinity), CPU busy over cpu_sample_s (/proc/stat),
    MemAvailable (/proc/meminfo), free space of disk_path (statvfs), compared with hosts.local's thresholds (its
    `role`'s from monitoring.roles, overridden field by field)."""
    import os
    import shutil

    loc = given(h.local)
    limits: dict[str, Any] = {}
    if loc.role is not None:
        roles = monitoring.roles if monitoring is not None else default_roles()
        if loc.role not in roles:
            return failed(f"role {loc.role!r} unknown", f"one of {sorted(roles)}", "hosts.local.role")
        r = roles[loc.role]
        limits = {
            "cores": r.min_cores,
            "cpu": r.max_cpu_ratio,
            "memory": r.min_free_memory_bytes,
            "disk": r.min_free_disk_bytes,
        }
    for key, value in (
        ("cores", loc.min_cores),
        ("cpu", loc.max_cpu_ratio),
        ("memory", loc.min_free_memory_bytes),
        ("disk", loc.min_free_disk_bytes),
    ):
        if value is not None:
            limits[key] = value
    idle0, total0 = _cpu_times()
    time.sleep(min(loc.cpu_sample_s, max(0.05, ctx.remaining - 1)))
    idle1, total1 = _cpu_times()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    mem = _mem_available()
    disk = shutil.disk_usage(loc.disk_path).free
    observed = {
        "host": socket.gethostname(),
        "cores": cores,
        "cpu_busy": f"{busy * 100:.1f} %",
        "memory_available": _gib(mem),
        "disk_free": f"{_gib(disk)} on {loc.disk_path}",
    }
    expected: dict[str, str] = {}
    bad = []
    for key, value, op, fmt in (
        ("cores", cores, ">=", str),
        ("cpu", busy, "<", lambda v: f"{v * 100:.1f} %"),
        ("memory", mem, ">", _gib),
        ("disk", disk, ">", _gib),
    ):
        if key in limits:
            expected[key] = f"{op} {fmt(limits[key])}"
            if not meets(value, op, limits[key]):
                bad.append(key)
        else:
            expected[key] = "reported (no threshold)"
    evidence = (
        f"measured on {socket.gethostname()} where golive runs: sched_getaffinity, /proc/stat over "
        f"{loc.cpu_sample_s:g} s, /proc/meminfo MemAvailable, statvfs({loc.disk_path}); re-run there: "
        f"`nproc; top -b -n 2 -d {loc.cpu_sample_s:g} | grep Cpu; free -h; df -h {loc.disk_path}`"
    )
    return failed_if(
        bad,
        observed,
        expected,
        evidence,
        failing=bad,
        thresholds_from=f"monitoring.roles.{loc.role}" if loc.role else "hosts.local",
    )
