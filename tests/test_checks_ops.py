"""Backup (S3), monitoring (Prometheus API) and team checks against the sandbox and dedicated servers."""
from __future__ import annotations

import time

import pytest

from golive.flows.config import parse_config
from golive.tasks.core import Status
from golive.tasks.monitoring.prometheus import parse_duration
from tests.test_checks_servers import (
    PROM_TARGETS,
    PROM_YAML,
    ServerThread,
    assert_no_secrets,
    hung_server,
    prometheus_app,
    refused_port,
    run_ids,
    run_one,
    sandbox_config,
    with_,
)

S3_IDS = ["backup.s3.reachable", "backup.s3.latest_full", "backup.s3.size", "backup.s3.encrypted",
          "backup.s3.wal_fresh"]
PROM_IDS = ["monitoring.prometheus.reachable", "monitoring.prometheus.targets", "monitoring.prometheus.scrape_interval"]
TEAM_IDS = ["team.runbooks.reachable", "team.contacts.complete"]


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


# --------------------------------------------------------------------------- backups in S3

def test_sandbox_backups_pass_every_check(cfg):
    res = run_ids(S3_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in S3_IDS}, \
        {i: r.summary for i, r in res.items() if r.status != Status.PASS}
    full = res["backup.s3.latest_full"].observed
    assert full["key"].startswith("backups/merchants_prod-") and full["age_hours"] < 1
    assert res["backup.s3.encrypted"].observed["ServerSideEncryption"] == "AES256"
    assert res["backup.s3.encrypted"].observed["bucket_default_encryption"] == "AES256"
    assert res["backup.s3.wal_fresh"].observed["key"] == "wal/000000010000000000000003"
    assert "aws s3api" in res["backup.s3.latest_full"].evidence
    assert_no_secrets(res, cfg)


def test_missing_backup_is_a_failure_not_an_error(sandbox, cfg):
    with sandbox.fault("backup-missing"):
        res = run_ids(S3_IDS, cfg)
    assert res["backup.s3.reachable"].status == Status.PASS
    assert res["backup.s3.reachable"].observed.startswith("listable: 0 object(s)")
    for cid in ("backup.s3.latest_full", "backup.s3.size", "backup.s3.encrypted"):
        assert res[cid].status == Status.FAIL, cid
        assert res[cid].observed.startswith("no backup found under s3://golive-backups/backups/")
    assert res["backup.s3.wal_fresh"].status == Status.PASS


def test_unencrypted_newest_backup_fails_encryption(sandbox, cfg):
    with sandbox.fault("backup-unencrypted"):
        res = run_ids(["backup.s3.reachable", "backup.s3.latest_full", "backup.s3.encrypted"], cfg)
    r = res["backup.s3.encrypted"]
    assert r.status == Status.FAIL and r.observed["ServerSideEncryption"] == "none"
    assert r.observed["key"] == res["backup.s3.latest_full"].observed["key"] != sandbox.backup_key
    assert run_one("backup.s3.encrypted", cfg).status == Status.PASS  # repaired: the encrypted dump is newest again


def test_missing_wal_fails_and_no_wal_prefix_is_not_applicable(sandbox, cfg):
    with sandbox.fault("wal-missing"):
        r = run_one("backup.s3.wal_fresh", cfg)
    assert r.status == Status.FAIL and r.observed.startswith("no WAL/incremental backup found")
    r = run_one("backup.s3.wal_fresh", with_(cfg, "backups", wal_prefix=None))
    assert r.status == Status.NOT_APPLICABLE and "wal_prefix" in r.cause


def test_stale_and_small_backups_fail(cfg):
    r = run_one("backup.s3.latest_full", with_(cfg, "backups", max_age_hours=1 / 3600 / 10))  # 0.1 s
    assert r.status == Status.FAIL and r.expected.startswith("newest backup age < ")
    r = run_one("backup.s3.size", with_(cfg, "backups", min_size_bytes=50 * 1024 * 1024))  # the seed's 50 MB
    assert r.status == Status.FAIL and r.expected == ">= 52,428,800 bytes"
    r = run_one("backup.s3.wal_fresh", with_(cfg, "backups", wal_max_age_hours=1 / 3600 / 10))
    assert r.status == Status.FAIL


def test_s3_unreachable_errors_and_skips_dependents(cfg):
    bad = with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{refused_port()}")
    res = run_ids(S3_IDS, bad)
    assert res["backup.s3.reachable"].status == Status.ERROR
    assert "connect" in res["backup.s3.reachable"].cause.lower()
    for cid in S3_IDS[1:]:
        assert res[cid].status == Status.SKIPPED and "backup.s3.reachable is ERROR" in res[cid].cause
    assert_no_secrets(res, bad)
    r = run_one("backup.s3.reachable", with_(cfg, "backups", bucket="no-such-bucket-golive"))
    assert r.status == Status.ERROR and "NoSuchBucket" in r.cause
    with hung_server() as port:
        t0 = time.monotonic()
        r = run_one("backup.s3.reachable", with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{port}"),
                    timeout=1.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and "time" in r.cause.lower() and took < 1.5 + 1.0


# --------------------------------------------------------------------------- Prometheus

def test_sandbox_prometheus_passes(cfg):
    res = run_ids(PROM_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in PROM_IDS}, \
        {i: r.summary for i, r in res.items() if r.status != Status.PASS}
    assert res["monitoring.prometheus.targets"].observed.startswith("all ")
    assert res["monitoring.prometheus.scrape_interval"].observed == "15 s"


def test_down_target_is_listed_with_its_error(sandbox, cfg):
    with sandbox.fault("node-target-down"):
        r = run_one("monitoring.prometheus.targets", cfg)
    assert r.status == Status.FAIL
    (down,) = r.observed["down"]
    assert down["instance"].startswith("backend-2") and down["health"] == "down" and down["lastError"]


def test_postgres_down_is_not_a_second_failure_as_a_scrape_target(sandbox, cfg):
    """The target scrapes the database's own address: dependencies.postgres.reachable reports it (issue #11)."""
    with sandbox.fault("postgres-down"):
        r = run_one("monitoring.prometheus.targets", cfg)
    assert r.status == Status.SKIPPED and r.details["blocked_by"] == "dependencies.postgres.reachable", r.summary
    assert r.observed["down"] == [] and list(r.observed["not_judged"].values()) == ["dependencies.postgres.reachable"]


def test_scrape_interval_longer_than_allowed_fails(cfg):
    r = run_one("monitoring.prometheus.scrape_interval", with_(cfg, "monitoring", max_scrape_interval_s=10))
    assert r.status == Status.FAIL and r.observed == "15 s" and r.expected == "<= 10 s"


def test_prometheus_stub_intervals_health_and_targets():
    state = {"targets": PROM_TARGETS, "yaml": PROM_YAML}
    with ServerThread(prometheus_app(state)) as prom:
        cfg = parse_config({"environment": "test",
                            "monitoring": {"prometheus_url": f"http://127.0.0.1:{prom.port}"}}, env={})
        assert run_one("monitoring.prometheus.scrape_interval", cfg).status == Status.PASS
        state["yaml"] = PROM_YAML.replace("scrape_interval: 10s", "scrape_interval: 2m")
        r = run_one("monitoring.prometheus.scrape_interval", cfg)
        assert r.status == Status.WARN and r.details["slow_jobs"] == {"api": "2m"}
        state["yaml"] = PROM_YAML.replace("scrape_interval: 15s", "scrape_interval: 1m")
        r = run_one("monitoring.prometheus.scrape_interval", cfg)
        assert r.status == Status.FAIL and r.observed == "60 s"
        state["yaml"] = "scrape_configs: []\n"  # no global interval: Prometheus' default 1m applies
        assert run_one("monitoring.prometheus.scrape_interval", cfg).observed == "60 s"
        state["targets"] = []
        r = run_one("monitoring.prometheus.targets", cfg)
        assert r.status == Status.FAIL and r.observed == "no active targets"
        state["healthy"] = False
        res = run_ids(PROM_IDS, cfg)
    assert res["monitoring.prometheus.reachable"].status == Status.FAIL
    assert res["monitoring.prometheus.reachable"].observed.startswith("503")
    assert res["monitoring.prometheus.targets"].status == Status.SKIPPED


def test_prometheus_refused_is_an_error():
    cfg = parse_config({"environment": "test",
                        "monitoring": {"prometheus_url": f"http://127.0.0.1:{refused_port()}"}}, env={})
    res = run_ids(PROM_IDS, cfg)
    assert res["monitoring.prometheus.reachable"].status == Status.ERROR
    assert all(res[i].status == Status.SKIPPED for i in PROM_IDS[1:])


@pytest.mark.parametrize("text, seconds", [("15s", 15), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600),
                                           ("2d", 172800)])
def test_prometheus_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5m", "m", "15 s", "1x"])
def test_bad_prometheus_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------- team

@pytest.fixture(scope="session")
def team_cfg(sandbox, cfg):
    """The sandbox's runbooks are served over HTTPS by its own CA, which its config trusts (team.ca_file)."""
    assert cfg.team.ca_file == sandbox.ca_file
    return cfg


def test_sandbox_team_passes(team_cfg):
    res = run_ids(TEAM_IDS, team_cfg)
    assert res["team.runbooks.reachable"].status == Status.PASS, res["team.runbooks.reachable"].summary
    assert res["team.runbooks.reachable"].observed == {"deployment": "200", "rollback": "200"}
    assert res["team.contacts.complete"].status == Status.PASS
    assert res["team.contacts.complete"].observed == "all 8 roles complete"


def test_missing_runbook_fails(sandbox, team_cfg):
    with sandbox.fault("runbook-missing"):
        r = run_one("team.runbooks.reachable", team_cfg)
    assert r.status == Status.FAIL and r.observed == {"deployment": "200", "rollback": "404"}


def test_runbook_on_an_untrusted_or_dead_host_fails(cfg):
    r = run_one("team.runbooks.reachable", with_(cfg, "team", ca_file=None))  # the sandbox CA is not trusted
    assert r.status == Status.FAIL and "CERTIFICATE_VERIFY_FAILED" in r.observed["deployment"]
    r = run_one("team.runbooks.reachable",
                with_(cfg, "team", runbooks={"deployment": f"http://127.0.0.1:{refused_port()}/rb"}))
    assert r.status == Status.FAIL and r.observed["deployment"].startswith("unreachable: ConnectError")


def test_file_runbooks(tmp_path, cfg):
    (tmp_path / "deploy.md").write_text("# Deploy\n1. ...\n")
    (tmp_path / "empty.md").write_text("")
    books = {"deployment": str(tmp_path / "deploy.md"), "rollback": f"file://{tmp_path / 'deploy.md'}"}
    r = run_one("team.runbooks.reachable", with_(cfg, "team", runbooks=books))
    assert r.status == Status.PASS and r.observed["deployment"].startswith("file, ")
    books = {**books, "dr": str(tmp_path / "empty.md"), "oncall": str(tmp_path / "nope.md")}
    r = run_one("team.runbooks.reachable", with_(cfg, "team", runbooks=books))
    assert r.status == Status.FAIL
    assert r.observed["dr"] == "file is empty" and r.observed["oncall"] == "file missing"
    r = run_one("team.runbooks.reachable", with_(cfg, "team", runbooks={}))
    assert r.status == Status.FAIL and r.observed == "no runbooks declared"


def test_incomplete_contacts_are_listed(cfg):
    contacts = [c.model_dump() for c in cfg.team.contacts if c.role != "CTO"]
    contacts[0] = {**contacts[0], "phone": "555-0101"}
    contacts[1] = {**contacts[1], "slack": ""}
    contacts[2] = {**contacts[2], "email": "priya.raman@"}
    contacts[3] = {**contacts[3], "phone": "+1 (415) 555-0104"}  # formatted E.164 is fine
    r = run_one("team.contacts.complete", with_(cfg, "team", contacts=contacts))
    assert r.status == Status.FAIL
    inc = r.observed["incomplete"]
    assert set(inc) == {"CTO", contacts[0]["role"], contacts[1]["role"], contacts[2]["role"]}
    assert inc["CTO"] == ["no contact for this role"]
    assert "is not E.164" in inc[contacts[0]["role"]][0]
    assert "slack handle/channel missing" in inc[contacts[1]["role"]][0]
    assert "is not a valid address" in inc[contacts[2]["role"]][0]
