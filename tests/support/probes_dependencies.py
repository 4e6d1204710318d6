"""Probes of the sandbox facts that the sections 2 and 7 faults break (dependencies, monitoring:
sandbox/dependencies.py, sandbox/fakes/service_apis.py), for tests/test_sandbox.py's fault table: fault -> (probe,
healthy value, broken value). Each reads the fake or the real server directly, never through golive's checks. No
tests in here."""

from __future__ import annotations

import json
import uuid
from datetime import UTC

import httpx

from golive.sandbox import dependencies as depstack
from golive.sandbox import procs
from golive.sandbox.fakes import service_apis as saas2


def _fakes(sb, path: str, **kw) -> httpx.Response:
    return httpx.request(kw.pop("method", "GET"), f"http://127.0.0.1:{sb.ports['saas2']}{path}", timeout=5, **kw)


def _twilio_status(sb) -> str:
    sid = saas2.TWILIO_SID
    return _fakes(sb, f"/twilio/2010-04-01/Accounts/{sid}.json", auth=(sid, sb.env[saas2.TWILIO_TOKEN_ENV])).json()[
        "status"
    ]


def _stripe_refunds(sb) -> bool:
    eps = _fakes(
        sb, "/stripe/v1/webhook_endpoints", headers={"Authorization": f"Bearer {sb.env[saas2.STRIPE_KEY_ENV]}"}
    ).json()["data"]
    return "charge.refunded" in eps[0]["enabled_events"]


def _sentry(sb) -> int:
    eid = uuid.uuid4().hex
    body = "\n".join(json.dumps(x) for x in ({"event_id": eid}, {"type": "event"}, {"event_id": eid}))
    return _fakes(
        sb,
        f"/sentry/api/{saas2.SENTRY_PROJECT}/envelope/",
        method="POST",
        content=body,
        headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={sb.env[saas2.SENTRY_KEY_ENV]}"},
    ).status_code


def _dashboards(sb) -> int:
    return len(
        _fakes(sb, "/grafana/api/search", headers={"Authorization": f"Bearer {sb.env[saas2.GRAFANA_TOKEN_ENV]}"}).json()
    )


def _newest_log_age_min(sb) -> int:
    ts = _fakes(sb, "/es/filebeat-*/_search", method="POST", json={"size": 1}).json()["hits"]["hits"][0]["_source"]
    from datetime import datetime, timezone

    t = datetime.fromisoformat(ts["@timestamp"].replace("Z", "+00:00"))
    return round((datetime.now(UTC) - t).total_seconds() / 60)


def _worker_status(sb) -> str:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(depstack.docker_socket(sb))), timeout=5) as c:
        rows = c.get("http://docker/containers/json").json()
    return next(r["Status"] for r in rows if r["Names"] == ["/worker"])


def _node_ready(sb) -> str:
    r = httpx.get(
        f"https://127.0.0.1:{sb.ports['saas2_k8s']}/api/v1/nodes",
        verify=str(sb.ca_file),
        timeout=5,
        headers={"Authorization": f"Bearer {sb.env[saas2.K8S_TOKEN_ENV]}"},
    )
    node = next(n for n in r.json()["items"] if n["metadata"]["name"] == saas2.NOT_READY_NODE)
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


def _index_exists(sb) -> bool:
    with sb.admin_db() as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [depstack.INDEX_FAULT[0]]).fetchone()[0]


def _port(name: str):
    # the fault stops the process (waiting for it to exit) and the repair waits until it accepts again
    return lambda sb: procs.port_open(sb.ports[name])


def _error_rate_expr(sb) -> str:
    rules = httpx.get(f"http://127.0.0.1:{sb.ports['prometheus']}/api/v1/rules", timeout=5).json()
    expr = next(r["query"] for g in rules["data"]["groups"] for r in g["rules"] if r["name"] == "HighErrorRate")
    return expr.rsplit(">", 1)[1].strip()


SANDBOX_PROBES = {
    "twilio-suspended": (_twilio_status, "active", "suspended"),
    "stripe-webhook-event-missing": (_stripe_refunds, True, False),
    "sentry-rejects": (_sentry, 200, 403),
    "analytics-snippet-missing": (lambda sb: "gtag/js?id=" in _fakes(sb, "/site/").text, True, False),
    "grafana-dashboard-missing": (_dashboards, 4, 3),
    "es-yellow": (lambda sb: _fakes(sb, "/es/_cluster/health").json()["status"], "green", "yellow"),
    "es-red": (lambda sb: _fakes(sb, "/es/_cluster/health").json()["status"], "green", "red"),
    "logs-stale": (_newest_log_age_min, 0, 120),
    "kibana-degraded": (
        lambda sb: _fakes(sb, "/kibana/api/status").json()["status"]["overall"]["level"],
        "available",
        "degraded",
    ),
    "container-unhealthy": (_worker_status, "Up 3 hours (healthy)", "Up 3 hours (unhealthy)"),
    "k8s-node-notready": (_node_ready, "True", "Unknown"),
    "index-missing": (_index_exists, True, False),
    "pgbouncer-down": (_port("pgbouncer"), True, False),
    "alertmanager-down": (_port("alertmanager"), True, False),
    "alert-threshold-wrong": (_error_rate_expr, "0.05", "0.10"),
}
