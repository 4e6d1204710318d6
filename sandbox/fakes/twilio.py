"""A fake of Twilio's REST API where golive looks (HTTP basic auth: the account SID and its auth token):

    GET /twilio/2010-04-01/Accounts/{sid}.json | /Balance.json | /IncomingPhoneNumbers.json

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import basic, matches

TWILIO_SID = "AC5a1dbb0c0ffee0000000000000000a11"  # an account id, not a secret: written in the config as is
SENDER = "+14155550199"
FAULTS = {"twilio-suspended": "Twilio: the account is suspended"}


def routes(sid: str, token: str, on: Callable[[str], bool]) -> list[Route]:
    """The account `sid`, accepting `token`; `on(fault)` tells whether a fault switch is on."""

    def denied(request: Request) -> Response | None:
        user, pw = basic(request)
        if not (matches(user, sid) and matches(pw, token)) or request.path_params["sid"] != sid:
            return JSONResponse(
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
                status_code=401,
            )
        return None

    async def account(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        base = f"/2010-04-01/Accounts/{sid}"
        return JSONResponse(
            {
                "sid": sid,
                "owner_account_sid": sid,
                "friendly_name": "SwipeSavvy Production",
                "type": "Full",
                "status": "suspended" if on("twilio-suspended") else "active",
                "auth_token": "[redacted]",
                "date_created": "Tue, 02 Jan 2024 10:00:00 +0000",
                "date_updated": "Mon, 01 Dec 2025 09:00:00 +0000",
                "uri": f"{base}.json",
                "subresource_uris": {
                    "balance": f"{base}/Balance.json",
                    "incoming_phone_numbers": f"{base}/IncomingPhoneNumbers.json",
                },
            }
        )

    async def balance(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return JSONResponse({"account_sid": sid, "balance": "184.27", "currency": "USD"})

    async def numbers(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return JSONResponse(
            {
                "incoming_phone_numbers": [
                    {
                        "sid": "PN" + "0" * 32,
                        "phone_number": SENDER,
                        "friendly_name": "SwipeSavvy alerts",
                        "status": "in-use",
                        "capabilities": {"sms": True, "voice": False},
                    }
                ],
                "page": 0,
                "page_size": 1000,
                "next_page_uri": None,
            }
        )

    return [
        Route("/twilio/2010-04-01/Accounts/{sid}.json", account),
        Route("/twilio/2010-04-01/Accounts/{sid}/Balance.json", balance),
        Route("/twilio/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", numbers),
    ]
