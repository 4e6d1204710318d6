"""Shared pieces of the backup / restore / DR tests (no tests in here): the leak guard every one of them runs under,
and probes of the source database's write statistics."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from golive.sandbox import procs
from tests.support.checks import sandbox_config

SCRATCH_PREFIX = "golive_restore_"


def scratch_databases(sb: Any) -> list[str]:
    return [d for d in sb.restore_databases() if d.startswith(SCRATCH_PREFIX)]


def pg_restore_processes(sb: Any | None = None) -> list[tuple[int, str]]:
    """Every pg_restore process that is ours or talks to this sandbox's restore server (`sb`; any sandbox's when
    None). Another pytest-xdist worker's sandbox has a restore server of its own, on another port."""
    ours = set(procs.descendants(os.getpid()))
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pg_restore"):
            cmd = b" ".join(argv).decode(errors="replace")
            mine = sb is None or f"port={sb.ports['postgres_restore']}" in cmd
            if int(d.name) in ours or (SCRATCH_PREFIX in cmd and mine):
                found.append((int(d.name), cmd))
    return found


def stray_children(sb: Any) -> list[int]:
    """Processes under this test process that belong to no sandbox service (a leaked pg_restore, a helper...)."""
    mine = set(procs.descendants(os.getpid()))
    service = {p for pids in sb.pids().values() for p in pids}
    from golive.expectations import worker
    from tests.support.fixtures_prefect import FIXTURE_CHILDREN

    gx = worker._WORKER  # the suite worker lives as long as this process (expectations/worker.py), by design
    for root in [*FIXTURE_CHILDREN, *([gx.proc.pid] if gx is not None else [])]:
        service |= {root, *procs.descendants(root)}
    return sorted(p for p in mine - service if procs.proc_identity(p) is not None)


def leftovers(sb: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "scratch_databases": scratch_databases(sb),
            "pg_restore": pg_restore_processes(sb),
            "stray_children": stray_children(sb),
        }.items()
        if v
    }


@pytest.fixture(autouse=True)
def nothing_left_behind(sandbox):
    """After every test: no scratch database on the restore server, no pg_restore, no stray child process.
    (An abandoned check thread finishes its cleanup on its own: give it a few seconds.)"""
    yield
    deadline = time.monotonic() + 8
    left = leftovers(sandbox)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftovers(sandbox)
    assert not left, left


@pytest.fixture
def no_gx_on_restored_copies(monkeypatch):
    """No GX suites on the restored copy during the test. Any readiness plan earlier in this process registered them
    (`flows.catalog.all_checks`, process-wide), which costs ~5 s a restore and made a test's work depend on the order
    it ran in; the restored-copy suites have their own test (test_restore.py) and run in the flow tests."""
    from golive.expectations.restored import NAME
    from golive.tasks.restore.suites import SUITES

    monkeypatch.delitem(SUITES, NAME, raising=False)


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


# The database's row writes less pg_statistic's (autovacuum's ANALYZE of a table another test wrote rewrites its
# rows: seen in CI as a "write" during the restore), so every other write still counts (any table, listed below or
# not, a temporary one, and DDL's catalog rows), then each user table's own counters.
WRITE_STATS_SQL = """
SELECT (SELECT row(d.tup_inserted - s.ins, d.tup_updated - s.upd, d.tup_deleted - s.del)::text
        FROM pg_stat_database d,
             (SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd,
                     coalesce(sum(n_tup_del), 0) AS del
              FROM pg_stat_sys_tables WHERE schemaname = 'pg_catalog' AND relname = 'pg_statistic') s
        WHERE d.datname = current_database()),
       (SELECT json_object_agg(relname, json_build_array(n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd))::text
        FROM pg_stat_user_tables)
"""


def source_write_stats(sb: Any) -> tuple[str, str]:
    """The source database's write counters (pg_stat_database tup_* and per-table n_tup_*), read fresh."""
    with psycopg.connect(
        host="127.0.0.1",
        port=sb.ports["postgres"],
        dbname="merchants_prod",
        user="postgres",
        password=sb.superuser_password,
        connect_timeout=3,
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(WRITE_STATS_SQL).fetchone()


def settled_write_stats(sb: Any, timeout: float = 5.0) -> tuple[str, str]:
    """The counters once every other backend has flushed (they flush at exit, or at most ~1 s after a commit)."""
    last = source_write_stats(sb)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.1)
        now = source_write_stats(sb)
        if now == last:
            return now
        last = now
    return last


def source_databases(sb: Any) -> list[str]:
    with psycopg.connect(
        host="127.0.0.1",
        port=sb.ports["postgres"],
        dbname="postgres",
        user="postgres",
        password=sb.superuser_password,
        connect_timeout=3,
    ) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()]


# --------------------------------------------------------------------------- hardened servers (the restore guard)

PG_CONTROL_SYSTEM = "EXECUTE ON FUNCTION pg_catalog.pg_control_system()"
PG_STAT_ACTIVITY = "SELECT ON pg_catalog.pg_stat_activity"


def pg_socket(sb: Any, server: str) -> tuple[Path, int]:
    """The Unix socket directory and port of a sandbox PostgreSQL ("postgres" or "postgres_restore")."""
    return sb.base_dir / {"postgres": "pgsock", "postgres_restore": "restore-pgsock"}[server], sb.ports[server]


@contextmanager
def revoked(sb: Any, server: str, *privileges: str) -> Iterator[None]:
    """`REVOKE <privilege> FROM PUBLIC` in every database of a sandbox server (function and view privileges are per
    database) for the block, as hardened and managed servers have it; granted back afterwards."""
    from golive.sandbox.parts.postgres import admin_conninfo

    sock, port = pg_socket(sb, server)
    with psycopg.connect(admin_conninfo(sock, port), autocommit=True) as conn:
        dbs = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datallowconn")]

    def each(statement: str) -> None:
        for db in dbs:
            with psycopg.connect(admin_conninfo(sock, port, db), autocommit=True) as conn:
                for p in privileges:
                    conn.execute(statement.format(p))

    each("REVOKE {} FROM PUBLIC")
    try:
        yield
    finally:
        each("GRANT {} TO PUBLIC")


@contextmanager
def restore_role_on_production(sb: Any) -> Iterator[None]:
    """The restore credentials also work on the production server (one DBA, one role name everywhere)."""
    from golive.sandbox import configfile
    from golive.sandbox.parts import postgres

    sock, port = pg_socket(sb, "postgres")
    postgres.create_login_role(sock, port, postgres.RESTORE_USER, sb.env[configfile.ENV_RESTORE])
    try:
        yield
    finally:
        postgres.drop_role(sock, port, postgres.RESTORE_USER)
