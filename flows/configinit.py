"""`golive config init`: a commented starter config from the handful of URLs a team knows, and what they reveal.

Inputs are the site URL, the database DSN, the Redis URL, the S3 bucket, the Prometheus URL and the SMTP host. Each
server is asked what it can tell (bounded, read-only, failing soft): tables, migrations, the scheduler's job store,
the users / audit columns (only those that exist: a key is never left at a default naming a table or column the app
does not have), starter data suites (`expectations/scaffold.py`), Redis replicas, S3 prefixes and backup cadence,
Prometheus targets and alert rules, the site certificate. Every discovered value carries `# discovered, review`.
A private CA (`--ca-file`) is the trust anchor of every TLS target the inputs name (the database's when its DSN asks
to verify the server and names no sslrootcert of its own).

Passwords in DSNs / URLs are never written: they become `${GOLIVE_<SECTION>_PASSWORD}` references listed on top; every
message is redacted against them. A section whose server did not answer is written commented out with the reason,
so the file always validates. Thresholds the checklist sets (eviction policy, alert thresholds, backup cadence) stay
the checklist's: what was found differently is a comment, and `golive check` reports it as the gap it is.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from golive.tasks.core import Redactor, RunContext

if TYPE_CHECKING:
    from pydantic import BaseModel

_Model = TypeVar("_Model", bound="BaseModel")  # a check's target model

DISCOVERED = "# discovered, review"
FLAGS = {
    "web": "--site-url",
    "hosts": "--site-url",
    "postgres": "--database-dsn",
    "workers": "--database-dsn",
    "security": "--database-dsn",
    "redis": "--redis-url",
    "backups": "--s3-bucket",
    "monitoring": "--prometheus-url",
    "smtp": "--smtp-host",
    "environment": "--environment",
}
#: sections `init` never writes (nothing of them can be discovered from the inputs): listed at the end of the file
NOT_GENERATED = [
    "restore",
    "team",
    "app",
    "loadbalancer",
    "loadtest",
    "network",
    "pgbouncer",
    "indexes",
    "saas",
    "containers",
    "observability",
    "deploy",
    "approval",
]
_MFA = ("totp_enabled", "mfa_enabled", "two_factor_enabled", "otp_enabled", "mfa")
_PASSWORD = ("password_hash", "hashed_password", "encrypted_password", "password_digest", "password")
_AUDIT = ("audit_log", "audit_logs", "audit_events", "audit_trail")
_AUDIT_TIME = ("occurred_at", "created_at", "logged_at", "at", "timestamp")


class InitError(Exception):
    """Bad input: one line per problem, each naming the flag."""


@dataclass
class Inputs:
    environment: str
    site_url: str | None = None
    database_dsn: str | None = None
    redis_url: str | None = None
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_prefix: str | None = None
    prometheus_url: str | None = None
    smtp_host: str | None = None
    ca_file: str | None = None
    suites_dir: str | None = None
    discover: bool = True
    timeout_s: float = 10.0


@dataclass
class Section:
    key: str
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # comment lines written above the section
    found: set[str] = field(default_factory=set)  # keys whose value was discovered
    off: str | None = None  # why the section is written commented out


@dataclass
class Result:
    text: str
    env_vars: dict[str, str]  # name -> what it holds
    sections: list[Section]
    suites: list[Path] = field(default_factory=list)


def _secret_var(section: str) -> str:
    return f"GOLIVE_{section.upper()}_PASSWORD"


def input_secrets(inp: Inputs) -> list[str]:
    """The passwords inside the inputs (URL userinfo, a key=value DSN's password)."""
    found = [
        unquote(urlsplit(u).password or "")
        for u in (inp.redis_url, inp.prometheus_url, inp.database_dsn, inp.site_url)
        if u and "://" in u
    ]
    m = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", inp.database_dsn or "")
    if m:
        found.append(m.group(1).strip("'"))
    return [s for s in found if s]


def bounded(fn: Callable[[], Any], timeout: float) -> tuple[Any, str | None]:
    """(value, None) or (None, why): fn runs in a daemon thread, abandoned after `timeout` (like a check body)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - discovery fails soft: the reason is written instead
            box["error"] = e

    t = threading.Thread(target=run, name="config-init", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, f"no answer within {timeout:g} s"
    if "error" in box:
        e = box["error"]
        return None, " ".join(f"{type(e).__name__}: {e}".split())
    return box.get("value"), None


# --------------------------------------------------------------------------- discovery, one server each


def _pg_discover(pg: Any, timeout: float) -> dict[str, Any]:
    """Tables of the current schema with their columns and types (the catalog), which are empty (one row read at
    most, and only of the tables this user may read), the newest migration."""
    from psycopg import sql

    from golive.tasks.postgres import _ident, connect

    out: dict[str, Any] = {}
    with connect(pg, RunContext(timeout=timeout), read_only=True) as conn:
        cols: dict[str, dict[str, str]] = {}
        readable: set[str] = set()
        for table, col, typ, can in conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, NULL), has_table_privilege(c.oid, 'SELECT') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY c.relname, a.attnum"
        ).fetchall():
            cols.setdefault(table, {})[col] = typ
            if can:
                readable.add(table)
        out["columns"], out["unreadable"] = cols, sorted(set(cols) - readable)
        out["empty"] = [
            t
            for t in sorted(readable)
            if not conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_ident(t))).fetchone()[0]
        ]
        if "version" in cols.get("schema_migrations", {}) and "schema_migrations" in readable:
            row = conn.execute("SELECT version::text FROM schema_migrations ORDER BY version DESC LIMIT 1").fetchone()
            out["schema_version"] = row[0] if row else None
        elif "version_num" in cols.get("alembic_version", {}) and "alembic_version" in readable:
            row = conn.execute("SELECT version_num::text FROM alembic_version LIMIT 1").fetchone()
            out["schema_version"] = row[0] if row else None
    return out


def _cron_field(values: frozenset[int] | None, lo: int, hi: int) -> str | None:
    if values is None or not values:
        return None
    v = sorted(values)
    if v == list(range(lo, hi + 1)):
        return "*"
    step = v[1] - v[0] if len(v) > 1 else 0
    if len(v) > 2 and v[0] == lo and v == list(range(lo, hi + 1, step)):
        return f"*/{step}"
    return ",".join(map(str, v))


def _cadence_of(trigger: Any) -> tuple[str | None, str | None]:
    """(cadence as `workers.jobs` writes it, time zone) of a decoded APScheduler trigger: a 5-field cron, or
    `every <n><unit>` for an interval trigger; (None, why) for what neither can express."""
    from golive.tasks.workers import _tz_name, trigger_sets

    kind, sets, tz = trigger_sets(trigger)
    if kind == "IntervalTrigger":
        every: Any = trigger.state.get("interval") if isinstance(trigger.state, dict) else None
        secs = int(every.total_seconds()) if hasattr(every, "total_seconds") else 0
        if not 60 <= secs <= 31 * 86400:
            return None, f"an interval of {secs} s (workers.jobs takes 1 minute to 31 days)"
        n, unit = next(
            (secs // u, name) for u, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")) if secs % u == 0
        )
        return f"every {n}{unit}", None
    if kind != "CronTrigger":
        return None, f"a {kind}: write its cadence by hand"
    ranges = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("day_of_week", 0, 6))
    fields = [_cron_field(sets.get(name), lo, hi) if name in sets else "*" for name, lo, hi in ranges]
    if None in fields:
        return None, "a trigger field a 5-field cron cannot express"
    return " ".join(fields), _tz_name(tz)  # type: ignore[arg-type]


def _jobs_discover(pg: Any, table: str, heartbeat: str | None, timeout: float) -> dict[str, Any]:
    from golive.tasks.workers import WorkersTarget, jobstore

    wt = WorkersTarget(jobstore_table=table, heartbeat_table=heartbeat)
    store = jobstore(wt, pg, RunContext(timeout=timeout))
    jobs, skipped, zones = {}, {}, set()
    for job_id, entry in sorted(store["jobs"].items()):
        if "decode_error" in entry:
            skipped[job_id] = entry["decode_error"]
            continue
        cadence, tz_or_why = _cadence_of(entry["state"].get("trigger"))
        if cadence is None:
            skipped[job_id] = tz_or_why
        else:
            jobs[job_id] = cadence
            if not cadence.startswith("every"):  # an interval has no time zone of its own
                zones.add(tz_or_why or "UTC")
    return {"jobs": jobs, "skipped": skipped, "zones": sorted(zones)}


def _redis_discover(rt: Any, timeout: float) -> dict[str, Any]:
    from golive.tasks.redis import info

    i = info(rt.url, rt, RunContext(timeout=timeout))
    replicas = [
        f"redis://{v['ip']}:{v['port']}/0"
        for k, v in sorted(i.items())
        if re.fullmatch(r"slave\d+", k) and isinstance(v, dict) and "ip" in v
    ]
    return {
        "role": i.get("role"),
        "replicas": replicas,
        "policy": i.get("maxmemory_policy"),
        "maxmemory": i.get("maxmemory"),
        "aof": i.get("aof_enabled"),
    }


def _smtp_discover(host: str, port: int, timeout: float) -> dict[str, Any]:
    import smtplib

    with smtplib.SMTP(host, port, timeout=timeout) as s:
        s.ehlo("golive.config-init")
        return {
            "starttls": s.has_extn("starttls"),
            "auth": s.has_extn("auth"),
            "banner": " ".join(str(s.ehlo_resp or b"", "utf-8", "replace").split())[:80],
        }


def _s3_discover(bt: Any, timeout: float) -> dict[str, Any]:
    from golive.tasks.backups import files, listing, s3_client

    ctx = RunContext(timeout=timeout)
    wal_rx, conf_rx = r"wal|xlog|archive|incremental", r"config|conf|etc|settings"
    c = s3_client(bt, ctx)
    try:

        def sub(p: str) -> list[str]:
            return [
                x["Prefix"]
                for x in c.list_objects_v2(Bucket=bt.bucket, Prefix=p, Delimiter="/", MaxKeys=100).get(
                    "CommonPrefixes", []
                )
            ]

        top = sub("")
        prefixes: list[str] = []
        for p in top:
            # a folder grouping several kinds (`pg/<db>/` beside `pg/wal/`) stands for its children; one whose
            # children are dates or hosts of one kind (`backups/2026/`) is itself the prefix
            ch = sub(p) if len(top) <= 20 else []
            prefixes += ch if any(re.search(f"{wal_rx}|{conf_rx}", x[len(p) :], re.I) for x in ch) else [p]
    finally:
        c.close()
    out: dict[str, Any] = {"prefixes": prefixes}

    def pick(rx: str, but: tuple[str | None, ...] = ()) -> str | None:
        return next((p for p in prefixes if re.search(rx, p, re.I) and p not in but), None)

    out["wal_prefix"] = pick(wal_rx)
    out["config_prefix"] = pick(conf_rx)
    out["prefix"] = (
        bt.prefix
        if bt.prefix in prefixes
        else pick(r"backup|dump|pg|postgres|db", but=(out["wal_prefix"], out["config_prefix"]))
    )
    if out["prefix"]:
        objs = sorted(
            files(listing(bt.model_copy(update={"prefix": out["prefix"]}), out["prefix"], ctx)),
            key=lambda o: o["LastModified"],
        )
        times = [o["LastModified"] for o in objs]
        gaps = [(b - a).total_seconds() / 3600 for a, b in zip(times, times[1:])]
        out["backups"] = len(objs)
        out["median_gap_h"] = statistics.median(gaps) if gaps else None
        out["sizes"] = [o["Size"] for o in objs[-7:]]
    if out["config_prefix"]:
        names = set()
        for o in files(listing(bt, out["config_prefix"], ctx)):
            rel = o["Key"][len(out["config_prefix"]) :]
            names.add(rel.split("/")[0] if "/" in rel else re.split(r"[-_@]\d", rel)[0])
        out["config_files"] = sorted(names)
    return out


def _prom_discover(mon: Any, timeout: float) -> dict[str, Any]:
    from golive.tasks.clients.prometheus import api_get

    ctx = RunContext(timeout=timeout)
    targets = api_get(mon, ctx, "/api/v1/targets", state="active").get("activeTargets", [])
    rules = [
        r
        for g in api_get(mon, ctx, "/api/v1/rules", type="alert").get("groups", [])
        for r in g.get("rules", [])
        if r.get("type") == "alerting"
    ]
    by_job: dict[str, list[str]] = {}
    pool: dict[str, str] = {}  # base URL -> job, for jobs named like the app's backends
    for x in targets:
        labels = x.get("labels", {})
        job = labels.get("job") or x.get("scrapePool") or "?"
        by_job.setdefault(job, []).append(labels.get("instance", "?"))
        u = urlsplit(x.get("scrapeUrl") or "")
        if re.search(r"app|api|web|backend", job, re.I) and u.scheme in ("http", "https") and u.netloc:
            pool.setdefault(f"{u.scheme}://{u.netloc}", job)
    return {
        "jobs": by_job,
        "pool": sorted(pool),
        "pool_jobs": sorted(set(pool.values())),
        "rules": [{"name": r.get("name", ""), "query": r.get("query", "")} for r in rules],
    }


def _site_discover(base_url: str, ca_file: str | None, timeout: float) -> dict[str, Any]:
    from golive.tasks.clients.http import http_client
    from golive.tasks.clients.tls import probe_tls

    u = urlsplit(base_url)
    ctx = RunContext(timeout=timeout)
    tls = probe_tls(u.hostname or "", u.port or 443, ca_file=ca_file, ctx=ctx)
    out: dict[str, Any] = {"tls": tls.describe(), "verified": tls.verified, "verify_error": tls.verify_error}
    if tls.verified:
        with http_client(ctx, ca_file) as c:
            r = c.get(base_url, timeout=ctx.remaining)
        m = re.search(r"<title[^>]*>([^<]{1,200})</title>", r.text, re.I)
        out["title"] = " ".join(m.group(1).split()) if m else None
    return out


# --------------------------------------------------------------------------- building the sections


class _Init:
    """One run of `config init`: the inputs, the secrets found in them, the variables to export, the sections."""

    def __init__(self, inp: Inputs, out_dir: Path, log: Callable[[str], None]):
        self.inp, self.out_dir, self.log, self.t = inp, out_dir, log, inp.timeout_s
        self.env_vars: dict[str, str] = {}
        self.secrets: list[str] = []
        self.redact = Redactor()
        self.ca = str(Path(inp.ca_file).resolve()) if inp.ca_file else None
        self.pg: Any = None  # the PostgresTarget (the hosts section names its address)
        self.prom: dict[str, Any] | None = None  # Prometheus' answers (the backups section looks for its alert)

    def ask(self, name: str, fn: Callable[[], Any], timeout: float | None = None) -> tuple[Any, str | None]:
        """(answer, None), (None, why) when the server did not answer, (None, None) with --no-discover."""
        if not self.inp.discover:
            return None, None
        self.log(f"discovering {name} ...")
        value, why = bounded(fn, timeout or self.t)
        if why:
            why = one_line(self.redact.text(why))
            self.log(f"  {name}: {why}")
        return value, why

    def secret(self, section: str, value: str, what: str) -> str:
        """Remember a password found in the inputs; the `${VAR}` reference written instead."""
        self.secrets.append(value)
        self.redact = Redactor(self.secrets)
        var = _secret_var(section)
        self.env_vars[var] = what
        return f"${{{var}}}"

    def strip_url(self, url: str, section: str, keep_ref: bool = False) -> tuple[str, str | None]:
        """(URL without its password, or with a `${VAR}` in its place when keep_ref; the password)."""
        u = urlsplit(url)
        if u.password is None:
            return url, None
        pw = unquote(u.password)
        ref = self.secret(section, pw, f"the {section} password (it was in the URL given to `golive config init`)")
        user = f"{u.username}:{ref}@" if keep_ref else (f"{u.username}@" if u.username else "")
        host = u.hostname or ""
        netloc = user + (f"[{host}]" if ":" in host else host) + (f":{u.port}" if u.port else "")
        return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment)), pw

    def target(self, model: type[_Model], data: dict[str, Any], flag: str) -> _Model:
        """The check's own target model for discovery; a bad value is one line naming the flag (redacted)."""
        try:
            return model.model_validate(data)
        except Exception as e:  # noqa: BLE001 - pydantic's last line names the problem
            raise InitError(f"{flag}: {self.redact.text(str(e).splitlines()[-1].strip())}") from None

    # -- one method per input; each returns the sections it writes
    def web(self) -> list[Section]:
        if not self.inp.site_url:
            return [Section("web", {"base_url": "https://app.example.com"}, off="TODO: pass --site-url URL")]
        site = self.inp.site_url.rstrip("/")
        if urlsplit(site).scheme != "https":
            raise InitError(f"--site-url: must be an https:// URL, got {site!r}")
        s = Section("web", {"base_url": site, **({"ca_file": self.ca} if self.ca else {})})
        found, why = self.ask("the site's certificate and page", lambda: _site_discover(site, self.ca, self.t))
        if why:
            s.off = f"{site} could not be probed: {why}"
        elif found is not None:
            tls = found["tls"]
            s.notes.append(
                f"certificate (discovered, review): {', '.join(tls['sans']) or tls['subject']}; issuer "
                f"{tls['issuer']}; valid until {tls['not_after'][:10]}"
            )
            if not found["verified"]:
                s.notes.append(
                    f"the certificate does not verify ({found['verify_error']}): pass --ca-file if a "
                    "private CA signs it, else infrastructure.tls.chain reports it"
                )
            if found.get("title"):
                s.data["expected_title"] = found["title"]
                s.found.add("expected_title")
        s.notes.append(
            "auth: the login the critical endpoints need (web.auth: {login_path, username, password: "
            '"${GOLIVE_WEB_PASSWORD}"}); without it they are NOT_APPLICABLE'
        )
        return [s]

    def postgres(self) -> list[Section]:
        """postgres, and from the same catalog: workers (a job store) and security (the users table)."""
        from psycopg.conninfo import conninfo_to_dict

        from golive.tasks.postgres import PostgresTarget

        if not self.inp.database_dsn:
            return [
                Section(
                    "postgres",
                    {"host": "db.example.internal", "dbname": "app", "user": "golive_ro"},
                    off="TODO: pass --database-dsn postgresql://USER@HOST:5432/DBNAME",
                )
            ]
        try:
            d = conninfo_to_dict(self.inp.database_dsn)
        except Exception as e:  # noqa: BLE001 - the driver's message may quote the DSN: never shown
            raise InitError(f"--database-dsn: not a PostgreSQL DSN ({type(e).__name__})") from None
        s = Section("postgres")
        missing = [k for k in ("host", "dbname", "user") if not d.get(k)]
        if missing:
            raise InitError(f"--database-dsn: no {missing[0]} in the DSN")
        s.data = {"host": d["host"], "port": int(d.get("port") or 5432), "dbname": d["dbname"], "user": d["user"]}
        if d.get("password"):
            s.data["password"] = self.secret("postgres", str(d["password"]), "the database user's password")
        else:
            s.notes.append(
                'no password in the DSN: add `password: "${GOLIVE_POSTGRES_PASSWORD}"` unless the server '
                "trusts this host or ~/.pgpass has it"
            )
        if d.get("sslmode"):
            s.data["sslmode"] = d["sslmode"]
        # the DSN's own trust anchor, else --ca-file when the DSN asks for a verified server (a private CA)
        root = d.get("sslrootcert") or (self.ca if str(d.get("sslmode", "")).startswith("verify-") else None)
        if root and root != "system":  # libpq 16's `system` (the OS store) is no file to name
            s.data["sslrootcert"] = str(Path(str(root)).resolve())
        self.pg = pg = self.target(PostgresTarget, {**s.data, "password": d.get("password")}, "--database-dsn")
        cat, why = self.ask("PostgreSQL tables and columns", lambda: _pg_discover(pg, self.t))
        if why:
            s.off = f"{pg.host}:{pg.port} could not be read: {why}"
        if cat is None:
            return [s]
        _postgres_found(s, cat)
        from golive.expectations.scaffold import scaffold

        suites = Path(self.inp.suites_dir or self.out_dir / f"suites-{self.inp.environment}").resolve()
        written, why = self.ask("starter data suites", lambda: scaffold(pg, suites), timeout=max(60, self.t))
        if written and any(written):
            s.data["suites_dir"] = str(suites)
            s.found.add("suites_dir")
            s.notes.append(
                f"{sum(map(len, written))} starter suites in {suites} (`golive expectations lint` them; "
                "set windows and severities)"
            )
        else:
            s.notes.append(
                f"no starter suites ({why or 'no table to scaffold'}): the checklist's shipped suites run instead"
            )
        wk, sec = Section("workers"), Section("security")
        _workers_found(
            wk,
            cat,
            lambda table, hb: self.ask("the scheduler's job store", lambda: _jobs_discover(pg, table, hb, self.t)),
        )
        _security_found(sec, cat)
        return [s] + [x for x in (wk, sec) if x.data or x.off]

    def hosts(self) -> list[Section]:
        """Where the load balancer and the database are (TCP connect times are measured from here)."""
        s = Section(
            "hosts",
            notes=[
                "load balancer and database addresses, from --site-url and --database-dsn "
                "(latency is measured from where golive runs)"
            ],
        )
        if self.inp.site_url:
            u = urlsplit(self.inp.site_url)
            s.data["load_balancer"] = f"{u.hostname}:{u.port or 443}"
        pg = self.pg
        if pg is not None and not pg.host.startswith("/"):  # a unix socket has no TCP latency to measure
            s.data["database"] = f"{pg.host}:{pg.port}"
        return [s] if s.data else []

    def redis(self) -> list[Section]:
        from golive.tasks.redis import RedisTarget

        if not self.inp.redis_url:
            return [
                Section(
                    "redis",
                    {"url": "redis://cache.example.internal:6379/0"},
                    off="TODO: pass --redis-url redis://HOST:6379/0",
                )
            ]
        url, pw = self.strip_url(self.inp.redis_url, "redis")
        s = Section(
            "redis",
            {
                "url": url,
                **({"password": f"${{{_secret_var('redis')}}}"} if pw else {}),
                **({"ca_file": self.ca} if self.ca and url.startswith("rediss://") else {}),
            },
        )
        rt = self.target(RedisTarget, {**s.data, "password": pw}, "--redis-url")
        found, why = self.ask("Redis role and replicas", lambda: _redis_discover(rt, self.t))
        if why:
            s.off = f"{url} could not be read: {why}"
        elif found is not None:
            s.notes.append(
                f"role {found['role']}; maxmemory {found['maxmemory']}; maxmemory-policy "
                f"{found['policy']}; AOF {'on' if found['aof'] else 'off'} (discovered, review)"
            )
            if found["policy"] != "allkeys-lru":
                s.notes.append(
                    f"the checklist expects allkeys-lru, the server runs {found['policy']}: "
                    "dependencies.redis.memory reports it"
                )
            if found["role"] != "master":
                s.notes.append("this is not the primary: point url at the primary")
            if found["replicas"]:
                s.data["replica_urls"] = found["replicas"]
                s.found.add("replica_urls")
        return [s]

    def smtp(self) -> list[Section]:
        if not self.inp.smtp_host:
            return [
                Section("smtp", {"host": "smtp.example.com", "port": 587}, off="TODO: pass --smtp-host HOST[:PORT]")
            ]
        hp = self.inp.smtp_host
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "587")
        if not port.isdigit() or not host:
            raise InitError("--smtp-host: expected HOST or HOST:PORT")
        s = Section("smtp", {"host": host, "port": int(port), **({"ca_file": self.ca} if self.ca else {})})
        found, why = self.ask("SMTP extensions", lambda: _smtp_discover(host, int(port), self.t))
        if why:
            s.off = f"{host}:{port} could not be reached: {why}"
        elif found is not None:
            s.notes.append(
                f"EHLO: STARTTLS {'offered' if found['starttls'] else 'NOT offered'}, AUTH "
                f"{'offered' if found['auth'] else 'not offered'} (discovered, review)"
            )
            if found["auth"]:
                self.env_vars[_secret_var("smtp")] = "the SMTP user's password (once you set smtp.username)"
                s.notes.append('AUTH: add `username: ...` and `password: "${GOLIVE_SMTP_PASSWORD}"` to test it')
        s.notes.append("hourly_capacity: the provider's declared emails/hour (dependencies.smtp.capacity)")
        return [s]

    def monitoring(self) -> list[Section]:
        """monitoring, and the load balancer's backends as Prometheus scrapes them (commented: candidates)."""
        from golive.tasks.monitoring.prometheus import MonitoringTarget

        if not self.inp.prometheus_url:
            return [
                Section(
                    "monitoring",
                    {"prometheus_url": "http://prometheus.example.internal:9090"},
                    off="TODO: pass --prometheus-url URL",
                )
            ]
        url, _ = self.strip_url(self.inp.prometheus_url, "monitoring", keep_ref=True)
        s = Section(
            "monitoring",
            {"prometheus_url": url, **({"ca_file": self.ca} if self.ca and url.startswith("https") else {})},
        )
        mt = self.target(MonitoringTarget, {**s.data, "prometheus_url": self.inp.prometheus_url}, "--prometheus-url")
        self.prom, why = self.ask("Prometheus targets and alert rules", lambda: _prom_discover(mt, self.t))
        if why:
            s.off = f"{url} could not be read: {why}"
        if self.prom is None:
            return [s]
        _monitoring_found(s, self.prom)
        if not self.prom["pool"]:
            return [s]
        lb = Section(
            "loadbalancer",
            {"instances": self.prom["pool"]},
            found={"instances"},
            off=f"candidates from Prometheus job(s) {', '.join(self.prom['pool_jobs'])}: enable after review "
            "(the backends behind the load balancer, at least min_healthy: 2)",
        )
        return [s, lb]

    def backups(self) -> list[Section]:
        from golive.tasks.backups import BackupTarget

        if not self.inp.s3_bucket:
            return [
                Section(
                    "backups",
                    {"bucket": "example-backups", "prefix": "backups/"},
                    off="TODO: pass --s3-bucket NAME (and --s3-endpoint for an S3-compatible store)",
                )
            ]
        ep = {"endpoint_url": self.inp.s3_endpoint} if self.inp.s3_endpoint else {}
        if self.ca and (self.inp.s3_endpoint or "").startswith("https://"):
            ep["ca_file"] = self.ca  # an S3-compatible store behind a private CA (AWS' own endpoints: the system store)
        s = Section(
            "backups",
            {"bucket": self.inp.s3_bucket, **ep},
            notes=[
                "credentials: boto3's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, "
                "an instance role); read-only access is enough"
            ],
        )
        bt = self.target(BackupTarget, {**s.data, "prefix": self.inp.s3_prefix or "backups/"}, "--s3-bucket")
        found, why = self.ask("S3 prefixes and backup cadence", lambda: _s3_discover(bt, self.t))
        if why:
            s.off = f"s3://{bt.bucket} could not be listed: {why}"
        elif found is not None:
            _backups_found(s, found, self.inp.s3_prefix, self.prom)
        if "prefix" not in s.data:
            s.data["prefix"] = self.inp.s3_prefix or "backups/"
        return [s]


def build(inp: Inputs, *, out_dir: Path, log: Callable[[str], None] = lambda _: None) -> Result:
    """Discover and render; raises InitError on bad input. The text is not written here."""
    from golive.flows.config import ConfigError, parse_config

    if inp.ca_file and not Path(inp.ca_file).is_file():
        raise InitError(f"--ca-file: file not found: {inp.ca_file}")
    for flag, value in (
        ("--site-url", inp.site_url),
        ("--s3-endpoint", inp.s3_endpoint),
        ("--smtp-host", inp.smtp_host),
    ):
        if value and "@" in value:  # credentials would be written as given: refused, never echoed
            raise InitError(
                f"{flag}: credentials in it are not supported (they would be written to the file); "
                "give the address only"
            )
    run = _Init(inp, out_dir, log)
    # monitoring before backups (the backup-failure alert is looked up among its rules); written in checklist order
    parts = {
        name: getattr(run, name)() for name in ("web", "postgres", "redis", "smtp", "monitoring", "backups", "hosts")
    }
    order = ("web", "postgres", "hosts", "redis", "smtp", "backups", "monitoring")
    sections = [s for name in order for s in parts[name]]
    header = {
        "environment": inp.environment,
        "description": f"starter config written by `golive config init` on {datetime.now(UTC):%Y-%m-%d}"
        + ("" if inp.discover else " (--no-discover: nothing was asked of the servers)"),
    }
    text = render(header, sections, run.env_vars)
    try:  # the file must validate as written: every ${VAR} set to a placeholder
        parse_config(
            yaml.safe_load(text),
            env={v: "placeholder-secret" for v in run.env_vars},
            secret_loader=lambda name: "placeholder-secret",
        )
    except ConfigError as e:

        def flag_of(p: str) -> str:
            return "--ca-file" if ".ca_file" in p else FLAGS.get(re.split(r"[.:\[]", p)[0], "")

        raise InitError(
            "\n".join(f"{flag_of(p) + ': ' if flag_of(p) else ''}{run.redact.text(p)}" for p in e.problems)
        ) from None
    suites = next((s.data["suites_dir"] for s in sections if s.key == "postgres" and "suites_dir" in s.data), None)
    return Result(
        text=text,
        env_vars=run.env_vars,
        sections=sections,
        suites=sorted(Path(suites).glob("*.json")) if suites else [],
    )


def _postgres_found(s: Section, cat: dict[str, Any]) -> None:
    from golive.expectations.scaffold import _SKIP_TABLES  # the migration tools' own tables

    cols = cat["columns"]
    tables = [t for t in cols if t not in _SKIP_TABLES | {"apscheduler_jobs"}]
    s.data["required_tables"] = tables
    s.found.add("required_tables")
    if cat["unreadable"]:
        s.notes.append(
            f"not readable by this user: {', '.join(cat['unreadable'])} (dependencies.postgres.tables "
            "reports it: grant SELECT, or remove them from required_tables)"
        )
    empty = [t for t in cat["empty"] if t in tables]
    if empty:
        s.data["allow_empty_tables"] = empty
        s.found.add("allow_empty_tables")
        s.notes.append("allow_empty_tables: empty today; remove those that must hold rows in production")
    if cat.get("schema_version"):
        s.data["schema_version"] = cat["schema_version"]
        s.found.add("schema_version")
        s.notes.append("schema_version: the newest applied migration; set it to the release's own")


def _workers_found(s: Section, cat: dict[str, Any], read_jobs: Callable[[str, str | None], Any]) -> None:
    cols = cat["columns"]
    if "apscheduler_jobs" not in cols:
        return  # no job store this reader knows: no workers section (the checks are NOT_APPLICABLE, saying so)
    hb = "scheduler_heartbeat" if "beat_at" in cols.get("scheduler_heartbeat", {}) else None
    s.data = {"jobstore_table": "apscheduler_jobs", "heartbeat_table": hb}
    s.found.update({"jobstore_table", "heartbeat_table"})
    if hb is None:
        s.notes.append(
            "heartbeat_table: none found (no scheduler_heartbeat.beat_at): liveness is judged from next_run_time alone"
        )
    runs = cols.get("job_runs", {})
    if not {"job_name", "started_at", "status"} <= set(runs):
        s.notes.append(
            "runs_table: no job_runs(job_name, started_at, status) table: point runs_table and its "
            "columns at where job runs are recorded, else application.workers.execution fails"
        )
    found, why = read_jobs("apscheduler_jobs", hb)
    if why:
        s.off = f"the job store could not be read: {why}"
        return
    s.data["jobs"] = found["jobs"]
    s.found.add("jobs")
    if found["zones"]:
        s.data["timezone"] = found["zones"][0]
        s.found.add("timezone")
    if len(found["zones"]) > 1:
        s.notes.append(
            f"the jobs' cron triggers use several time zones ({', '.join(found['zones'])}): "
            "application.workers.jobs reports the others"
        )
    for job, why in found["skipped"].items():
        s.notes.append(f"job {job} not listed: {why}")


def _security_found(s: Section, cat: dict[str, Any]) -> None:
    from golive.expectations.suites import SENSITIVE_NAME_RE

    cols = cat["columns"]
    users = cols.get("users")
    if users is None:
        s.off = "no `users` table: set users_table, password_column, mfa_column and role_column by hand"
        return
    pw = next((c for c in _PASSWORD if c in users), None)
    if pw is None:
        s.off = "the users table has no password hash column this reader knows"
        return
    s.data = {"users_table": "users", "password_column": pw}
    s.found.update(s.data)
    mfa = next((c for c in _MFA if users.get(c) == "boolean"), None)
    role = "role" if "role" in users else None
    s.data["mfa_column"] = mfa if mfa and role else None
    s.found.add("mfa_column")
    if not (mfa and role):
        s.notes.append(
            "mfa_column: none (no boolean 2FA column next to a `role` column): security.admin.mfa is "
            "NOT_APPLICABLE until you name them"
        )
    sensitive = [
        f"{t}.{c}"
        for t, cs in cols.items()
        for c in cs
        if SENSITIVE_NAME_RE.search(c) and c != pw and cs[c] in ("text", "character varying", "bytea")
    ]
    if sensitive:
        s.data["sensitive_columns"] = sensitive
        s.found.add("sensitive_columns")
        s.notes.append("sensitive_columns: named like secrets; each must hold ciphertext (security.data.*)")
    audit = next((t for t in _AUDIT if t in cols), None)
    if audit:
        tcol = next((c for c in _AUDIT_TIME if c in cols[audit]), None)
        if tcol:
            s.data.update(audit_table=audit, audit_time_column=tcol)
            s.found.update({"audit_table", "audit_time_column"})


def _monitoring_found(s: Section, prom: dict[str, Any]) -> None:
    from golive.tasks.models import default_roles
    from golive.tasks.monitoring.alerts import CRITICAL, WARNING

    jobs = prom["jobs"]
    s.notes.append(
        "scrape targets (discovered, review): "
        + "; ".join(f"{j}: {', '.join(sorted(i)[:6])}{' ...' if len(i) > 6 else ''}" for j, i in sorted(jobs.items()))
        if jobs
        else "no active scrape targets"
    )
    nodes = sorted({i for j, insts in jobs.items() if re.search(r"node", j, re.I) for i in insts})
    roles = default_roles()
    unmatched = [
        f"{k} ({r.instance_regex})"
        for k, r in roles.items()
        if not any(re.fullmatch(r.instance_regex, n) for n in nodes)
    ]  # PromQL regexes are anchored
    if unmatched and nodes:  # which server plays which role cannot be discovered: only the roles that match stay
        s.data["roles"] = {
            k: r.model_dump() for k, r in roles.items() if any(re.fullmatch(r.instance_regex, n) for n in nodes)
        }
        s.found.add("roles")
        s.notes.append(
            f"node_exporter instances {nodes} match no instance of the roles {', '.join(unmatched)}: "
            "left out, their infrastructure.<role>.* checks are NOT_APPLICABLE until monitoring.roles "
            "names them (instance_regex, thresholds per server role)"
        )
    elif unmatched:  # no node_exporter at all: the servers are not monitored, which the host checks report
        s.notes.append(
            f"no node_exporter instance is scraped: the roles {', '.join(unmatched)} match nothing "
            "(infrastructure.<role>.status reports it)"
        )
    rules = prom["rules"]
    for label, exp in [*CRITICAL.items(), *WARNING.items()]:
        hit = [r["name"] for r in rules if re.search(exp.name_pattern, r["name"], re.I)]
        s.notes.append(
            f"alert {label!r}: "
            + (
                f"{', '.join(hit)} (discovered, review)"
                if hit
                else "no loaded rule matches: monitoring.alerts.* reports it"
            )
        )


def _backups_found(s: Section, found: dict[str, Any], given_prefix: str | None, prom: dict[str, Any] | None) -> None:
    from golive.tasks.backups import BackupTarget

    default = {k: f.default for k, f in BackupTarget.model_fields.items()}
    s.notes.append(f"prefixes: {', '.join(found['prefixes']) or 'none'} (discovered, review)")
    prefix = given_prefix or found["prefix"]
    if prefix is None:
        s.off = f"no backup prefix among {found['prefixes'] or 'no prefixes'}: pass --s3-prefix"
        s.data["prefix"] = "backups/"
        return
    s.data["prefix"] = prefix
    if not given_prefix:
        s.found.add("prefix")
    s.data["wal_prefix"] = found["wal_prefix"]
    s.found.add("wal_prefix")
    if not found["wal_prefix"]:
        s.notes.append("wal_prefix: none found: incremental (WAL) backups are not checked")
    if found.get("median_gap_h") is not None:
        s.notes.append(
            f"{found['backups']} full backups under {prefix}; median gap {found['median_gap_h']:.1f} h "
            f"(discovered, review; the checklist's gap: {default['max_backup_gap_hours']:g} h at most)"
        )
    sizes = found.get("sizes") or []
    if sizes and statistics.median(sizes) < default["min_size_bytes"]:
        s.data["min_size_bytes"] = int(statistics.median(sizes) // 2)
        s.found.add("min_size_bytes")
        s.notes.append(
            f"min_size_bytes: half the median of the last {len(sizes)} backups "
            f"({int(statistics.median(sizes))} bytes); the checklist's {default['min_size_bytes']} bytes "
            "are for a production database"
        )
    if found["config_prefix"]:
        s.data["config_prefix"] = found["config_prefix"]
        s.found.add("config_prefix")
        if found.get("config_files"):
            s.data["config_files"] = found["config_files"]
            s.found.add("config_files")
            s.notes.append("config_files: matched by name (`name`, `name.<stamp>`, `<name>/...`) under config_prefix")
    rx = re.compile(default["failure_alert_pattern"])
    if prom is not None and not any(rx.search(r["name"]) or rx.search(r["query"]) for r in prom["rules"]):
        s.notes.append(
            f"no Prometheus alerting rule matches /{rx.pattern}/: set failure_alert_pattern to the "
            "backup-failure alert, or add one"
        )


# --------------------------------------------------------------------------- rendering


def _dump(key: str, value: Any) -> list[str]:
    flow = None if isinstance(value, (list, dict)) else False  # lists one line; a lone scalar never `{k: v}`
    return (
        yaml.safe_dump({key: value}, default_flow_style=flow, sort_keys=False, width=10**6, allow_unicode=True)
        .rstrip("\n")
        .split("\n")
    )


def one_line(text: str) -> str:
    """Text from a server, safe in a comment and on a terminal: no line break (YAML's include NEL, LS, PS: a hostile
    label could otherwise end the comment and add keys), no escape sequence."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def _section_lines(s: Section) -> list[str]:
    out = [f"# {one_line(n)}" for n in s.notes]
    if s.off:
        out.append(f"# {s.key}: not enabled: {one_line(s.off)}")
    body = [f"{s.key}:"]
    for k, v in s.data.items():
        lines = ["  " + ln for ln in _dump(k, v)]  # values are YAML-escaped by the emitter
        if k in s.found and len(lines) == 1:
            lines[0] += "  " + DISCOVERED
        elif k in s.found:  # a comment after the first line of a multi-line scalar would be inside it
            lines.insert(0, f"  # {k}: {DISCOVERED[2:]}")
        body += lines
    return out + ([f"# {ln}" for ln in body] if s.off else body)


def render(header: dict[str, Any], sections: list[Section], env_vars: dict[str, str]) -> str:
    top = [
        "# golive environment config: a starter written by `golive config init`. Review every line marked",
        f"# `{DISCOVERED}`, then: golive config validate <this file> && golive check --config <this file>",
    ]
    if env_vars:
        top.append("# Export these before running (secrets are never written in this file):")
        top += [f"#   export {name}=...   # {what}" for name, what in env_vars.items()]
    off = [s.key for s in sections if s.off]
    if off:
        top.append(f"# Written commented out (the reason is above each): {', '.join(off)}")
    lines = top + [ln for k, v in header.items() for ln in _dump(k, v)]
    for s in sections:
        lines += [""] + _section_lines(s)
    rest = [k for k in NOT_GENERATED if k not in {s.key for s in sections}]
    lines += ["", f"# Not generated (nothing to discover them from; see `golive config schema`): {', '.join(rest)}"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str, *, force: bool = False) -> None:
    """temp file + rename; without force an existing file is never replaced (link fails if the name exists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for secrets: this file holds none (they are ${VAR} references)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError when it exists: never overwritten, not even by a race
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --------------------------------------------------------------------------- the command

PROMPTS = [
    ("site_url", "site URL (https://...)"),
    ("database_dsn", "database DSN (postgresql://user:pw@host/db)"),
    ("redis_url", "Redis URL (redis://:pw@host:6379/0)"),
    ("s3_bucket", "S3 backup bucket"),
    ("prometheus_url", "Prometheus URL"),
    ("smtp_host", "SMTP host[:port]"),
]
_HIDDEN = {"database_dsn", "redis_url", "prometheus_url"}  # may carry a password: not echoed


def command(args: Any, out: Callable[[str], None] = print) -> None:
    """`golive config init`: prompts (a TTY with --interactive only), discovers, writes atomically."""
    values = {f: getattr(args, f) for f in Inputs.__dataclass_fields__ if hasattr(args, f)}
    if args.interactive and sys.stdin.isatty():
        import getpass

        for name, label in PROMPTS:
            if not values.get(name):
                answer = (getpass.getpass if name in _HIDDEN else input)(f"{label} (empty: leave a TODO): ").strip()
                values[name] = answer or None
    target = Path(args.out or f"golive-{args.environment}.yaml")
    if target.exists() and not args.force:
        raise InitError(f"--out: {target} exists (--force replaces it)")
    inp = Inputs(**{**values, "discover": not args.no_discover})
    try:
        res = build(inp, out_dir=target.parent, log=lambda m: out(f"  {m}"))
    except InitError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever failed, its message may quote an input: redacted
        raise RuntimeError(Redactor(input_secrets(inp)).text(f"{type(e).__name__}: {e}")) from None
    try:
        write_atomic(target, res.text, force=args.force)
    except FileExistsError:  # created meanwhile: still never overwritten
        raise InitError(f"--out: {target} exists (--force replaces it)") from None
    out(f"wrote {target}" + (f" and {len(res.suites)} starter suite(s)" if res.suites else ""))
    for s in res.sections:
        if s.off:
            out(f"  {s.key}: commented out: {one_line(s.off)}")
    if res.env_vars:
        out("export before `golive check`: " + ", ".join(res.env_vars))
    out(f"next: golive config validate {target} && golive check --config {target}")
