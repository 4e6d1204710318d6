"""A fake of PagerDuty's REST API where golive looks: who is on call now (offset pagination) and the escalation
policy, auth by `Authorization: Token token=<token>`.

    GET /pagerduty/oncalls                      (api_url: <base>/pagerduty)
    GET /pagerduty/escalation_policies/{id}

Served by sandbox/fakes/team_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULTS = {
    "oncall-nobody": "PagerDuty: nobody is on call now",
    "oncall-escalation-slow": "PagerDuty: the escalation policy escalates after 15 minutes",
}
ESCALATION_POLICY_ID = "PGOLIVE"
SCHEDULE_IDS = ("PSCHED01", "PSCHED02")
PD_DEFAULT_LIMIT = 25
USERS = {"PUDANA1": "Dana Whitfield", "PUMARC2": "Marcus Oyelaran", "PUSAMU3": "Samuel Adeyemi"}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(kind: str, id_: str, summary: str, base: str) -> dict:
    path = {
        "user_reference": "users",
        "schedule_reference": "schedules",
        "escalation_policy_reference": "escalation_policies",
    }[kind]
    return {
        "id": id_,
        "type": kind,
        "summary": summary,
        "self": f"{base}/{path}/{id_}",
        "html_url": f"https://swipesavvy.pagerduty.com/{path}/{id_}",
    }


def routes(accepts: Callable[[str], bool], on: Callable[[str], bool], requests: list[tuple[str, str]]) -> list[Route]:
    """`accepts(token)` tells whether an API token is good; `on(fault)` whether a fault switch is on; each request is
    logged in `requests` as (method, path)."""

    def pd_auth(request: Request) -> Response | None:
        requests.append((request.method, request.url.path))
        auth = request.headers.get("authorization", "")
        prefix = "token token="
        given = auth[len(prefix) :].strip() if auth.lower().startswith(prefix) else ""
        if not accepts(given):
            return JSONResponse({"error": {"message": "Unauthorized", "code": 2006}}, status_code=401)
        return None

    def pd_base(request: Request) -> str:
        return str(request.url_for("pd_root")).rstrip("/")

    def policy(base: str) -> dict:
        delay = 15 if on("oncall-escalation-slow") else 5
        rules = [(SCHEDULE_IDS[0], "Primary rotation"), (SCHEDULE_IDS[1], "Secondary rotation")]
        return {
            "id": ESCALATION_POLICY_ID,
            "type": "escalation_policy",
            "summary": "Production On-Call",
            "name": "Production On-Call",
            "description": "SwipeSavvy production",
            "self": f"{base}/escalation_policies/{ESCALATION_POLICY_ID}",
            "html_url": f"https://swipesavvy.pagerduty.com/escalation_policies/{ESCALATION_POLICY_ID}",
            "num_loops": 1,
            "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": [
                *(
                    {
                        "id": f"PRULE0{i}",
                        "escalation_delay_in_minutes": delay,
                        "targets": [_ref("schedule_reference", sid, name, base)],
                    }
                    for i, (sid, name) in enumerate(rules, 1)
                ),
                {
                    "id": "PRULE03",
                    "escalation_delay_in_minutes": delay,
                    "targets": [_ref("user_reference", "PUSAMU3", USERS["PUSAMU3"], base)],
                },
            ],
            "services": [{"id": "PSVC001", "type": "service_reference", "summary": "SwipeSavvy API"}],
            "teams": [],
            "privilege": None,
        }

    def oncall_entries(base: str) -> list[dict]:
        if on("oncall-nobody"):
            return []
        now = datetime.now(UTC).replace(microsecond=0)
        shift = now.replace(hour=8, minute=0, second=0)
        if shift > now:
            shift -= timedelta(days=1)
        ep = _ref("escalation_policy_reference", ESCALATION_POLICY_ID, "Production On-Call", base)
        out = []
        for level, (sid, name, uid) in enumerate(
            [(SCHEDULE_IDS[0], "Primary rotation", "PUDANA1"), (SCHEDULE_IDS[1], "Secondary rotation", "PUMARC2")], 1
        ):
            out.append(
                {
                    "escalation_policy": ep,
                    "escalation_level": level,
                    "schedule": _ref("schedule_reference", sid, name, base),
                    "user": _ref("user_reference", uid, USERS[uid], base),
                    "start": _iso(shift),
                    "end": _iso(shift + timedelta(days=7)),
                }
            )
        out.append(
            {
                "escalation_policy": ep,
                "escalation_level": 3,
                "schedule": None,
                "user": _ref("user_reference", "PUSAMU3", USERS["PUSAMU3"], base),
                "start": None,
                "end": None,
            }
        )
        return out

    async def oncalls(request: Request) -> Response:
        if (denied := pd_auth(request)) is not None:
            return denied
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit", PD_DEFAULT_LIMIT)), 1), 100)
            offset = max(int(q.get("offset", 0)), 0)
        except ValueError:
            return JSONResponse(
                {
                    "error": {
                        "message": "Invalid Input Provided",
                        "code": 2001,
                        "errors": ["Limit and offset must be integers."],
                    }
                },
                status_code=400,
            )
        entries = oncall_entries(pd_base(request))
        if eps := q.getlist("escalation_policy_ids[]"):
            entries = [e for e in entries if e["escalation_policy"]["id"] in eps]
        if sids := q.getlist("schedule_ids[]"):
            entries = [e for e in entries if e["schedule"] and e["schedule"]["id"] in sids]
        page = entries[offset : offset + limit]
        return JSONResponse(
            {
                "oncalls": page,
                "limit": limit,
                "offset": offset,
                "more": offset + len(page) < len(entries),
                "total": None,
            }
        )

    async def escalation_policy(request: Request) -> Response:
        if (denied := pd_auth(request)) is not None:
            return denied
        if request.path_params["id"] != ESCALATION_POLICY_ID:
            return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)
        return JSONResponse({"escalation_policy": policy(pd_base(request))})

    async def pd_root(request: Request) -> Response:
        return JSONResponse({"error": {"message": "Not Found", "code": 2100}}, status_code=404)

    return [
        Route("/pagerduty/", pd_root, name="pd_root"),
        Route("/pagerduty/oncalls", oncalls),
        Route("/pagerduty/escalation_policies/{id}", escalation_policy),
    ]
