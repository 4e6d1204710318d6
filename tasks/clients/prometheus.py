"""Prometheus's HTTP API, as the monitoring checks read it (rules, targets, alert managers, queries)."""
from __future__ import annotations

from typing import Any, Protocol

from ..core import RunContext
from .http import http_client, req_timeout


class PrometheusEndpoint(Protocol):
    prometheus_url: Any
    ca_file: Any


def api_url(t: PrometheusEndpoint, path: str) -> str:
    return str(t.prometheus_url).rstrip("/") + path


def api_get(t: PrometheusEndpoint, ctx: RunContext, path: str, **params: Any) -> Any:
    """GET a Prometheus API path; returns `data` of a `status: success` answer, raises otherwise."""
    with http_client(ctx, t.ca_file) as c:
        r = c.get(api_url(t, path), params=params or None, timeout=req_timeout(ctx))
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{path} answered status {body.get('status')!r}: {body.get('error')}")
    return body["data"]
