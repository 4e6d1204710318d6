"""The `monitoring` section's model and Prometheus itself: up, its scrape targets, its scrape interval (sections 2.3,
7.1). The alerting rules are in alerts.py, the servers' node_exporter metrics in servers.py."""

from __future__ import annotations

import re
from typing import Any

from pydantic import AnyHttpUrl, Field

from ..clients.http import curl, http_client, req_timeout
from ..clients.prometheus import api_get, api_url
from ..core import (
    Observation,
    RunContext,
    Status,
    check,
    compare,
    failed,
    passed,
    passed_if,
    register_service,
    service_down,
    skipped,
    url_address,
    warned,
)
from ..models import CaFile, HostRole, Target, default_roles
from .alerts import AlertRules


class MonitoringTarget(Target):
    prometheus_url: AnyHttpUrl
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) when prometheus_url is https")
    max_scrape_interval_s: float = Field(15.0, gt=0, description="seed 7.1: scrape every 15 s")
    alert_rules: AlertRules = Field(
        default_factory=AlertRules,
        description="seed 7.2: the critical and warning "
        "alerting rules Prometheus must have loaded (default: the checklist's six)",
    )
    roles: dict[str, HostRole] = Field(
        default_factory=default_roles,
        description="seed 1.1: the thresholds of each "
        "server role (monitoring/servers.py checks `frontend` and `backend`)",
    )


# --------------------------------------------------------------------------- probes

REACHABLE = "monitoring.prometheus.reachable"
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> float:
    """Prometheus duration (`15s`, `1m`, `1m30s`, `500ms`, `1h`) -> seconds."""
    s = str(text).strip()
    parts = _DURATION.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def active_targets(t: MonitoringTarget, ctx: RunContext) -> list[dict[str, Any]]:
    """One /api/v1/targets call per run."""
    return ctx.memo(
        ("prom-targets", str(t.prometheus_url)),
        lambda: api_get(t, ctx, "/api/v1/targets", state="active").get("activeTargets", []),
    )


# --------------------------------------------------------------------------- checks


@check(REACHABLE, title="Prometheus is up", seed=["7.1 Prometheus"], timeout=10, target="monitoring")
def prometheus_reachable(t: MonitoringTarget, ctx: RunContext) -> Observation:
    """GET /-/healthy answers 200."""
    url = api_url(t, "/-/healthy")
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    observed = f"{r.status_code} {ctx.redact.clip(r.text, 80)}"
    evidence = f"GET {url}; re-run: `{curl(url, ca_file=t.ca_file)}`"
    return passed_if(r.status_code == 200, observed, "200", evidence)


register_service(REACHABLE, lambda c: [url_address(m.prometheus_url)] if (m := getattr(c, "monitoring", None)) else [])


@check(
    "monitoring.prometheus.targets",
    title="All Prometheus scrape targets are up",
    seed=["7.1 Prometheus", "2.3 Monitoring Agent"],
    depends_on=[REACHABLE],
    timeout=10,
    target="monitoring",
)
def prometheus_targets(t: MonitoringTarget, ctx: RunContext) -> Observation:
    """Every active target of /api/v1/targets has health "up"; the down ones are listed with lastError. A target
    down because a service golive checks itself is down (its scrape address is that service's, and it does not
    accept a TCP connection from here either) is that check's failure: not judged here (SKIPPED naming it when
    no other target is down)."""
    targets = active_targets(t, ctx)
    down, not_judged = [], {}
    for x in targets:
        if x.get("health") == "up":
            continue
        labels = x.get("labels", {})
        entry = {
            "job": labels.get("job") or x.get("scrapePool"),
            "instance": labels.get("instance"),
            "health": x.get("health"),
            "lastError": x.get("lastError") or "",
        }
        host, port = url_address(x.get("scrapeUrl") or f"http://{labels.get('instance', '')}")
        if (gone := service_down(ctx, host, port)) is not None:
            not_judged[f"{entry['job']} {entry['instance']}"] = gone.details["blocked_by"]
        else:
            down.append(entry)
    url = api_url(t, "/api/v1/targets?state=active")
    evidence = (
        f"GET {url}; re-run: `curl -sS '{url}' | jq '.data.activeTargets[] | {{job: .labels.job, health, lastError}}'`"
    )
    expected = "at least one active target, all with health == up"
    if not targets:
        return failed("no active targets", expected, evidence)
    observed = {
        "down": down,
        "up": sum(x.get("health") == "up" for x in targets),
        "total": len(targets),
        **({"not_judged": not_judged} if not_judged else {}),
    }
    if down:
        return failed(observed, expected, evidence)
    if not_judged:
        owner = next(iter(not_judged.values()))
        why = f"target(s) {', '.join(not_judged)} down: the service there is down ({owner} reports it)"
        return skipped(why, owner, observed, expected, evidence)
    jobs = sorted({x.get("labels", {}).get("job") or x.get("scrapePool") or "?" for x in targets})
    return passed(f"all {len(targets)} targets up (jobs: {', '.join(jobs)})", expected, evidence)


@check(
    "monitoring.prometheus.scrape_interval",
    title="Prometheus scrapes often enough",
    seed=["7.1 Prometheus"],
    depends_on=[REACHABLE],
    timeout=10,
    target="monitoring",
)
def prometheus_scrape_interval(t: MonitoringTarget, ctx: RunContext) -> Observation:
    """The loaded config's (/api/v1/status/config) scrape interval <= max_scrape_interval_s: global.scrape_interval
    (Prometheus' default 1m when unset), or, when every job sets its own (a `1m` global that no job uses), the
    fastest job's; jobs scraped less often than that limit make it WARN. Durations in any Prometheus form
    (`15s`, `15000ms`, `1m30s`)."""
    import yaml

    cfg = yaml.safe_load(api_get(t, ctx, "/api/v1/status/config").get("yaml") or "") or {}
    raw = (cfg.get("global") or {}).get("scrape_interval", "1m")  # Prometheus' own default is 1m
    jobs = [j for j in cfg.get("scrape_configs") or [] if isinstance(j, dict)]
    own = [j.get("scrape_interval") or raw for j in jobs]  # a loaded config spells each job's out
    if own and parse_duration(raw) not in map(parse_duration, own):  # the global default applies to no job
        raw = min(own, key=parse_duration)
    interval = parse_duration(raw)
    slow_jobs = {}
    for job in jobs:
        if job.get("scrape_interval") and parse_duration(job["scrape_interval"]) > t.max_scrape_interval_s:
            slow_jobs[job.get("job_name", "?")] = job["scrape_interval"]
    url = api_url(t, "/api/v1/status/config")
    evidence = (
        f"GET {url}, YAML global.scrape_interval and each job's ({raw!r} judged); re-run: "
        f"`curl -sS {url} | jq -r .data.yaml`"
    )
    obs = compare(interval, "<=", t.max_scrape_interval_s, unit="s", evidence=evidence, raw=raw, slow_jobs=slow_jobs)
    if obs.status is Status.PASS and slow_jobs:
        return warned(
            f"global {interval:g} s; jobs scraped less often: {slow_jobs}", obs.expected, evidence, slow_jobs=slow_jobs
        )
    return obs
