"""Seed 5.1: the session cookies the login sets (Secure, HttpOnly, SameSite, lifetime, rotation).

Nothing here prints a secret: cookie values, tokens, password hashes and matched secret strings are compared or
classified, and only their kind, a row id or a file:line is reported."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

from ..clients.http import http_client, req_timeout
from ..core import Observation, RunContext, check, failed, failed_if, given
from ..web import REACHABLE, WebTarget, _curl, _login_evidence, url_of
from .target import SecurityTarget, fingerprint

# --------------------------------------------------------------------------- 5.1 sessions


def _parse_cookie(header: str) -> dict[str, Any]:
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs: dict[str, Any] = {"name": name.strip(), "value": value}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return attrs


@check(
    "security.session.cookies",
    title="Session cookies are Secure, HttpOnly, SameSite, short-lived and rotated",
    seed=["5.1 Session Management"],
    depends_on=[REACHABLE],
    timeout=15,
    target="security",
    needs={"web.auth": "sessions need a login"},
)
def session_cookies(t: SecurityTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """Log in twice: the session cookie of each login has Secure, HttpOnly and SameSite (Lax/Strict), expires
    (Max-Age or Expires) within max_session_hours, and the second login sets a different value (rotated on login).
    Cookie values are compared by fingerprint, never shown."""
    auth = given(web.auth)
    cookies: list[dict[str, Any]] = []
    statuses = []
    with http_client(ctx, web.ca_file) as c:
        for _ in range(2):
            r = c.post(
                url_of(web, auth.login_path),
                timeout=req_timeout(ctx),
                json={"username": auth.username, "password": auth.password.get_secret_value()},
            )
            statuses.append(r.status_code)
            found = [_parse_cookie(h) for h in r.headers.get_list("set-cookie")]
            if t.session_cookie:
                found = [f for f in found if f["name"] == t.session_cookie]
            cookies.append(found[0] if found else {})
            c.cookies.clear()
    evidence = (
        _login_evidence(web).split("->")[0] + "twice; Set-Cookie attributes parsed; values compared by "
        f"SHA-256 fingerprint; re-run: `{_curl(web)} -D - -o /dev/null -X POST -H 'Content-Type: "
        f"application/json' -d @login.json {url_of(web, auth.login_path)} | grep -i set-cookie`"
    )
    expected = {
        "flags": f"Secure, HttpOnly, SameSite in {t.samesite}",
        "lifetime_h": f"<= {t.max_session_hours:g}",
        "rotated_on_login": True,
    }
    if any(s != 200 for s in statuses) or not all(cookies):
        what = {"logins": statuses, "session_cookie": "set" if all(cookies) else "not set by the login"}
        return failed(what, expected, evidence)
    ck = cookies[0]
    problems = []
    if ck.get("secure") is not True:
        problems.append("no Secure")
    if ck.get("httponly") is not True:
        problems.append("no HttpOnly")
    samesite = str(ck.get("samesite", "")).lower() if ck.get("samesite") not in (None, True) else None
    if samesite not in [s.lower() for s in t.samesite]:
        problems.append(f"SameSite={samesite or '(absent)'}")
    lifetime_h: float | None = None
    if "max-age" in ck and str(ck["max-age"]).lstrip("-").isdigit():
        lifetime_h = int(ck["max-age"]) / 3600
    elif "expires" in ck:
        try:
            lifetime_h = (parsedate_to_datetime(str(ck["expires"])).timestamp() - time.time()) / 3600
        except (TypeError, ValueError):
            lifetime_h = None
    if lifetime_h is None:
        problems.append("no Max-Age/Expires (lives as long as the browser)")
    elif lifetime_h > t.max_session_hours + 0.01:
        problems.append(f"lifetime {lifetime_h:.1f} h")
    rotated = fingerprint(cookies[0]["value"]) != fingerprint(cookies[1]["value"])
    if not rotated:
        problems.append("same value on the second login (not rotated)")
    observed = {
        "cookie": ck["name"],
        "secure": ck.get("secure") is True,
        "httponly": ck.get("httponly") is True,
        "samesite": samesite,
        "lifetime_h": round(lifetime_h, 2) if lifetime_h is not None else None,
        "rotated_on_login": rotated,
        "problems": problems,
    }
    return failed_if(problems, observed, expected, evidence)
