"""External services of seed 2.2 through their real HTTP APIs: Twilio (SMS), Stripe (payments), Sentry (error
tracking) and Google Analytics (the tracking snippet and its collector). Base URLs are configurable (tests and the
sandbox point them at local fakes that answer like the real APIs).

Credentials never appear in evidence: the Twilio auth token, the Stripe key (shown only as its prefix class,
`sk_live_…` / `sk_test_…`), the Stripe webhook signing secret and the Sentry DSN's key are secrets.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from pydantic import Field, SecretStr

from .clients.http import http_client, req_timeout
from .core import Observation, RunContext, check, compare, failed, failed_if, given, not_applicable, passed
from .models import CaFile, HttpUrl, Target
from .web import WebTarget


class TwilioTarget(Target):
    api_url: HttpUrl = Field("https://api.twilio.com", description="Twilio REST API base URL")
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr | None = Field(None, description="the auth token (or an API key secret); without it N/A")
    max_latency_s: float = Field(1.0, gt=0, description="seed 2.2: responding within 1 second")
    min_balance: float = Field(0.0, description="seed 2.2: the account has a positive balance (> this)")
    sender_numbers: list[str] = Field(
        default_factory=list, description="production numbers (E.164) that must belong to the account"
    )


STRIPE_EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "charge.failed",
    "charge.refunded",
    "charge.dispute.created",
]


class StripeTarget(Target):
    api_url: HttpUrl = Field("https://api.stripe.com", description="Stripe API base URL")
    secret_key: SecretStr | None = Field(None, description="sk_live_... in production; without it N/A")
    required_events: list[str] = Field(
        default_factory=lambda: list(STRIPE_EVENTS),
        description="seed 2.2: all payment events configured on an enabled endpoint",
    )
    webhook_url: HttpUrl | None = Field(None, description="the endpoint that must receive them (default: any enabled)")
    webhook_signing_secret: SecretStr | None = Field(
        None, description="whsec_...: the key the app verifies webhook signatures with"
    )


class SentryTarget(Target):
    dsn: SecretStr | None = Field(None, description="https://<key>@<host>/<project id>; without it N/A")
    environment: str = Field("production", description="the environment tag of the test event")


class AnalyticsTarget(Target):
    measurement_id: str = Field(pattern=r"^(G-[A-Z0-9]{4,}|UA-\d+-\d+)$", description="G-XXXXXXX")
    page_url: HttpUrl | None = Field(
        None, description="the frontend page that must carry the snippet (default: web.base_url)"
    )
    collector_url: HttpUrl = Field("https://www.google-analytics.com", description="where gtag.js sends hits")


class SaasTarget(Target):
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https API URLs")
    twilio: TwilioTarget | None = None
    stripe: StripeTarget | None = None
    sentry: SentryTarget | None = None
    analytics: AnalyticsTarget | None = None


def _json(r: Any) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --------------------------------------------------------------------------- Twilio

TWILIO_API = "dependencies.twilio.api"


def _twilio(s: SaasTarget, ctx: RunContext, path: str) -> tuple[Any, float]:
    tw = s.twilio
    assert tw is not None and tw.auth_token is not None
    url = f"{tw.api_url}/2010-04-01/Accounts/{tw.account_sid}{path}"
    with http_client(ctx, s.ca_file) as c:
        t0 = time.perf_counter()
        r = c.get(url, auth=(tw.account_sid, tw.auth_token.get_secret_value()), timeout=req_timeout(ctx))
        return r, time.perf_counter() - t0


def _twilio_curl(tw: TwilioTarget, path: str = ".json") -> str:
    return f"curl -sS -u {tw.account_sid}:$TWILIO_AUTH_TOKEN '{tw.api_url}/2010-04-01/Accounts/{tw.account_sid}{path}'"


#: what the Twilio checks need configured (the standard NOT_APPLICABLE reasons otherwise)
TWILIO = {"saas.twilio": "", "saas.twilio.auth_token": "the Twilio API cannot be asked"}


@check(
    TWILIO_API,
    title="Twilio API authenticates within 1 second",
    seed=["2.2 Twilio (SMS Service): API Connectivity"],
    timeout=10,
    target="saas",
    timing=True,
    needs=TWILIO,
)
def twilio_api(s: SaasTarget, ctx: RunContext) -> Observation:
    """GET /2010-04-01/Accounts/{sid}.json with HTTP basic auth (sid, auth token): 200 within max_latency_s."""
    tw = given(s.twilio)
    r, took = _twilio(s, ctx, ".json")
    evidence = f"GET {tw.api_url}/2010-04-01/Accounts/{tw.account_sid}.json (basic auth); re-run: `{_twilio_curl(tw)}`"
    if r.status_code in (401, 403):
        return failed(f"HTTP {r.status_code}: authentication refused", "HTTP 200 (authenticated)", evidence)
    if r.status_code != 200:
        return failed(f"HTTP {r.status_code}", "HTTP 200 (authenticated)", evidence)
    return compare(
        round(took, 3), "<", tw.max_latency_s, unit="s", evidence=evidence, account=_json(r).get("friendly_name")
    )


@check(
    "dependencies.twilio.account",
    title="Twilio account is active and funded",
    seed=["2.2 Twilio (SMS Service): Account Status"],
    depends_on=[TWILIO_API],
    timeout=10,
    target="saas",
    needs=TWILIO,
)
def twilio_account(s: SaasTarget, ctx: RunContext) -> Observation:
    """Account status == active and not a trial; Balance.json > min_balance; not rate limited (429); every configured
    sender number is one of the account's IncomingPhoneNumbers."""
    tw = given(s.twilio)
    acct, _ = _twilio(s, ctx, ".json")
    bal, _ = _twilio(s, ctx, "/Balance.json")
    problems: list[str] = []
    for name, r in (("account", acct), ("balance", bal)):
        if r.status_code == 429:
            problems.append(f"{name}: rate limited (HTTP 429)")
        elif r.status_code != 200:
            problems.append(f"{name}: HTTP {r.status_code}")
    a, b = _json(acct), _json(bal)
    observed: dict[str, Any] = {
        "status": a.get("status"),
        "type": a.get("type"),
        "balance": f"{b.get('balance')} {b.get('currency', '')}".strip(),
    }
    if acct.status_code == 200 and a.get("status") != "active":
        problems.append(f"account status {a.get('status')!r}")
    if acct.status_code == 200 and a.get("type") == "Trial":
        problems.append("trial account")
    try:
        balance = float(b.get("balance"))
        if bal.status_code == 200 and balance <= tw.min_balance:
            problems.append(f"balance {balance:g} <= {tw.min_balance:g}")
    except (TypeError, ValueError):
        if bal.status_code == 200:
            problems.append("no balance in Balance.json")
    if tw.sender_numbers:
        nums, _ = _twilio(s, ctx, "/IncomingPhoneNumbers.json?PageSize=1000")
        owned = {n.get("phone_number") for n in _json(nums).get("incoming_phone_numbers") or []}
        missing = [n for n in tw.sender_numbers if n not in owned]
        observed["sender_numbers"] = f"{len(tw.sender_numbers) - len(missing)}/{len(tw.sender_numbers)} on the account"
        problems += [f"sender {n} is not on the account" for n in missing]
    if problems:
        observed["problems"] = problems
    evidence = (
        f"GET {tw.api_url}/2010-04-01/Accounts/{tw.account_sid}.json and /Balance.json"
        + (" and /IncomingPhoneNumbers.json" if tw.sender_numbers else "")
        + f" (basic auth); re-run: `{_twilio_curl(tw, '/Balance.json')}`"
    )
    expected = f"status active (not Trial), balance > {tw.min_balance:g}, not rate limited"
    return failed_if(problems, observed, expected, evidence)


# --------------------------------------------------------------------------- Stripe

STRIPE_KEY = "dependencies.stripe.api_key"
_KEY_CLASS = re.compile(r"^(sk|rk)_(live|test)_")


def key_class(key: str) -> str:
    """`sk_live_…` / `sk_test_…` / `rk_live_…` / `rk_test_…`, or `unknown prefix`: never more of the key."""
    m = _KEY_CLASS.match(key)
    return f"{m.group(0)}…" if m else "unknown prefix (not sk_/rk_ live/test)"


def _stripe_get(s: SaasTarget, ctx: RunContext, path: str) -> Any:
    st = s.stripe
    assert st is not None and st.secret_key is not None
    with http_client(ctx, s.ca_file) as c:
        return c.get(
            f"{st.api_url}{path}",
            headers={"Authorization": f"Bearer {st.secret_key.get_secret_value()}"},
            timeout=req_timeout(ctx),
        )


#: what the Stripe checks need configured (the standard NOT_APPLICABLE reasons otherwise)
STRIPE = {"saas.stripe": "", "saas.stripe.secret_key": "the Stripe API cannot be asked"}


@check(
    STRIPE_KEY,
    title="Stripe API key is valid (a live key in production)",
    seed=["2.2 Stripe (Payment Processing): API Key Status"],
    timeout=10,
    target="saas",
    needs=STRIPE,
)
def stripe_api_key(s: SaasTarget, ctx: RunContext) -> Observation:
    """GET /v1/balance with the secret key: 200; in production (`production: true`) the key is a live key (sk_live_/
    rk_live_ prefix and livemode true). The key is shown only as its prefix class."""
    st = given(s.stripe)
    cls = key_class(st.secret_key.get_secret_value())
    production = bool(getattr(ctx.config, "production", False))
    r = _stripe_get(s, ctx, "/v1/balance")
    evidence = (
        f"GET {st.api_url}/v1/balance (Authorization: Bearer <saas.stripe.secret_key>, a {cls} key); "
        f're-run: `curl -sS -u "$STRIPE_SECRET_KEY:" {st.api_url}/v1/balance | jq .livemode`'
    )
    expected = "HTTP 200; " + (
        "a live key (sk_live_…) with livemode true: this is production"
        if production
        else "any valid key (not production)"
    )
    if r.status_code in (401, 403):
        return failed(
            {"key": cls, "http": r.status_code, "error": (_json(r).get("error") or {}).get("type")}, expected, evidence
        )
    if r.status_code != 200:
        return failed({"key": cls, "http": r.status_code}, expected, evidence)
    livemode = _json(r).get("livemode")
    observed = {"key": cls, "http": 200, "livemode": livemode}
    if production and (not cls.endswith("live_…") or livemode is not True):
        observed["problems"] = [f"a {cls} key in production"]
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


@check(
    "dependencies.stripe.webhooks",
    title="Stripe webhooks cover the payment events and can be verified",
    seed=["2.2 Stripe (Payment Processing): Webhook Configuration"],
    depends_on=[STRIPE_KEY],
    timeout=10,
    target="saas",
    needs=STRIPE,
)
def stripe_webhooks(s: SaasTarget, ctx: RunContext) -> Observation:
    """GET /v1/webhook_endpoints (every page): the enabled endpoints (the configured URL's, if set) subscribe to every
    required event (or `*`); a webhook signing secret (whsec_…) is configured for the app."""
    st = given(s.stripe)
    endpoints: list[dict[str, Any]] = []
    path = "/v1/webhook_endpoints?limit=100"
    for _ in range(20):
        r = _stripe_get(s, ctx, path)
        if r.status_code != 200:
            raise RuntimeError(f"GET /v1/webhook_endpoints answered HTTP {r.status_code}")
        body = _json(r)
        endpoints += body.get("data") or []
        if not body.get("has_more") or not body.get("data"):
            break
        path = f"/v1/webhook_endpoints?limit=100&starting_after={body['data'][-1].get('id')}"
    relevant = [
        e
        for e in endpoints
        if e.get("status") == "enabled"
        and (st.webhook_url is None or str(e.get("url", "")).rstrip("/") == st.webhook_url)
    ]
    events = {ev for e in relevant for ev in e.get("enabled_events") or []}
    missing = [] if "*" in events else [ev for ev in st.required_events if ev not in events]
    problems: list[str] = []
    if not relevant:
        problems.append("no enabled webhook endpoint" + (f" for {st.webhook_url}" if st.webhook_url else ""))
    elif missing:
        problems.append(f"events not subscribed: {', '.join(missing)}")
    secret = st.webhook_signing_secret.get_secret_value() if st.webhook_signing_secret else ""
    if not secret:
        problems.append("no webhook signing secret configured (saas.stripe.webhook_signing_secret)")
    elif not secret.startswith("whsec_"):
        problems.append("the webhook signing secret is not a whsec_… secret")
    observed: dict[str, Any] = {
        "endpoints": {
            e.get("id", "?"): f"{e.get('url')} ({e.get('status')}, {len(e.get('enabled_events') or [])} event(s))"
            for e in endpoints
        }
        or "none",
        "signing_secret": "whsec_… configured" if secret.startswith("whsec_") else ("set" if secret else "missing"),
    }
    if problems:
        observed["problems"] = problems
    evidence = (
        f"GET {st.api_url}/v1/webhook_endpoints?limit=100 (Bearer <saas.stripe.secret_key>), "
        f'{len(endpoints)} endpoint(s); re-run: `curl -sS -u "$STRIPE_SECRET_KEY:" '
        f"'{st.api_url}/v1/webhook_endpoints?limit=100' | jq '.data[] | {{url, status, enabled_events}}'`"
    )
    expected = (
        f"an enabled endpoint{' ' + st.webhook_url if st.webhook_url else ''} subscribed to "
        f"{', '.join(st.required_events)}; a whsec_ signing secret configured"
    )
    return failed_if(problems, observed, expected, evidence, missing_events=missing)


# --------------------------------------------------------------------------- Sentry

_DSN = re.compile(
    r"^(?P<scheme>https?)://(?P<key>[0-9a-zA-Z]+)(?::[0-9a-zA-Z]+)?@(?P<host>[^/@\s]+)"
    r"(?P<path>(?:/[^/\s]+)*)/(?P<project>\d+)/?$"
)


def parse_dsn(dsn: str) -> dict[str, str] | None:
    m = _DSN.match(dsn.strip())
    return m.groupdict() if m else None


@check(
    "dependencies.sentry.events",
    title="Sentry DSN is well-formed and a test event is accepted",
    seed=["2.2 Google Analytics / Sentry: Error Tracking"],
    timeout=10,
    target="saas",
    needs=["saas.sentry", "saas.sentry.dsn"],
)
def sentry_events(s: SaasTarget, ctx: RunContext) -> Observation:
    """Parse the DSN (`scheme://key@host[/path]/project`), then POST one info-level test event (tag golive=readiness)
    as an envelope to /api/<project>/envelope/ with X-Sentry-Auth: 200 and the event id back."""
    sentry = given(s.sentry)
    dsn = given(sentry.dsn).get_secret_value()
    parts = parse_dsn(dsn)
    expected = "a DSN scheme://<key>@<host>/<project id>; the test event answered 200 with its id"
    if parts is None:
        return failed(
            "the DSN is not of the form scheme://<key>@<host>/<project id>",
            expected,
            "parsed saas.sentry.dsn (not shown: it carries the project key)",
        )
    base = f"{parts['scheme']}://{parts['host']}{parts['path']}"
    masked = f"{parts['scheme']}://***@{parts['host']}{parts['path']}/{parts['project']}"
    url = f"{base}/api/{parts['project']}/envelope/"
    event_id = uuid.uuid4().hex
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {
        "event_id": event_id,
        "timestamp": now,
        "level": "info",
        "platform": "python",
        "logger": "golive",
        "message": {"formatted": "golive readiness check: test event (safe to ignore)"},
        "environment": sentry.environment,
        "tags": {"golive": "readiness"},
    }
    body = "\n".join(json.dumps(x) for x in ({"event_id": event_id, "sent_at": now}, {"type": "event"}, event)) + "\n"
    auth = f"Sentry sentry_version=7, sentry_client=golive/1.0, sentry_key={parts['key']}"
    with http_client(ctx, s.ca_file) as c:
        r = c.post(
            url,
            content=body.encode(),
            timeout=req_timeout(ctx),
            headers={"Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": auth},
        )
    evidence = (
        f"DSN {masked}; POST {url} (an envelope with one info event, X-Sentry-Auth with the DSN key); "
        "re-run: `sentry-cli send-event -m 'golive test'` with SENTRY_DSN set"
    )
    got = _json(r).get("id")
    observed: dict[str, Any] = {"dsn": masked, "http": r.status_code}
    if r.status_code == 200 and got == event_id:
        observed["event_id"] = event_id
        return passed(observed, expected, evidence)
    if r.status_code != 200:
        detail = _json(r).get("detail")
        observed["rejected"] = ctx.redact.clip(detail or r.text, 200) or f"HTTP {r.status_code}"
    else:
        observed["rejected"] = f"answered 200 without the event id (got {got!r})"
    return failed(observed, expected, evidence)


# --------------------------------------------------------------------------- Google Analytics

_GTAG_SRC = re.compile(r"""<script[^>]*\bsrc\s*=\s*["']([^"']*gtag/js\?id=([A-Z0-9-]+)[^"']*)["']""", re.I)
_GTAG_CONFIG = re.compile(r"""gtag\(\s*['"]config['"]\s*,\s*['"]([A-Z0-9-]+)['"]""")


@check(
    "dependencies.analytics.tracking",
    title="Analytics snippet is on the frontend and its collector answers",
    seed=["2.2 Google Analytics / Sentry: Analytics Integration"],
    timeout=15,
    target="saas",
    needs=["saas.analytics"],
    uses=["web"],
)
def analytics_tracking(s: SaasTarget, ctx: RunContext, *, web: WebTarget | None) -> Observation:
    """GET the frontend page: a gtag.js <script src=...?id=MEASUREMENT_ID> and gtag('config', MEASUREMENT_ID);
    the script URL answers 200 with JavaScript; a debug-mode page_view hit to <collector>/g/collect answers 2xx."""
    a = given(s.analytics)
    page = a.page_url or (str(web.base_url).rstrip("/") + "/" if web is not None else None)
    if page is None:
        return not_applicable("no `saas.analytics.page_url` and no `web` section: no frontend page to read")
    ca = s.ca_file or (getattr(web, "ca_file", None) if web is not None else None)
    problems: list[str] = []
    observed: dict[str, Any] = {}
    with http_client(ctx, ca, follow_redirects=True, max_redirects=5) as c:
        r = c.get(page, timeout=req_timeout(ctx))
        html = r.text if r.status_code == 200 else ""
        if r.status_code != 200:
            problems.append(f"the page answered HTTP {r.status_code}")
        srcs = {m.group(2): urljoin(page, m.group(1)) for m in _GTAG_SRC.finditer(html)}
        configs = set(_GTAG_CONFIG.findall(html))
        observed["snippet"] = {"gtag_js_ids": sorted(srcs), "config_ids": sorted(configs)}
        if a.measurement_id not in srcs:
            problems.append(f"no gtag.js <script> for {a.measurement_id} on the page")
        if a.measurement_id not in configs:
            problems.append(f"no gtag('config', '{a.measurement_id}') on the page")
        if a.measurement_id in srcs:
            js = c.get(srcs[a.measurement_id], timeout=req_timeout(ctx))
            ctype = js.headers.get("content-type", "")
            observed["script"] = f"HTTP {js.status_code}, {ctype or 'no content-type'}, {len(js.content):,} bytes"
            if js.status_code != 200 or "javascript" not in ctype or not js.content:
                problems.append(f"gtag.js did not load ({observed['script']})")
        hit = c.get(
            f"{a.collector_url}/g/collect",
            timeout=req_timeout(ctx),
            params={
                "v": "2",
                "tid": a.measurement_id,
                "cid": "555.golive",
                "en": "page_view",
                "dl": page,
                "_dbg": "1",
                "ep.golive": "readiness",
            },
        )
        observed["collector"] = f"HTTP {hit.status_code}"
        if not 200 <= hit.status_code < 300:
            problems.append(f"the collector answered HTTP {hit.status_code}")
    if problems:
        observed["problems"] = problems
    evidence = (
        f"GET {page} (snippet: gtag.js src and gtag('config', ...)); GET the gtag.js URL; GET "
        f"{a.collector_url}/g/collect?v=2&tid={a.measurement_id}&en=page_view&_dbg=1 (a debug-mode hit); "
        f"re-run: `curl -sS {page} | grep -o 'gtag/js?id=[A-Z0-9-]*'`"
    )
    expected = f"gtag.js for {a.measurement_id} on the page and loading; collector answers 2xx"
    return failed_if(problems, observed, expected, evidence)
