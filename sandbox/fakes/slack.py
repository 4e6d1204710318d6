"""A fake of Slack's Web API where golive looks: `conversations.list` with Slack's cursor pagination, auth by
`Authorization: Bearer <token>` or a `token` parameter (what Slack's SDKs send in a form body).

    GET|POST /slack/api/conversations.list    (api_url: <base>/slack/api)

Served by sandbox/fakes/team_apis.py.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULTS = {"slack-channel-archived": "Slack #alerts-production is archived"}
ARCHIVED_CHANNEL = "alerts-production"
SLACK_PAGE_CAP = 3  # Slack may return fewer than `limit` per page; a small cap makes every client page

# name, private, is_member, members: the two the checklist names sit on later pages so a client must paginate
CHANNELS = [
    ("general", False, True, 42),
    ("random", False, False, 40),
    ("engineering", False, True, 18),
    ("product", False, False, 9),
    ("incidents", False, True, 21),
    ("support", False, False, 12),
    ("deployment", False, True, 14),
    ("qa", False, False, 6),
    ("alerts-staging", False, True, 8),
    ("alerts-production", False, True, 11),
    ("leadership", True, False, 5),
    ("random-archive", False, False, 3),
]
ALWAYS_ARCHIVED = {"random-archive"}


def _slack_channel(i: int, name: str, private: bool, member: bool, members: int, archived: bool) -> dict:
    created = 1_700_000_000 + i * 86_400
    return {
        "id": f"C0{i:02d}GOLIVE",
        "name": name,
        "is_channel": not private,
        "is_group": private,
        "is_im": False,
        "is_mpim": False,
        "is_private": private,
        "created": created,
        "is_archived": archived,
        "is_general": name == "general",
        "unlinked": 0,
        "name_normalized": name,
        "is_shared": False,
        "is_org_shared": False,
        "is_pending_ext_shared": False,
        "pending_shared": [],
        "context_team_id": "T0GOLIVE",
        "updated": created * 1000,
        "parent_conversation": None,
        "creator": "U0GOLIVE",
        "is_ext_shared": False,
        "shared_team_ids": ["T0GOLIVE"],
        "pending_connected_team_ids": [],
        "is_member": member,
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": f"#{name}", "creator": "U0GOLIVE", "last_set": created},
        "previous_names": [],
        "num_members": members,
    }


def _cursor(offset: int) -> str:
    return base64.b64encode(f"channel:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        kind, _, n = base64.b64decode(cursor, validate=True).decode().partition(":")
        return int(n) if kind == "channel" and int(n) >= 0 else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def routes(accepts: Callable[[str], bool], on: Callable[[str], bool], requests: list[tuple[str, str]]) -> list[Route]:
    """`accepts(token)` tells whether a bot token is good; `on(fault)` whether a fault switch is on; each request is
    logged in `requests` as (method, path)."""

    async def conversations_list(request: Request) -> Response:
        requests.append((request.method, request.url.path))
        params = dict(request.query_params)
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):  # what Slack's SDKs send (parsed here: no python-multipart)
            params.update(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else params.get("token", "")
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if not accepts(token):
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        types = set((params.get("types") or "public_channel").split(","))
        if not types <= {"public_channel", "private_channel", "mpim", "im"}:
            return JSONResponse({"ok": False, "error": "invalid_types"})
        try:
            limit = min(max(int(params.get("limit") or 100), 1), 1000)
        except ValueError:
            return JSONResponse({"ok": False, "error": "invalid_limit"})
        start = 0
        if params.get("cursor"):
            start = _offset(params["cursor"])
            if start is None:
                return JSONResponse({"ok": False, "error": "invalid_cursor"})
        exclude_archived = (params.get("exclude_archived") or "false").lower() in ("true", "1")
        archived = set(ALWAYS_ARCHIVED) | ({ARCHIVED_CHANNEL} if on("slack-channel-archived") else set())
        visible = [
            _slack_channel(i, name, private, member, n, name in archived)
            for i, (name, private, member, n) in enumerate(CHANNELS, 1)
            if ("private_channel" if private else "public_channel") in types
            and not (private and not member)  # a private channel is visible to members only
            and not (exclude_archived and name in archived)
        ]
        page = visible[start : start + min(limit, SLACK_PAGE_CAP)]
        nxt = start + len(page)
        return JSONResponse(
            {
                "ok": True,
                "channels": page,
                "response_metadata": {"next_cursor": _cursor(nxt) if nxt < len(visible) else ""},
            },
            headers={
                "x-oauth-scopes": "channels:read,chat:write",
                "x-accepted-oauth-scopes": "channels:read,groups:read,mpim:read,im:read",
            },
        )

    return [Route("/slack/api/conversations.list", conversations_list, methods=["GET", "POST"])]
