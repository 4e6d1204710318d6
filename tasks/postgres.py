"""PostgreSQL: reachability, version, latency, schema (sections 2 and 3)."""

from __future__ import annotations

import os
import shlex
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from math import ceil
from typing import Any
from urllib.parse import quote

from pydantic import Field, SecretStr

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
    skipped,
)
from .models import SSLMODE, CaFile, Host, Name, Target, libpq_tls, libpq_tls_text

SEED_TABLES = [
    "campaigns",
    "users",
    "merchants",
    "notifications",
    "campaign_analytics_daily",
    "campaign_events",
    "merchant_affinity_scores",
    "optimal_send_times",
    "campaign_optimizations",
    "ml_model_versions",
    "job_runs",
]


#: seed 3.2 "Query old data from previous versions": the oldest rows of the checklist's tables, read through today's
#: schema (every column decoded). Environments with their own schema set `postgres.backward_compat_queries`.
COMPAT_QUERIES = {
    "oldest users": "SELECT id, email, phone, full_name, role, created_at FROM users ORDER BY created_at LIMIT 50",
    "first campaign analytics day": "SELECT * FROM campaign_analytics_daily "
    "WHERE day = (SELECT min(day) FROM campaign_analytics_daily)",
    "oldest notifications with their campaign": "SELECT n.*, c.name AS campaign FROM notifications n "
    "JOIN campaigns c ON c.id = n.campaign_id ORDER BY n.created_at LIMIT 50",
}


class PostgresTarget(Target):
    host: Host
    port: int = Field(5432, ge=1, le=65535)
    dbname: Name
    user: Name
    password: SecretStr | None = None
    sslmode: str = Field("prefer", pattern=SSLMODE)
    sslrootcert: CaFile | None = Field(
        None,
        description="the CA (PEM) that signed the server's certificate, for "
        "sslmode verify-ca / verify-full (libpq's sslrootcert; a private CA)",
    )
    min_version: int = Field(13, description="seed 2.1: PostgreSQL 13+")
    max_latency_ms: float = Field(50.0, gt=0, description="seed 2.1: SELECT 1 < 50 ms")
    latency_samples: int = Field(5, ge=1, le=50)
    required_tables: list[str] = Field(default_factory=lambda: list(SEED_TABLES))
    schema_version: str | None = Field(None, description="the schema_migrations version the release expects")
    allow_empty_tables: list[str] = Field(
        default_factory=list, description="seed 3.1: tables that are expected to be empty"
    )
    exact_count_limit: int = Field(
        1_000_000, ge=0, description="count(*) tables whose pg_class estimate is below this; estimate above"
    )
    suites_dir: str | None = Field(
        None,
        description="seed 3.1: directory of Great Expectations suite files "
        "(`golive expectations scaffold` writes starters); default: the suites shipped "
        "for the checklist's schema",
    )
    sensitive_columns: list[str] = Field(
        default_factory=list,
        description="columns never sampled nor shown, in every table (besides each "
        "suite's own and names like password/token/api_key/secret)",
    )
    data_docs_dir: str | None = Field(
        None,
        description="build Great Expectations Data Docs of each run under "
        "<data_docs_dir>/<environment>/<UTC stamp>/ (linked from the Prefect run)",
    )
    data_docs_s3_url: str | None = Field(
        None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="also copy the Data Docs to s3://bucket/prefix/ (AWS credentials "
        "and AWS_ENDPOINT_URL from the environment, as boto3 reads them)",
    )
    backward_compat_queries: dict[str, str] = Field(
        default_factory=lambda: dict(COMPAT_QUERIES),
        description="seed 3.2: name -> read-only query over data written by earlier releases; each must run and "
        "return rows",
    )


# --------------------------------------------------------------------------- probes

REACHABLE = "dependencies.postgres.reachable"


def dsn_for_evidence(t: PostgresTarget) -> str:
    """The connection string with the password masked (what evidence shows)."""
    pw = ":***" if t.password is not None else ""
    return f"postgresql://{quote(t.user, safe='')}{pw}@{t.host}:{t.port}/{quote(t.dbname, safe='')}?" + "&".join(
        f"{k}={v}" for k, v in libpq_tls(t).items()
    )


def psql(t: PostgresTarget, sql: str) -> str:
    """A psql command line that re-runs `sql` (password from PGPASSWORD / ~/.pgpass, never inline)."""
    if "'" in sql and not any(ch in sql for ch in '"$`\\!'):
        quoted = f'"{sql}"'  # readable: SQL string literals keep their single quotes
    else:
        quoted = shlex.quote(sql)
    return f"psql 'host={t.host} port={t.port} dbname={t.dbname} user={t.user} {libpq_tls_text(t)}' -c {quoted}"


def shutdown_socket(conn: Any) -> None:
    """Cut a psycopg connection's socket from another thread: a blocked read returns at once (psycopg has no read
    timeout of its own). Idempotent; an already closed connection is fine."""
    try:
        s = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.close()
    except Exception:  # noqa: BLE001 - already gone
        pass


@contextmanager
def connect(t: PostgresTarget, ctx: RunContext, *, read_only: bool = False) -> Iterator[Any]:
    """One connection as the configured user, bounded by the check's budget on both sides:
    - connect: libpq connect_timeout (whole seconds, at least 2: libpq's own minimum);
    - server side: `SET LOCAL statement_timeout` (via set_config(..., true)) in the one read-only transaction the
      body runs in, rolled back at the end. Local to the transaction, so it is safe behind PgBouncer in transaction
      pooling too (a startup `options` parameter is refused by PgBouncer, a session SET would leak to other clients);
    - client side: a watchdog shuts the socket down when the budget is spent, so a hung server cannot keep this
      thread (psycopg has no read timeout of its own)."""
    import psycopg

    conn = psycopg.connect(
        host=t.host,
        port=t.port,
        dbname=t.dbname,
        user=t.user,
        password=t.password.get_secret_value() if t.password is not None else None,
        connect_timeout=max(2, ceil(ctx.remaining)),
        application_name="golive-check",
        **libpq_tls(t),
    )
    conn.read_only = read_only or None  # None: the server's default (read_only=False would force READ WRITE)
    lock = threading.Lock()
    closed = False
    aborted = threading.Event()

    def abort() -> None:
        with lock:
            if closed:
                return
            aborted.set()
            shutdown_socket(conn)

    watchdog = threading.Timer(ctx.remaining + 0.25, abort)  # just after the runner's own timeout
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{max(1, int(ctx.remaining * 1000))}ms"])
        yield conn
    except psycopg.OperationalError:
        if aborted.is_set():
            raise TimeoutError(
                f"timed out: no answer from {t.host}:{t.port} within the check's budget (connection closed by golive)"
            ) from None
        raise
    finally:
        watchdog.cancel()
        with lock:
            closed = True
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            conn.close()


def _split(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return (schema or None), table


def _ident(name: str):
    from psycopg import sql

    schema, table = _split(name)
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def table_access(conn: Any, tables: list[str]) -> dict[str, str]:
    """name -> "ok" | "missing" | "no SELECT privilege: ..." ; the SELECT is really run (LIMIT 0)."""
    from psycopg import errors, sql

    out: dict[str, str] = {}
    for name in tables:
        schema, table = _split(name)
        qualified = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        oid = conn.execute("SELECT to_regclass(%s)::oid", [qualified.as_string(conn)]).fetchone()[0]
        if oid is None:
            out[name] = "missing"
            continue
        try:
            with conn.transaction():  # a savepoint: a refused SELECT must not abort the check's transaction
                conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(qualified))
            out[name] = "ok"
        except errors.InsufficientPrivilege as e:
            out[name] = f"no SELECT privilege ({e.diag.message_primary or 'permission denied'})"
    return out


#: other sources of tables a run needs (the data-integrity suites register theirs: `tasks` imports nothing of ours)
_TABLE_SOURCES: dict[str, Callable[[PostgresTarget], Iterable[str]]] = {}
TABLES = "dependencies.postgres.tables"


def register_table_source(name: str, fn: Callable[[PostgresTarget], Iterable[str]]) -> None:
    """Tables that checks elsewhere read (`fn(target)`, e.g. the suites' tables): `dependencies.postgres.tables`
    checks them too, so a missing one is one failure there and its readers are SKIPPED naming it."""
    _TABLE_SOURCES[name] = fn


def needed_tables(t: PostgresTarget) -> dict[str, str]:
    """table -> why it is needed ("required" or the source's name), required tables first."""
    out = dict.fromkeys(t.required_tables, "required")
    for name, fn in _TABLE_SOURCES.items():
        try:
            extra = list(fn(t))
        except Exception:  # noqa: BLE001 - a broken source is reported by its own checks (e.g. a bad suite file)
            continue
        for table in extra:
            out.setdefault(table, name)
    return out


def table_status(t: PostgresTarget, ctx: RunContext) -> dict[str, str]:
    """needed table -> "ok" | "missing" | "no SELECT privilege ...", read once per run (the run's memo)."""

    def probe() -> dict[str, str]:
        with connect(t, ctx, read_only=True) as conn:
            return table_access(conn, list(needed_tables(t)))

    return ctx.memo(("tables", dsn_for_evidence(t)), probe)


def table_prerequisite(t: PostgresTarget, ctx: RunContext, table: str) -> Observation | None:
    """SKIPPED naming `dependencies.postgres.tables` when `table` is not there or not readable, else None: a check
    that reads one table calls this first, so a missing table is one failure, not one per reader."""
    status = table_status(t, ctx).get(table, "ok")
    if status == "ok":
        return None
    return skipped(f"table {table} is {status} ({TABLES} FAIL)", TABLES)


# --------------------------------------------------------------------------- checks: section 2


@check(
    REACHABLE,
    title="PostgreSQL accepts the app user and is recent enough",
    seed=["2.1 PostgreSQL Database: Database Server Online"],
    timeout=10,
    target="postgres",
)
def postgres_reachable(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Connect as the configured user; SHOW server_version_num >= min_version (major)."""
    with connect(t, ctx) as conn:
        num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        version = conn.execute("SHOW server_version").fetchone()[0]
        ssl_in_use = bool(conn.pgconn.ssl_in_use)
    evidence = f"connected to {dsn_for_evidence(t)} as {t.user}; `{psql(t, 'SHOW server_version_num')}`"
    ok = num // 10000 >= t.min_version
    return passed_if(
        ok,
        f"PostgreSQL {version} (server_version_num {num})",
        f"major version >= {t.min_version}",
        evidence,
        ssl=ssl_in_use,
    )


# the database's address, for the checks that reach it otherwise (TCP latency, firewall, scrape targets)
register_service(
    REACHABLE,
    lambda c: [(t.host, t.port)] if (t := getattr(c, "postgres", None)) and not t.host.startswith("/") else [],
)


@check(
    "dependencies.postgres.latency",
    title="PostgreSQL round trip is fast",
    seed=["2.1 PostgreSQL Database: Database Accessibility"],
    depends_on=[REACHABLE],
    timeout=10,
    target="postgres",
    timing=True,
)
def postgres_latency(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Median of `latency_samples` SELECT 1 round trips on one open connection < max_latency_ms."""
    samples = []
    with connect(t, ctx) as conn:
        for _ in range(t.latency_samples):
            t0 = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append(round((time.perf_counter() - t0) * 1000, 3))
    med = statistics.median(samples)
    evidence = (
        f"{t.latency_samples} x `SELECT 1` on one connection to {dsn_for_evidence(t)} (connect time excluded), "
        f"samples ms {samples}; re-run: `{psql(t, chr(92) + 'timing on')} -c 'SELECT 1'`"
    )
    obs = compare(round(med, 3), "<", t.max_latency_ms, unit="ms", evidence=evidence, samples_ms=samples)
    obs.observed = f"median {med:.3g} ms of {samples}"
    return obs


@check(
    TABLES,
    title="Required tables exist and the app user can read them",
    seed=["2.1 PostgreSQL Database: Database Tables"],
    depends_on=[REACHABLE],
    timeout=15,
    target="postgres",
)
def postgres_tables(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Every required table, and every table another check reads (the data-integrity suites' tables), resolves
    (to_regclass) and `SELECT * FROM t LIMIT 0` succeeds as the app user. The readers of a missing table are SKIPPED
    naming this check: one failure per missing table."""
    access = table_status(t, ctx)
    why = needed_tables(t)
    bad = {
        k: v if why.get(k, "required") == "required" else f"{v} (read by {why[k]})"
        for k, v in access.items()
        if v != "ok"
    }
    observed = (
        {"ok": sum(v == "ok" for v in access.values()), "problems": bad}
        if bad
        else f"all {len(access)} present and readable"
    )
    evidence = (
        f"as {t.user} on {dsn_for_evidence(t)}: `SELECT to_regclass('<table>')` then "
        f"`SELECT * FROM <table> LIMIT 0` for {', '.join(access)}"
    )
    return failed_if(bad, observed, f"all {len(access)} tables present and SELECT-able", evidence, tables=access)


# --------------------------------------------------------------------------- checks: section 3


@check(
    "data.rows.counts",
    title="Required tables hold data (actual row counts)",
    seed=["3.1 Table Row Counts"],
    depends_on=[REACHABLE],
    timeout=30,
    target="postgres",
)
def row_counts(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Rows per required table > 0 (except allow_empty_tables). Exact count(*) below exact_count_limit
    estimated rows (pg_class.reltuples), the estimate above it. Observed = the table of counts. A table missing or
    unreadable is dependencies.postgres.tables' failure: shown as not counted, SKIPPED when none is readable."""
    from psycopg import sql

    counts: dict[str, int | str] = {}
    method: dict[str, str] = {}
    access = table_status(t, ctx)
    readable = [n for n in t.required_tables if access.get(n, "ok") == "ok"]
    if not readable and t.required_tables:
        return skipped(f"no required table is readable ({TABLES} FAIL)", TABLES)
    with connect(t, ctx) as conn:
        for name in t.required_tables:
            if access.get(name, "ok") != "ok":
                counts[name] = f"not counted: {access[name]} ({TABLES})"
                continue
            est = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [_ident(name).as_string(conn)]
            ).fetchone()[0]
            if est is not None and est >= t.exact_count_limit:
                counts[name], method[name] = int(est), "estimate (pg_class.reltuples)"
            else:
                counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()[0]
                method[name] = "exact count(*)"
    empty = [n for n, c in counts.items() if c == 0 and n not in t.allow_empty_tables]
    unreadable = [n for n, c in counts.items() if isinstance(c, str)]  # reported by dependencies.postgres.tables
    expected = "rows > 0 in every required table" + (
        f" (may be empty: {', '.join(t.allow_empty_tables)})" if t.allow_empty_tables else ""
    )
    evidence = (
        f"as {t.user} on {dsn_for_evidence(t)}: `SELECT count(*) FROM <table>` where pg_class.reltuples < "
        f"{t.exact_count_limit:,}, else reltuples; methods: {method}"
    )
    if empty:
        return failed(counts, expected, evidence, empty=empty, unreadable=unreadable, method=method)
    if unreadable:  # SKIPPED, not PASS: a blocking SKIPPED is still NO-GO when the tables check is not in the run
        obs = skipped(f"not counted: {', '.join(unreadable)} ({TABLES} FAIL); the others hold rows", TABLES)
        obs.observed, obs.expected = counts, expected
        obs.details.update(unreadable=unreadable, method=method)
        return obs
    return passed(counts, expected, evidence, empty=empty, unreadable=unreadable, method=method)


_NOT_VALID_SQL = """
SELECT n.nspname, c.relname, con.conname, con.contype, con.convalidated
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype IN ('f', 'c')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2, 3
"""
_NOT_VALID_RERUN = (
    "SELECT conrelid::regclass, conname, contype FROM pg_constraint WHERE contype IN ('f', 'c') AND NOT convalidated"
)


@check(
    "data.constraints.valid",
    title="Foreign keys and check constraints are validated",
    seed=["3.1 Referential Integrity"],
    depends_on=[REACHABLE],
    timeout=15,
    target="postgres",
)
def constraints_valid(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Every foreign-key and check constraint in user schemas has convalidated = true (none NOT VALID)."""
    with connect(t, ctx) as conn:
        rows = conn.execute(_NOT_VALID_SQL).fetchall()
    kinds = {"f": "foreign key", "c": "check"}
    not_valid = [f"{s}.{r}.{n} ({kinds[k]})" for s, r, n, k, ok in rows if not ok]
    total = {kinds[k]: sum(1 for row in rows if row[3] == k) for k in kinds}
    evidence = f"`{psql(t, _NOT_VALID_RERUN)}` on {dsn_for_evidence(t)}; checked {total}"
    if not_valid:
        return failed(
            {"not_valid": not_valid}, "every FK / check constraint validated (0 NOT VALID)", evidence, checked=total
        )
    return passed(
        f"0 NOT VALID of {sum(total.values())} constraints ({total})",
        "every FK / check constraint validated (0 NOT VALID)",
        evidence,
        checked=total,
    )


@check(
    "data.migrations.version",
    title="Schema is at the release's migration version, no failed migration",
    seed=["3.2 Database Schema Version", "3.2 Migration Status"],
    depends_on=[REACHABLE],
    timeout=10,
    target="postgres",
    needs={"postgres.schema_version": "the release's schema version is unknown"},
)
def migrations_version(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Newest successful version in schema_migrations (or alembic_version) == schema_version; any row marked
    failed (success = false, or golang-migrate's dirty = true) fails."""
    from psycopg import sql

    expected = f"== {t.schema_version}, no failed/dirty migration"
    with connect(t, ctx) as conn:
        tables = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT c.relname, to_regclass(c.relname) IS NOT NULL FROM (VALUES ('schema_migrations'), "
                "('alembic_version')) AS c(relname)"
            ).fetchall()
        }
        if tables.get("schema_migrations"):
            cols = {
                r[0]
                for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('schema_migrations') "
                    "AND attnum > 0 AND NOT attisdropped"
                ).fetchall()
            }
            if "version" not in cols:
                return failed(
                    "schema_migrations has no `version` column",
                    expected,
                    f"columns of schema_migrations: {sorted(cols)}",
                )
            # (condition of a good row, condition of a failed row): Flyway-like `success`, golang-migrate's `dirty`
            flags = {"success": ("success", "success IS NOT TRUE"), "dirty": ("dirty IS NOT TRUE", "dirty")}
            flag = next((flags[c] for c in flags if c in cols), None)
            where = f" WHERE {flag[0]}" if flag else ""
            query = f"SELECT version FROM schema_migrations{where} ORDER BY version DESC LIMIT 1"
            row = conn.execute(sql.SQL(query.replace("SELECT version", "SELECT version::text AS v"))).fetchone()
            failed_rows = (
                [
                    r[0]
                    for r in conn.execute(
                        sql.SQL(f"SELECT version::text AS v FROM schema_migrations WHERE {flag[1]} ORDER BY version")
                    ).fetchall()
                ]
                if flag
                else []
            )
        elif tables.get("alembic_version"):
            row = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
            failed_rows, query = [], "SELECT version_num FROM alembic_version"
        else:
            return failed(
                "no schema_migrations or alembic_version table",
                expected,
                f"`SELECT to_regclass('schema_migrations'), to_regclass('alembic_version')` on {dsn_for_evidence(t)}",
            )
    version = row[0] if row else None
    evidence = f"`{psql(t, query)}`"
    if failed_rows:
        evidence += f"; failed/dirty rows: {failed_rows}"
    observed = {"version": version, "failed_migrations": failed_rows}
    ok = version == t.schema_version and not failed_rows
    return passed_if(ok, observed, expected, evidence)


_TIMESTAMP_COLUMNS_SQL = """
SELECT c.oid::regclass::text AS tbl, a.attname, a.atttypid = 'timestamptz'::regtype AS tz
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
  AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype)
ORDER BY 1, a.attnum
"""


@check(
    "data.timestamps.timezone",
    title="Timestamps are stored as UTC instants (timestamptz)",
    seed=["3.1 Timestamp Consistency"],
    depends_on=[REACHABLE],
    timeout=10,
    target="postgres",
)
def timestamps_timezone(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Every timestamp column of the required tables is `timestamptz` (a `timestamp without time zone` column stores
    wall-clock times whose zone nobody knows). The other timestamp facts are in the suites (data.<table>.*)."""
    with connect(t, ctx, read_only=True) as conn:
        names = [_ident(n).as_string(conn) for n in t.required_tables]
        rows = conn.execute(_TIMESTAMP_COLUMNS_SQL, [names]).fetchall()
        zone = conn.execute("SHOW TimeZone").fetchone()[0]
    naive = [f"{tbl}.{col}" for tbl, col, tz in rows if not tz]
    expected = "every timestamp column timestamptz (0 `timestamp without time zone`)"
    evidence = (
        f"pg_attribute of the {len(t.required_tables)} required tables on {dsn_for_evidence(t)}: "
        f"`{psql(t, chr(92) + 'd+ <table>')}`; the database's TimeZone setting is {zone}"
    )
    if naive:
        return failed({"without_time_zone": naive}, expected, evidence, checked=len(rows), timezone=zone)
    return passed(
        f"{len(rows)} timestamp columns, all timestamptz", expected, evidence, checked=len(rows), timezone=zone
    )


@check(
    "data.compat.queries",
    title="Queries over data written by earlier releases still run",
    seed=["3.2 Backward Compatibility"],
    depends_on=[REACHABLE],
    timeout=15,
    target="postgres",
    needs=["postgres.backward_compat_queries"],
)
def compat_queries(t: PostgresTarget, ctx: RunContext) -> Observation:
    """Each `backward_compat_queries` query runs (read-only transaction, up to 100 rows fetched, every column
    decoded) and returns rows. Row values are never reported: only counts and errors."""
    from psycopg import Error, sql

    outcome: dict[str, str] = {}
    with connect(t, ctx, read_only=True) as conn:
        for name, query in t.backward_compat_queries.items():
            wrapped = sql.SQL("SELECT * FROM ({}) AS golive_compat LIMIT 100").format(
                sql.SQL(query.strip().rstrip(";"))
            )  # type: ignore[arg-type]  # the environment's own SQL
            try:
                with conn.transaction():  # a savepoint: one broken query does not hide the others
                    n = len(conn.execute(wrapped).fetchall())
                outcome[name] = f"{n} row{'s' if n != 1 else ''}" + (" (first 100)" if n == 100 else "")
            except Error as e:
                outcome[name] = f"error: {' '.join(str(e.diag.message_primary or e).split())}"
    bad = {k: v for k, v in outcome.items() if v.startswith(("error", "0 rows"))}
    evidence = "; ".join(f"{name}: `{psql(t, q.strip())}`" for name, q in t.backward_compat_queries.items())
    expected = "every query runs and returns rows"
    return failed_if(
        bad, outcome, expected, f"read-only transaction on {dsn_for_evidence(t)}: {evidence}", failing=sorted(bad)
    )
