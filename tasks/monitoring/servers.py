"""Servers (seed 1.1) from node_exporter metrics, read through the Prometheus HTTP API (PromQL): per role (frontend,
backend) the instances are up, and each has the cores, CPU headroom, free memory, free disk and full-speed links the
role's thresholds ask for (`monitoring.roles`, the seed's numbers by default). Declared from two tables, ROLES x
METRICS; one body per kind of check. The uplink settings the Prometheus section has no place for are `hosts`'s."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from ..clients.prometheus import api_url, instant_query
from ..core import Observation, RunContext, check, failed, failed_if, meets, not_applicable
from ..hosts import HostsTarget
from ..models import HostRole
from .prometheus import MonitoringTarget

GiB = 1024**3

#: role name -> the seed's heading for it
ROLES = {"frontend": "1.1 Frontend Server(s)", "backend": "1.1 Backend Server(s)"}


@dataclass(frozen=True)
class Metric:
    """One per-instance threshold check: `expr` (one value per instance) `op` the role's `limit` field."""

    fact: str
    expr: str
    limit: str  # the HostRole field
    op: str
    unit: str
    show: Callable[[float], str]
    what: str
    seed: str
    title: str
    doc: str


def _gib(v: float) -> str:
    return f"{v / GiB:.1f} GiB"


CORES = 'count by (instance) (node_cpu_seconds_total{mode="idle"})'
CPU = '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'
MEMORY = "node_memory_MemAvailable_bytes"
DISK = 'node_filesystem_avail_bytes{mountpoint="/"}'

METRICS = (  # doc: {role} and {expr} filled in per role
    Metric(
        "cores",
        CORES,
        "min_cores",
        ">=",
        "cores",
        lambda v: f"{v:g}",
        "CPU cores",
        "CPU Resources",
        "enough CPU cores",
        "`{expr}` >= monitoring.roles.{role}.min_cores on every {role} instance.",
    ),
    Metric(
        "cpu",
        CPU,
        "max_cpu_ratio",
        "<",
        "ratio",
        lambda v: f"{v * 100:.1f} %",
        "CPU busy over 5 min",
        "CPU Resources",
        "CPU usage is low before traffic",
        "`{expr}` < monitoring.roles.{role}.max_cpu_ratio on every {role} instance (before traffic).",
    ),
    Metric(
        "memory",
        MEMORY,
        "min_free_memory_bytes",
        ">",
        "bytes",
        _gib,
        "available memory",
        "Memory Resources",
        "enough free memory",
        "{expr} > monitoring.roles.{role}.min_free_memory_bytes on every {role} instance "
        "(what `free -h` shows as available).",
    ),
    Metric(
        "disk",
        DISK,
        "min_free_disk_bytes",
        ">",
        "bytes",
        _gib,
        "free space on /",
        "Disk Space",
        "enough free disk on /",
        "{expr} > monitoring.roles.{role}.min_free_disk_bytes on every {role} instance (`df -h /`).",
    ),
)


# --------------------------------------------------------------------------- PromQL


def _query(t: MonitoringTarget, ctx: RunContext, expr: str) -> list[tuple[dict[str, str], float]]:
    """An instant query (memoized per run): [(labels, value)]."""

    return ctx.memo(("promql", str(t.prometheus_url), expr), lambda: instant_query(t, ctx, expr))


def _of_role(rows: list[tuple[dict[str, str], float]], regex: str) -> list[tuple[dict[str, str], float]]:
    rx = re.compile(regex)
    return [(m, v) for m, v in rows if rx.fullmatch(m.get("instance", ""))]


def _evidence(t: MonitoringTarget, expr: str) -> str:
    url = api_url(t, "/api/v1/query")
    return f"PromQL `{expr}` via GET {url}; re-run: `curl -sS '{url}?query={quote(expr, safe='')}' | jq '.data.result'`"


def _role(t: MonitoringTarget, role: str) -> HostRole | Observation:
    r = t.roles.get(role)
    return not_applicable(f"no `monitoring.roles.{role}` configured") if r is None else r


# --------------------------------------------------------------------------- the bodies


def status(role: str, t: MonitoringTarget, ctx: RunContext) -> Observation:
    r = _role(t, role)
    if not isinstance(r, HostRole):
        return r
    up = _of_role(_query(t, ctx, "up"), r.instance_regex)
    boot = {m.get("instance"): v for m, v in _of_role(_query(t, ctx, "node_boot_time_seconds"), r.instance_regex)}
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
    evidence = _evidence(t, "up") + f" (instances matching {r.instance_regex!r}); uptime from node_boot_time_seconds"
    down = [i for i, e in per.items() if not e["up"]]
    if not per:
        return failed(f"no instance matches {r.instance_regex!r}", expected, evidence)
    return failed_if(down, per, expected, evidence, down=down)


def per_instance(role: str, metric: Metric, t: MonitoringTarget, ctx: RunContext) -> Observation:
    r = _role(t, role)
    if not isinstance(r, HostRole):
        return r
    rows = _of_role(_query(t, ctx, metric.expr), r.instance_regex)
    limit = getattr(r, metric.limit)
    values = {m.get("instance", "?"): v for m, v in rows}
    evidence = _evidence(t, metric.expr) + f", instances matching {r.instance_regex!r}"
    expected = f"{metric.what} {metric.op} {metric.show(limit)} on every {role} instance"
    if not values:
        return failed(f"no series for instances matching {r.instance_regex!r}", expected, evidence)
    bad = sorted(i for i, v in values.items() if not meets(v, metric.op, limit))
    observed = {i: metric.show(v) for i, v in sorted(values.items())}
    return failed_if(bad, observed, expected, evidence, failing=bad, unit=metric.unit)


def links(role: str, t: MonitoringTarget, ctx: RunContext, *, hosts: HostsTarget | None) -> Observation:
    r = _role(t, role)
    if not isinstance(r, HostRole):
        return r
    h = hosts or HostsTarget()
    sel = f'{{device=~"{h.link_device_regex}"}}'
    up_expr, speed_expr = f"node_network_up{sel}", f"node_network_speed_bytes{sel}"
    ups = _of_role(_query(t, ctx, up_expr), r.instance_regex)
    speeds = {
        (m.get("instance"), m.get("device")): v for m, v in _of_role(_query(t, ctx, speed_expr), r.instance_regex)
    }
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
            shown = "speed not reported by the NIC" + (
                f", declared {h.link_speed_mbps:g} Mb/s" if declared else " (virtual NIC? set hosts.link_speed_mbps)"
            )
        observed[f"{key[0]} {key[1]}"] = ("up" if v == 1 else "DOWN") + ", " + shown
        if v != 1 or speed is None or speed < min_bytes:
            bad.append(f"{key[0]} {key[1]}")
    expected = f"every uplink ({h.link_device_regex}) up at >= {h.min_link_speed_mbps:g} Mb/s"
    evidence = _evidence(t, up_expr) + f" and `{speed_expr}` (what `ethtool eth0` shows)"
    if not observed:
        return failed(f"no uplink series for instances matching {r.instance_regex!r}", expected, evidence)
    return failed_if(bad, observed, expected, evidence, failing=bad)


# --------------------------------------------------------------------------- the declarations

STATUS_DOC = (
    "Every `{role}` instance (monitoring.roles.{role}.instance_regex) has `up == 1` in Prometheus (the scrape "
    "of its node_exporter answers); uptime from node_boot_time_seconds is documented."
)
LINK_DOC = (
    "node_network_up == 1 and node_network_speed_bytes >= hosts.min_link_speed_mbps on every uplink "
    "(hosts.link_device_regex) of every {role} instance. Accepts a NIC that reports no speed (node_exporter's "
    "-1 or no series: AWS ENA, virtio, veth) only with hosts.link_speed_mbps declared (reported as declared); "
    "without it, FAIL naming that setting."
)

for _role_name, _heading in ROLES.items():
    _status_id = f"infrastructure.{_role_name}.status"
    _name = _role_name.capitalize()
    # no depends_on monitoring.prometheus.reachable: the readiness flow starts a section only once the checks it
    # needs from other sections landed, and that one waits for the quiet window, which this section's timing
    # checks (connect times) are part of. An unreachable Prometheus makes this check ERROR and its dependents
    # SKIPPED with that root cause.
    check(
        _status_id,
        title=f"{_name} servers are up",
        seed=[f"{_heading}: Server Status"],
        timeout=10,
        target="monitoring",
        doc=STATUS_DOC.format(role=_role_name),
    )(partial(status, _role_name))
    for _m in METRICS:
        check(
            f"infrastructure.{_role_name}.{_m.fact}",
            title=f"{_name} servers: {_m.title}",
            seed=[f"{_heading}: {_m.seed}"],
            depends_on=[_status_id],
            timeout=10,
            target="monitoring",
            doc=_m.doc.format(role=_role_name, expr=_m.expr),
        )(partial(per_instance, _role_name, _m))
    check(
        f"infrastructure.{_role_name}.link",
        title=f"{_name} servers: network links up at full speed",
        seed=[f"{_heading}: Network Connectivity"],
        depends_on=[_status_id],
        timeout=10,
        target="monitoring",
        uses=["hosts"],
        doc=LINK_DOC.format(role=_role_name),
    )(partial(links, _role_name))
