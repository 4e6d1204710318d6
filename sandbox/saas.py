"""Small local fakes of the SaaS the team checks read: Slack's Web API, PagerDuty's REST API, and a document host
for the communication templates. They answer like the real APIs where golive looks: status codes, JSON shapes,
auth headers, Slack's cursor pagination and PagerDuty's offset pagination.

    GET|POST /slack/api/conversations.list    Authorization: Bearer <slack token>   (api_url: <base>/slack/api)
    GET      /pagerduty/oncalls               Authorization: Token token=<pd token>  (api_url: <base>/pagerduty)
    GET      /pagerduty/escalation_policies/{id}
    GET      /docs/{name}                     release-notes.md, status-page-update.md, customer-email.txt

Run as `python -m golive.sandbox.saas --port P [--faults FILE]`; the tokens come from GOLIVE_SANDBOX_SLACK_TOKEN and
GOLIVE_SANDBOX_PAGERDUTY_TOKEN (never argv: a process list is readable by everyone). In tests, `running(...)` serves
the app in a thread and its `faults` set can be changed between requests.

Fault switches (names in the runtime fault file, or in the `faults` set):
- `slack-channel-archived`  #alerts-production is archived
- `oncall-nobody`           nobody is on call now (every schedule has a gap)
- `oncall-escalation-slow`  the escalation policy escalates after 15 minutes instead of 5
- `saas-bad-token`          Slack and PagerDuty reject every token (invalid_auth / HTTP 401)
- `comms-template-missing`  /docs/customer-email.txt answers 404

Never imported by `tasks/` or `flows/`.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hmac
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SLACK_TOKEN_ENV = "GOLIVE_SANDBOX_SLACK_TOKEN"
PAGERDUTY_TOKEN_ENV = "GOLIVE_SANDBOX_PAGERDUTY_TOKEN"
FAULTS = {
    "slack-channel-archived": "Slack #alerts-production is archived",
    "oncall-nobody": "PagerDuty: nobody is on call now",
    "oncall-escalation-slow": "PagerDuty: the escalation policy escalates after 15 minutes",
    "saas-bad-token": "Slack and PagerDuty reject every token",
    "comms-template-missing": "the customer email template answers 404",
}
ARCHIVED_CHANNEL = "alerts-production"
ESCALATION_POLICY_ID = "PGOLIVE"
SCHEDULE_IDS = ("PSCHED01", "PSCHED02")
SLACK_PAGE_CAP = 3  # Slack may return fewer than `limit` per page; a small cap makes every client page
PD_DEFAULT_LIMIT = 25

# name, private, is_member, members: the two the checklist names sit on later pages so a client must paginate
CHANNELS = [("general", False, True, 42), ("random", False, False, 40), ("engineering", False, True, 18),
            ("product", False, False, 9), ("incidents", False, True, 21), ("support", False, False, 12),
            ("deployment", False, True, 14), ("qa", False, False, 6), ("alerts-staging", False, True, 8),
            ("alerts-production", False, True, 11), ("leadership", True, False, 5), ("random-archive", False, False, 3)]
ALWAYS_ARCHIVED = {"random-archive"}

USERS = {"PUDANA1": "Dana Whitfield", "PUMARC2": "Marcus Oyelaran", "PUSAMU3": "Samuel Adeyemi"}
DOCS = {
    "release-notes.md": ("text/markdown; charset=utf-8",
                         "# SwipeSavvy 1.4.0 release notes\n\n- Campaign scheduling across time zones\n"
                         "- Faster merchant search\n- Fixes: duplicate SMS on retry\n"),
    "status-page-update.md": ("text/markdown; charset=utf-8",
                              "# Status page update (template)\n\n**{{status}}**: {{component}} is {{impact}}. "
                              "We are investigating and will update by {{next_update_utc}} UTC.\n"),
    "customer-email.txt": ("text/plain; charset=utf-8",
                           "Subject: SwipeSavvy service update\n\nDear {{merchant_name}},\n\n"
                           "{{summary}}\n\nThe SwipeSavvy team\n"),
}


def _slack_channel(i: int, name: str, private: bool, member: bool, members: int, archived: bool) -> dict:
    created = 1_700_000_000 + i * 86_400
    return {"id": f"C0{i:02d}GOLIVE", "name": name, "is_channel": not private, "is_group": private, "is_im": False,
            "is_mpim": False, "is_private": private, "created": created, "is_archived": archived,
            "is_general": name == "general", "unlinked": 0, "name_normalized": name, "is_shared": False,
            "is_org_shared": False, "is_pending_ext_shared": False, "pending_shared": [], "context_team_id": "T0GOLIVE",
            "updated": created * 1000, "parent_conversation": None, "creator": "U0GOLIVE", "is_ext_shared": False,
            "shared_team_ids": ["T0GOLIVE"], "pending_connected_team_ids": [], "is_member": member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": f"#{name}", "creator": "U0GOLIVE", "last_set": created},
            "previous_names": [], "num_members": members}


def _cursor(offset: int) -> str:
    return base64.b64encode(f"channel:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        kind, _, n = base64.b64decode(cursor, validate=True).decode().partition(":")
        return int(n) if kind == "channel" and int(n) >= 0 else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(kind: str, id_: str, summary: str, base: str) -> dict:
    path = {"user_reference": "users", "schedule_reference": "schedules",
            "escalation_policy_reference": "escalation_policies"}[kind]
    return {"id": id_, "type": kind, "summary": summary, "self": f"{base}/{path}/{id_}",
            "html_url": f"https://swipesavvy.pagerduty.com/{path}/{id_}"}


@dataclass
class Saas:
    """The fakes' state: the accepted tokens and the active fault switches (a callable, re-read per request)."""

    slack_token: str
    pagerduty_token: str
    faults: Callable[[], Collection[str]] = field(default=lambda: ())
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) log, for tests

    def on(self, name: str) -> bool:
        return name in self.faults()


def create_app(saas: Saas) -> Starlette:
    def token_ok(given: str, want: str) -> bool:
        return bool(given) and not saas.on("saas-bad-token") and hmac.compare_digest(given.encode(), want.encode())

    # ----------------------------------------------------------------- Slack Web API
    async def conversations_list(request: Request) -> Response:
        saas.requests.append((request.method, request.url.path))
        params = dict(request.query_params)
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"):  # what Slack's SDKs send (parsed here: no python-multipart)
            params.update(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else params.get("token", "")
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if not token_ok(token, saas.slack_token):
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
        archived = set(ALWAYS_ARCHIVED) | ({ARCHIVED_CHANNEL} if saas.on("slack-channel-archived") else set())
        visible = [_slack_channel(i, name, private, member, n, name in archived)
                   for i, (name, private, member, n) in enumerate(CHANNELS, 1)
                   if ("private_channel" if private else "public_channel") in types
                   and not (private and not member)  # a private channel is visible to members only
                   and not (exclude_archived and name in archived)]
        page = visible[start:start + min(limit, SLACK_PAGE_CAP)]
        nxt = start + len(page)
        return JSONResponse({"ok": True, "channels": page,
                             "response_metadata": {"next_cursor": _cursor(nxt) if nxt < len(visible) else ""}},
                            headers={"x-oauth-scopes": "channels:read,chat:write",
                                     "x-accepted-oauth-scopes": "channels:read,groups:read,mpim:read,im:read"})

    # ----------------------------------------------------------------- PagerDuty REST API
    def pd_auth(request: Request) -> Response | None:
        saas.requests.append((request.method, request.url.path))
        auth = request.headers.get("authorization", "")
        prefix = "token token="
        given = auth[len(prefix):].strip() if auth.lower().startswith(prefix) else ""
        if not token_ok(given, saas.pagerduty_token):
            return JSONResponse({"error": {"message": "Unauthorized", "code": 2006}}, status_code=401)
        return None

    def pd_base(request: Request) -> str:
        return str(request.url_for("pd_root")).rstrip("/")

    def policy(base: str) -> dict:
        delay = 15 if saas.on("oncall-escalation-slow") else 5
        rules = [(SCHEDULE_IDS[0], "Primary rotation"), (SCHEDULE_IDS[1], "Secondary rotation")]
        return {
            "id": ESCALATION_POLICY_ID, "type": "escalation_policy", "summary": "Production On-Call",
            "name": "Production On-Call", "description": "SwipeSavvy production",
            "self": f"{base}/escalation_policies/{ESCALATION_POLICY_ID}",
            "html_url": f"https://swipesavvy.pagerduty.com/escalation_policies/{ESCALATION_POLICY_ID}",
            "num_loops": 1, "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": [
                *({"id": f"PRULE0{i}", "escalation_delay_in_minutes": delay,
                   "targets": [_ref("schedule_reference", sid, name, base)]}
                  for i, (sid, name) in enumerate(rules, 1)),
                {"id": "PRULE03", "escalation_delay_in_minutes": delay,
                 "targets": [_ref("user_reference", "PUSAMU3", USERS["PUSAMU3"], base)]}],
            "services": [{"id": "PSVC001", "type": "service_reference", "summary": "SwipeSavvy API"}],
            "teams": [], "privilege": None}

    def oncall_entries(base: str) -> list[dict]:
        if saas.on("oncall-nobody"):
            return []
        now = datetime.now(UTC).replace(microsecond=0)
        shift = now.replace(hour=8, minute=0, second=0)
        if shift > now:
            shift -= timedelta(days=1)
        ep = _ref("escalation_policy_reference", ESCALATION_POLICY_ID, "Production On-Call", base)
        out = []
        for level, (sid, name, uid) in enumerate([(SCHEDULE_IDS[0], "Primary rotation", "PUDANA1"),
                                                  (SCHEDULE_IDS[1], "Secondary rotation", "PUMARC2")], 1):
            out.append({"escalation_policy": ep, "escalation_level": level,
                        "schedule": _ref("schedule_reference", sid, name, base),
                        "user": _ref("user_reference", uid, USERS[uid], base),
                        "start": _iso(shift), "end": _iso(shift + timedelta(days=7))})
        out.append({"escalation_policy": ep, "escalation_level": 3, "schedule": None,
                    "user": _ref("user_reference", "PUSAMU3", USERS["PUSAMU3"], base), "start": None, "end": None})
        return out

    async def oncalls(request: Request) -> Response:
        if (denied := pd_auth(request)) is not None:
            return denied
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit", PD_DEFAULT_LIMIT)), 1), 100)
            offset = max(int(q.get("offset", 0)), 0)
        except ValueError:
            return JSONResponse({"error": {"message": "Invalid Input Provided", "code": 2001,
                                           "errors": ["Limit and offset must be integers."]}}, status_code=400)
        entries = oncall_entries(pd_base(request))
        if eps := q.getlist("escalation_policy_ids[]"):
            entries = [e for e in entries if e["escalation_policy"]["id"] in eps]
        if sids := q.getlist("schedule_ids[]"):
            entries = [e for e in entries if e["schedule"] and e["schedule"]["id"] in sids]
        page = entries[offset:offset + limit]
        return JSONResponse({"oncalls": page, "limit": limit, "offset": offset,
                             "more": offset + len(page) < len(entries), "total": None})

    async def escalation_policy(request: Request) -> Response:
        if (denied := pd_auth(request)) is not None:
            return denied
        if request.path_params["id"] != ESCALATION_POLICY_ID:
            return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)
        return JSONResponse({"escalation_policy": policy(pd_base(request))})

    async def pd_root(request: Request) -> Response:
        return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)

    # ----------------------------------------------------------------- documents
    async def doc(request: Request) -> Response:
        saas.requests.append((request.method, request.url.path))
        name = request.path_params["name"]
        if name not in DOCS or (name == "customer-email.txt" and saas.on("comms-template-missing")):
            return PlainTextResponse("Not Found\n", status_code=404)
        media, text = DOCS[name]
        return Response(text, media_type=media)

    return Starlette(routes=[
        Route("/slack/api/conversations.list", conversations_list, methods=["GET", "POST"]),
        Route("/pagerduty/", pd_root, name="pd_root"),
        Route("/pagerduty/oncalls", oncalls),
        Route("/pagerduty/escalation_policies/{id}", escalation_policy),
        Route("/docs/{name}", doc),
    ])


def urls(base: str) -> dict[str, str]:
    """The config values that point golive at the fakes served at `base` (http://127.0.0.1:PORT)."""
    return {"slack_api_url": f"{base}/slack/api", "pagerduty_api_url": f"{base}/pagerduty",
            "escalation_policy_id": ESCALATION_POLICY_ID,
            "release_notes": f"{base}/docs/release-notes.md",
            "status_page_template": f"{base}/docs/status-page-update.md",
            "customer_email_template": f"{base}/docs/customer-email.txt"}


@contextlib.contextmanager
def running(saas: Saas, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the fakes with uvicorn in a daemon thread on a free port; yields the base URL; stops on exit."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(create_app(saas), log_level="warning", access_log=False, lifespan="off",
                                           server_header=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="saas-fakes", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the SaaS fakes did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m golive.sandbox.saas", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--faults", help="the runtime fault file (sandbox/runtime.py); re-read on change")
    a = p.parse_args(argv)
    missing = [v for v in (SLACK_TOKEN_ENV, PAGERDUTY_TOKEN_ENV) if not os.environ.get(v)]
    if missing:
        p.error(f"set {', '.join(missing)}")
    faults: Callable[[], Collection[str]] = lambda: ()  # noqa: E731
    if a.faults:
        from .runtime import FaultFile

        faults = FaultFile(a.faults).current
    app = create_app(Saas(os.environ[SLACK_TOKEN_ENV], os.environ[PAGERDUTY_TOKEN_ENV], faults))
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False, lifespan="off",
                server_header=False)


if __name__ == "__main__":
    main()
