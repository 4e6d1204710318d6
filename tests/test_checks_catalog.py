"""The catalog as a whole: well declared, every check passes on the healthy sandbox, and no secret ever leaks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from golive.flows.config import GoliveConfig, parse_config
from golive.tasks.core import SECTIONS, Status
from tests.support.checks import CATALOG, as_json, assert_no_secrets, run_ids, run_plain, sandbox_config, with_
from tests.support.restore import no_gx_on_restored_copies  # noqa: F401
from tests.support.servers import swallowing_proxy

# a real restore is bounded by the RTO (restore.rto_minutes), not by 30 s; the check bounds pg_restore itself
LONG_RUNNING = {"backup.restore.test": 4 * 3600}
SEED_REFS = {i["ref"] for i in json.loads((Path(__file__).parent.parent / "flows" / "seed_items.json").read_text())}


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


def test_every_check_is_well_declared():
    assert len(CATALOG) >= 34
    for cid, spec in CATALOG.items():
        assert spec.section in SECTIONS, cid
        assert spec.title and spec.description, cid
        assert spec.seed and set(spec.seed) <= SEED_REFS, (cid, set(spec.seed) - SEED_REFS)
        assert spec.target_section in GoliveConfig.model_fields, (cid, spec.target)
        assert 0 < spec.timeout <= LONG_RUNNING.get(cid, 30), cid


def test_the_seed_items_the_brief_assigns_are_covered():
    covered = {ref for spec in CATALOG.values() for ref in spec.seed}
    for ref in [
        "1.1 Load Balancer: Load Balancer Status",
        "1.1 Frontend Server(s): SSL/TLS Certificate",
        "2.1 PostgreSQL Database: Database Server Online",
        "2.2 Email Service (SMTP): Authentication",
        "3.1 Table Row Counts",
        "3.2 Migration Status",
        "3.3 Incremental/WAL Backups",
        "4.1 Error Handling",
        "5.1 CORS Configuration",
        "6.1 Response Times",
        "7.1 Prometheus",
        "2.3 Monitoring Agent",
        "8.1 Database Backups",
        "9.1 Runbooks Available",
        "9.1 Team Contact Info",
    ]:
        assert ref in covered, ref


@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
@pytest.mark.usefixtures("no_gx_on_restored_copies")  # tasks' catalog, whatever an earlier test registered
def test_the_whole_catalog_passes_on_the_healthy_sandbox_without_leaking(cfg):
    t0 = time.monotonic()
    results = run_plain(CATALOG, cfg)
    took = time.monotonic() - t0
    bad = {r.id: f"{r.status.value}: {r.summary}" for r in results if r.status != Status.PASS}
    assert not bad, bad
    assert took < 20, took
    assert_no_secrets(results, cfg)
    for r in results:
        assert "***" in r.evidence or not any(s in r.evidence for s in ("password=", "://app_user:")), r.id


def test_wrong_secrets_everywhere_never_appear_in_results(cfg):
    wrong = {"postgres": "Wr0ng-pg-Secret-1", "redis": "Wr0ng-redis-Secret-2", "smtp": "Wr0ng-smtp-Secret-3"}
    bad = cfg
    for section, pw in wrong.items():
        bad = with_(bad, section, password=pw)
    bad = with_(bad, "backups", secret_access_key="Wr0ng-s3-Secret-4")
    bad = with_(bad, "web", auth={"username": cfg.web.auth.username, "password": "Wr0ng-web-Secret-5"})
    results = run_plain(CATALOG, bad)
    by_id = {r.id: r for r in results}
    assert by_id["dependencies.postgres.reachable"].status == Status.ERROR
    assert by_id["dependencies.redis.ping"].status == Status.ERROR
    assert by_id["dependencies.smtp.session"].status == Status.FAIL
    assert by_id["application.api.endpoints"].status == Status.FAIL
    blob = as_json(results)
    for pw in [*wrong.values(), "Wr0ng-s3-Secret-4", "Wr0ng-web-Secret-5"]:
        assert pw not in blob, pw
    assert_no_secrets(results, bad)
    assert_no_secrets(results, cfg)  # nor the right ones


def test_dependency_down_skips_across_sections_naming_the_root_cause(sandbox, cfg):
    ids = [
        "dependencies.postgres.reachable",
        "dependencies.postgres.tables",
        "data.rows.counts",
        "data.migrations.version",
        "backup.s3.reachable",
        "backup.s3.latest_full",
    ]
    specs = {i: CATALOG[i] for i in ids}
    with sandbox.fault("postgres-down"):
        res = {r.id: r for r in run_plain(specs, cfg)}
    assert res["dependencies.postgres.reachable"].status == Status.ERROR
    for cid in ("dependencies.postgres.tables", "data.rows.counts", "data.migrations.version"):
        assert res[cid].status == Status.SKIPPED
        assert "dependencies.postgres.reachable is ERROR" in res[cid].cause and "refused" in res[cid].cause.lower()
    assert res["backup.s3.latest_full"].status == Status.PASS  # an unrelated section is unaffected


def test_absent_sections_make_their_checks_not_applicable():
    cfg = parse_config({"environment": "empty"}, env={})
    results = run_plain(CATALOG, cfg)
    assert {r.status for r in results} == {Status.NOT_APPLICABLE}
    web = next(r for r in results if r.id == "infrastructure.web.reachable")
    assert web.cause == "no `web` section in the environment config"


def test_shared_probes_are_done_once_per_run(sandbox, cfg):
    """Checks of one target share one probe through the run's memo: one TLS handshake for chain + expiry, one
    Redis INFO for memory + persistence (PING has its own connection), one S3 listing for reachable/latest/size
    (plus reachable's HeadObject of the newest backup: moto's server closes every connection after one answer).
    Counted as TCP connections through a proxy in front of each real server."""
    cases = [
        (
            "https",
            "web",
            "base_url",
            "https://127.0.0.1:{port}/",
            ["infrastructure.tls.chain", "infrastructure.tls.expiry"],
            1,
        ),
        (
            "redis",
            "redis",
            "url",
            "redis://127.0.0.1:{port}/0",
            ["dependencies.redis.ping", "dependencies.redis.memory", "dependencies.redis.persistence"],
            2,
        ),
        (
            "s3",
            "backups",
            "endpoint_url",
            "http://127.0.0.1:{port}",
            ["backup.s3.reachable", "backup.s3.latest_full", "backup.s3.size"],
            2,
        ),
    ]
    for service, section, key, template, ids, connections in cases:
        stats: dict[str, int] = {}
        host = "127.0.0.2" if service == "s3" else "127.0.0.1"  # the sandbox's S3 has its own loopback address
        with swallowing_proxy(sandbox.ports[service], stats=stats, target_host=host) as port:
            res = run_ids(ids, with_(cfg, section, **{key: template.format(port=port)}))
        assert {r.status for r in res.values()} == {Status.PASS}, {i: r.summary for i, r in res.items()}
        assert stats["connections"] == connections, (service, stats)
