"""Seed 5.3: the admin panel and 2FA, the database port's exposure, rate limiting (opt-in: it sends load), the
audit log."""

from __future__ import annotations

import socket
import time
from typing import Any

from ..clients.http import http_client, req_timeout
from ..core import Observation, RunContext, check, failed, failed_if, not_applicable, passed_if
from ..postgres import REACHABLE as PG_REACHABLE
from ..postgres import PostgresTarget, _ident, connect, dsn_for_evidence, psql
from ..web import REACHABLE, WebTarget, _curl, _login_evidence, login, url_of
from .target import SecurityTarget

# --------------------------------------------------------------------------- 5.3 access control


@check(
    "security.admin.panel",
    title="The admin panel refuses anonymous and non-admin access",
    seed=["5.3 Admin Panel Access"],
    depends_on=[REACHABLE],
    timeout=10,
    target="security",
    needs=["web"],
)
def admin_panel(t: SecurityTarget, ctx: RunContext, *, web: WebTarget) -> Observation:
    """Each admin path answers 401/403 (or redirects to a login) without credentials; with the `web.auth` user, who is
    not an admin (web_user_is_admin false), 403."""
    observed: dict[str, Any] = {}
    bad = []
    token = None
    if web.auth is not None and not t.web_user_is_admin:
        _, token, what = login(web, ctx)
        if token is None:
            observed["login"] = what
            bad.append("login")
    with http_client(ctx, web.ca_file) as c:
        for p in t.admin_paths:
            r = c.get(url_of(web, p), timeout=req_timeout(ctx))
            loc = r.headers.get("location", "")
            anon_ok = r.status_code in (401, 403) or (
                r.status_code in (301, 302, 303, 307, 308) and "login" in loc.lower()
            )
            entry = {"anonymous": r.status_code}
            if token is not None:
                r2 = c.get(url_of(web, p), headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx))
                entry["non_admin"] = r2.status_code
                anon_ok = anon_ok and r2.status_code == 403
            observed[p] = entry
            if not anon_ok:
                bad.append(p)
    expected = {
        p: {
            "anonymous": "401/403 (or a redirect to login)",
            **({"non_admin": 403} if token is not None or (web.auth and not t.web_user_is_admin) else {}),
        }
        for p in t.admin_paths
    }
    evidence = (
        "GET "
        + ", ".join(url_of(web, p) for p in t.admin_paths)
        + " without credentials"
        + (
            "; then with the (non-admin) `web.auth` user's token: " + _login_evidence(web)
            if web.auth is not None and not t.web_user_is_admin
            else ""
        )
        + f"; re-run: `{_curl(web)} -o /dev/null -w '%{{http_code}}' {url_of(web, t.admin_paths[0])}`"
    )
    return failed_if(bad, observed, expected, evidence, failing=bad)


@check(
    "security.admin.mfa",
    title="Every admin account has 2FA enabled",
    seed=["5.3 Admin Panel Access"],
    depends_on=[PG_REACHABLE],
    timeout=10,
    target="security",
    needs=["postgres", "security.mfa_column"],
)
def admin_mfa(t: SecurityTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Active or not, every user whose role_column is in admin_roles has mfa_column true (ids of those without)."""
    from psycopg import sql

    pg = postgres
    q = sql.SQL("SELECT {i}, coalesce({m}, false) FROM {t} WHERE {r} = ANY(%s) ORDER BY 1").format(
        i=sql.Identifier(t.id_column),
        m=sql.Identifier(t.mfa_column),
        t=_ident(t.users_table),
        r=sql.Identifier(t.role_column),
    )
    with connect(pg, ctx, read_only=True) as conn:
        rows = conn.execute(q, [t.admin_roles]).fetchall()
    without = [rid for rid, on in rows if not on]
    text = (
        f"SELECT id FROM {t.users_table} WHERE {t.role_column} IN "
        f"({', '.join(repr(r) for r in t.admin_roles)}) AND NOT {t.mfa_column}"
    )
    evidence = f"admins by {t.users_table}.{t.role_column} on {dsn_for_evidence(pg)}; re-run: `{psql(pg, text)}`"
    observed = {"admins": len(rows), "without_2fa": without}
    ok = bool(rows) and not without
    return passed_if(ok, observed, {"admins": ">= 1", "without_2fa": "none"}, evidence)


@check(
    "security.network.db_exposure",
    title="The database port is refused from where it must not be reachable",
    seed=["5.3 Database Access"],
    depends_on=[PG_REACHABLE],
    timeout=10,
    target="security",
    needs=["security.must_refuse"],
)
def db_exposure(t: SecurityTarget, ctx: RunContext) -> Observation:
    """A TCP connect to each must_refuse host:port is refused or times out (nothing accepts it). It depends on the
    database being reachable where it should be: a refusal means something only while the database is up."""
    observed: dict[str, str] = {}
    bad = []
    per = max(0.2, min(2.0, (ctx.remaining - 0.5) / len(t.must_refuse)))
    for hp in t.must_refuse:
        host, _, port = hp.rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=per):
                observed[hp] = "ACCEPTED"
                bad.append(hp)
        except ConnectionRefusedError:
            observed[hp] = "refused"
        except TimeoutError:
            observed[hp] = f"no answer within {per:.1f} s (filtered)"
        except OSError as e:
            observed[hp] = f"unreachable ({e.strerror or e})"
    evidence = f"TCP connect from this host to each address ({per:.1f} s each); re-run: `nc -vz -w 2 HOST PORT`"
    return failed_if(bad, observed, {hp: "refused or filtered" for hp in t.must_refuse}, evidence, failing=bad)


@check(
    "security.ratelimit.enforced",
    title="Rate limiting answers 429 past the limit (opt-in load)",
    seed=["5.3 API Rate Limiting"],
    depends_on=[REACHABLE],
    timeout=30,
    target="security",
    heavy=True,
    slow=True,  # paced requests until a 429: seconds
    uses=["web"],
)
def rate_limit(t: SecurityTarget, ctx: RunContext, *, web: WebTarget | None) -> Observation:
    """Opt-in (rate_limit_probe): with a fresh session of its own (its own limit bucket), GET rate_limit_path (default
    web.protected_path) sequentially until the first 429, at most rate_limit_per_minute + 10% + 10 requests. PASS
    when a 429 with Retry-After comes after no fewer than 90% of the limit's requests. Heavy: it starts once the light
    checks have landed, so its load never distorts another check."""
    if not t.rate_limit_probe:
        return not_applicable("`security.rate_limit_probe` is off (the probe sends up to limit + 10% requests)")
    if web is None or web.auth is None:
        return not_applicable("no `web.auth` configured: the limit is per API key")
    auth = web.auth
    path = t.rate_limit_path or web.protected_path
    cap = t.rate_limit_per_minute + t.rate_limit_per_minute // 10 + 10
    first_429 = None
    retry_after = None
    statuses: dict[int, int] = {}
    t0 = time.monotonic()
    with http_client(ctx, web.ca_file) as c:
        r = c.post(
            url_of(web, auth.login_path),
            timeout=req_timeout(ctx),
            json={"username": auth.username, "password": auth.password.get_secret_value()},
        )
        token = r.json().get("token") if r.status_code == 200 else None
        if not token:
            return failed({"login": r.status_code}, "a fresh session", _login_evidence(web))
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(1, cap + 1):
            if ctx.remaining < 1.0:
                break
            resp = c.get(url_of(web, path), headers=headers, timeout=req_timeout(ctx))
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code == 429:
                first_429, retry_after = i, resp.headers.get("retry-after")
                break
    took = round(time.monotonic() - t0, 2)
    observed = {
        "first_429_at_request": first_429,
        "retry_after": retry_after,
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "seconds": took,
    }
    floor = int(t.rate_limit_per_minute * 0.9)
    expected = f"429 with Retry-After after between {floor} and {cap} requests (limit {t.rate_limit_per_minute}/min)"
    evidence = (
        f"fresh login, then sequential GET {url_of(web, path)} with its token until the first 429 "
        f"(at most {cap} requests, security.rate_limit_probe is on)"
    )
    ok = first_429 is not None and first_429 > floor and retry_after is not None
    return passed_if(ok, observed, expected, evidence)


@check(
    "security.audit.log",
    title="The audit log has recent entries and 90 days of retention",
    seed=["5.3 Audit Logging"],
    depends_on=[PG_REACHABLE],
    timeout=10,
    target="security",
    needs=["postgres", "security.audit_table"],
)
def audit_log(t: SecurityTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """The newest entry of audit_table is at most audit_max_silence_hours old and the oldest at least
    audit_retention_days old (nothing younger than the retention was purged)."""
    from psycopg import sql

    pg = postgres
    col = sql.Identifier(t.audit_time_column)
    q = sql.SQL("SELECT count(*), min({c}), max({c}), now() FROM {t}").format(c=col, t=_ident(t.audit_table))
    with connect(pg, ctx, read_only=True) as conn:
        n, oldest, newest, now = conn.execute(q).fetchone()
    text = f"SELECT count(*), min({t.audit_time_column}), max({t.audit_time_column}) FROM {t.audit_table}"
    evidence = f"{text} on {dsn_for_evidence(pg)}; re-run: `{psql(pg, text)}`"
    expected = {"newest_age_h": f"<= {t.audit_max_silence_hours:g}", "oldest_age_days": f">= {t.audit_retention_days}"}
    if not n:
        return failed({"entries": 0}, expected, evidence)
    newest_h = round((now - newest).total_seconds() / 3600, 2)
    oldest_d = round((now - oldest).total_seconds() / 86400, 1)
    observed = {"entries": n, "newest_age_h": newest_h, "oldest_age_days": oldest_d}
    ok = newest_h <= t.audit_max_silence_hours and oldest_d >= t.audit_retention_days
    return passed_if(ok, observed, expected, evidence)
