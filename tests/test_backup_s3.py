"""Backups in S3 (section 8): the newest full backup (age, size, encryption) and WAL; then beyond the newest object:
location, retention and lifecycle, schedule, failure alert, configuration backups, bucket-enforced encryption.
Against the sandbox's moto server (a subprocess). The sandbox's backup faults against their checks:
tests/test_faults.py."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from golive.sandbox.parts import s3 as sandbox_s3
from golive.tasks.core import Status
from tests.support.checks import as_json, assert_no_secrets, run_dag, run_ids, run_one, with_
from tests.support.restore import cfg, nothing_left_behind  # noqa: F401
from tests.support.servers import hung_server, refused_port

S3_IDS = [
    "backup.s3.reachable",
    "backup.s3.latest_full",
    "backup.s3.size",
    "backup.s3.encrypted",
    "backup.s3.wal_fresh",
]
IDS = [
    "backup.s3.off_server",
    "backup.s3.retention",
    "backup.automation.schedule",
    "backup.automation.failure_alert",
    "backup.s3.config_files",
    "backup.s3.encrypted",
]


# --------------------------------------------------------------------------- the newest backup


def test_sandbox_newest_backup_and_wal_pass(cfg):
    res = run_ids(S3_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in S3_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    full = res["backup.s3.latest_full"].observed
    assert full["key"].startswith("backups/merchants_prod-") and full["age_hours"] < 1
    assert res["backup.s3.encrypted"].observed["ServerSideEncryption"] == "AES256"
    assert res["backup.s3.encrypted"].observed["bucket_default_encryption"] == "AES256"
    assert res["backup.s3.wal_fresh"].observed["key"] == "wal/000000010000000000000003"
    assert "aws s3api" in res["backup.s3.latest_full"].evidence
    assert_no_secrets(res, cfg)


def test_unencrypted_newest_backup_fails_encryption(sandbox, cfg):
    with sandbox.fault("backup-unencrypted"):
        res = run_ids(["backup.s3.reachable", "backup.s3.latest_full", "backup.s3.encrypted"], cfg)
    r = res["backup.s3.encrypted"]
    assert r.status == Status.FAIL and r.observed["ServerSideEncryption"] == "none"
    assert r.observed["key"] == res["backup.s3.latest_full"].observed["key"] != sandbox.backup_key
    assert run_one("backup.s3.encrypted", cfg).status == Status.PASS  # repaired: the encrypted dump is newest again


def test_no_wal_prefix_is_not_applicable(cfg):
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
        r = run_one("backup.s3.reachable", with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{port}"), timeout=1.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and "time" in r.cause.lower() and took < 1.5 + 1.0


# --------------------------------------------------------------------------- beyond the newest object


def test_healthy_sandbox_backups_pass_with_their_evidence(sandbox, cfg):
    res = run_dag(IDS, cfg)
    assert all(r.status == Status.PASS for r in res.values()), {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    loc = res["backup.s3.off_server"].observed
    assert loc["endpoint_addresses"] == ["127.0.0.2"] and loc["database_addresses"] == ["127.0.0.1"]
    ret = res["backup.s3.retention"].observed
    since_start = (dt.datetime.now(dt.UTC) - sandbox.started_at).total_seconds() / 86400
    assert ret["backups"] == 11 and 30 <= ret["oldest"]["age_days"] < 30.01 + since_start  # seeded 30 days old
    assert "expire-backups: prefix 'backups/', expires after 35 days" in ret["lifecycle"]
    sched = res["backup.automation.schedule"].observed
    assert sched["backups_in_window"] == 7 and 23.9 < sched["largest_gap_hours"] <= 24.01
    assert list(res["backup.automation.failure_alert"].observed) == ["BackupFailed"]
    files = res["backup.s3.config_files"].observed
    assert set(files) == {".env.production", "nginx.conf", "database.yml"}
    assert all(f["sse"] == "AES256" and f["age_hours"] < 1 for f in files.values())
    assert "contents are never downloaded" in res["backup.s3.config_files"].evidence
    blob = as_json(res)
    assert sandbox_s3.CONFIG_MARKER not in blob  # the configuration files' contents are never read into a report
    assert_no_secrets(res, cfg)


def test_backup_store_on_the_database_server_fails(cfg):
    on_db = with_(cfg, "postgres", host="127.0.0.2")  # as if the database server were where the bucket lives
    r = run_dag(["backup.s3.off_server"], on_db)["backup.s3.off_server"]
    assert r.status == Status.FAIL and r.observed["shared_addresses"] == ["127.0.0.2"]
    aws = with_(cfg, "backups", endpoint_url=None)  # AWS itself: off-server by construction (not contacted)
    from golive.tasks.backups import s3_off_server
    from golive.tasks.core import RunContext

    obs = s3_off_server(aws.backups, RunContext(aws), postgres=aws.postgres)
    assert obs.status == Status.PASS and obs.observed == {"endpoint": "AWS S3 (us-east-1)", "transport": "https"}


def test_short_history_fails_retention(cfg):
    r = run_dag(["backup.s3.retention"], with_(cfg, "backups", retention_days=45))["backup.s3.retention"]
    assert r.status == Status.FAIL and "the oldest backup is 30.0 days old" in r.observed["problems"][0]
    assert any("expires after 35 days (covers backups/)" in p for p in r.observed["problems"])


def _daily_backups(sandbox, prefix: str, count: int) -> None:
    """`count` daily backups under `prefix`, the newest two hours old (as a nightly job kept by `retention=count`)."""
    import datetime as dt

    client = sandbox.s3_client()
    for d in range(count):
        with sandbox.s3_clock(dt.timedelta(days=d, hours=2)):
            client.put_object(
                Bucket=sandbox_s3.BUCKET, Key=f"{prefix}day-{d:02d}.dump", Body=b"PGDMP", ServerSideEncryption="AES256"
            )


@pytest.mark.parametrize("count, status", [(30, Status.PASS), (31, Status.PASS), (29, Status.FAIL)])
def test_retention_counts_restore_points_at_its_own_boundary(sandbox, cfg, count, status):
    """30 daily backups kept are 30 days of history although the oldest is 29.1 days old; 29 are not."""
    prefix = f"retention-{count}/"
    _daily_backups(sandbox, prefix, count)
    r = run_dag(["backup.s3.retention"], with_(cfg, "backups", prefix=prefix))["backup.s3.retention"]
    assert r.status == status, r.summary
    assert r.observed["backups"] == count and 23.9 < r.observed["interval_hours"] < 24.1
    assert r.observed["rule"].startswith(f"oldest {count - 1 + 2 / 24:.2f} days + one backup interval")


def test_a_lifecycle_rule_expiring_at_exactly_the_retention_passes(sandbox, cfg):
    client = sandbox.s3_client()
    try:
        sandbox_s3.set_lifecycle(client, backup_days=30)
        r = run_dag(["backup.s3.retention"], cfg)["backup.s3.retention"]
        assert r.status == Status.PASS, r.summary
        sandbox_s3.set_lifecycle(client, backup_days=29)
        r = run_dag(["backup.s3.retention"], cfg)["backup.s3.retention"]
        assert r.status == Status.FAIL and "expires after 29 days" in r.observed["problems"][0]
    finally:
        sandbox_s3.set_lifecycle(client)


def test_missed_backups_fail_the_schedule_and_off_window_backups_warn(sandbox, cfg):
    with sandbox.fault("backup-stale"):
        r = run_dag(["backup.automation.schedule"], cfg)["backup.automation.schedule"]
    assert r.status == Status.FAIL and 72 <= r.observed["largest_gap_hours"] < 72.2
    newest_hour = int(r.observed["times_utc"][-1][6:8])
    window = f"{(newest_hour + 2) % 24:02d}:00-{(newest_hour + 3) % 24:02d}:00"  # an hour no backup was taken in
    r = run_dag(["backup.automation.schedule"], with_(cfg, "backups", backup_window_utc=window))
    r = r["backup.automation.schedule"]
    assert r.status == Status.WARN and len(r.observed["outside_window"]) == 7 and window in r.expected


def test_a_failure_alert_pattern_no_rule_matches_fails(cfg):
    r = run_dag(["backup.automation.failure_alert"], with_(cfg, "backups", failure_alert_pattern="^PgBackRest"))
    assert r["backup.automation.failure_alert"].status == Status.FAIL


def test_stale_or_undeclared_configuration_backup(cfg):
    r = run_dag(["backup.s3.config_files"], with_(cfg, "backups", config_max_age_hours=1 / 3600 / 10))
    assert r["backup.s3.config_files"].status == Status.FAIL
    r = run_dag(["backup.s3.config_files"], with_(cfg, "backups", config_prefix=None))["backup.s3.config_files"]
    assert r.status == Status.NOT_APPLICABLE and "config_prefix" in r.cause


def test_bucket_that_does_not_enforce_encryption_fails_even_for_an_encrypted_object(sandbox, cfg):
    client = sandbox.s3_client()
    client.delete_bucket_encryption(Bucket=sandbox_s3.BUCKET)
    try:
        r = run_dag(["backup.s3.encrypted"], cfg)["backup.s3.encrypted"]
        assert r.status == Status.FAIL and r.observed["ServerSideEncryption"] == "AES256"
        assert r.observed["bucket_default_encryption"] == "none"
        assert r.observed["bucket_policy_denies_unencrypted_puts"] is False
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyUnencrypted",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{sandbox_s3.BUCKET}/*",
                    "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
                }
            ],
        }
        client.put_bucket_policy(Bucket=sandbox_s3.BUCKET, Policy=json.dumps(policy))
        try:
            r = run_dag(["backup.s3.encrypted"], cfg)["backup.s3.encrypted"]
        finally:
            client.delete_bucket_policy(Bucket=sandbox_s3.BUCKET)
        assert r.status == Status.PASS and r.observed["bucket_policy_denies_unencrypted_puts"] is True
        r = run_dag(["backup.s3.encrypted"], with_(cfg, "backups", require_bucket_encryption=False))
        assert r["backup.s3.encrypted"].status == Status.PASS
    finally:
        sandbox_s3.set_default_encryption(client)
