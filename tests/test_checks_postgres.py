"""The PostgreSQL checks (the `postgres` and `indexes` components: section 2, dependencies, and section 3, data)
against the sandbox's real PostgreSQL, its faults, and dedicated ports (its missing migration against its check:
tests/test_faults.py)."""

from __future__ import annotations

import contextlib
import time

import pytest

from golive.sandbox import dependencies as depstack
from golive.tasks.core import RunContext, Status
from tests.support.checks import CATALOG, as_json, assert_no_secrets, run_dag, run_ids, run_one, sandbox_config, with_
from tests.support.servers import hung_server, refused_port

PG_IDS = [
    "dependencies.postgres.reachable",
    "dependencies.postgres.latency",
    "dependencies.postgres.tables",
    "data.rows.counts",
    "data.constraints.valid",
    "data.migrations.version",
]


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


@contextlib.contextmanager
def db_change(sandbox, apply: str, undo: str):
    """A temporary change to the sandbox database (as the superuser), always undone."""
    with sandbox.admin_db() as conn:
        conn.execute(apply)
    try:
        yield
    finally:
        with sandbox.admin_db() as conn:
            conn.execute(undo)


def test_sandbox_database_passes_every_check(cfg):
    res = run_ids(PG_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in PG_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    assert res["dependencies.postgres.reachable"].observed.startswith("PostgreSQL 18")
    assert len(res["dependencies.postgres.latency"].details["samples_ms"]) == 5
    counts = res["data.rows.counts"].observed
    assert set(counts) == set(cfg.postgres.required_tables) and counts["users"] == 500 and min(counts.values()) > 0
    assert set(res["data.rows.counts"].details["method"].values()) == {"exact count(*)"}
    assert res["data.migrations.version"].observed == {"version": "20251231080000", "failed_migrations": []}
    for r in res.values():
        assert "app_user:***@127.0.0.1" in r.evidence or "psql" in r.evidence, r.evidence
    assert_no_secrets(res, cfg)


def test_postgres_down_is_an_error_and_skips_every_dependent(sandbox, cfg):
    with sandbox.fault("postgres-down"):
        res = run_ids(PG_IDS, cfg)
    root = res["dependencies.postgres.reachable"]
    assert root.status == Status.ERROR and "refused" in root.cause.lower()
    for cid in PG_IDS[1:]:
        assert res[cid].status == Status.SKIPPED, cid
        assert res[cid].cause.startswith("skipped: dependencies.postgres.reachable is ERROR")
        assert res[cid].details["root_cause"] == "dependencies.postgres.reachable"
    assert_no_secrets(res, cfg)
    assert run_one("dependencies.postgres.reachable", cfg).status == Status.PASS  # back after the repair


def test_failed_migration_row_fails_even_at_the_right_version(sandbox, cfg):
    with db_change(
        sandbox,
        "INSERT INTO schema_migrations (version, success) VALUES ('20251231090000', false)",
        "DELETE FROM schema_migrations WHERE version = '20251231090000'",
    ):
        r = run_one("data.migrations.version", cfg)
    assert r.status == Status.FAIL
    assert r.observed == {"version": "20251231080000", "failed_migrations": ["20251231090000"]}


def test_no_schema_version_configured_is_not_applicable(cfg):
    r = run_one("data.migrations.version", with_(cfg, "postgres", schema_version=None))
    assert r.status == Status.NOT_APPLICABLE and "schema_version" in r.cause


def test_not_valid_constraint_is_listed(sandbox, cfg):
    with db_change(
        sandbox,
        "ALTER TABLE campaigns ADD CONSTRAINT golive_test_budget CHECK (id > 0) NOT VALID",
        "ALTER TABLE campaigns DROP CONSTRAINT golive_test_budget",
    ):
        r = run_one("data.constraints.valid", cfg)
    assert r.status == Status.FAIL
    assert r.observed == {"not_valid": ["public.campaigns.golive_test_budget (check)"]}


def test_missing_unreadable_and_empty_tables(sandbox, cfg):
    tables = [*cfg.postgres.required_tables, "golive_test_private", "golive_test_empty", "no_such_table"]
    setup = (
        "CREATE TABLE golive_test_private (id int); INSERT INTO golive_test_private VALUES (1); "
        "CREATE TABLE golive_test_empty (id int); GRANT SELECT ON golive_test_empty TO app_user"
    )
    with db_change(sandbox, setup, "DROP TABLE golive_test_private, golive_test_empty"):
        c = with_(cfg, "postgres", required_tables=tables)
        r = run_one("dependencies.postgres.tables", c)
        assert r.status == Status.FAIL
        problems = r.observed["problems"]
        assert problems["no_such_table"] == "missing"
        assert problems["golive_test_private"].startswith("no SELECT privilege")
        assert set(problems) == {"no_such_table", "golive_test_private"} and r.observed["ok"] == 12
        rows = run_one("data.rows.counts", c)
        assert rows.status == Status.FAIL
        assert rows.details["empty"] == ["golive_test_empty"]
        assert set(rows.details["unreadable"]) == {"golive_test_private", "no_such_table"}
        assert rows.observed["users"] == 500  # the other counts are still documented
        allowed = run_one(
            "data.rows.counts",
            with_(
                c,
                "postgres",
                required_tables=[*cfg.postgres.required_tables, "golive_test_empty"],
                allow_empty_tables=["golive_test_empty"],
            ),
        )
        assert allowed.status == Status.PASS and allowed.observed["golive_test_empty"] == 0


def test_large_tables_are_estimated_not_counted(cfg):
    r = run_one("data.rows.counts", with_(cfg, "postgres", exact_count_limit=1000))
    assert r.status == Status.PASS
    method = r.details["method"]
    assert method["campaign_events"] == "estimate (pg_class.reltuples)"  # 6000 rows, analyzed
    assert method["merchants"] == "exact count(*)"


def test_thresholds_are_compared_with_the_measurement(cfg):
    r = run_one("dependencies.postgres.reachable", with_(cfg, "postgres", min_version=99))
    assert r.status == Status.FAIL and r.expected == "major version >= 99"
    r = run_one("dependencies.postgres.latency", with_(cfg, "postgres", max_latency_ms=0.0001, latency_samples=3))
    assert r.status == Status.FAIL and len(r.details["samples_ms"]) == 3


def test_wrong_password_is_an_error_and_never_leaks(cfg):
    bad = with_(cfg, "postgres", password="Wr0ng-db-Passw0rd")
    res = run_ids(PG_IDS, bad)
    assert res["dependencies.postgres.reachable"].status == Status.ERROR
    assert "password authentication failed" in res["dependencies.postgres.reachable"].cause
    assert "Wr0ng-db-Passw0rd" not in as_json(res)
    assert_no_secrets(res, bad)


def test_hung_and_refused_ports_are_errors_within_the_timeout(cfg):
    r = run_one("dependencies.postgres.reachable", with_(cfg, "postgres", port=refused_port()))
    assert r.status == Status.ERROR and "refused" in r.cause.lower()
    with hung_server() as port:
        t0 = time.monotonic()
        r = run_one("dependencies.postgres.reachable", with_(cfg, "postgres", port=port), timeout=2.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and ("timeout" in r.cause.lower() or "timed out" in r.cause.lower())
    assert took < 2.5 + 1.0


def test_server_that_stops_answering_mid_session_ends_the_check_thread(sandbox, cfg):
    """Connected and authenticated, then the query never gets an answer: ERROR at the timeout, and the check's
    thread does not stay blocked on the socket (psycopg has no read timeout: the body's watchdog closes it)."""
    import threading

    from tests.support.servers import swallowing_proxy

    with swallowing_proxy(sandbox.ports["postgres"], trigger=b"campaign_events") as port:
        c = with_(cfg, "postgres", port=port, required_tables=["users", "campaign_events"])
        t0 = time.monotonic()
        r = run_one("data.rows.counts", c, timeout=2.0)
        assert r.status == Status.ERROR and "timed out" in r.cause and time.monotonic() - t0 < 3.0
        deadline = time.monotonic() + 2.0
        while any(t.name == "check:data.rows.counts" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the check thread is still blocked on the dead connection"
            time.sleep(0.05)
        # the body on its own (no runner around it) ends too, with a clear timeout
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no answer from 127.0.0.1"):
            CATALOG["data.rows.counts"].body(c.postgres, RunContext(c, timeout=1.0))
        assert time.monotonic() - t0 < 2.0


def test_slow_query_is_cancelled_by_the_server_at_the_budget(sandbox, cfg):
    """A required "table" that takes 30 s to count: ERROR at the timeout, and the statement_timeout the check set
    makes PostgreSQL cancel it (no golive backend is left running)."""
    with db_change(
        sandbox,
        "CREATE VIEW golive_test_slow AS SELECT pg_sleep(30)::text AS x; GRANT SELECT ON golive_test_slow TO app_user",
        "DROP VIEW golive_test_slow",
    ):
        r = run_one("data.rows.counts", with_(cfg, "postgres", required_tables=["golive_test_slow"]), timeout=1.5)
        assert r.status == Status.ERROR
        deadline = time.monotonic() + 3.0
        while True:
            with sandbox.admin_db() as conn:
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'golive-check'"
                ).fetchone()[0]
            if left == 0:
                break
            assert time.monotonic() < deadline, f"{left} golive backend(s) still running"
            time.sleep(0.05)


# --------------------------------------------------------------------------- indexes


def test_dropped_index_makes_the_query_seq_scan(sandbox, cfg):
    with sandbox.fault("index-missing"):
        r = run_one("dependencies.postgres.indexes", cfg)
    assert r.status == Status.FAIL
    problems = r.observed["problems"]
    assert f"missing index {depstack.INDEX_FAULT[0]}" in problems
    assert any(p.startswith("events of a campaign: Seq Scan on campaign_events") for p in problems)
    assert "EXPLAIN" in r.evidence and "***" in r.evidence
    ok = run_one("dependencies.postgres.indexes", cfg)
    assert ok.status == Status.PASS
    assert ok.observed["plans"]["events of a campaign"] == [f"Bitmap Index Scan on {depstack.INDEX_FAULT[0]}"]


def test_small_tables_may_seq_scan_and_unknown_indexes_fail(cfg):
    assert (
        run_one(
            "dependencies.postgres.indexes",
            with_(cfg, "indexes", large_table_rows=1_000_000, queries={"all users": "SELECT * FROM users"}),
        ).status
        == Status.PASS
    )
    r = run_one("dependencies.postgres.indexes", with_(cfg, "indexes", required=["users_phone_idx"]))
    assert r.status == Status.FAIL and r.details["missing"] == ["users_phone_idx"]
    r = run_one(
        "dependencies.postgres.indexes", with_(cfg, "indexes", queries={"all events": "SELECT * FROM campaign_events"})
    )
    assert r.status == Status.FAIL and "Seq Scan on campaign_events" in r.observed["problems"][0]


def test_indexes_skip_when_postgres_is_down_and_reject_writes(cfg):
    res = run_dag(["dependencies.postgres.indexes"], with_(cfg, "postgres", port=refused_port()))
    assert res["dependencies.postgres.indexes"].status == Status.SKIPPED
    with pytest.raises(ValueError, match="SELECT"):  # only reads are planned
        with_(cfg, "indexes", queries={"oops": "DELETE FROM users"})
