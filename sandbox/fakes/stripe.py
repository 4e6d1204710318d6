"""A fake of Stripe's API where golive looks (`Authorization: Bearer sk_...`, or the key as HTTP basic user):

    GET /stripe/v1/balance, /stripe/v1/webhook_endpoints

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import basic, bearer, matches

STRIPE_EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.dispute.created",
    "customer.subscription.updated",
]
FAULTS = {"stripe-webhook-event-missing": "Stripe: the webhook endpoint no longer subscribes to charge.refunded"}


def routes(key: str, on: Callable[[str], bool]) -> list[Route]:
    """The account of secret key `key` (live mode for an sk_live_/rk_live_ key); `on(fault)` tells whether a fault
    switch is on."""

    def denied(request: Request) -> Response | None:
        given = bearer(request) or basic(request)[0]
        if not matches(given, key):
            shown = (given[:8] + "*" * 12 + given[-4:]) if len(given) > 12 else "***"
            return JSONResponse(
                {"error": {"message": f"Invalid API Key provided: {shown}", "type": "invalid_request_error"}},
                status_code=401,
            )
        return None

    def livemode() -> bool:
        return key.startswith(("sk_live_", "rk_live_"))

    async def balance(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        return JSONResponse(
            {
                "object": "balance",
                "livemode": livemode(),
                "available": [{"amount": 1250075, "currency": "usd", "source_types": {"card": 1250075}}],
                "pending": [{"amount": 88000, "currency": "usd", "source_types": {"card": 88000}}],
            }
        )

    async def webhooks(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        events = [e for e in STRIPE_EVENTS if not (e == "charge.refunded" and on("stripe-webhook-event-missing"))]
        eps = [
            {
                "id": "we_1GoLiveProd",
                "object": "webhook_endpoint",
                "api_version": "2024-06-20",
                "application": None,
                "created": 1704189600,
                "description": "SwipeSavvy payments",
                "enabled_events": events,
                "livemode": livemode(),
                "metadata": {},
                "status": "enabled",
                "url": "https://api.swipesavvy.test/webhooks/stripe",
            },
            {
                "id": "we_1GoLiveOld",
                "object": "webhook_endpoint",
                "api_version": "2022-11-15",
                "application": None,
                "created": 1672567200,
                "description": "legacy",
                "enabled_events": ["*"],
                "livemode": livemode(),
                "metadata": {},
                "status": "disabled",
                "url": "https://old.swipesavvy.test/stripe",
            },
        ]
        return JSONResponse({"object": "list", "url": "/v1/webhook_endpoints", "has_more": False, "data": eps})

    return [Route("/stripe/v1/balance", balance), Route("/stripe/v1/webhook_endpoints", webhooks)]
