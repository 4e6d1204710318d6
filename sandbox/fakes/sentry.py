"""A fake of Sentry's event ingestion where golive looks (`X-Sentry-Auth: Sentry sentry_key=...`, or `?sentry_key=`):

    POST /sentry/api/{project}/envelope/

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import matches

SENTRY_PROJECT = "4501"
FAULTS = {"sentry-rejects": "Sentry rejects every event (403 ProjectDisabled)"}


def routes(key: str, on: Callable[[str], bool], events: list[dict[str, Any]]) -> list[Route]:
    """Project SENTRY_PROJECT, accepting DSN key `key`; each accepted event is appended to `events`; `on(fault)` tells
    whether a fault switch is on."""

    async def envelope(request: Request) -> Response:
        auth = request.headers.get("x-sentry-auth", "")
        parts = dict(p.strip().split("=", 1) for p in auth.removeprefix("Sentry ").split(",") if "=" in p)
        given = parts.get("sentry_key") or request.query_params.get("sentry_key", "")
        if request.path_params["project"] != SENTRY_PROJECT:
            return JSONResponse({"detail": "project not found"}, status_code=404)
        if not matches(given, key):
            return JSONResponse({"detail": "event submission rejected with_reason: ProjectKey"}, status_code=401)
        if on("sentry-rejects"):
            return JSONResponse({"detail": "event submission rejected with_reason: ProjectDisabled"}, status_code=403)
        lines = (await request.body()).decode("utf-8", "replace").splitlines()
        try:
            header = json.loads(lines[0])
            item = json.loads(lines[1])
            event = json.loads(lines[2])
        except (IndexError, ValueError):
            return JSONResponse({"detail": "invalid envelope"}, status_code=400)
        if item.get("type") != "event" or event.get("event_id") != header.get("event_id"):
            return JSONResponse({"detail": "invalid event envelope"}, status_code=400)
        events.append({"sentry": event.get("event_id")})
        return JSONResponse({"id": header["event_id"]})

    return [Route("/sentry/api/{project}/envelope/", envelope, methods=["POST"])]
