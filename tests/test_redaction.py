"""No secret survives the redactor in any encoding (issue #10, item 4): a property test over generated secrets (1 to 40
characters, regex metacharacters, any Unicode) and every encoding a target or a driver applies, the net for a secret
cut before redaction, and real servers that echo what golive sent them (HTTP Basic, a Sentry key) into the evidence."""

from __future__ import annotations

import base64
import html
import json
import re
import string
from urllib.parse import quote, quote_plus

from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from golive.flows.config import parse_config
from golive.tasks.core import MASK, Redactor, Status
from tests.support.checks import as_json, run_ids
from tests.support.servers import ServerThread


def _b64(text: str, urlsafe: bool = False) -> str:
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(text.encode("utf-8")).decode()


ENCODINGS = {
    "raw": lambda s: s,
    "percent": lambda s: quote(s, safe=""),
    "percent keeping /": quote,
    "percent plus": quote_plus,
    "percent lowercase": lambda s: re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s, safe="")),
    "percent twice": lambda s: quote(quote(s, safe=""), safe=""),
    "json": lambda s: json.dumps(s)[1:-1],
    "json utf-8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json escaped slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json twice": lambda s: json.dumps(json.dumps(s))[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "ascii": lambda s: ascii(s)[1:-1],
    "html": html.escape,
    "html keeping quotes": lambda s: html.escape(s, quote=False),
    "html twice": lambda s: html.escape(html.escape(s)),
    "base64": _b64,
    "base64 url-safe": lambda s: _b64(s, urlsafe=True),
    "base64 unpadded": lambda s: _b64(s).rstrip("="),
}

META = ".^$*+?{}[]\\|()%&<>\"'/:@=# \n\t"
SECRETS = st.one_of(
    st.text(alphabet=META + "ab1", min_size=1, max_size=3),  # the short ones the config refuses
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40),
    st.text(alphabet=string.ascii_letters + string.digits + META, min_size=8, max_size=40),
)
AROUND = st.text(alphabet=string.ascii_letters + " =:,", max_size=8)


def survives(form: str, out: str) -> bool:
    return any(form in part for part in out.split(MASK))  # a secret made of `*` is not found in the mask itself


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, before=AROUND, after=AROUND, encoding=st.sampled_from(sorted(ENCODINGS)))
@example(secret="p@ss word/1", before="x=", after="", encoding="percent lowercase")
@example(secret="*", before="", after="", encoding="raw")
@example(secret="a\\b\U0001f600", before="", after="", encoding="json twice")
def test_no_encoding_of_a_secret_survives(secret, before, after, encoding):
    form = ENCODINGS[encoding](secret)
    out = Redactor([secret]).text(f"{before}{form}{after}")
    if not set(form) - set(MASK):
        # a form made only of the mask's own character cannot be told from masks side by side ("***" + "**" read as
        # the secret `**` again: hypothesis found it): there, only masks may stand where it was
        assert out.replace("*", "") == f"{before}{after}".replace("*", ""), (encoding, form, out)
        return
    assert not survives(form, out), (encoding, form, out)


@settings(max_examples=150, deadline=None)
@given(
    secret=SECRETS,
    user=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12),
    header=st.sampled_from(["Authorization: Basic ", '{"authorization": "Basic ', "basic "]),
)
def test_http_basic_credentials_are_masked_whatever_the_user(secret, user, header):
    token = _b64(f"{user}:{secret}")
    out = Redactor([secret]).text(f"{header}{token}")
    assert not survives(token, out) and not survives(token[-4:].rstrip("="), out[len(header) - 1 :]), out


@settings(max_examples=150, deadline=None)
@given(
    secret=st.text(
        alphabet=string.ascii_letters + string.digits + "!@#$%^&*()[]{}-_=+;:,.<>?/|~", min_size=5, max_size=40
    ),
    cut=st.integers(min_value=4),
    dots=st.sampled_from(["", "…", "...", "')"]),
)
def test_a_secret_cut_before_redaction_leaves_no_prefix(secret, cut, dots):
    kind = re.match(r"(?:[a-z]{2,6}[_-]){1,2}", secret)  # `sk_live_…` names a key's kind: evidence, not secret
    cut = min(max(cut, kind.end() + 1 if kind else 0), len(secret) - 1)
    r = Redactor([secret])
    # a body that cut first: the net masks the prefix that ends the string
    assert not survives(secret[:cut], r.text(f"§§§ {secret[:cut]}{dots}"))
    # clip redacts first: no prefix anywhere, whatever the cut
    assert not survives(secret[:cut], r.clip(f"§§§ {secret} §§§", 4 + cut))
    assert not survives(secret[-cut:], r.clip(f"§§§ {secret}", 1 + cut, tail=True))


def test_secret_urls_give_their_parts_and_userinfo_is_masked():
    r = Redactor(["http://0123456789abcdef@sentry.example:9000/42", "https://hooks.example/services/T0/B0/XyZ123"])
    out = r.text(
        "sentry_key=0123456789abcdef; POST /services/T0/B0/XyZ123; ssh://tok3n@git.example/x; "
        "postgresql://app_user:pw@db/app; Basic authentication is on; Bearer <token>"
    )
    assert out == (
        "sentry_key=***; POST ***; ssh://***@git.example/x; postgresql://app_user:***@db/app; "
        "Basic authentication is on; Bearer <token>"
    )
    key = Redactor(["sk_live_4eC39HqLyjWDarjtT1zdp7dc"])
    assert key.text("key sk_live_…") == "key sk_live_…" and key.text("key sk_live_4eC…") == "key ***…"


# --------------------------------------------------------------------------- real servers echoing what golive sent

SID, TOKEN, SENTRY_KEY = "AC" + "0123456789abcdef" * 2, "twilio-Tok3n-secret", "fedcba9876543210fedcba9876543210"


def echo_app() -> Starlette:
    """Twilio answering with the Authorization header it got (base64 of sid:token), and Sentry refusing the event
    with its X-Sentry-Auth header (the DSN's key), padded so that a cut at 200 characters falls inside the key."""

    async def account(request):
        auth = request.headers.get("authorization", "")
        b64 = auth.split(" ", 1)[-1]
        return JSONResponse({"status": auth, "type": b64, "friendly_name": f"echo {b64}", "balance": b64})

    async def envelope(request):
        auth = request.headers.get("x-sentry-auth", "")
        pad = "x" * (200 - auth.index("sentry_key=") - len("sentry_key=") - 8)
        return JSONResponse({"detail": f"{pad}{auth}"}, status_code=403)

    return Starlette(
        routes=[
            Route(f"/2010-04-01/Accounts/{SID}.json", account),
            Route(f"/2010-04-01/Accounts/{SID}/Balance.json", account),
            Route("/api/42/envelope/", envelope, methods=["POST"]),
        ]
    )


def test_servers_echoing_credentials_get_none_into_the_evidence():
    with ServerThread(echo_app()) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        cfg = parse_config(
            {
                "environment": "echo",
                "saas": {
                    "twilio": {"api_url": base, "account_sid": SID, "auth_token": TOKEN},
                    "sentry": {"dsn": f"http://{SENTRY_KEY}@127.0.0.1:{srv.port}/42"},
                },
            },
            env={},
        )
        res = run_ids(["dependencies.twilio.api", "dependencies.twilio.account", "dependencies.sentry.events"], cfg)
    assert res["dependencies.twilio.account"].status == Status.FAIL  # the echoed "status" is not "active"
    sentry = res["dependencies.sentry.events"]
    assert sentry.status == Status.FAIL and "rejected" in sentry.observed
    blob = as_json(res)
    basic = _b64(f"{SID}:{TOKEN}")
    for leak in (TOKEN, basic, basic[-12:], basic.rstrip("=")[-8:], SENTRY_KEY, SENTRY_KEY[:8]):
        assert leak not in blob, leak
    assert MASK in json.dumps(sentry.observed)
