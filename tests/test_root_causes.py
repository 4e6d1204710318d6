"""One root cause reads as one failure (issue #11): a shared prerequisite broken in the real sandbox gives exactly one
FAIL / ERROR across the whole catalog, and every check that needed it is SKIPPED naming it."""
from __future__ import annotations

import contextlib

import pytest

from golive.flows.catalog import all_checks
from golive.tasks.core import Status, run_plain
from tests.test_checks_servers import sandbox_config

TABLES = "dependencies.postgres.tables"


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


@contextlib.contextmanager
def table_gone(sandbox, table: str):
    """The table renamed away in the product database (as a migration that never ran), back afterwards."""
    with sandbox.admin_db() as conn:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_gone")
    try:
        yield
    finally:
        with sandbox.admin_db() as conn:
            conn.execute(f"ALTER TABLE {table}_gone RENAME TO {table}")


def test_a_missing_table_is_one_failure_and_its_readers_are_skipped_naming_it(sandbox, cfg):
    specs = all_checks(cfg)
    with table_gone(sandbox, "optimal_send_times"):
        res = {r.id: r for r in run_plain(specs, cfg)}
    failures = {i: r.summary for i, r in res.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert list(failures) == [TABLES], failures
    assert res[TABLES].observed["problems"] == {"optimal_send_times": "missing"}
    skipped = {i: r for i, r in res.items() if r.status == Status.SKIPPED}
    suite = {i for i in specs if i.startswith("data.optimal_send_times.")}
    assert suite and set(skipped) == suite | {"data.rows.counts"}, sorted(set(skipped) ^ suite)
    for r in skipped.values():
        assert r.details["blocked_by"] == TABLES and "optimal_send_times" in r.cause, (r.id, r.cause)
    assert res["data.rows.counts"].observed["users"] == 500  # the other tables are still counted
    # the restore test compares the tables the source has, and runs the suites whose table the source has
    restore = res["backup.restore.test"]
    assert restore.status == Status.PASS, restore.summary
    assert "optimal_send_times" in restore.observed["not_compared"]
    assert "optimal_send_times" not in restore.observed["rows"]


def test_a_table_only_a_suite_reads_is_checked_by_the_tables_check_too(sandbox, cfg):
    """A suite's table that `required_tables` does not list is still one failure, in the tables check."""
    from tests.test_checks_servers import with_

    narrow = with_(cfg, "postgres", required_tables=["users", "campaigns"])
    specs = all_checks(narrow)
    ids = [TABLES, "dependencies.postgres.reachable", *(i for i in specs if i.startswith("data.merchants."))]
    with table_gone(sandbox, "merchants"):
        res = {r.id: r for r in run_plain({i: specs[i] for i in ids}, narrow)}
    assert res[TABLES].status == Status.FAIL
    assert res[TABLES].observed["problems"] == {"merchants": "missing (read by the data-integrity suites)"}
    assert {r.status for i, r in res.items() if i.startswith("data.")} == {Status.SKIPPED}
