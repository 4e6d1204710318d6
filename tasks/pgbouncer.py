"""PgBouncer, the PostgreSQL connection pool (seed 2.1 Connection Pool): its admin console (`SHOW CONFIG`,
`SHOW DATABASES`, `SHOW POOLS`, `SHOW STATS`) and one real round trip through the pool as the app user.

The admin console is PgBouncer's virtual `pgbouncer` database: simple-protocol `SHOW` commands only, no
transactions (autocommit), no `SET`. A hung PgBouncer is cut by a watchdog at the check's budget.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil
from typing import Any

from pydantic import Field, SecretStr

from .core import Observation, RunContext, check, failed, failed_if
from .models import SSLMODE, CaFile, Host, Name, Target, libpq_tls, libpq_tls_text
from .postgres import REACHABLE as PG_REACHABLE
from .postgres import PostgresTarget, shutdown_socket


class PgBouncerTarget(Target):
    host: Host
    port: int = Field(6432, ge=1, le=65535)
    admin_user: Name = Field(description="a user listed in PgBouncer's admin_users or stats_users")
    admin_password: SecretStr | None = None
    sslmode: str = Field("prefer", pattern=SSLMODE)
    sslrootcert: CaFile | None = Field(
        None,
        description="the CA (PEM) that signed PgBouncer's certificate, for "
        "sslmode verify-ca / verify-full (libpq's sslrootcert)",
    )
    database: Name | None = Field(None, description="the pooled database the app uses (default: postgres.dbname)")
    min_max_client_conn: int = Field(50, ge=1, description="seed 2.1: max connections set to 50+")


ADMIN = "dependencies.pgbouncer.admin"


def admin_psql(t: PgBouncerTarget, command: str) -> str:
    return f"psql 'host={t.host} port={t.port} dbname=pgbouncer user={t.admin_user} {libpq_tls_text(t)}' -c '{command}'"


@contextmanager
def _connect(t: PgBouncerTarget, dbname: str, user: str, password: SecretStr | None, ctx: RunContext) -> Iterator[Any]:
    """An autocommit connection (the admin console has no transactions), cut when the check's budget is spent."""
    import psycopg

    conn = psycopg.connect(
        host=t.host,
        port=t.port,
        dbname=dbname,
        user=user,
        **libpq_tls(t),
        password=password.get_secret_value() if password is not None else None,
        connect_timeout=max(2, ceil(ctx.remaining)),
        autocommit=True,
    )
    aborted = threading.Event()
    lock = threading.Lock()
    closed = False

    def abort() -> None:
        with lock:
            if not closed:
                aborted.set()
                shutdown_socket(conn)

    watchdog = threading.Timer(ctx.remaining + 0.25, abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield conn
    except psycopg.OperationalError:
        if aborted.is_set():
            raise TimeoutError(f"timed out: no answer from {t.host}:{t.port} within the check's budget") from None
        raise
    finally:
        watchdog.cancel()
        with lock:
            closed = True
            conn.close()


def admin(t: PgBouncerTarget, ctx: RunContext):
    return _connect(t, "pgbouncer", t.admin_user, t.admin_password, ctx)


def show(conn: Any, what: str) -> list[dict[str, Any]]:
    cur = conn.execute(f"SHOW {what}")
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _dbname(t: PgBouncerTarget, pg: PostgresTarget | None) -> str | None:
    return t.database or (pg.dbname if pg is not None else None)


@check(
    ADMIN,
    title="PgBouncer's admin console answers and allows 50+ client connections",
    seed=["2.1 PostgreSQL Database: Connection Pool"],
    timeout=10,
    target="pgbouncer",
    uses=["postgres"],
)
def pgbouncer_admin(t: PgBouncerTarget, ctx: RunContext, *, postgres: PostgresTarget | None) -> Observation:
    """Admin console: SHOW VERSION, SHOW CONFIG (max_client_conn >= min_max_client_conn), SHOW DATABASES (the app's
    database is served and not paused/disabled)."""
    db = _dbname(t, postgres)
    with admin(t, ctx) as conn:
        version = show(conn, "VERSION")[0].get("version")
        config = {r["key"]: r["value"] for r in show(conn, "CONFIG")}
        dbs = {r["name"]: r for r in show(conn, "DATABASES")}
    max_client = int(config.get("max_client_conn") or 0)
    problems = []
    if max_client < t.min_max_client_conn:
        problems.append(f"max_client_conn {max_client} < {t.min_max_client_conn}")
    entry = dbs.get(db) if db else None
    if db and entry is None:
        problems.append(f"database {db!r} is not in SHOW DATABASES ({', '.join(sorted(dbs))})")
    elif entry is not None and (entry.get("paused") or entry.get("disabled")):
        problems.append(f"database {db!r} is {'paused' if entry.get('paused') else 'disabled'}")
    observed: dict[str, Any] = {
        "version": version,
        "max_client_conn": max_client,
        "default_pool_size": int(config.get("default_pool_size") or 0),
        "max_db_connections": int(config.get("max_db_connections") or 0),
        "pool_mode": config.get("pool_mode"),
    }
    if entry is not None:
        observed["database"] = {
            "name": db,
            "pool_size": entry.get("pool_size"),
            "host": entry.get("host"),
            "port": entry.get("port"),
        }
    if problems:
        observed["problems"] = problems
    evidence = (
        f"admin console postgresql://{t.admin_user}:***@{t.host}:{t.port}/pgbouncer: SHOW VERSION, "
        f"SHOW CONFIG, SHOW DATABASES; re-run: `{admin_psql(t, 'SHOW CONFIG')}`"
    )
    expected = f"max_client_conn >= {t.min_max_client_conn}" + (f"; database {db} served, not paused" if db else "")
    return failed_if(problems, observed, expected, evidence)


@check(
    "dependencies.pgbouncer.pools",
    title="A connection through PgBouncer works and its pool shows it",
    seed=["2.1 PostgreSQL Database: Connection Pool"],
    depends_on=[ADMIN, PG_REACHABLE],
    timeout=15,
    target="pgbouncer",
    needs={"postgres": "the app user to connect through PgBouncer is unknown"},
)
def pgbouncer_pools(t: PgBouncerTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Connect through PgBouncer as postgres.user and run SELECT 1; while connected, SHOW POOLS shows the pool
    (database, user) with an active client, a server connection, nobody waiting; SHOW STATS counts transactions."""
    pg = postgres
    db = t.database or pg.dbname
    with _connect(t, db, pg.user, pg.password, ctx) as app:
        one = app.execute("SELECT 1").fetchone()[0]
        with admin(t, ctx) as conn:
            pools = [r for r in show(conn, "POOLS") if r.get("database") == db]
            stats = next((r for r in show(conn, "STATS") if r.get("database") == db), {})
    mine = next((r for r in pools if r.get("user") == pg.user), None)
    evidence = (
        f"SELECT 1 through postgresql://{pg.user}:***@{t.host}:{t.port}/{db}, then on the admin console "
        f"SHOW POOLS, SHOW STATS; re-run: `{admin_psql(t, 'SHOW POOLS')}`"
    )
    expected = "SELECT 1 = 1; pool with cl_active >= 1, a server connection, cl_waiting = 0"
    if mine is None:
        return failed(
            {"select_1": one, "pools": [f"{r['database']}/{r['user']}" for r in pools] or "none"}, expected, evidence
        )
    servers = sum(int(mine.get(k) or 0) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    observed = {
        "select_1": one,
        "pool": f"{db}/{pg.user}",
        "pool_mode": mine.get("pool_mode"),
        "cl_active": int(mine.get("cl_active") or 0),
        "cl_waiting": int(mine.get("cl_waiting") or 0),
        "server_connections": servers,
        "maxwait_s": int(mine.get("maxwait") or 0),
        "total_xact_count": int(stats.get("total_xact_count") or 0),
    }
    problems = []
    if one != 1:
        problems.append(f"SELECT 1 returned {one!r}")
    if observed["cl_active"] < 1:
        problems.append("no active client in the pool")
    if servers < 1:
        problems.append("no server connection in the pool")
    if observed["cl_waiting"] > 0:
        problems.append(f"{observed['cl_waiting']} client(s) waiting for a server connection")
    if problems:
        observed["problems"] = problems
    return failed_if(problems, observed, expected, evidence)
