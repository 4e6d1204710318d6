"""A document host for the communication templates golive checks exist (release notes, the status page update, the
customer email):

    GET /docs/{name}        release-notes.md, status-page-update.md, customer-email.txt

Served by sandbox/fakes/team_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

FAULTS = {"comms-template-missing": "the customer email template answers 404"}
DOCS = {
    "release-notes.md": (
        "text/markdown; charset=utf-8",
        "# SwipeSavvy 1.4.0 release notes\n\n- Campaign scheduling across time zones\n"
        "- Faster merchant search\n- Fixes: duplicate SMS on retry\n",
    ),
    "status-page-update.md": (
        "text/markdown; charset=utf-8",
        "# Status page update (template)\n\n**{{status}}**: {{component}} is {{impact}}. "
        "We are investigating and will update by {{next_update_utc}} UTC.\n",
    ),
    "customer-email.txt": (
        "text/plain; charset=utf-8",
        "Subject: SwipeSavvy service update\n\nDear {{merchant_name}},\n\n{{summary}}\n\nThe SwipeSavvy team\n",
    ),
}


def routes(on: Callable[[str], bool], requests: list[tuple[str, str]]) -> list[Route]:
    """`on(fault)` tells whether a fault switch is on; each request is logged in `requests` as (method, path)."""

    async def doc(request: Request) -> Response:
        requests.append((request.method, request.url.path))
        name = request.path_params["name"]
        if name not in DOCS or (name == "customer-email.txt" and on("comms-template-missing")):
            return PlainTextResponse("Not Found\n", status_code=404)
        media, text = DOCS[name]
        return Response(text, media_type=media)

    return [Route("/docs/{name}", doc)]
