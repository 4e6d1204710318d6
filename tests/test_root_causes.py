"""One root cause reads as one failure (issue #11): a shared prerequisite broken in the real sandbox gives exactly one
FAIL / ERROR across the whole catalog, and every check that needed it is SKIPPED naming it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from golive.flows.catalog import all_checks
from golive.flows.readiness import plan
from golive.tasks.core import CheckResult, Status, run_plain
from tests.support.checks import sandbox_config, with_
from tests.support.servers import refused_port

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
    from tests.support.checks import with_

    narrow = with_(cfg, "postgres", required_tables=["users", "campaigns"])
    specs = all_checks(narrow)
    ids = [TABLES, "dependencies.postgres.reachable", *(i for i in specs if i.startswith("data.merchants."))]
    with table_gone(sandbox, "merchants"):
        res = {r.id: r for r in run_plain({i: specs[i] for i in ids}, narrow)}
    assert res[TABLES].status == Status.FAIL
    assert res[TABLES].observed["problems"] == {"merchants": "missing (read by the data-integrity suites)"}
    assert {r.status for i, r in res.items() if i.startswith("data.")} == {Status.SKIPPED}


# --------------------------------------------------------------------------- each shared prerequisite in turn


@contextlib.contextmanager
def broken(sandbox, cfg, how: str, what: str) -> Iterator[Any]:
    """The prerequisite broken (a sandbox fault, a service stopped, or the backup bucket's endpoint moved to a port
    that refuses), repaired afterwards; yields the config to run with."""
    if how == "fault":
        with sandbox.fault(what):
            yield cfg
    elif how == "stop":
        sandbox.stop_service(what)
        try:
            yield cfg
        finally:
            sandbox.start_service(what, wait=True)
            deadline = time.monotonic() + 15  # a restarted Redis primary: its replica re-attaches on its own
            while what == "redis" and not sandbox.redis_client().info("replication").get("connected_slaves"):
                assert time.monotonic() < deadline, "the Redis replica did not re-attach"
                time.sleep(0.2)
    else:  # moved in the config, not by stopping moto: the sandbox's moto also plays the load balancer's and the
        # auto-scaling group's AWS APIs and holds the load-test results, separate systems in production
        yield with_(cfg, "backups", endpoint_url=f"http://127.0.0.2:{refused_port()}")


PG, WEB, S3 = "dependencies.postgres.reachable", "infrastructure.web.reachable", "backup.s3.reachable"
# prerequisite -> (how it is broken, the one check that fails, checks elsewhere that used to fail along and must now
# be SKIPPED naming it)
CASES = {
    "postgres down": (
        "fault",
        "postgres-down",
        PG,
        {
            "infrastructure.backend.db_latency",
            "infrastructure.firewall.ports",
            "monitoring.prometheus.targets",
            "security.transit.tls",
            "backup.restore.test",
        },
    ),
    "redis down": (
        "stop",
        "redis",
        "dependencies.redis.ping",
        {"infrastructure.firewall.ports", "monitoring.prometheus.targets"},
    ),
    "web down": (
        "stop",
        "web",
        WEB,
        {
            "infrastructure.tls.chain",
            "infrastructure.tls.expiry",
            "infrastructure.http.redirect",
            "infrastructure.frontend.lb_latency",
            "infrastructure.backend.python",
            "infrastructure.cdn.origin",
            "infrastructure.firewall.ports",
            "monitoring.prometheus.targets",
            "team.runbooks.reachable",
        },
    ),
    "prometheus down": (
        "stop",
        "prometheus",
        "monitoring.prometheus.reachable",
        {"infrastructure.frontend.status", "infrastructure.backend.status", "backup.automation.failure_alert"},
    ),
    "smtp down": ("fault", "smtp-down", "dependencies.smtp.session", set()),
    "backup bucket unreachable": ("endpoint", "backups", S3, {"backup.s3.latest_full", "backup.restore.test"}),
    "backup objects forbidden": (
        "fault",
        "s3-forbidden",
        S3,
        {"backup.s3.encrypted", "backup.s3.config_files", "backup.restore.test"},
    ),
}


def root_of(res: dict[str, CheckResult], cid: str) -> str:
    """Follow `blocked_by` from a SKIPPED result to the check that did not pass."""
    seen = []
    while res[cid].status == Status.SKIPPED and cid not in seen:
        seen.append(cid)
        cid = res[cid].details["blocked_by"]
    return cid


# The heavy checks talk to few servers: the data-integrity suites to PostgreSQL only, the restore to PostgreSQL and
# S3. A case whose fault cannot reach them runs the catalog without them (they are most of a whole-catalog run's
# time, ~7 CPU-s each; they pass on the healthy sandbox in test_checks_catalog and test_flow).
FAULT_REACHES = {
    "postgres down": {"postgres", "s3"},
    "backup bucket unreachable": {"s3"},
    "backup objects forbidden": {"s3"},
    "redis down": set(),
    "web down": set(),
    "prometheus down": set(),
    "smtp down": set(),
}


def without_heavy(specs: dict[str, Any], reaches: set[str]) -> dict[str, Any]:
    """`specs` less the heavy checks the fault cannot reach (`reaches`: postgres, s3), and what needs them."""
    gone = {
        i
        for i, s in specs.items()
        if s.heavy
        and ((i.startswith("data.") and "postgres" not in reaches) or (i == "backup.restore.test" and not reaches))
    }
    changed = True
    while changed:
        changed = False
        for i, s in specs.items():
            if i not in gone and any(d in gone for d in s.depends_on):
                gone.add(i)
                changed = True
    assert gone <= {i for i in specs if i.startswith("data.")} | {"backup.restore.test", "backup.recovery.rto"}, gone
    out = {i: s for i, s in specs.items() if i not in gone}
    assert len(out) > 100, len(out)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_each_shared_prerequisite_broken_is_one_failure_and_its_dependents_name_it(sandbox, cfg, case):
    how, what, root, dependents = CASES[case]
    with broken(sandbox, cfg, how, what) as run_cfg:
        specs = plan(run_cfg)  # the whole catalog, as `golive check` runs it
        specs = without_heavy(specs, FAULT_REACHES[case])  # a new case must say what its fault reaches
        res = {r.id: r for r in run_plain(specs, run_cfg)}
    failures = {i: f"{r.status.value}: {r.summary}" for i, r in res.items() if r.status in (Status.FAIL, Status.ERROR)}
    assert list(failures) == [root], failures
    skipped = {i: r for i, r in res.items() if r.status == Status.SKIPPED}
    not_skipped = {i: f"{res[i].status.value}: {res[i].summary}" for i in dependents - set(skipped)}
    assert not not_skipped, not_skipped
    for i, r in skipped.items():
        assert root_of(res, i) == root and root in r.cause, (i, r.cause)
