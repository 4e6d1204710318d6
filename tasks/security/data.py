"""Seed 5.2: password hashes and sensitive columns in the database, TLS in transit, secrets in the app's git
repository.

Nothing here prints a secret: cookie values, tokens, password hashes and matched secret strings are compared or
classified, and only their kind, a row id or a file:line is reported."""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..clients.http import http_client, req_timeout
from ..core import Observation, RunContext, check, failed_if, not_applicable, passed_if
from ..postgres import REACHABLE as PG_REACHABLE
from ..postgres import PostgresTarget, _ident, connect, dsn_for_evidence, psql
from ..web import REACHABLE, WebTarget
from .target import SECRET_RULES, SecurityTarget

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
    return sql.SQL(
        "SELECT scheme, cost, count(*), (array_agg(id ORDER BY id))[1:10] FROM (SELECT {i} AS id, {s} "
        "AS scheme, substring({c} FROM '^\\$2[abxy]?\\$([0-9]{{2}})\\$')::int AS cost FROM {t}) x "
        "GROUP BY scheme, cost ORDER BY scheme, cost"
    ).format(i=sql.Identifier(id_column), s=scheme, c=c, t=_ident(table))


@check(
    "security.passwords.hashing",
    title="Passwords are stored as bcrypt/argon2 hashes",
    seed=["5.2 Password Hashing"],
    depends_on=[PG_REACHABLE],
    timeout=15,
    target="security",
    needs=["postgres"],
)
def password_hashing(t: SecurityTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Every value of users_table.password_column is a hash of an accepted scheme (bcrypt with cost >=
    min_bcrypt_cost and its 22-character salt, or argon2); never plaintext, MD5 or SHA1. Classified and counted by
    PostgreSQL itself (regular expressions, GROUP BY): only schemes, counts and row ids leave the database."""
    pg = postgres
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
    text = f"SELECT left({t.password_column}, 7) AS prefix, count(*) FROM {t.users_table} GROUP BY 1 ORDER BY 2 DESC"
    evidence = (
        f"every row of {t.users_table}.{t.password_column} on {dsn_for_evidence(pg)} classified by format in "
        f"SQL (bcrypt $2b$NN$ + 53 chars, $argon2id$..., 32/40 hex = MD5/SHA1, else plaintext); no value leaves "
        f"the database; a quick look by hand: `{psql(pg, text)}`"
    )
    observed = {"rows": total, "schemes": counts, "offending_ids": {k: v[:10] for k, v in bad_ids.items()}}
    expected = {"schemes": f"only {t.hash_schemes}", "bcrypt_cost": f">= {t.min_bcrypt_cost}"}
    ok = total > 0 and not bad_ids
    return passed_if(ok, observed, expected, evidence)


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
    for decode in (
        lambda b: base64.b64decode(b, validate=True),
        binascii.unhexlify,
        lambda b: base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)),
    ):
        try:
            raw = decode(body)
        except (binascii.Error, ValueError):
            continue
        if len(raw) >= 16 and _entropy(raw) >= 3.5:
            return True, "base64/hex, high entropy"
    return False, "not base64/hex ciphertext"


@check(
    "security.data.sensitive_columns",
    title="Sensitive columns hold ciphertext, not plaintext",
    seed=["5.2 Encryption at Rest", "5.2 Password Hashing"],
    depends_on=[PG_REACHABLE],
    timeout=15,
    target="security",
    needs=["postgres", "security.sensitive_columns"],
)
def sensitive_columns(t: SecurityTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Up to sample_rows non-NULL values of each sensitive column: each matches ciphertext_pattern, or (without one)
    is base64/hex of >= 16 bytes with >= 3.5 bits/byte of entropy, and is not a readable or base32 (TOTP) string.
    Values are never shown: only counts and the row ids of plaintext-looking values."""
    from psycopg import sql

    pg = postgres
    pattern = re.compile(t.ciphertext_pattern) if t.ciphertext_pattern else None
    observed: dict[str, Any] = {}
    bad = []
    with connect(pg, ctx, read_only=True) as conn:
        for spec in t.sensitive_columns:
            table, col = spec.rsplit(".", 1)
            rows = conn.execute(
                sql.SQL("SELECT {i}, {c} FROM {t} WHERE {c} IS NOT NULL LIMIT %s").format(
                    i=sql.Identifier(t.id_column), c=sql.Identifier(col), t=_ident(table)
                ),
                [t.sample_rows],
            ).fetchall()
            plain = [(rid, why) for rid, v in rows for ok, why in [looks_encrypted(v, pattern)] if not ok]
            observed[spec] = {
                "sampled": len(rows),
                "plaintext_looking": len(plain),
                "ids": [rid for rid, _ in plain[:10]],
                "why": sorted({why for _, why in plain}),
            }
            if plain or not rows:
                bad.append(spec)
                if not rows:
                    observed[spec]["note"] = "no non-NULL value to judge"
    method = f"match {t.ciphertext_pattern!r}" if pattern else "base64/hex of >= 16 bytes, entropy >= 3.5 bits/byte"
    evidence = (
        f"up to {t.sample_rows} non-NULL values per column on {dsn_for_evidence(pg)}, each judged: {method}; "
        "values never shown"
    )
    return failed_if(bad, observed, {c: "every sampled value ciphertext" for c in t.sensitive_columns}, evidence)


def _loopback(host: str) -> bool:
    if host in ("localhost", "") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@check(
    "security.transit.tls",
    title="Connections are encrypted in transit (API, and PostgreSQL/Redis when remote)",
    seed=["5.2 Encryption in Transit"],
    depends_on=[REACHABLE, PG_REACHABLE],
    timeout=15,
    target="security",
    uses=["web", "postgres", "redis"],
)
def transit_tls(
    t: SecurityTarget, ctx: RunContext, *, web: WebTarget | None, postgres: PostgresTarget | None, redis: Any
) -> Observation:
    """The API answers over TLS >= 1.2 (one HTTPS request, the negotiated version read from the connection);
    PostgreSQL and Redis, when remote (not loopback), are reached with TLS: PostgreSQL sslmode require/verify-* and
    the connection's ssl_in_use, Redis a rediss:// URL. On loopback their part is not applicable (and says so)."""
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
    pg = postgres
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
    expected = {
        "api": "TLSv1.2 or TLSv1.3",
        "postgres": "TLS (sslmode require/verify-*, ssl_in_use) when remote",
        "redis": "rediss:// when remote",
    }
    return failed_if(bad, observed, expected, "; ".join(evidence), failing=bad)


def _git(repo: Path, ctx: RunContext, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        timeout=max(1.0, ctx.remaining - 0.5),
        env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )


@check(
    "security.secrets.repository",
    title="No secret files or secret-looking strings tracked in the app's git",
    seed=["5.2 Secrets Management"],
    timeout=20,
    target="security",
    needs=["security.app_repo"],
)
def secrets_in_repo(t: SecurityTarget, ctx: RunContext) -> Observation:
    """`git ls-files` of app_repo: no tracked file matches forbidden_files (.env.production, keys, ...), and no
    tracked text file (<= max_scan_bytes) matches a secret rule (AWS keys, private keys, Slack/GitHub/Stripe tokens,
    URLs with a password, `password = '...'` assignments). Findings are file:line + rule; the text is never shown."""
    repo = t.app_repo
    r = _git(repo, ctx, "ls-files", "-z")
    if r.returncode != 0:
        raise RuntimeError(f"git ls-files failed in {repo}: {ctx.redact.clip(r.stderr.decode(errors='replace'), 200)}")
    files = [f for f in r.stdout.decode(errors="replace").split("\0") if f]
    forbidden = [
        f
        for f in files
        if any(fnmatch.fnmatch(Path(f).name, p) for p in t.forbidden_files)
        and not any(fnmatch.fnmatch(Path(f).name, p) for p in t.allowed_files)
    ]
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
    observed = {
        "tracked_files": len(files),
        "scanned": scanned,
        "skipped": skipped,
        "forbidden_files": forbidden,
        "secret_findings": findings[:30],
    }
    expected = {"forbidden_files": f"none of {t.forbidden_files}", "secret_findings": "none"}
    evidence = (
        f"`git -C {repo} ls-files`, then each tracked text file scanned with {len(rules)} rules "
        f"({', '.join(n for n, _ in SECRET_RULES)}); matches reported as file:line + rule, never the text"
    )
    ok = not forbidden and not findings
    return passed_if(ok, observed, expected, evidence, findings_total=len(findings))
