"""The restore never touches production, also on hardened servers (issue #10, item 2).

`REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC` (common on hardened and managed servers) took the
`system_identifier` away, and the fallback compared the postmaster's start time plus the address the server saw:
production reached by a second address (here its Unix socket directory) passed as "not production" and the restore
ran on the production cluster. A restore server is now accepted only when proven different by something the address
does not change; otherwise refused, with what to grant. Real servers: the sandbox's production PostgreSQL and its
separate restore server, privileges revoked as a hardened server has them.
"""

from __future__ import annotations

import pytest

from golive.tasks.core import Status
from golive.tasks.restore.guard import identity_refusal
from golive.tasks.restore.suites import SuiteOutcome, register_restored_db_suite, unregister_restored_db_suite
from tests.support.checks import assert_no_secrets, run_dag, run_one, with_
from tests.support.restore import (
    PG_CONTROL_SYSTEM,
    PG_STAT_ACTIVITY,
    cfg,
    nothing_left_behind,
    pg_socket,
    restore_role_on_production,
    revoked,
    scratch_databases,
    source_databases,
)

SERVER, TEST = "backup.restore.server", "backup.restore.test"


def production_by_its_socket(sandbox, cfg):
    """The restore server configured as the production cluster reached by another address: its socket directory."""
    sock, port = pg_socket(sandbox, "postgres")
    return with_(cfg, "restore", host=str(sock), port=port)


def attempt(sandbox, config):
    """The server check, then the restore test on its own (the restore guards itself, not only through the check);
    whether a restore ran on production (a suite on the restored copy looks for it there), and production's
    databases before and after."""
    on_production: list[bool] = []

    def where(db, ctx):
        on_production.append(db.dbname in source_databases(sandbox))
        return SuiteOutcome(Status.PASS, "located")

    before = source_databases(sandbox)
    register_restored_db_suite("where", where)
    try:
        server = run_dag([SERVER], config)[SERVER]
        restore = run_one(TEST, config)
    finally:
        unregister_restored_db_suite("where")
    assert on_production == [], "the restore ran on the production cluster"
    assert source_databases(sandbox) == before
    return server, restore


def test_production_by_another_address_without_pg_control_system_is_refused(sandbox, cfg):
    alias = production_by_its_socket(sandbox, cfg)
    with revoked(sandbox, "postgres", PG_CONTROL_SYSTEM), restore_role_on_production(sandbox):
        server, restore = attempt(sandbox, alias)
    assert server.status == Status.FAIL, server.summary
    assert server.observed["system_identifier"] == {"restore": None, "source": None}
    seen = (
        "the restore server is the production server: its pg_stat_activity lists golive's own session on the "
        "source (the same postmaster reached by another address)"
    )
    assert server.observed["refused"] == seen
    assert restore.status == Status.FAIL and restore.observed == f"REFUSED, nothing restored: {seen}"
    assert "pg_stat_activity" in restore.evidence
    assert_no_secrets({"server": server, "restore": restore}, alias)


def test_production_by_another_address_with_no_proof_at_all_is_refused_naming_the_grant(sandbox, cfg):
    alias = production_by_its_socket(sandbox, cfg)
    with revoked(sandbox, "postgres", PG_CONTROL_SYSTEM, PG_STAT_ACTIVITY), restore_role_on_production(sandbox):
        server, restore = attempt(sandbox, alias)
    assert server.status == Status.FAIL and restore.status == Status.FAIL
    why = server.observed["refused"]
    assert why.startswith(
        "cannot prove the restore server is not the production cluster: system_identifier not "
        "readable on the restore server (permission denied for function pg_control_system); "
        "source (permission denied for function pg_control_system), and pg_stat_activity not "
        "readable on the restore server (permission denied for view pg_stat_activity)"
    ), why
    assert why.endswith(
        "Grant `GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO golive_restore` on the "
        "restore server and `GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO app_user` "
        "on the source (pg_monitor does not include it)"
    ), why
    assert restore.observed == f"REFUSED, nothing restored: {why}"


def test_a_separate_restore_server_with_no_proof_is_refused_fail_closed(sandbox, cfg):
    with revoked(sandbox, "postgres_restore", PG_CONTROL_SYSTEM, PG_STAT_ACTIVITY):
        server, restore = attempt(sandbox, cfg)
        assert scratch_databases(sandbox) == []
    assert server.status == Status.FAIL and restore.status == Status.FAIL
    ids = server.observed["system_identifier"]
    assert ids["restore"] is None and ids["source"] is not None
    why = server.observed["refused"]
    assert (
        "not readable on the restore server (permission denied for function pg_control_system), and "
        "pg_stat_activity not readable on the restore server" in why
    ), why
    assert why.endswith(
        "Grant `GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO golive_restore` on the "
        "restore server (pg_monitor does not include it)"
    ), why
    assert restore.observed.startswith("REFUSED, nothing restored: cannot prove")


def test_a_separate_restore_server_is_proven_by_system_identifier_else_by_pg_stat_activity(sandbox, cfg):
    granted = run_dag([SERVER, TEST], cfg)
    with revoked(sandbox, "postgres_restore", PG_CONTROL_SYSTEM):
        hardened = run_dag([SERVER, TEST], cfg)
    for res, proof in ((granted, "system_identifier"), (hardened, "pg_stat_activity")):
        assert res[SERVER].status == Status.PASS and res[SERVER].observed["proof"] == proof, res[SERVER].summary
        assert res[TEST].status == Status.PASS and res[TEST].observed["scratch_dropped"] is True, res[TEST].summary
    assert hardened[SERVER].observed["system_identifier"]["restore"] is None


FACTS = {
    "system_identifier": None,
    "sysid_error": "permission denied for function pg_control_system",
    "in_recovery": False,
    "sees_probe": False,
    "probe_error": None,
}


@pytest.mark.parametrize(
    ("restore", "source", "refused"),
    [
        ({}, {"sees_probe": True}, None),
        (
            {"system_identifier": "7", "sysid_error": None},
            {"system_identifier": "7", "sysid_error": None},
            "same system_identifier 7",
        ),
        ({"system_identifier": "7", "sysid_error": None}, {"system_identifier": "8", "sysid_error": None}, None),
        # the source's marked session seen on the restore server: production, whatever else was read
        (
            {"system_identifier": "7", "sysid_error": None, "sees_probe": True},
            {"system_identifier": "8", "sysid_error": None, "sees_probe": True},
            "lists golive's own session on the source",
        ),
        # a pooler that does not show golive's session marked on the source proves nothing
        ({}, {"sees_probe": False}, "the source does not show golive's own session in its pg_stat_activity"),
        # production's primary does not list a standby's sessions: a standby source proves nothing
        ({}, {"sees_probe": True, "in_recovery": True}, "the source is a standby"),
        # a physical replica has a pg_stat_activity of its own
        ({"in_recovery": True}, {"sees_probe": True}, "the restore server is a standby (it may replicate production)"),
        (
            {"sees_probe": None, "probe_error": "permission denied for view pg_stat_activity"},
            {"sees_probe": True},
            "pg_stat_activity not readable on the restore server (permission denied for view pg_stat_activity)",
        ),
    ],
)
def test_what_counts_as_proof(restore, source, refused):
    why = identity_refusal({**FACTS, **restore}, {**FACTS, **source}, "golive_restore", "app_user")
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why, why
