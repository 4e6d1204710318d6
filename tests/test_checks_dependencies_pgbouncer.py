"""PgBouncer checks (section 2, dependencies) against real PgBouncers from Debian's package: the sandbox's (where it
is installed) and ones of this module's own in front of the sandbox's PostgreSQL."""

from __future__ import annotations

import secrets
import time

import pytest

from golive.sandbox.parts import pgbouncer, postgres
from golive.tasks.core import Status
from tests.support.checks import as_json, assert_no_secrets, run_dag, run_one, sandbox_config, with_
from tests.support.servers import hung_server, refused_port
from tests.support.servers_debian import need, real_pgbouncer, wait_gone

PGB_IDS = ["dependencies.pgbouncer.admin", "dependencies.pgbouncer.pools"]


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


@pytest.fixture(scope="module")
def own_pgbouncer(sandbox):
    """A real PgBouncer of this module's own in front of the sandbox's PostgreSQL: (port, admin password)."""
    admin_pw = "pgb-" + secrets.token_urlsafe(12)
    with real_pgbouncer(
        pg_port=sandbox.ports["postgres"],
        dbname=postgres.DBNAME,
        app_user=postgres.APP_USER,
        app_password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"],
        admin_password=admin_pw,
    ) as (port, _):
        yield port, admin_pw


def pgb(cfg, port: int, admin_pw: str, **extra):
    return with_(
        cfg,
        "pgbouncer",
        host="127.0.0.1",
        port=port,
        admin_user=pgbouncer.ADMIN_USER,
        admin_password=admin_pw,
        sslmode="disable",
        **extra,
    )


@pytest.mark.debian("pgbouncer")
def test_the_sandbox_pgbouncer_passes(cfg):
    need(pgbouncer.executable(), "pgbouncer")  # the sandbox runs PgBouncer only where it is installed
    res = run_dag(PGB_IDS, cfg)
    bad = {i: f"{r.status.value}: {r.summary}" for i, r in res.items() if r.status != Status.PASS}
    assert not bad, bad
    assert res["dependencies.pgbouncer.pools"].observed["cl_active"] >= 1
    assert cfg.pgbouncer.admin_password.get_secret_value() not in as_json(res)
    assert_no_secrets(res, cfg)


@pytest.mark.debian("pgbouncer")
def test_own_pgbouncer_passes_and_shows_the_pool(cfg, own_pgbouncer):
    port, pw = own_pgbouncer
    res = run_dag(PGB_IDS, pgb(cfg, port, pw))
    assert {i: r.status for i, r in res.items() if i in PGB_IDS} == {i: Status.PASS for i in PGB_IDS}, {
        i: r.summary for i, r in res.items()
    }
    admin = res["dependencies.pgbouncer.admin"]
    assert admin.observed["max_client_conn"] == pgbouncer.MAX_CLIENT_CONN
    assert admin.expected.startswith("max_client_conn >= 50")
    assert "SHOW CONFIG" in admin.evidence and "psql" in admin.evidence and pw not in as_json(res)
    pools = res["dependencies.pgbouncer.pools"]
    assert pools.observed["pool"] == f"{postgres.DBNAME}/{postgres.APP_USER}"
    assert pools.observed["server_connections"] >= 1 and pools.observed["cl_waiting"] == 0
    assert pools.observed["total_xact_count"] >= 1


@pytest.mark.debian("pgbouncer")
def test_too_few_client_connections_fail(sandbox, cfg, tmp_path):
    with real_pgbouncer(
        pg_port=sandbox.ports["postgres"],
        dbname=postgres.DBNAME,
        app_user=postgres.APP_USER,
        app_password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"],
        admin_password="pgb-Adm1n-pw",
        max_client_conn=20,
    ) as (port, _):
        r = run_one("dependencies.pgbouncer.admin", pgb(cfg, port, "pgb-Adm1n-pw"))
    assert r.status == Status.FAIL
    assert r.observed["problems"] == ["max_client_conn 20 < 50"]


@pytest.mark.debian("pgbouncer")
def test_unknown_database_fails(cfg, own_pgbouncer):
    port, pw = own_pgbouncer
    r = run_one("dependencies.pgbouncer.admin", pgb(cfg, port, pw, database="merchants_staging"))
    assert r.status == Status.FAIL and "merchants_staging" in r.observed["problems"][0]


@pytest.mark.debian("pgbouncer")
def test_pgbouncer_down_errors_and_skips_the_pool_check(sandbox, cfg):
    need(pgbouncer.executable(), "pgbouncer")
    with sandbox.fault("pgbouncer-down"):
        wait_gone(sandbox.ports["pgbouncer"])
        res = run_dag(PGB_IDS, cfg)
    assert res["dependencies.pgbouncer.admin"].status == Status.ERROR
    assert "refused" in res["dependencies.pgbouncer.admin"].cause.lower()
    pools = res["dependencies.pgbouncer.pools"]
    assert pools.status == Status.SKIPPED and "dependencies.pgbouncer.admin is ERROR" in pools.cause
    assert run_one("dependencies.pgbouncer.admin", cfg).status == Status.PASS  # repaired


@pytest.mark.debian("pgbouncer")
def test_wrong_admin_password_hung_and_postgres_down(cfg, own_pgbouncer):
    port, _ = own_pgbouncer
    bad = pgb(cfg, port, "Wr0ng-pgb-Passw0rd")
    r = run_one("dependencies.pgbouncer.admin", bad)
    assert r.status == Status.ERROR and "Wr0ng-pgb-Passw0rd" not in as_json(r)
    assert_no_secrets(r, bad)
    with hung_server() as hung:
        t0 = time.monotonic()
        r = run_one("dependencies.pgbouncer.admin", pgb(cfg, hung, "x-pw-1234"), timeout=2.5)
        assert r.status == Status.ERROR and time.monotonic() - t0 < 2.5 + 2.5  # a busy 2-core machine's slack
    # PostgreSQL unreachable: the pool check is SKIPPED with that cause (the admin console still answers)
    down = with_(pgb(cfg, port, own_pgbouncer[1]), "postgres", port=refused_port())
    res = run_dag(PGB_IDS, down)
    assert res["dependencies.pgbouncer.admin"].status == Status.PASS
    assert res["dependencies.pgbouncer.pools"].status == Status.SKIPPED
    assert "dependencies.postgres.reachable is ERROR" in res["dependencies.pgbouncer.pools"].cause
