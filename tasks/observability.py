"""Monitoring infrastructure besides Prometheus (seed 7.1): Grafana, Alertmanager and the logging stack
(Elasticsearch, Kibana, log shipping), each through its own HTTP API.

- Grafana: `GET /api/health` (database ok), `GET /api/search?type=dash-db` with the API token: the configured
  dashboards exist (authentication works).
- Alertmanager: `GET /-/healthy`; `GET /api/v2/status`: the loaded configuration has a receiver posting to the
  Slack channel (#alerts-production) and one with email recipients, and the route tree reaches both.
- Elasticsearch `GET /_cluster/health` (green), Kibana `GET /api/status` (available), and the newest document of
  the log indices is recent (Filebeat / the shipper is collecting).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr

from .clients.http import curl, http_client, req_timeout
from .core import (
    Observation,
    RunContext,
    check,
    compare,
    failed,
    failed_if,
    given,
    passed_if,
    register_service,
    url_address,
)
from .models import CaFile, HttpUrl, Target


class GrafanaTarget(Target):
    url: HttpUrl
    api_token: SecretStr | None = Field(None, description="a service-account token (Viewer is enough)")
    dashboards: list[str] = Field(default_factory=list, description="dashboard titles or UIDs that must exist")


class AlertmanagerTarget(Target):
    url: HttpUrl
    slack_channels: list[str] = Field(
        default_factory=lambda: ["#alerts-production"], description="seed 7.1: alerts posting to #alerts-production"
    )
    require_email: bool = Field(True, description="seed 7.1: a receiver with email recipients")


class LoggingTarget(Target):
    elasticsearch_url: HttpUrl
    kibana_url: HttpUrl | None = None
    username: str | None = None
    password: SecretStr | None = None
    index: str = Field("filebeat-*", description="the log indices (a pattern)")
    timestamp_field: str = "@timestamp"
    max_log_age_minutes: float = Field(5.0, gt=0, description="the newest log document is at most this old")
    min_health: str = Field("green", pattern="^(green|yellow)$")


class ObservabilityTarget(Target):
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https URLs")
    grafana: GrafanaTarget | None = None
    alertmanager: AlertmanagerTarget | None = None
    logging: LoggingTarget | None = None


def _json(r: Any) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


# --------------------------------------------------------------------------- Grafana

GRAFANA_HEALTH = "monitoring.grafana.health"


@check(
    GRAFANA_HEALTH,
    title="Grafana is up and its database ok",
    seed=["7.1 Grafana"],
    timeout=10,
    target="observability",
    needs=["observability.grafana"],
)
def grafana_health(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /api/health: 200 with database == ok."""
    g = given(t.grafana)
    url = f"{g.url}/api/health"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    body = _json(r) or {}
    observed = {"http": r.status_code, "database": body.get("database"), "version": body.get("version")}
    evidence = f"GET {url}; re-run: `curl -sS {url}`"
    ok = r.status_code == 200 and body.get("database") == "ok"
    return passed_if(ok, observed, "HTTP 200, database ok", evidence)


@check(
    "monitoring.grafana.dashboards",
    title="The configured Grafana dashboards exist",
    seed=["7.1 Grafana"],
    depends_on=[GRAFANA_HEALTH],
    timeout=10,
    target="observability",
    needs=["observability.grafana.dashboards"],
)
def grafana_dashboards(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /api/search?type=dash-db (Authorization: Bearer <api_token>): every configured dashboard (title or UID)
    is found; a refused token is a FAIL (authentication must work)."""
    g = given(t.grafana)
    headers = {"Authorization": f"Bearer {g.api_token.get_secret_value()}"} if g.api_token else {}
    url = f"{g.url}/api/search"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, params={"type": "dash-db", "limit": "5000"}, headers=headers, timeout=req_timeout(ctx))
    evidence = (
        f"GET {url}?type=dash-db&limit=5000 (Authorization: Bearer <observability.grafana.api_token>); "
        f"re-run: `curl -sS -H \"Authorization: Bearer $GRAFANA_TOKEN\" '{url}?type=dash-db' | jq '.[].title'`"
    )
    expected = f"dashboards {', '.join(g.dashboards)} exist (authenticated)"
    if r.status_code in (401, 403):
        return failed(f"HTTP {r.status_code}: authentication refused", expected, evidence)
    r.raise_for_status()
    found = _json(r) or []
    keys = {d.get("title") for d in found} | {d.get("uid") for d in found}
    missing = [d for d in g.dashboards if d not in keys]
    observed: dict[str, Any] = {
        "found": f"{len(g.dashboards) - len(missing)}/{len(g.dashboards)}",
        "dashboards_total": len(found),
    }
    if missing:
        observed["missing"] = missing
    return failed_if(missing, observed, expected, evidence)


# --------------------------------------------------------------------------- Alertmanager

AM_HEALTH = "monitoring.alertmanager.reachable"


@check(
    AM_HEALTH,
    title="Alertmanager is up",
    seed=["7.1 Alertmanager"],
    timeout=10,
    target="observability",
    needs=["observability.alertmanager"],
)
def alertmanager_reachable(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /-/healthy answers 200."""
    am = given(t.alertmanager)
    url = f"{am.url}/-/healthy"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    return passed_if(
        r.status_code == 200,
        f"HTTP {r.status_code}",
        "HTTP 200",
        f"GET {url}; re-run: `{curl(url, ca_file=t.ca_file)}`",
    )


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    out = [route]
    for child in route.get("routes") or []:
        out += _routes(child)
    return out


def _norm_channel(c: str) -> str:
    return "#" + str(c).strip().lstrip("#")


@check(
    "monitoring.alertmanager.routing",
    title="Alertmanager routes alerts to Slack #alerts-production and email",
    seed=["7.1 Alertmanager"],
    depends_on=[AM_HEALTH],
    timeout=10,
    target="observability",
    needs=["observability.alertmanager"],
)
def alertmanager_routing(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /api/v2/status: in the loaded config (`config.original`, secrets shown as <secret>), a receiver has a
    slack_config for each configured channel and (if required) one has email_configs with a `to`; the route tree
    (root or any child route) sends alerts to those receivers."""
    import yaml

    am = given(t.alertmanager)
    url = f"{am.url}/api/v2/status"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    r.raise_for_status()
    status = _json(r) or {}
    cfg = yaml.safe_load((status.get("config") or {}).get("original") or "") or {}
    receivers = {x.get("name"): x for x in cfg.get("receivers") or []}
    routed = {x.get("receiver") for x in _routes(cfg.get("route") or {}) if x.get("receiver")}
    slack_by_channel: dict[str, list[str]] = {}
    email: dict[str, list[str]] = {}
    for name, rx in receivers.items():
        for sc in rx.get("slack_configs") or []:
            if sc.get("channel"):
                slack_by_channel.setdefault(_norm_channel(sc["channel"]), []).append(name)
        tos = [str(e.get("to")) for e in rx.get("email_configs") or [] if e.get("to")]
        if tos:
            email[name] = tos
    problems: list[str] = []
    for ch in am.slack_channels:
        names = slack_by_channel.get(_norm_channel(ch), [])
        if not names:
            problems.append(f"no receiver posts to Slack {_norm_channel(ch)}")
        elif not set(names) & routed:
            problems.append(f"receiver(s) {', '.join(names)} for {_norm_channel(ch)} are not used by any route")
    if am.require_email:
        if not email:
            problems.append("no receiver with email recipients")
        elif not set(email) & routed:
            problems.append(f"email receiver(s) {', '.join(email)} are not used by any route")
    observed: dict[str, Any] = {
        "receivers": {
            n: [k.removesuffix("_configs") for k in rx if k.endswith("_configs")] for n, rx in receivers.items()
        },
        "slack_channels": {ch: names for ch, names in slack_by_channel.items()},
        "email_recipients": email,
        "routed_receivers": sorted(routed),
        "version": (status.get("versionInfo") or {}).get("version"),
    }
    if problems:
        observed["problems"] = problems
    evidence = (
        f"GET {url} (config.original); re-run: `curl -sS {url} | jq -r .config.original` "
        f"or `amtool config routes show --alertmanager.url={am.url}`"
    )
    expected = f"routed receivers posting to Slack {', '.join(_norm_channel(c) for c in am.slack_channels)}" + (
        " and to email recipients" if am.require_email else ""
    )
    return failed_if(problems, observed, expected, evidence)


# --------------------------------------------------------------------------- logging stack

ES_HEALTH = "monitoring.elasticsearch.health"


def _es_auth(lg: LoggingTarget) -> tuple[str, str] | None:
    if lg.username and lg.password is not None:
        return (lg.username, lg.password.get_secret_value())
    return None


@check(
    ES_HEALTH,
    title="Elasticsearch cluster health is green",
    seed=["7.1 Logging Stack"],
    timeout=10,
    target="observability",
    needs=["observability.logging"],
)
def elasticsearch_health(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /_cluster/health: status green (or at least min_health), with the shard counts as evidence."""
    lg = given(t.logging)
    url = f"{lg.elasticsearch_url}/_cluster/health"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, auth=_es_auth(lg), timeout=req_timeout(ctx))
    evidence = f"GET {url}; re-run: `curl -sS {url}?pretty`" + (" -u $ES_USER" if lg.username else "")
    if r.status_code in (401, 403):
        raise PermissionError(f"Elasticsearch refused GET /_cluster/health (HTTP {r.status_code})")
    body = _json(r) or {}
    st = body.get("status")
    ok_set = {"green"} if lg.min_health == "green" else {"green", "yellow"}
    observed = {
        "status": st,
        "cluster": body.get("cluster_name"),
        "nodes": body.get("number_of_nodes"),
        "unassigned_shards": body.get("unassigned_shards"),
        "active_shards_percent": body.get("active_shards_percent_as_number"),
    }
    expected = "status green" if lg.min_health == "green" else "status green or yellow"
    return passed_if(st in ok_set, observed, expected, evidence)


@check(
    "monitoring.kibana.status",
    title="Kibana is available",
    seed=["7.1 Logging Stack"],
    timeout=10,
    target="observability",
    needs=["observability.logging.kibana_url"],
)
def kibana_status(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """GET /api/status: status.overall.level == available (Kibana 8; `state: green` on 7.x)."""
    lg = given(t.logging)
    url = f"{lg.kibana_url}/api/status"
    with http_client(ctx, t.ca_file) as c:
        r = c.get(url, auth=_es_auth(lg), timeout=req_timeout(ctx))
    body = _json(r) or {}
    overall = (body.get("status") or {}).get("overall") or {}
    level = overall.get("level") or overall.get("state")
    observed = {
        "http": r.status_code,
        "overall": level,
        "summary": overall.get("summary"),
        "version": (body.get("version") or {}).get("number"),
    }
    evidence = f"GET {url}; re-run: `curl -sS {url} | jq .status.overall`"
    ok = r.status_code == 200 and level in ("available", "green")
    return passed_if(ok, observed, "HTTP 200, overall available", evidence)


@check(
    "monitoring.logging.freshness",
    title="Logs are being collected (the newest log document is recent)",
    seed=["7.1 Logging Stack"],
    depends_on=[ES_HEALTH],
    timeout=10,
    target="observability",
    needs=["observability.logging"],
)
def logging_freshness(t: ObservabilityTarget, ctx: RunContext) -> Observation:
    """POST /<index>/_search {size 1, sort @timestamp desc}: the newest document is at most max_log_age_minutes old."""
    lg = given(t.logging)
    url = f"{lg.elasticsearch_url}/{lg.index}/_search"
    query = {
        "size": 1,
        "sort": [{lg.timestamp_field: {"order": "desc"}}],
        "_source": [lg.timestamp_field],
        "query": {"match_all": {}},
    }
    with http_client(ctx, t.ca_file) as c:
        r = c.post(url, json=query, auth=_es_auth(lg), timeout=req_timeout(ctx))
    r.raise_for_status()
    hits = ((_json(r) or {}).get("hits") or {}).get("hits") or []
    evidence = (
        f"POST {url} {{size: 1, sort: {lg.timestamp_field} desc}}; re-run: `curl -sS -H 'Content-Type: "
        f'application/json\' \'{url}\' -d \'{{"size":1,"sort":[{{"{lg.timestamp_field}":"desc"}}]}}\'`'
    )
    limit = f"<= {lg.max_log_age_minutes:g} min"
    if not hits:
        return failed(f"no log document in {lg.index}", limit, evidence)
    raw = (hits[0].get("_source") or {}).get(lg.timestamp_field)
    try:
        ts = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
    except ValueError:
        return failed(f"newest document has no parsable {lg.timestamp_field}: {raw!r}", limit, evidence)
    age_min = (datetime.now(UTC) - ts).total_seconds() / 60
    return compare(
        round(age_min, 2),
        "<=",
        lg.max_log_age_minutes,
        unit="min",
        evidence=evidence,
        newest=str(raw),
        index=hits[0].get("_index"),
    )


def _urls(c: Any, part: str, field: str) -> list[tuple[str | None, int | None]]:
    """The address of one observability server, for the checks that reach it otherwise (scrape targets, firewall)."""
    o = getattr(c, "observability", None)
    url = getattr(getattr(o, part, None), field, None)
    return [url_address(url)] if url else []


register_service(GRAFANA_HEALTH, lambda c: _urls(c, "grafana", "url"))
register_service(AM_HEALTH, lambda c: _urls(c, "alertmanager", "url"))
register_service(ES_HEALTH, lambda c: _urls(c, "logging", "elasticsearch_url"))
register_service("monitoring.kibana.status", lambda c: _urls(c, "logging", "kibana_url"))
