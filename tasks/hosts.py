"""Servers (seed 1.1): per-role resources from node_exporter metrics (PromQL through the Prometheus HTTP API),
network reach of the roles (TCP connect time to the load balancer / the database) and the backend's Python.

The per-role thresholds (cores, CPU, free memory, free disk) live in `monitoring.roles` (tasks/prometheus.py:
HostRole, the seed's numbers by default); the rest lives here, in the `hosts` section.
"""
from __future__ import annotations

import re
import shlex
import socket
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import AnyHttpUrl, Field, field_validator

from .clients.http import http_client, req_timeout
from .clients.prometheus import api_get, api_url
from .core import Observation, RunContext, check, compare, failed, not_applicable, passed, service_down, warned
from .models import CaFile, Target
from .prometheus import MonitoringTarget

GiB = 1024**3


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

    role: str | None = Field(None, description="a monitoring.roles name whose thresholds apply to this machine "
                                               "(the seed's defaults when there is no monitoring section)")
    min_cores: int | None = Field(None, ge=1, description="overrides the role's")
    max_cpu_ratio: float | None = Field(None, gt=0, le=1, description="overrides the role's")
    min_free_memory_bytes: int | None = Field(None, ge=0, description="overrides the role's")
    min_free_disk_bytes: int | None = Field(None, ge=0, description="overrides the role's")
    disk_path: Path = Field(Path("/"), description="the filesystem whose free space counts")
    cpu_sample_s: float = Field(1.0, gt=0, le=5, description="CPU busy is measured over this window (/proc/stat)")


class HostsTarget(Target):
    """What the servers' checks need besides Prometheus: where the load balancer and the database are, the
    backend's health URLs (which report its Python), and the thresholds the monitoring section has no place for."""

    load_balancer: str | None = Field(None, description="host:port of the load balancer the frontend servers use "
                                                        "(TCP connect time measured from where golive runs)")
    database: str | None = Field(None, description="host:port of the database the backend servers use")
    max_lb_latency_ms: float = Field(50.0, gt=0, description="seed 1.1: < 50 ms from frontend to load balancer")
    max_db_latency_ms: float = Field(10.0, gt=0, description="seed 1.1: < 10 ms from backend to database")
    latency_samples: int = Field(5, ge=1, le=50, description="TCP connects per latency check (median compared)")
    min_link_speed_mbps: float = Field(1000.0, gt=0, description="seed 1.1: link speed 1000 Mb/s or higher")
    link_device_regex: str = Field("eth.*|en.*|ens.*|eno.*|bond.*",
                                   description="node_exporter `device` label of the servers' uplinks")
    link_speed_mbps: float | None = Field(None, gt=0, description="the uplinks' speed where the NIC reports none "
                                          "(virtual NICs: AWS ENA, virtio, veth report -1 or nothing): the instance "
                                          "type's bandwidth, reported as declared")
    backend_health_urls: list[AnyHttpUrl] = Field(
        default_factory=list, description="backend health endpoints reporting the runtime (JSON with `python_field`)")
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https health URLs")
    python_field: str = Field("python", description="JSON key of the health answer holding the Python version")
    min_python: str = Field("3.10", pattern=r"^\d+\.\d+$", description="seed 1.1: Python 3.10+")
    preferred_python: str | None = Field("3.11", pattern=r"^\d+\.\d+$",
                                         description="seed 1.1: ideally 3.11.x (another minor is a WARN)")

    local: LocalHost | None = Field(None, description="the machine golive runs on (measured locally)")

    @field_validator("load_balancer", "database")
    @classmethod
    def _hp(cls, v: str | None) -> str | None:
        return None if v is None else _hostport(v)


_DEFAULTS = HostsTarget()


def _hosts(ctx: RunContext) -> HostsTarget:
    return getattr(ctx.config, "hosts", None) or _DEFAULTS


# --------------------------------------------------------------------------- PromQL per role

CORES = 'count by (instance) (node_cpu_seconds_total{mode="idle"})'
CPU = '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'


def _query(t: MonitoringTarget, ctx: RunContext, expr: str) -> list[tuple[dict[str, str], float]]:
    """An instant query (memoized per run): [(labels, value)]."""

    def do() -> list[tuple[dict[str, str], float]]:
        data = api_get(t, ctx, "/api/v1/query", query=expr)
        if data.get("resultType") != "vector":
            raise RuntimeError(f"{expr}: expected a vector, got {data.get('resultType')}")
        return [(r.get("metric", {}), float(r["value"][1])) for r in data.get("result", [])]

    return ctx.memo(("promql", str(t.prometheus_url), expr), do)


def _of_role(rows: list[tuple[dict[str, str], float]], regex: str) -> list[tuple[dict[str, str], float]]:
    rx = re.compile(regex)
    return [(m, v) for m, v in rows if rx.fullmatch(m.get("instance", ""))]


def _evidence(t: MonitoringTarget, expr: str) -> str:
    url = api_url(t, "/api/v1/query")
    return (f"PromQL `{expr}` via GET {url}; re-run: "
            f"`curl -sS '{url}?query={quote(expr, safe='')}' | jq '.data.result'`")


def _gib(v: float) -> str:
    return f"{v / GiB:.1f} GiB"


def _role_checks(role: str, seed_prefix: str) -> None:
    """Declare the node_exporter checks of one role (frontend / backend)."""
    status_id = f"infrastructure.{role}.status"

    def role_of(t: MonitoringTarget):
        return t.roles.get(role)

    def na() -> Observation:
        return not_applicable(f"no `monitoring.roles.{role}` configured")

    def status(t: MonitoringTarget, ctx: RunContext) -> Observation:
        r = role_of(t)
        if r is None:
            return na()
        up = _of_role(_query(t, ctx, "up"), r.instance_regex)
        boot = {m.get("instance"): v for m, v in _of_role(_query(t, ctx, "node_boot_time_seconds"),
                                                            r.instance_regex)}
        now = time.time()
        per: dict[str, Any] = {}
        for m, v in up:
            inst = m.get("instance", "?")
            entry = per.setdefault(inst, {"up": True, "jobs": []})
            entry["jobs"].append(m.get("job"))
            entry["up"] = entry["up"] and v == 1.0
            if inst in boot:
                entry["uptime_h"] = round((now - boot[inst]) / 3600, 1)
        expected = f"at least one instance matching {r.instance_regex!r}, every one up == 1"
        evidence = (_evidence(t, "up") + f" (instances matching {r.instance_regex!r}); "
                    "uptime from node_boot_time_seconds")
        down = [i for i, e in per.items() if not e["up"]]
        if not per:
            return failed(f"no instance matches {r.instance_regex!r}", expected, evidence)
        return (failed if down else passed)(per, expected, evidence, down=down)

    status.__doc__ = (f"Every `{role}` instance (monitoring.roles.{role}.instance_regex) has `up == 1` in Prometheus "
                      "(the scrape of its node_exporter answers); uptime from node_boot_time_seconds is documented.")
    # no depends_on monitoring.prometheus.reachable: the readiness flow starts a section only once the checks it
    # needs from other sections landed, and that one waits for the quiet window, which this section's timing
    # checks (connect times) are part of. An unreachable Prometheus makes this check ERROR and its dependents
    # SKIPPED with that root cause.
    check(status_id, title=f"{role.capitalize()} servers are up", seed=[f"{seed_prefix}: Server Status"],
          timeout=10, target="monitoring")(status)

    def per_instance(t: MonitoringTarget, ctx: RunContext, expr: str, limit_of, op: str, unit: str, fmt,
                     what: str) -> Observation:
        r = role_of(t)
        if r is None:
            return na()
        rows = _of_role(_query(t, ctx, expr), r.instance_regex)
        limit = limit_of(r)
        values = {m.get("instance", "?"): v for m, v in rows}
        evidence = _evidence(t, expr) + f", instances matching {r.instance_regex!r}"
        expected = f"{what} {op} {fmt(limit)} on every {role} instance"
        if not values:
            return failed(f"no series for instances matching {r.instance_regex!r}", expected, evidence)
        bad = {i: fmt(v) for i, v in values.items() if not compare(v, op, limit, evidence="").status.value == "PASS"}
        observed = {i: fmt(v) for i, v in sorted(values.items())}
        return (failed if bad else passed)(observed, expected, evidence, failing=sorted(bad), unit=unit)

    def cores(t: MonitoringTarget, ctx: RunContext) -> Observation:
        return per_instance(t, ctx, CORES, lambda r: r.min_cores, ">=", "cores", lambda v: f"{v:g}", "CPU cores")

    def cpu(t: MonitoringTarget, ctx: RunContext) -> Observation:
        return per_instance(t, ctx, CPU, lambda r: r.max_cpu_ratio, "<", "ratio", lambda v: f"{v * 100:.1f} %",
                            "CPU busy over 5 min")

    def memory(t: MonitoringTarget, ctx: RunContext) -> Observation:
        return per_instance(t, ctx, "node_memory_MemAvailable_bytes", lambda r: r.min_free_memory_bytes, ">",
                            "bytes", _gib, "available memory")

    def disk(t: MonitoringTarget, ctx: RunContext) -> Observation:
        return per_instance(t, ctx, 'node_filesystem_avail_bytes{mountpoint="/"}', lambda r: r.min_free_disk_bytes,
                            ">", "bytes", _gib, "free space on /")

    cores.__doc__ = f"`{CORES}` >= monitoring.roles.{role}.min_cores on every {role} instance."
    cpu.__doc__ = f"`{CPU}` < monitoring.roles.{role}.max_cpu_ratio on every {role} instance (before traffic)."
    memory.__doc__ = (f"node_memory_MemAvailable_bytes > monitoring.roles.{role}.min_free_memory_bytes on every "
                      f"{role} instance (what `free -h` shows as available).")
    disk.__doc__ = (f'node_filesystem_avail_bytes{{mountpoint="/"}} > monitoring.roles.{role}.min_free_disk_bytes '
                    f"on every {role} instance (`df -h /`).")
    for fact, fn, seed, title in (("cores", cores, "CPU Resources", "enough CPU cores"),
                                  ("cpu", cpu, "CPU Resources", "CPU usage is low before traffic"),
                                  ("memory", memory, "Memory Resources", "enough free memory"),
                                  ("disk", disk, "Disk Space", "enough free disk on /")):
        check(f"infrastructure.{role}.{fact}", title=f"{role.capitalize()} servers: {title}",
              seed=[f"{seed_prefix}: {seed}"], depends_on=[status_id], timeout=10, target="monitoring")(fn)

    def link(t: MonitoringTarget, ctx: RunContext) -> Observation:
        r = role_of(t)
        if r is None:
            return na()
        h = _hosts(ctx)
        sel = f'{{device=~"{h.link_device_regex}"}}'
        up_expr, speed_expr = f"node_network_up{sel}", f"node_network_speed_bytes{sel}"
        ups = _of_role(_query(t, ctx, up_expr), r.instance_regex)
        speeds = {(m.get("instance"), m.get("device")): v for m, v in
                  _of_role(_query(t, ctx, speed_expr), r.instance_regex)}
        min_bytes = h.min_link_speed_mbps * 1_000_000 / 8
        declared = h.link_speed_mbps * 1_000_000 / 8 if h.link_speed_mbps else None
        observed: dict[str, str] = {}
        bad = []
        for m, v in ups:
            key = (m.get("instance"), m.get("device"))
            speed = speeds.get(key)
            if speed is not None and speed > 0:
                shown = f"{speed * 8 / 1e6:g} Mb/s"
            else:  # the driver reports no speed (-1 or no series): a virtual NIC; only a declared speed can count
                speed = declared
                shown = "speed not reported by the NIC" + (f", declared {h.link_speed_mbps:g} Mb/s" if declared
                                                           else " (virtual NIC? set hosts.link_speed_mbps)")
            observed[f"{key[0]} {key[1]}"] = ("up" if v == 1 else "DOWN") + ", " + shown
            if v != 1 or speed is None or speed < min_bytes:
                bad.append(f"{key[0]} {key[1]}")
        expected = f"every uplink ({h.link_device_regex}) up at >= {h.min_link_speed_mbps:g} Mb/s"
        evidence = _evidence(t, up_expr) + f" and `{speed_expr}` (what `ethtool eth0` shows)"
        if not observed:
            return failed(f"no uplink series for instances matching {r.instance_regex!r}", expected, evidence)
        return (failed if bad else passed)(observed, expected, evidence, failing=bad)

    link.__doc__ = (f"node_network_up == 1 and node_network_speed_bytes >= hosts.min_link_speed_mbps on every uplink "
                    f"(hosts.link_device_regex) of every {role} instance. Accepts a NIC that reports no speed "
                    "(node_exporter's -1 or no series: AWS ENA, virtio, veth) only with hosts.link_speed_mbps "
                    "declared (reported as declared); without it, FAIL naming that setting.")
    check(f"infrastructure.{role}.link", title=f"{role.capitalize()} servers: network links up at full speed",
          seed=[f"{seed_prefix}: Network Connectivity"], depends_on=[status_id], timeout=10,
          target="monitoring")(link)


_role_checks("frontend", "1.1 Frontend Server(s)")
_role_checks("backend", "1.1 Backend Server(s)")


# --------------------------------------------------------------------------- TCP connect time

def connect_times(address: str, samples: int, ctx: RunContext) -> list[float]:
    host, port = split_hostport(address)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with socket.create_connection((host, port), timeout=min(5.0, ctx.remaining)):
            out.append(round((time.perf_counter() - t0) * 1000, 2))
    return out


def _latency(address: str | None, limit: float, what: str, key: str, h: HostsTarget, ctx: RunContext) -> Observation:
    if address is None:
        return not_applicable(f"no `hosts.{key}` configured")
    host, port = split_hostport(address)
    try:
        samples = connect_times(address, h.latency_samples, ctx)
    except OSError:  # refused or silent: where a service golive checks listens, that check reports it
        if (down := service_down(ctx, host, port)) is not None:
            return down
        raise
    med = statistics.median(samples)
    evidence = (f"{len(samples)} TCP connects to {address} from the host golive runs on (run golive next to the "
                f"{what} servers for the seed's meaning), median compared; re-run: "
                f"`curl -so /dev/null -w '%{{time_connect}}\\n' --max-time 2 telnet://{host}:{port} </dev/null`")
    obs = compare(round(med, 2), "<", limit, unit="ms", evidence=evidence, samples_ms=samples)
    return obs


@check("infrastructure.frontend.lb_latency", title="Load balancer answers a TCP connect fast",
       seed=["1.1 Frontend Server(s): Network Connectivity"], timeout=10, target="hosts", timing=True)
def lb_latency(h: HostsTarget, ctx: RunContext) -> Observation:
    """Median TCP connect time to hosts.load_balancer < max_lb_latency_ms (latency_samples connects). An address
    that does not accept, where the web endpoint (or another service golive checks) listens, is that check's failure:
    SKIPPED naming it."""
    return _latency(h.load_balancer, h.max_lb_latency_ms, "frontend", "load_balancer", h, ctx)


@check("infrastructure.backend.db_latency", title="Database answers a TCP connect fast",
       seed=["1.1 Backend Server(s): Network Connectivity"], timeout=10, target="hosts", timing=True)
def db_latency(h: HostsTarget, ctx: RunContext) -> Observation:
    """Median TCP connect time to hosts.database < max_db_latency_ms (latency_samples connects). An address that
    does not accept, where the `postgres` database (or another service golive checks) listens, is that check's
    failure: SKIPPED naming it."""
    return _latency(h.database, h.max_db_latency_ms, "backend", "database", h, ctx)


# --------------------------------------------------------------------------- the backend's Python

def _version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^\s*(?:Python\s+)?(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


@check("infrastructure.backend.python", title="Backend runs a supported Python",
       seed=["1.1 Backend Server(s): Python Environment"], timeout=10, target="hosts")
def backend_python(h: HostsTarget, ctx: RunContext) -> Observation:
    """Each of hosts.backend_health_urls answers 200 JSON whose `python_field` is >= min_python (the version the
    running app reports, not the one on some PATH); another minor than preferred_python is a WARN."""
    if not h.backend_health_urls:
        return not_applicable("no `hosts.backend_health_urls` configured")
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
    evidence = (f"GET each health URL, JSON key {h.python_field!r}; re-run: "
                f"`curl -sS{ca} {str(h.backend_health_urls[0])} | jq -r .{h.python_field}`")
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


@check("infrastructure.local.resources", title="The machine golive runs on has the resources of its role",
       seed=["1.1 Frontend Server(s): CPU Resources", "1.1 Frontend Server(s): Memory Resources",
             "1.1 Frontend Server(s): Disk Space", "1.1 Backend Server(s): CPU Resources",
             "1.1 Backend Server(s): Memory Resources", "1.1 Backend Server(s): Disk Space"],
       timeout=10, target="hosts")
def local_resources(h: HostsTarget, ctx: RunContext) -> Observation:
    """Measured on this machine: usable cores (sched_getaffinity), CPU busy over cpu_sample_s (/proc/stat),
    MemAvailable (/proc/meminfo), free space of disk_path (statvfs), compared with hosts.local's thresholds (its
    `role`'s from monitoring.roles, overridden field by field)."""
    import os
    import shutil

    if h.local is None:
        return not_applicable("no `hosts.local` configured")
    loc = h.local
    limits: dict[str, Any] = {}
    if loc.role is not None:
        roles = (getattr(ctx.config, "monitoring", None) or MonitoringTarget(prometheus_url="http://unused")).roles
        if loc.role not in roles:
            return failed(f"role {loc.role!r} unknown", f"one of {sorted(roles)}", "hosts.local.role")
        r = roles[loc.role]
        limits = {"cores": r.min_cores, "cpu": r.max_cpu_ratio, "memory": r.min_free_memory_bytes,
                  "disk": r.min_free_disk_bytes}
    for key, value in (("cores", loc.min_cores), ("cpu", loc.max_cpu_ratio), ("memory", loc.min_free_memory_bytes),
                       ("disk", loc.min_free_disk_bytes)):
        if value is not None:
            limits[key] = value
    idle0, total0 = _cpu_times()
    time.sleep(min(loc.cpu_sample_s, max(0.05, ctx.remaining - 1)))
    idle1, total1 = _cpu_times()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    mem = _mem_available()
    disk = shutil.disk_usage(loc.disk_path).free
    observed = {"host": socket.gethostname(), "cores": cores, "cpu_busy": f"{busy * 100:.1f} %",
                "memory_available": _gib(mem), "disk_free": f"{_gib(disk)} on {loc.disk_path}"}
    expected: dict[str, str] = {}
    bad = []
    for key, value, op, fmt in (("cores", cores, ">=", str), ("cpu", busy, "<", lambda v: f"{v * 100:.1f} %"),
                                ("memory", mem, ">", _gib), ("disk", disk, ">", _gib)):
        if key in limits:
            expected[key] = f"{op} {fmt(limits[key])}"
            if compare(value, op, limits[key], evidence="").status.value != "PASS":
                bad.append(key)
        else:
            expected[key] = "reported (no threshold)"
    evidence = (f"measured on {socket.gethostname()} where golive runs: sched_getaffinity, /proc/stat over "
                f"{loc.cpu_sample_s:g} s, /proc/meminfo MemAvailable, statvfs({loc.disk_path}); re-run there: "
                f"`nproc; top -b -n 2 -d {loc.cpu_sample_s:g} | grep Cpu; free -h; df -h {loc.disk_path}`")
    return (failed if bad else passed)(observed, expected, evidence, failing=bad,
                                       thresholds_from=f"monitoring.roles.{loc.role}" if loc.role else "hosts.local")
