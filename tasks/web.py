"""The `web` section: the web product, frontend + API over HTTPS, and its TLS certificate (sections 1, 4, 5, 6)."""

from __future__ import annotations

import html as _html
import json as _json
import re as _re
import shlex
import statistics as _statistics
import time as _time
from datetime import UTC, datetime
from math import ceil as _ceil
from typing import Any
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from .clients.http import curl, http_client, req_timeout
from .clients.tls import TlsProbe, is_ip, probe_tls
from .core import (
    Observation,
    RunContext,
    check,
    compare,
    failed,
    failed_if,
    passed,
    passed_if,
    register_service,
    url_address,
)
from .models import CaFile, Target


class WebAuth(Target):
    login_path: str = "/api/auth/login"
    username: str
    password: SecretStr


class WebTarget(Target):
    base_url: AnyHttpUrl = Field(
        description="HTTPS URL of the product (frontend and API), e.g. https://app.example.com"
    )
    http_url: AnyHttpUrl | None = Field(None, description="plain-HTTP URL expected to redirect to HTTPS")
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) besides the system store")
    health_path: str = "/health"
    api_health_path: str = "/api/health"
    critical_paths: list[str] = Field(
        default_factory=lambda: [
            "/api/campaigns",
            "/api/users",
            "/api/merchants",
            "/api/analytics/portfolio",
            "/api/phase4/health",
        ]
    )
    protected_path: str = "/api/campaigns"
    unknown_path: str = "/api/invalid-endpoint"
    expected_title: str | None = Field(None, description="the <title> the frontend must serve")
    approved_origins: list[str] = Field(default_factory=list)
    unapproved_origin: str = Field(
        "https://evil.example", description="an origin that must NOT be allowed by CORS (preflight probe)"
    )
    auth: WebAuth | None = None
    min_cert_days: int = Field(30, ge=0, description="seed 1.1: at least 30 days remaining")
    hsts_min_max_age: int = Field(31536000, ge=0, description="seed 5.1: max-age >= 1 year")
    max_response_ms: float = Field(100.0, gt=0, description="seed 1.1: load balancer answers < 100 ms")
    p95_max_ms: float = Field(500.0, gt=0, description="seed 6.1: API p95 < 500 ms")
    probe_requests: int = Field(20, ge=5, le=200, description="requests of the bounded built-in latency probe")

    @field_validator("base_url")
    @classmethod
    def _https(cls, v: AnyHttpUrl) -> AnyHttpUrl:
        if v.scheme != "https":
            raise ValueError("must be an https:// URL")
        return v

    @field_validator("health_path", "api_health_path", "protected_path", "unknown_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with /")
        return v


# --------------------------------------------------------------------------- checks

REACHABLE = "infrastructure.web.reachable"
REACHABLE_SAMPLES = 3
TOKEN_KEYS = ("access_token", "token", "jwt", "id_token")


def url_of(target: WebTarget, path: str) -> str:
    return str(target.base_url).rstrip("/") + path


def _json_body(r: Any) -> Any:
    """The parsed JSON body, or None when the response is not JSON."""
    if "json" not in r.headers.get("content-type", "").lower():
        return None
    try:
        return r.json()
    except ValueError:
        return None


def _curl(target: WebTarget) -> str:
    return "curl -sS" + (f" --cacert {shlex.quote(str(target.ca_file))}" if target.ca_file else "")


def _excerpt(r: Any, ctx: RunContext, n: int = 80) -> str:
    return ctx.redact.clip(r.text, n)


def login(target: WebTarget, ctx: RunContext) -> tuple[int | None, str | None, str]:
    """POST login_path {username, password} -> (status, token or None, what happened). Memoized per run,
    so the login is done once however many checks need a token. The token never leaves this function's callers."""
    assert target.auth is not None
    auth = target.auth

    def do() -> tuple[int | None, str | None, str]:
        with http_client(ctx, target.ca_file) as c:
            r = c.post(
                url_of(target, auth.login_path),
                timeout=req_timeout(ctx),
                json={"username": auth.username, "password": auth.password.get_secret_value()},
            )
            body = _json_body(r)
            token = None
            if r.status_code == 200 and isinstance(body, dict):
                token = next((body[k] for k in TOKEN_KEYS if isinstance(body.get(k), str) and body[k]), None)
            if token is None:
                why = (
                    f"login answered {r.status_code}"
                    + ("" if body is not None else " (not JSON)")
                    + ("" if r.status_code != 200 else f", no token among {list(TOKEN_KEYS)}")
                )
                return r.status_code, None, why
            return r.status_code, token, f"login answered {r.status_code} with a token"

    return ctx.memo(("web-login", str(target.base_url), auth.login_path, auth.username), do)


def _login_evidence(target: WebTarget) -> str:
    assert target.auth is not None
    body = _json.dumps({"username": target.auth.username, "password": "***"})
    return (
        f"POST {url_of(target, target.auth.login_path)} with JSON {body} -> token from one of "
        f"{'/'.join(TOKEN_KEYS)}, then `Authorization: Bearer <token>`"
    )


@check(
    REACHABLE,
    title="Web endpoint answers over HTTPS, fast",
    seed=["1.1 Load Balancer: Load Balancer Status", "1.1 Frontend Server(s): Server Status"],
    timeout=10,
    target="web",
    timing=True,
)
def web_reachable(target: WebTarget, ctx: RunContext) -> Observation:
    """HTTPS GET of base_url answers 200 or 301, and the time to the first response (new connection: TCP + TLS +
    request, to the response headers, like curl's time_starttransfer) is < max_response_ms. Three requests, each on
    a new connection; the median is compared (one sample is at the mercy of a scheduler hiccup)."""
    url = str(target.base_url)
    samples: list[float] = []
    statuses: list[int] = []
    server = None
    with http_client(ctx, target.ca_file) as c:
        for _ in range(REACHABLE_SAMPLES):
            t0 = _time.perf_counter()
            with c.stream("GET", url, headers={"Connection": "close"}, timeout=req_timeout(ctx)) as r:
                samples.append(round((_time.perf_counter() - t0) * 1000, 1))
                statuses.append(r.status_code)
                server = r.headers.get("server")
    ttfb = _statistics.median(samples)
    observed = {
        "status": statuses[0] if len(set(statuses)) == 1 else statuses,
        "time_to_first_response_ms": round(ttfb, 1),
        "samples_ms": samples,
    }
    expected = f"status in (200, 301) and median time to first response < {target.max_response_ms:g} ms"
    evidence = (
        f"{REACHABLE_SAMPLES} x GET {url}, each on a new connection (TCP + TLS + request, timed to the "
        f"response headers); re-run: `{curl(url, ca_file=target.ca_file)}`"
    )
    ok = all(s in (200, 301) for s in statuses) and ttfb < target.max_response_ms
    return passed_if(ok, observed, expected, evidence, server=server)


@check(
    "infrastructure.http.redirect",
    title="Plain HTTP redirects permanently to HTTPS",
    seed=["5.1 SSL/TLS Configuration"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
    needs={"web.http_url": "nothing listens on plain HTTP"},
)
def http_redirect(target: WebTarget, ctx: RunContext) -> Observation:
    """http_url answers 301/308 with a Location on https://. Needs the HTTPS endpoint up (a redirect to a site that
    is down is that site's failure)."""
    url = str(target.http_url)
    with http_client(ctx) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    loc = r.headers.get("location", "")
    observed = f"{r.status_code} Location: {loc or '(none)'}"
    expected = "301 or 308 with Location: https://..."
    evidence = f"GET {url} without following redirects; re-run: `curl -sS -o /dev/null -D - {url}`"
    ok = r.status_code in (301, 308) and loc.lower().startswith("https://")
    return passed_if(ok, observed, expected, evidence)


def _web(config: Any) -> WebTarget | None:
    return getattr(config, "web", None)


# the web endpoint's checks report its addresses: another check finding one down is SKIPPED naming them
register_service(REACHABLE, lambda c: [url_address(w.base_url)] if (w := _web(c)) else [])
register_service(
    "infrastructure.http.redirect", lambda c: [url_address(w.http_url)] if (w := _web(c)) and w.http_url else []
)


@check(
    "application.api.health",
    title="Health endpoints report healthy",
    seed=["4.1 Application Running", "1.1 Load Balancer: Health Check Configuration"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def api_health(target: WebTarget, ctx: RunContext) -> Observation:
    """GET health_path and api_health_path: 200, JSON, status == "healthy"."""
    observed: dict[str, str] = {}
    bad = []
    with http_client(ctx, target.ca_file) as c:
        for path in dict.fromkeys([target.health_path, target.api_health_path]):
            r = c.get(url_of(target, path), timeout=req_timeout(ctx))
            body = _json_body(r)
            status = body.get("status") if isinstance(body, dict) else None
            if body is None:
                observed[path] = f"{r.status_code}, not JSON: {_excerpt(r, ctx)!r}"
            else:
                observed[path] = f"{r.status_code}, status={status!r}"
            if r.status_code != 200 or status != "healthy":
                bad.append(path)
    expected = 'each answers 200 with JSON {"status": "healthy"}'
    evidence = (
        "; ".join(f"GET {url_of(target, p)}" for p in observed)
        + f"; re-run: `{_curl(target)} {url_of(target, target.health_path)}`"
    )
    return failed_if(bad, observed, expected, evidence, failing=bad)


@check(
    "application.api.endpoints",
    title="Critical API endpoints answer 200 when logged in",
    seed=["4.1 API Endpoints"],
    depends_on=[REACHABLE],
    timeout=15,
    target="web",
    needs={"web.auth": "the critical endpoints need a login"},
)
def api_endpoints(target: WebTarget, ctx: RunContext) -> Observation:
    """Log in with `auth`, then GET every critical path with the token: each must answer 200."""
    status, token, what = login(target, ctx)
    expected = {p: 200 for p in target.critical_paths}
    evidence = _login_evidence(target) + "; GET " + ", ".join(target.critical_paths)
    if token is None:
        return failed({"login": what}, {"login": "200 with a token", **expected}, evidence)
    observed: dict[str, Any] = {}
    with http_client(ctx, target.ca_file) as c:
        for p in target.critical_paths:
            r = c.get(url_of(target, p), headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx))
            observed[p] = r.status_code
    bad = [p for p, s in observed.items() if s != 200]
    return failed_if(bad, observed, expected, evidence, failing=bad)


@check(
    "application.api.errors",
    title="Errors are answered properly (404, 401, JSON bodies)",
    seed=["4.1 Error Handling"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def api_errors(target: WebTarget, ctx: RunContext) -> Observation:
    """unknown_path -> 404 with a JSON error body; protected_path without credentials -> 401 with JSON."""
    want = {target.unknown_path: 404, target.protected_path: 401}
    observed: dict[str, str] = {}
    bad = []
    with http_client(ctx, target.ca_file) as c:
        for path, code in want.items():
            r = c.get(url_of(target, path), timeout=req_timeout(ctx))
            body = _json_body(r)
            kind = "JSON" if body is not None else f"not JSON ({r.headers.get('content-type', 'no content-type')})"
            observed[path] = f"{r.status_code}, {kind}: {_excerpt(r, ctx)!r}"
            if r.status_code != code or body is None:
                bad.append(path)
    expected = {p: f"{code} with a JSON error body" for p, code in want.items()}
    evidence = "GET without credentials: " + ", ".join(url_of(target, p) for p in want)
    return failed_if(bad, observed, expected, evidence, failing=bad)


_TITLE = _re.compile(r"<title[^>]*>(.*?)</title\s*>", _re.I | _re.S)


@check(
    "application.frontend.title",
    title="Frontend serves its page with the right title",
    seed=["4.2 Frontend Accessible"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def frontend_title(target: WebTarget, ctx: RunContext) -> Observation:
    """GET / -> 200 HTML whose <title> equals expected_title (or is at least non-empty when none is configured)."""
    url = str(target.base_url)
    with http_client(ctx, target.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    ctype = r.headers.get("content-type", "")
    m = _TITLE.search(r.text) if "html" in ctype.lower() else None
    title = " ".join(_html.unescape(m.group(1)).split()) if m else None
    observed = {"status": r.status_code, "content_type": ctype, "title": title}
    if target.expected_title is not None:
        expected = {"status": 200, "content_type": "text/html", "title": target.expected_title}
        ok = title == target.expected_title
    else:
        expected = {"status": 200, "content_type": "text/html", "title": "non-empty (no expected_title configured)"}
        ok = bool(title)
    ok = ok and r.status_code == 200
    evidence = f"GET {url}, <title> parsed from the HTML; re-run: `{_curl(target)} {url} | grep -i '<title>'`"
    return passed_if(ok, observed, expected, evidence)


@check(
    "security.headers.hsts",
    title="HSTS header with a long enough max-age",
    seed=["5.1 HSTS Header"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def hsts(target: WebTarget, ctx: RunContext) -> Observation:
    """Strict-Transport-Security is present on base_url and its max-age >= hsts_min_max_age.
    Any server's spelling: max-age quoted or not, directives in any order, case and spacing; of several headers the
    first one counts (RFC 6797 8.1)."""
    url = str(target.base_url)
    with http_client(ctx, target.ca_file) as c:
        r = c.get(url, timeout=req_timeout(ctx))
    value = r.headers.get("strict-transport-security")
    evidence = (
        f"GET {url}, header Strict-Transport-Security; re-run: "
        f"`{_curl(target)} -D - -o /dev/null {url} | grep -i strict-transport`"
    )
    expected = f"max-age >= {target.hsts_min_max_age}"
    if value is None:
        return failed("header absent", expected, evidence)
    m = _re.search(r"max-age\s*=\s*\"?(\d+)", value, _re.I)
    if not m:
        return failed(f"no max-age in {value!r}", expected, evidence)
    return compare(
        int(m.group(1)),
        ">=",
        target.hsts_min_max_age,
        evidence=evidence,
        unit="s",
        header=value,
        include_subdomains="includesubdomains" in value.lower(),
    )


@check(
    "security.api.auth_required",
    title="Protected API refuses anonymous calls and accepts valid ones",
    seed=["5.1 API Authentication"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def auth_required(target: WebTarget, ctx: RunContext) -> Observation:
    """protected_path answers 401 without credentials and 200 with a token from `auth` (when configured)."""
    url = url_of(target, target.protected_path)
    with http_client(ctx, target.ca_file) as c:
        anon = c.get(url, timeout=req_timeout(ctx)).status_code
        observed: dict[str, Any] = {"without credentials": anon}
        expected: dict[str, Any] = {"without credentials": 401}
        evidence = f"GET {url} without credentials"
        ok = anon == 401
        if target.auth is not None:
            expected["with credentials"] = 200
            evidence += "; then " + _login_evidence(target)
            status, token, what = login(target, ctx)
            if token is None:
                observed["with credentials"] = what
                ok = False
            else:
                authed = c.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx))
                observed["with credentials"] = authed.status_code
                ok = ok and authed.status_code == 200
        else:
            evidence += " (no `web.auth` configured: the authenticated half was not measured)"
    return passed_if(ok, observed, expected, evidence)


@check(
    "security.cors.origins",
    title="CORS allows only approved origins",
    seed=["5.1 CORS Configuration"],
    depends_on=[REACHABLE],
    timeout=10,
    target="web",
)
def cors_origins(target: WebTarget, ctx: RunContext) -> Observation:
    """A preflight from an unapproved origin gets no Access-Control-Allow-Origin (and never `*`);
    each approved origin is allowed."""
    url = url_of(target, target.protected_path)

    def preflight(c: Any, origin: str) -> tuple[int, str | None]:
        r = c.options(
            url,
            timeout=req_timeout(ctx),
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        return r.status_code, r.headers.get("access-control-allow-origin")

    observed: dict[str, str] = {}
    bad = []
    with http_client(ctx, target.ca_file) as c:
        status, acao = preflight(c, target.unapproved_origin)
        observed[target.unapproved_origin] = f"{status}, Access-Control-Allow-Origin: {acao or '(none)'}"
        if acao in ("*", target.unapproved_origin):
            bad.append(target.unapproved_origin)
        for origin in target.approved_origins:
            status, acao = preflight(c, origin)
            observed[origin] = f"{status}, Access-Control-Allow-Origin: {acao or '(none)'}"
            if status >= 400 or acao not in (origin, "*"):
                bad.append(origin)
    expected = {
        target.unapproved_origin: "no Access-Control-Allow-Origin (not *, not echoed)",
        **{o: f"allowed (Access-Control-Allow-Origin: {o})" for o in target.approved_origins},
    }
    evidence = (
        f"preflight OPTIONS {url} with Origin and Access-Control-Request-Method: GET; re-run: "
        f"`{_curl(target)} -o /dev/null -D - -X OPTIONS -H 'Origin: {target.unapproved_origin}' "
        f"-H 'Access-Control-Request-Method: GET' {url}`"
    )
    if not target.approved_origins:
        evidence += " (no approved_origins configured: only the refusal was measured)"
    return failed_if(bad, observed, expected, evidence, failing=bad)


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    return sorted_ms[max(0, _ceil(q * len(sorted_ms)) - 1)]


@check(
    "performance.api.latency_p95",
    title="API p95 latency (small bounded probe)",
    seed=["6.1 Response Times"],
    severity="advisory",
    depends_on=[REACHABLE],
    timeout=30,
    target="web",
    timing=True,
)
def latency_p95(target: WebTarget, ctx: RunContext) -> Observation:
    """`probe_requests` sequential GETs of health_path on one keep-alive connection (after one warm-up
    request that opens it): p95 < p95_max_ms. A probe, not a load test."""
    url = url_of(target, target.health_path)
    samples: list[float] = []
    statuses: dict[int, int] = {}
    streams: set[int] = set()
    with http_client(ctx, target.ca_file) as c:
        c.get(url, timeout=req_timeout(ctx))  # warm-up: TCP + TLS, not counted
        for _ in range(target.probe_requests):
            t0 = _time.perf_counter()
            r = c.get(url, timeout=req_timeout(ctx))
            samples.append((_time.perf_counter() - t0) * 1000)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            stream = r.extensions.get("network_stream")
            if stream is not None:
                streams.add(id(stream))
    s = sorted(samples)
    stats = {
        "p50_ms": round(_statistics.median(s), 2),
        "p95_ms": round(_percentile(s, 0.95), 2),
        "max_ms": round(s[-1], 2),
        "requests": len(s),
    }
    evidence = (
        f"{len(s)} sequential GET {url} on one keep-alive connection after a warm-up request "
        f"(nearest-rank p95); statuses {statuses}; connections used: {len(streams) or 'unknown'}"
    )
    non200 = sum(n for code, n in statuses.items() if code != 200)
    if non200:
        return failed(
            {**stats, "non_200": non200},
            f"all 200 and p95 < {target.p95_max_ms:g} ms",
            evidence,
            samples_ms=[round(x, 2) for x in samples],
        )
    obs = compare(
        stats["p95_ms"],
        "<",
        target.p95_max_ms,
        unit="ms",
        evidence=evidence,
        samples_ms=[round(x, 2) for x in samples],
        **stats,
    )
    obs.observed = f"p95 {stats['p95_ms']} ms (p50 {stats['p50_ms']} ms, max {stats['max_ms']} ms)"
    return obs


# --------------------------------------------------------------------------- TLS of the same endpoint


def web_endpoint(target: WebTarget) -> tuple[str, int]:
    u = urlsplit(str(target.base_url))
    return u.hostname or "", u.port or 443


def web_tls(target: WebTarget, ctx: RunContext) -> TlsProbe:
    """The one TLS handshake of the web endpoint for this run (memoized)."""
    host, port = web_endpoint(target)
    return ctx.memo(
        ("tls", host, port, str(target.ca_file or "")), lambda: probe_tls(host, port, ca_file=target.ca_file, ctx=ctx)
    )


def _openssl(target: WebTarget) -> str:
    host, port = web_endpoint(target)
    cmd = f"openssl s_client -connect {host}:{port}"
    if not is_ip(host):
        cmd += f" -servername {host}"
    cmd += " -verify_return_error"
    if target.ca_file:
        cmd += f" -CAfile {shlex.quote(str(target.ca_file))}"
    return cmd + " </dev/null"


@check(
    "infrastructure.tls.chain",
    title="TLS certificate chain and hostname verify",
    seed=["1.1 Frontend Server(s): SSL/TLS Certificate", "5.1 SSL/TLS Configuration"],
    timeout=10,
    target="web",
)
def tls_chain(target: WebTarget, ctx: RunContext):
    """The HTTPS endpoint's chain verifies against the system store + `ca_file` and matches the host name."""
    p = web_tls(target, ctx)
    info = p.describe()
    observed = {
        "subject": info["subject"],
        "issuer": info["issuer"],
        "sans": info["sans"],
        "protocol": p.protocol,
        "verified": p.verified,
    }
    expected = (
        "chain verifies against the system store"
        + (" + ca_file" if target.ca_file else "")
        + f"; certificate matches {p.server_name}"
    )
    evidence = f"TLS handshake to {p.host}:{p.port} (SNI {p.server_name}), like `{_openssl(target)}`"
    if not p.verified:
        observed["verify_error"] = p.verify_error
        return failed(observed, expected, evidence, cipher=p.cipher, not_after=info["not_after"])
    return passed(observed, expected, evidence, cipher=p.cipher, not_after=info["not_after"])


@check(
    "infrastructure.tls.expiry",
    title="TLS certificate has enough days left",
    seed=["1.1 Frontend Server(s): SSL/TLS Certificate", "5.1 SSL/TLS Configuration"],
    timeout=10,
    target="web",
)
def tls_expiry(target: WebTarget, ctx: RunContext):
    """Days until the leaf certificate's notAfter >= `min_cert_days` (read even when the chain does not verify)."""
    p = web_tls(target, ctx)
    c = p.cert
    not_after = c.not_valid_after_utc
    days = (not_after - datetime.now(UTC)).total_seconds() / 86400
    evidence = (
        f"leaf certificate of {p.host}:{p.port} parsed with cryptography: notAfter {not_after.isoformat()}; "
        f"re-run: `{_openssl(target)} | openssl x509 -noout -enddate`"
    )
    obs = compare(
        round(days, 1),
        ">=",
        target.min_cert_days,
        unit="days",
        evidence=evidence,
        not_after=not_after.isoformat(),
        subject=c.subject.rfc4514_string(),
        chain_verified=p.verified,
    )
    return obs
