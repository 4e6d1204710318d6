"""Security verification (checklist 5.1-5.3): session cookies, password hashes and sensitive columns in the database,
TLS in transit, secrets in the app's git repository, the admin panel and 2FA, the database port's exposure, rate
limiting (opt-in: it sends load), the audit log. Supply-chain checks (5.4) live in tasks/supplychain.py.

Nothing here prints a secret: cookie values, tokens, password hashes and matched secret strings are compared or
classified, and only their kind, a row id or a file:line is reported.
"""
from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import math
import re
import socket
import subprocess
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from .clients.http import http_client, req_timeout
from .core import Observation, RunContext, check, failed, not_applicable, passed
from .models import Target
from .postgres import REACHABLE as PG_REACHABLE
from .postgres import PostgresTarget, _ident, connect, dsn_for_evidence, psql
from .supplychain import DependencyAudit
from .web import REACHABLE, WebTarget, _curl, _login_evidence, login, url_of

FORBIDDEN_FILES = [".env", ".env.production", ".env.prod", ".env.*.local", "*.pem", "*.key", "id_rsa", "id_ed25519",
                   "*.p12", "*.pfx", ".pgpass", ".netrc", "credentials.json"]
ALLOWED_FILES = [".env.example", ".env.sample", ".env.template"]

#: (rule, regex): a small, high-signal set (gitleaks-style); matches are reported as file:line + rule, never the text
SECRET_RULES: list[tuple[str, str]] = [
    ("aws-access-key-id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("aws-secret-access-key", r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=_-]{30,}"),
    ("private-key", r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    ("slack-token", r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    ("github-token", r"\bgh[pousr]_[0-9A-Za-z]{36,}\b"),
    ("stripe-live-key", r"\b[sr]k_live_[0-9A-Za-z]{20,}\b"),
    ("url-with-password", r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:[^\s@/'\"$<{]{6,}@[^\s'\"]+"),
    ("generic-secret-assignment",
     r"(?i)\b(?:secret|password|passwd|api[_-]?key|access[_-]?token|auth[_-]?token|secret[_-]?key)\b\s*[:=]\s*"
     r"['\"][^'\"\s$<{]{12,}['\"]"),
]


class SecurityTarget(Target):
    # 5.1 sessions
    session_cookie: str | None = Field(None, description="the session cookie's name (None: every cookie the login "
                                       "sets)")
    max_session_hours: float = Field(24.0, gt=0, description="seed 5.1: sessions expire after 24 hours")
    samesite: list[str] = Field(default_factory=lambda: ["lax", "strict"],
                                description="accepted SameSite values (None is refused)")
    # 5.2 data
    users_table: str = Field("users", description="seed 5.2: the table holding password hashes")
    password_column: str = "password_hash"
    id_column: str = Field("id", description="the primary key reported for offending rows (users and sensitive "
                           "columns' tables)")
    hash_schemes: list[str] = Field(default_factory=lambda: ["bcrypt", "argon2"],
                                    description="accepted password hash schemes (bcrypt, argon2, scrypt, pbkdf2)")
    min_bcrypt_cost: int = Field(10, ge=4, le=31)
    sensitive_columns: list[str] = Field(default_factory=list, description="seed 5.2: table.column values that "
                                         "must be stored encrypted (ciphertext), never plaintext")
    ciphertext_pattern: str | None = Field(None, description="a regex every encrypted value matches (e.g. the "
                                           "envelope prefix); otherwise a base64/hex + entropy heuristic")
    sample_rows: int = Field(1000, ge=1, le=100000, description="rows sampled per sensitive column")
    # 5.2 secrets
    app_repo: Path | None = Field(None, description="seed 5.2: the app's git work tree: tracked files are scanned")
    forbidden_files: list[str] = Field(default_factory=lambda: list(FORBIDDEN_FILES),
                                       description="tracked file names (globs) that must not be in git")
    allowed_files: list[str] = Field(default_factory=lambda: list(ALLOWED_FILES))
    max_scan_bytes: int = Field(1_000_000, gt=0, description="tracked files larger than this are not scanned")
    # 5.3 access control
    admin_paths: list[str] = Field(default_factory=lambda: ["/admin", "/api/admin/users"],
                                   description="seed 5.3: the admin panel; anonymous requests must be refused")
    web_user_is_admin: bool = Field(False, description="false: the `web.auth` user is not an admin and must get 403")
    mfa_column: str | None = Field("totp_enabled", description="seed 5.3: boolean column: 2FA enabled")
    role_column: str = "role"
    admin_roles: list[str] = Field(default_factory=lambda: ["admin"])
    must_refuse: list[str] = Field(default_factory=list, description="seed 5.3: host:port that must refuse TCP "
                                   "(the database port from where it must not be reachable)")
    rate_limit_probe: bool = Field(False, description="seed 5.3: send up to rate_limit_per_minute + margin requests "
                                   "with a fresh session until a 429 (opt-in: it sends load)")
    rate_limit_per_minute: int = Field(600, ge=1, le=5000, description="seed 5.3: 600 requests/minute per key")
    rate_limit_path: str | None = Field(None, description="default: web.protected_path")
    audit_table: str | None = Field(None, description="seed 5.3: the audit log table")
    audit_time_column: str = "occurred_at"
    audit_max_silence_hours: float = Field(24.0, gt=0, description="the newest entry is at most this old")
    audit_retention_days: int = Field(90, ge=1, description="seed 5.3: 90 days of logs kept")
    # 5.4
    dependencies: DependencyAudit | None = None

    @field_validator("sensitive_columns")
    @classmethod
    def _cols(cls, v: list[str]) -> list[str]:
        for c in v:
            if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*){1,2}", c):
                raise ValueError(f"{c!r}: expected table.column (or schema.table.column)")
        return v

    @field_validator("must_refuse")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        for hp in v:
            host, _, port = hp.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{hp!r}: expected host:port")
        return v

    @field_validator("ciphertext_pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


def _web(ctx: RunContext) -> WebTarget | None:
    return getattr(ctx.config, "web", None)


def _pg(ctx: RunContext) -> PostgresTarget | None:
    return getattr(ctx.config, "postgres", None)


def _fp(value: str) -> str:
    """A short fingerprint to tell two secrets apart without showing either."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- 5.1 sessions

def _parse_cookie(header: str) -> dict[str, Any]:
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs: dict[str, Any] = {"name": name.strip(), "value": value}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return attrs


@check("security.session.cookies", title="Session cookies are Secure, HttpOnly, SameSite, short-lived and rotated",
       seed=["5.1 Session Management"], depends_on=[REACHABLE], timeout=15, target="security")
def session_cookies(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Log in twice: the session cookie of each login has Secure, HttpOnly and SameSite (Lax/Strict), expires
    (Max-Age or Expires) within max_session_hours, and the second login sets a different value (rotated on login).
    Cookie values are compared by fingerprint, never shown."""
    web = _web(ctx)
    if web is None or web.auth is None:
        return not_applicable("no `web.auth` configured: sessions need a login")
    auth = web.auth
    cookies: list[dict[str, Any]] = []
    statuses = []
    with http_client(ctx, web.ca_file) as c:
        for _ in range(2):
            r = c.post(url_of(web, auth.login_path), timeout=req_timeout(ctx),
                       json={"username": auth.username, "password": auth.password.get_secret_value()})
            statuses.append(r.status_code)
            found = [_parse_cookie(h) for h in r.headers.get_list("set-cookie")]
            if t.session_cookie:
                found = [f for f in found if f["name"] == t.session_cookie]
            cookies.append(found[0] if found else {})
            c.cookies.clear()
    evidence = (_login_evidence(web).split("->")[0] + "twice; Set-Cookie attributes parsed; values compared by "
                f"SHA-256 fingerprint; re-run: `{_curl(web)} -D - -o /dev/null -X POST -H 'Content-Type: "
                f"application/json' -d @login.json {url_of(web, auth.login_path)} | grep -i set-cookie`")
    expected = {"flags": f"Secure, HttpOnly, SameSite in {t.samesite}",
                "lifetime_h": f"<= {t.max_session_hours:g}", "rotated_on_login": True}
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
    rotated = _fp(cookies[0]["value"]) != _fp(cookies[1]["value"])
    if not rotated:
        problems.append("same value on the second login (not rotated)")
    observed = {"cookie": ck["name"], "secure": ck.get("secure") is True, "httponly": ck.get("httponly") is True,
                "samesite": samesite, "lifetime_h": round(lifetime_h, 2) if lifetime_h is not None else None,
                "rotated_on_login": rotated, "problems": problems}
    return (failed if problems else passed)(observed, expected, evidence)


# --------------------------------------------------------------------------- 5.2 data

_BCRYPT = re.compile(r"^\$2[abxy]?\$(\d{2})\$[./A-Za-z0-9]{53}$")
_ARGON2 = re.compile(r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$")
_SCRYPT = re.compile(r"^(\$scrypt\$|\$7\$|scrypt:)")
_PBKDF2 = re.compile(r"^(pbkdf2[_:$-]|\$pbkdf2)")


def classify_hash(value: str | None) -> str:
    """bcrypt / argon2 / scrypt / pbkdf2 / md5 / sha1 / sha256 / empty / plaintext: the scheme only, never the value."""
    if value is None or value == "":
        return "empty"
    if _BCRYPT.match(value):
        return "bcrypt"
    if _ARGON2.match(value):
        return "argon2"
    if _SCRYPT.match(value):
        return "scrypt"
    if _PBKDF2.match(value):
        return "pbkdf2"
    if re.fullmatch(r"(\{MD5\})?[0-9a-fA-F]{32}", value) or value.startswith("$1$"):
        return "md5"
    if re.fullmatch(r"(\{SHA\})?[0-9a-fA-F]{40}", value):
        return "sha1"
    if re.fullmatch(r"[0-9a-fA-F]{64}", value) or value.startswith(("$5$", "$6$")):
        return "sha2-unsalted-or-crypt"
    return "plaintext-or-unknown"


#: the same classification as classify_hash, run by PostgreSQL itself: hash values never leave the database
HASH_SCHEME_SQL = r"""CASE
    WHEN {c} IS NULL OR {c} = '' THEN 'empty'
    WHEN {c} ~ '^\$2[abxy]?\$[0-9]{{2}}\$[./A-Za-z0-9]{{53}}$' THEN 'bcrypt'
    WHEN {c} ~ '^\$argon2(id|i|d)\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]{{11,}}\$[A-Za-z0-9+/]{{16,}}$'
        THEN 'argon2'
    WHEN {c} ~ '^(\$scrypt\$|\$7\$|scrypt:)' THEN 'scrypt'
    WHEN {c} ~ '^(pbkdf2[_:$-]|\$pbkdf2)' THEN 'pbkdf2'
    WHEN {c} ~ '^(\{{MD5\}})?[0-9a-fA-F]{{32}}$' OR left({c}, 3) = '$1$' THEN 'md5'
    WHEN {c} ~ '^(\{{SHA\}})?[0-9a-fA-F]{{40}}$' THEN 'sha1'
    WHEN {c} ~ '^[0-9a-fA-F]{{64}}$' OR left({c}, 3) IN ('$5$', '$6$') THEN 'sha2-unsalted-or-crypt'
    ELSE 'plaintext-or-unknown' END"""


def hash_census_sql(table: str, column: str, id_column: str) -> Any:
    """scheme, bcrypt cost, rows, first 10 ids: grouped in the database."""
    from psycopg import sql

    c = sql.Identifier(column)
    scheme = sql.SQL(HASH_SCHEME_SQL).format(c=c)
    return sql.SQL("SELECT scheme, cost, count(*), (array_agg(id ORDER BY id))[1:10] FROM (SELECT {i} AS id, {s} "
                   "AS scheme, substring({c} FROM '^\\$2[abxy]?\\$([0-9]{{2}})\\$')::int AS cost FROM {t}) x "
                   "GROUP BY scheme, cost ORDER BY scheme, cost").format(
        i=sql.Identifier(id_column), s=scheme, c=c, t=_ident(table))


@check("security.passwords.hashing", title="Passwords are stored as bcrypt/argon2 hashes",
       seed=["5.2 Password Hashing"], depends_on=[PG_REACHABLE], timeout=15, target="security")
def password_hashing(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Every value of users_table.password_column is a hash of an accepted scheme (bcrypt with cost >=
    min_bcrypt_cost and its 22-character salt, or argon2); never plaintext, MD5 or SHA1. Classified and counted by
    PostgreSQL itself (regular expressions, GROUP BY): only schemes, counts and row ids leave the database."""
    pg = _pg(ctx)
    if pg is None:
        return not_applicable("no `postgres` section")
    q = hash_census_sql(t.users_table, t.password_column, t.id_column)
    with connect(pg, ctx, read_only=True) as conn:
        rows = conn.execute(q).fetchall()
    counts: dict[str, int] = {}
    bad_ids: dict[str, list[Any]] = {}
    for scheme, cost, n, ids in rows:
        counts[scheme] = counts.get(scheme, 0) + n
        if scheme not in t.hash_schemes:
            bad_ids.setdefault(scheme, []).extend(ids)
        elif scheme == "bcrypt" and cost is not None and cost < t.min_bcrypt_cost:
            bad_ids.setdefault(f"bcrypt cost < {t.min_bcrypt_cost}", []).extend(ids)
    total = sum(counts.values())
    text = (f"SELECT left({t.password_column}, 7) AS prefix, count(*) FROM {t.users_table} GROUP BY 1 "
            "ORDER BY 2 DESC")
    evidence = (f"every row of {t.users_table}.{t.password_column} on {dsn_for_evidence(pg)} classified by format in "
                f"SQL (bcrypt $2b$NN$ + 53 chars, $argon2id$..., 32/40 hex = MD5/SHA1, else plaintext); no value leaves "
                f"the database; a quick look by hand: `{psql(pg, text)}`")
    observed = {"rows": total, "schemes": counts, "offending_ids": {k: v[:10] for k, v in bad_ids.items()}}
    expected = {"schemes": f"only {t.hash_schemes}", "bcrypt_cost": f">= {t.min_bcrypt_cost}"}
    ok = total > 0 and not bad_ids
    return (passed if ok else failed)(observed, expected, evidence)


def _entropy(data: bytes) -> float:
    if not data:
        return 0.0
    counts: dict[int, int] = {}
    for b in data:
        counts[b] = counts.get(b, 0) + 1
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values())


def looks_encrypted(value: Any, pattern: re.Pattern | None) -> tuple[bool, str]:
    """(ciphertext?, why) for one stored value."""
    import base64
    import binascii

    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return (len(raw) >= 16 and _entropy(raw) >= 3.5), "bytes"
    s = str(value)
    if pattern is not None:
        return bool(pattern.search(s)), "pattern"
    body = s.split(":", 2)[-1] if re.match(r"^[A-Za-z0-9_-]{1,16}:", s) else s  # an envelope prefix like v1:
    if re.fullmatch(r"[A-Z2-7]{16,}=*", body):
        return False, "base32 (a plaintext TOTP secret)"
    if "@" in body or re.fullmatch(r"[\w .,'-]{1,60}", body) and " " in body:
        return False, "readable text"
    for decode in (lambda b: base64.b64decode(b, validate=True), binascii.unhexlify,
                   lambda b: base64.urlsafe_b64decode(b + "=" * (-len(b) % 4))):
        try:
            raw = decode(body)
        except (binascii.Error, ValueError):
            continue
        if len(raw) >= 16 and _entropy(raw) >= 3.5:
            return True, "base64/hex, high entropy"
    return False, "not base64/hex ciphertext"


@check("security.data.sensitive_columns", title="Sensitive columns hold ciphertext, not plaintext",
       seed=["5.2 Encryption at Rest", "5.2 Password Hashing"], depends_on=[PG_REACHABLE], timeout=15,
       target="security")
def sensitive_columns(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Up to sample_rows non-NULL values of each sensitive column: each matches ciphertext_pattern, or (without one)
    is base64/hex of >= 16 bytes with >= 3.5 bits/byte of entropy, and is not a readable or base32 (TOTP) string.
    Values are never shown: only counts and the row ids of plaintext-looking values."""
    from psycopg import sql

    pg = _pg(ctx)
    if pg is None:
        return not_applicable("no `postgres` section")
    if not t.sensitive_columns:
        return not_applicable("no `security.sensitive_columns` configured")
    pattern = re.compile(t.ciphertext_pattern) if t.ciphertext_pattern else None
    observed: dict[str, Any] = {}
    bad = []
    with connect(pg, ctx, read_only=True) as conn:
        for spec in t.sensitive_columns:
            table, col = spec.rsplit(".", 1)
            rows = conn.execute(sql.SQL("SELECT {i}, {c} FROM {t} WHERE {c} IS NOT NULL LIMIT %s").format(
                i=sql.Identifier(t.id_column), c=sql.Identifier(col), t=_ident(table)), [t.sample_rows]).fetchall()
            plain = [(rid, why) for rid, v in rows for ok, why in [looks_encrypted(v, pattern)] if not ok]
            observed[spec] = {"sampled": len(rows), "plaintext_looking": len(plain),
                              "ids": [rid for rid, _ in plain[:10]],
                              "why": sorted({why for _, why in plain})}
            if plain or not rows:
                bad.append(spec)
                if not rows:
                    observed[spec]["note"] = "no non-NULL value to judge"
    method = f"match {t.ciphertext_pattern!r}" if pattern else "base64/hex of >= 16 bytes, entropy >= 3.5 bits/byte"
    evidence = (f"up to {t.sample_rows} non-NULL values per column on {dsn_for_evidence(pg)}, each judged: {method}; "
                "values never shown")
    return (failed if bad else passed)(observed, {c: "every sampled value ciphertext" for c in t.sensitive_columns},
                                       evidence)


def _loopback(host: str) -> bool:
    if host in ("localhost", "") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@check("security.transit.tls", title="Connections are encrypted in transit (API, and PostgreSQL/Redis when remote)",
       seed=["5.2 Encryption in Transit"], depends_on=[REACHABLE, PG_REACHABLE], timeout=15, target="security")
def transit_tls(t: SecurityTarget, ctx: RunContext) -> Observation:
    """The API answers over TLS >= 1.2 (one HTTPS request, the negotiated version read from the connection);
    PostgreSQL and Redis, when remote (not loopback), are reached with TLS: PostgreSQL sslmode require/verify-* and
    the connection's ssl_in_use, Redis a rediss:// URL. On loopback their part is not applicable (and says so)."""
    web = _web(ctx)
    observed: dict[str, Any] = {}
    bad = []
    evidence = []
    if web is not None:
        with http_client(ctx, web.ca_file) as c:
            with c.stream("GET", str(web.base_url), timeout=req_timeout(ctx)) as r:
                ssl_obj = r.extensions["network_stream"].get_extra_info("ssl_object")
                version = ssl_obj.version() if ssl_obj is not None else None
        observed["api"] = version or "not TLS"
        if version not in ("TLSv1.2", "TLSv1.3"):
            bad.append("api")
        evidence.append(f"GET {web.base_url}: negotiated protocol read from the TLS connection")
    pg = _pg(ctx)
    if pg is not None:
        if _loopback(pg.host):
            observed["postgres"] = f"not applicable: {pg.host} is loopback (traffic never leaves the host)"
        else:
            with connect(pg, ctx) as conn:
                in_use = bool(conn.pgconn.ssl_in_use)
            observed["postgres"] = {"sslmode": pg.sslmode, "ssl_in_use": in_use}
            if not in_use or pg.sslmode not in ("require", "verify-ca", "verify-full"):
                bad.append("postgres")
            evidence.append(f"connected to {dsn_for_evidence(pg)}: pgconn.ssl_in_use")
    redis = getattr(ctx.config, "redis", None)
    if redis is not None:
        u = urlsplit(redis.url)
        if _loopback(u.hostname or ""):
            observed["redis"] = f"not applicable: {u.hostname} is loopback (traffic never leaves the host)"
        else:
            observed["redis"] = {"scheme": u.scheme}
            if u.scheme != "rediss":
                bad.append("redis")
            evidence.append(f"redis URL scheme of {u.hostname}:{u.port}")
    if not evidence:
        return not_applicable("nothing remote to measure: no `web`, and PostgreSQL/Redis are absent or on loopback")
    expected = {"api": "TLSv1.2 or TLSv1.3", "postgres": "TLS (sslmode require/verify-*, ssl_in_use) when remote",
                "redis": "rediss:// when remote"}
    return (failed if bad else passed)(observed, expected, "; ".join(evidence), failing=bad)


def _git(repo: Path, ctx: RunContext, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=max(1.0, ctx.remaining - 0.5),
                          env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})


@check("security.secrets.repository", title="No secret files or secret-looking strings tracked in the app's git",
       seed=["5.2 Secrets Management"], timeout=20, target="security")
def secrets_in_repo(t: SecurityTarget, ctx: RunContext) -> Observation:
    """`git ls-files` of app_repo: no tracked file matches forbidden_files (.env.production, keys, ...), and no
    tracked text file (<= max_scan_bytes) matches a secret rule (AWS keys, private keys, Slack/GitHub/Stripe tokens,
    URLs with a password, `password = '...'` assignments). Findings are file:line + rule; the text is never shown."""
    if t.app_repo is None:
        return not_applicable("no `security.app_repo` configured")
    repo = t.app_repo
    r = _git(repo, ctx, "ls-files", "-z")
    if r.returncode != 0:
        raise RuntimeError(f"git ls-files failed in {repo}: {ctx.redact.clip(r.stderr.decode(errors='replace'), 200)}")
    files = [f for f in r.stdout.decode(errors="replace").split("\0") if f]
    forbidden = [f for f in files
                 if any(fnmatch.fnmatch(Path(f).name, p) for p in t.forbidden_files)
                 and not any(fnmatch.fnmatch(Path(f).name, p) for p in t.allowed_files)]
    rules = [(name, re.compile(rx)) for name, rx in SECRET_RULES]
    findings: list[str] = []
    scanned = skipped = 0
    for f in files:
        path = repo / f
        try:
            if not path.is_file() or path.stat().st_size > t.max_scan_bytes:
                skipped += 1
                continue
            data = path.read_bytes()
        except OSError:
            skipped += 1
            continue
        if b"\0" in data[:8192]:
            skipped += 1  # binary
            continue
        scanned += 1
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            for name, rx in rules:
                if rx.search(line):
                    findings.append(f"{f}:{n} {name}")
    observed = {"tracked_files": len(files), "scanned": scanned, "skipped": skipped,
                "forbidden_files": forbidden, "secret_findings": findings[:30]}
    expected = {"forbidden_files": f"none of {t.forbidden_files}", "secret_findings": "none"}
    evidence = (f"`git -C {repo} ls-files`, then each tracked text file scanned with {len(rules)} rules "
                f"({', '.join(n for n, _ in SECRET_RULES)}); matches reported as file:line + rule, never the text")
    ok = not forbidden and not findings
    return (passed if ok else failed)(observed, expected, evidence, findings_total=len(findings))


# --------------------------------------------------------------------------- 5.3 access control

@check("security.admin.panel", title="The admin panel refuses anonymous and non-admin access",
       seed=["5.3 Admin Panel Access"], depends_on=[REACHABLE], timeout=10, target="security")
def admin_panel(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Each admin path answers 401/403 (or redirects to a login) without credentials; with the `web.auth` user, who is
    not an admin (web_user_is_admin false), 403."""
    web = _web(ctx)
    if web is None:
        return not_applicable("no `web` section")
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
            anon_ok = r.status_code in (401, 403) or (r.status_code in (301, 302, 303, 307, 308)
                                                      and "login" in loc.lower())
            entry = {"anonymous": r.status_code}
            if token is not None:
                r2 = c.get(url_of(web, p), headers={"Authorization": f"Bearer {token}"}, timeout=req_timeout(ctx))
                entry["non_admin"] = r2.status_code
                anon_ok = anon_ok and r2.status_code == 403
            observed[p] = entry
            if not anon_ok:
                bad.append(p)
    expected = {p: {"anonymous": "401/403 (or a redirect to login)",
                    **({"non_admin": 403} if token is not None or (web.auth and not t.web_user_is_admin) else {})}
                for p in t.admin_paths}
    evidence = ("GET " + ", ".join(url_of(web, p) for p in t.admin_paths) + " without credentials"
                + ("; then with the (non-admin) `web.auth` user's token: " + _login_evidence(web)
                   if web.auth is not None and not t.web_user_is_admin else "")
                + f"; re-run: `{_curl(web)} -o /dev/null -w '%{{http_code}}' {url_of(web, t.admin_paths[0])}`")
    return (failed if bad else passed)(observed, expected, evidence, failing=bad)


@check("security.admin.mfa", title="Every admin account has 2FA enabled",
       seed=["5.3 Admin Panel Access"], depends_on=[PG_REACHABLE], timeout=10, target="security")
def admin_mfa(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Active or not, every user whose role_column is in admin_roles has mfa_column true (ids of those without)."""
    from psycopg import sql

    pg = _pg(ctx)
    if pg is None:
        return not_applicable("no `postgres` section")
    if t.mfa_column is None:
        return not_applicable("no `security.mfa_column` configured")
    q = sql.SQL("SELECT {i}, coalesce({m}, false) FROM {t} WHERE {r} = ANY(%s) ORDER BY 1").format(
        i=sql.Identifier(t.id_column), m=sql.Identifier(t.mfa_column), t=_ident(t.users_table),
        r=sql.Identifier(t.role_column))
    with connect(pg, ctx, read_only=True) as conn:
        rows = conn.execute(q, [t.admin_roles]).fetchall()
    without = [rid for rid, on in rows if not on]
    text = (f"SELECT id FROM {t.users_table} WHERE {t.role_column} IN "
            f"({', '.join(repr(r) for r in t.admin_roles)}) AND NOT {t.mfa_column}")
    evidence = f"admins by {t.users_table}.{t.role_column} on {dsn_for_evidence(pg)}; re-run: `{psql(pg, text)}`"
    observed = {"admins": len(rows), "without_2fa": without}
    ok = bool(rows) and not without
    return (passed if ok else failed)(observed, {"admins": ">= 1", "without_2fa": "none"}, evidence)


@check("security.network.db_exposure", title="The database port is refused from where it must not be reachable",
       seed=["5.3 Database Access"], depends_on=[PG_REACHABLE], timeout=10, target="security")
def db_exposure(t: SecurityTarget, ctx: RunContext) -> Observation:
    """A TCP connect to each must_refuse host:port is refused or times out (nothing accepts it). It depends on the
    database being reachable where it should be: a refusal means something only while the database is up."""
    if not t.must_refuse:
        return not_applicable("no `security.must_refuse` configured")
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
    return (failed if bad else passed)(observed, {hp: "refused or filtered" for hp in t.must_refuse}, evidence,
                                       failing=bad)


@check("security.ratelimit.enforced", title="Rate limiting answers 429 past the limit (opt-in load)",
       seed=["5.3 API Rate Limiting"], depends_on=[REACHABLE], timeout=30, target="security", heavy=True)
def rate_limit(t: SecurityTarget, ctx: RunContext) -> Observation:
    """Opt-in (rate_limit_probe): with a fresh session of its own (its own limit bucket), GET rate_limit_path (default
    web.protected_path) sequentially until the first 429, at most rate_limit_per_minute + 10% + 10 requests. PASS
    when a 429 with Retry-After comes after no fewer than 90% of the limit's requests. Heavy: it starts once the light
    checks have landed, so its load never distorts another check."""
    web = _web(ctx)
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
        r = c.post(url_of(web, auth.login_path), timeout=req_timeout(ctx),
                   json={"username": auth.username, "password": auth.password.get_secret_value()})
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
    observed = {"first_429_at_request": first_429, "retry_after": retry_after, "requests": sum(statuses.values()),
                "statuses": statuses, "seconds": took}
    floor = int(t.rate_limit_per_minute * 0.9)
    expected = f"429 with Retry-After after between {floor} and {cap} requests (limit {t.rate_limit_per_minute}/min)"
    evidence = (f"fresh login, then sequential GET {url_of(web, path)} with its token until the first 429 "
                f"(at most {cap} requests, security.rate_limit_probe is on)")
    ok = first_429 is not None and first_429 > floor and retry_after is not None
    return (passed if ok else failed)(observed, expected, evidence)


@check("security.audit.log", title="The audit log has recent entries and 90 days of retention",
       seed=["5.3 Audit Logging"], depends_on=[PG_REACHABLE], timeout=10, target="security")
def audit_log(t: SecurityTarget, ctx: RunContext) -> Observation:
    """The newest entry of audit_table is at most audit_max_silence_hours old and the oldest at least
    audit_retention_days old (nothing younger than the retention was purged)."""
    from psycopg import sql

    pg = _pg(ctx)
    if pg is None:
        return not_applicable("no `postgres` section")
    if t.audit_table is None:
        return not_applicable("no `security.audit_table` configured")
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
    return (passed if ok else failed)(observed, expected, evidence)
