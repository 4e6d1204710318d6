"""A fake of Grafana's HTTP API where golive looks (`Authorization: Bearer <service account token>`):

    GET /grafana/api/health, /grafana/api/search

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import bearer, matches

DASHBOARDS = [
    ("api-overview", "API Overview"),
    ("postgres", "PostgreSQL"),
    ("redis", "Redis"),
    ("business-kpis", "Business KPIs"),
]
MISSING_DASHBOARD = "api-overview"
FAULTS = {"grafana-dashboard-missing": "Grafana: the 'API Overview' dashboard is gone"}


def routes(token: str, on: Callable[[str], bool]) -> list[Route]:
    """The DASHBOARDS, searchable with `token`; `on(fault)` tells whether a fault switch is on."""

    async def health(request: Request) -> Response:
        return JSONResponse({"commit": "golive-sandbox", "database": "ok", "version": "11.1.0"})

    async def search(request: Request) -> Response:
        if not matches(bearer(request), token):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        out = [
            {
                "id": i,
                "uid": uid,
                "title": title,
                "uri": f"db/{uid}",
                "url": f"/d/{uid}/{uid}",
                "slug": "",
                "type": "dash-db",
                "tags": ["production"],
                "isStarred": False,
                "sortMeta": 0,
            }
            for i, (uid, title) in enumerate(DASHBOARDS, 1)
            if not (uid == MISSING_DASHBOARD and on("grafana-dashboard-missing"))
        ]
        q = request.query_params.get("query")
        if q:
            out = [d for d in out if q.lower() in d["title"].lower()]
        return JSONResponse(out)

    return [Route("/grafana/api/health", health), Route("/grafana/api/search", search)]
