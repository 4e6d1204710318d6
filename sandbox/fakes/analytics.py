"""A fake of Google Analytics where golive looks: a frontend page carrying the gtag.js snippet, the script, and the
collector that takes its hits.

    GET /site/ (the page), /gtm/gtag/js?id=..., GET|POST /ga/g/collect

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

MEASUREMENT_ID = "G-GOLIVE2026"
FAULTS = {"analytics-snippet-missing": "the frontend page carries no analytics snippet"}


def routes(on: Callable[[str], bool], events: list[dict[str, Any]]) -> list[Route]:
    """Each hit the collector accepts is appended to `events`; `on(fault)` tells whether a fault switch is on."""

    async def site(request: Request) -> Response:
        snippet = (
            ""
            if on("analytics-snippet-missing")
            else f"""
  <script async src="/gtm/gtag/js?id={MEASUREMENT_ID}"></script>
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag(){{dataLayer.push(arguments);}}
    gtag('js', new Date());
    gtag('config', '{MEASUREMENT_ID}');
  </script>"""
        )
        return HTMLResponse(f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>SwipeSavvy</title>{snippet}
</head>
<body><h1>SwipeSavvy</h1></body>
</html>
""")

    async def gtag_js(request: Request) -> Response:
        if request.query_params.get("id") != MEASUREMENT_ID:
            return PlainTextResponse("", status_code=404)
        return Response(
            "/* gtag.js (golive sandbox) */\n(function(){var d=window.dataLayer=window.dataLayer||[];"
            "d.push({'gtm.start':Date.now()});})();\n",
            media_type="application/javascript",
        )

    async def collect(request: Request) -> Response:
        if request.query_params.get("tid", "").startswith(("G-", "UA-")):
            events.append({"ga": request.query_params.get("en")})
        return Response(status_code=204, headers={"access-control-allow-origin": "*"})

    return [
        Route("/site/", site),
        Route("/gtm/gtag/js", gtag_js),
        Route("/ga/g/collect", collect, methods=["GET", "POST"]),
    ]
