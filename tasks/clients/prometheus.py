"""Prometheus's HTTP API: the one client every reader uses (the monitoring checks' rules, targets and queries, the
servers' node_exporter metrics, the backup-failure alert, `golive init`'s discovery, and the deploy flow's watch of
firing alerts and the error-rate query). Every exchange ends at the caller's deadline (clients/http.py)."""

from __future__ import annotations

from typing import Any, Protocol

from ..core import RunContext
from .http import MAX_HTTP_BYTES, http_client, req_timeout


class PrometheusEndpoint(Protocol):
    """What the client reads of a target: the `monitoring` section (frozen models: read-only attributes)."""

    @property
    def prometheus_url(self) -> Any: ...

    @property
    def ca_file(self) -> Any: ...


def api_url(t: PrometheusEndpoint, path: str) -> str:
    return str(t.prometheus_url).rstrip("/") + path


def api_get(
    t: PrometheusEndpoint, ctx: RunContext, path: str, *, max_bytes: int = MAX_HTTP_BYTES, **params: Any
) -> Any:
    """GET a Prometheus API path; returns `data` of a `status: success` answer, raises otherwise. At most `max_bytes`
    of answer are read (the deploy watch asks for less than a check may read)."""
    with http_client(ctx, t.ca_file, max_bytes=max_bytes) as c:
        r = c.get(api_url(t, path), params=params or None, timeout=req_timeout(ctx))
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{path} answered status {body.get('status')!r}: {body.get('error')}")
    return body["data"]


def instant_query(
    t: PrometheusEndpoint, ctx: RunContext, expr: str, *, max_bytes: int = MAX_HTTP_BYTES
) -> list[tuple[dict[str, str], float]]:
    """An instant PromQL query (`/api/v1/query`): [(labels, value)] of its vector."""
    data = api_get(t, ctx, "/api/v1/query", max_bytes=max_bytes, query=expr)
    if data.get("resultType") != "vector":
        raise RuntimeError(f"{expr}: expected a vector, got {data.get('resultType')}")
    return [(r.get("metric", {}), float(r["value"][1])) for r in data.get("result", [])]


def firing_alerts(t: PrometheusEndpoint, ctx: RunContext, *, max_bytes: int = MAX_HTTP_BYTES) -> list[dict[str, Any]]:
    """The alerts Prometheus reports as firing (`/api/v1/alerts`; pending ones are not failing yet)."""
    data = api_get(t, ctx, "/api/v1/alerts", max_bytes=max_bytes)
    return [a for a in data.get("alerts", []) if a.get("state") == "firing"]
