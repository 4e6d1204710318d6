"""The restore test against the real sandbox: PostgreSQL source, a separate restore server, moto S3 (a subprocess).

Every test runs under `nothing_left_behind`: afterwards no scratch database remains on the restore server and no
pg_restore (or any other stray child process) is running.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from golive.sandbox.tcpproxy import Forwarder
from golive.tasks.core import Status
from golive.tasks.restore.dump import NotADump, parse_header, sniff
from golive.tasks.restore.suites import SuiteOutcome, register_restored_db_suite, unregister_restored_db_suite
from tests.support.checks import assert_no_secrets, run_dag, run_one, with_
from tests.support.restore import (
    cfg,
    no_gx_on_restored_copies,
    nothing_left_behind,
    scratch_databases,
    settled_write_stats,
    source_databases,
)
from tests.support.servers import refused_port

REPO = Path(__file__).resolve().parent.parent
RESTORE_IDS = ["backup.restore.server", "backup.restore.test", "backup.recovery.rto"]
# the restore's mechanics; the two tests about integrity suites register the suites they check themselves
pytestmark = pytest.mark.usefixtures("no_gx_on_restored_copies")
COUNTS = {"users": 500, "merchants": 50, "campaigns": 100, "notifications": 2000}


def throttled_s3(sandbox, rate: float) -> Forwarder:
    """A slow network between golive and S3 (bytes/s per direction), so a restore takes a few seconds."""
    return Forwarder(("127.0.0.2", sandbox.ports["s3"]), rate=rate)


# --------------------------------------------------------------------------- a good backup


def test_fresh_good_backup_restores_and_matches_the_source(sandbox, cfg):
    res = run_dag(RESTORE_IDS, cfg)
    assert set(res) == set(RESTORE_IDS) | {
        "backup.s3.reachable",
        "backup.s3.latest_full",
        "dependencies.postgres.reachable",
    }
    assert all(r.status == Status.PASS for r in res.values()), {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    r = res["backup.restore.test"]
    obs = r.observed
    assert 0 < obs["restore_seconds"] < 30 and obs["dump_bytes"] == len(sandbox.dump) and obs["throughput_mib_s"] > 0
    assert obs["dump"]["key"] == sandbox.backup_key and obs["dump"]["dbname"] == "merchants_prod"
    assert obs["dump"]["format"] == "custom" and obs["dump"]["sse"] == "AES256"
    assert obs["scratch_database"].startswith("golive_restore_") and obs["scratch_dropped"] is True
    rows = obs["rows"]
    assert set(rows) == set(cfg.postgres.required_tables)
    for table, n in COUNTS.items():
        assert rows[table] == {"source": n, "restored": n, "diff": 0}
    assert all(v["restored"] > 0 and v["diff"] == 0 for v in rows.values())
    assert r.details["pg_restore_exit"] == 0 and r.details["integrity"]["etag_match"] is True
    assert r.details["integrity"]["bytes_read"] == r.details["integrity"]["content_length"] == len(sandbox.dump)
    assert "--no-owner --no-acl --exit-on-error" in r.evidence and "READ ONLY" in r.evidence
    assert "aws s3 cp s3://golive-backups/" in r.evidence
    server = res["backup.restore.server"].observed
    assert server["system_identifier"]["restore"] != server["system_identifier"]["source"]
    assert server["can_create_databases"] is True and server["pg_restore"].startswith("pg_restore (PostgreSQL)")
    rto = res["backup.recovery.rto"]
    assert rto.observed.startswith("15.0 min = restore ") and rto.expected == "RTO < 30 min"
    assert_no_secrets(res, cfg)


def test_the_restore_never_writes_to_the_source(sandbox, cfg):
    sandbox.stop_service("scheduler")  # the sandbox app's scheduler writes a heartbeat: no other writer meanwhile
    try:
        before = settled_write_stats(sandbox)
        r = run_one("backup.restore.test", cfg)
        assert r.status == Status.PASS, r.summary
        assert settled_write_stats(sandbox) == before  # tup_inserted/updated/deleted, n_tup_* of every table
    finally:
        sandbox.start_service("scheduler", wait=True)
    # ...and the measurement does see writes: one row in and out again moves the counters
    with psycopg.connect(
        host="127.0.0.1",
        port=sandbox.ports["postgres"],
        dbname="merchants_prod",
        user="app_user",
        password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"],
        autocommit=True,
    ) as c:
        c.execute(
            "INSERT INTO job_runs (job_name, scheduled_for, started_at, status) "
            "VALUES ('golive_probe', now(), now(), 'success')"
        )
        c.execute("DELETE FROM job_runs WHERE job_name = 'golive_probe'")
    assert settled_write_stats(sandbox) != before


# --------------------------------------------------------------------------- bad backups


def test_three_day_old_backup_fails_and_is_not_restored(sandbox, cfg):
    with sandbox.fault("backup-stale"):
        res = run_dag(RESTORE_IDS, cfg)
    latest = res["backup.s3.latest_full"]
    # the 3-day-old backup was put at the sandbox's start, 3 days + 2 minutes back: it has aged since
    since_start = (dt.datetime.now(dt.UTC) - sandbox.started_at).total_seconds() / 3600
    assert latest.status == Status.FAIL and 72 <= latest.observed["age_hours"] < 72.05 + since_start
    r = res["backup.restore.test"]
    assert r.status == Status.SKIPPED and "backup.s3.latest_full is FAIL" in r.cause
    assert res["backup.recovery.rto"].status == Status.SKIPPED


def test_unencrypted_newest_backup_fails_encryption(sandbox, cfg):
    with sandbox.fault("backup-unencrypted"):
        res = run_dag(["backup.s3.encrypted", "backup.restore.test"], cfg)
    enc = res["backup.s3.encrypted"]
    assert enc.status == Status.FAIL and enc.observed["ServerSideEncryption"] == "none"
    assert res["backup.restore.test"].observed["dump"]["sse"] == "none"  # the restore reads what it restored


def test_no_wal_for_8_hours_fails_wal_freshness_and_the_rpo(sandbox, cfg):
    with sandbox.fault("wal-stale"):
        res = run_dag(["backup.s3.wal_fresh", "backup.recovery.rpo"], cfg)
    assert res["backup.s3.wal_fresh"].status == Status.FAIL
    assert 8 <= res["backup.s3.wal_fresh"].observed["age_hours"] < 8.1
    rpo = res["backup.recovery.rpo"]
    assert rpo.status == Status.FAIL and rpo.observed.startswith("48") and rpo.expected == "RPO < 60 min"


def test_truncated_dump_fails_with_pg_restore_evidence_and_leaves_nothing(sandbox, cfg):
    with sandbox.fault("backup-truncated"):
        r = run_one("backup.restore.test", cfg)
    assert r.status == Status.FAIL
    assert r.observed["problem"].startswith("pg_restore exited 1")
    assert "could not read from input file: end of file" in r.observed["problem"]
    assert r.observed["dump_bytes"] == len(sandbox.dump) * 6 // 10 and r.observed["scratch_dropped"] is True
    assert "end of file" in r.details["pg_restore_stderr"]


def test_object_that_is_not_a_dump_fails_before_anything_is_restored(sandbox, cfg):
    with sandbox.fault("backup-not-a-dump"):
        r = run_one("backup.restore.test", cfg)
    assert r.status == Status.FAIL
    assert (
        r.observed["problem"] == "not a pg_dump custom-format archive: gzip-compressed data (a gzipped plain-SQL dump?)"
    )
    assert "nothing was restored" in r.evidence


def test_dump_of_the_wrong_database_is_refused_or_fails_the_row_counts(sandbox, cfg):
    with sandbox.fault("backup-wrong-db"):
        r = run_one("backup.restore.test", cfg)
        assert r.status == Status.FAIL and r.observed["dump"]["dbname"] == "merchants_staging"
        assert (
            r.observed["problem"] == "a dump of database 'merchants_staging', not 'merchants_prod': nothing was "
            "restored"
        )
        # without the header check the restore runs, and the data gives it away
        r = run_one("backup.restore.test", with_(cfg, "restore", check_dump_dbname=False))
    assert r.status == Status.FAIL and r.observed["scratch_dropped"] is True
    assert r.observed["rows"]["users"] == {"source": 500, "restored": 10, "diff": 490}
    assert r.observed["rows"]["notifications"] == {"source": 2000, "restored": "missing"}
    assert "users: 10 restored vs 500 in the source (allowed difference 5)" in r.observed["problems"]


def test_empty_bucket_fails_and_nothing_is_restored(sandbox, cfg):
    with sandbox.fault("backup-bucket-empty"):
        res = run_dag(RESTORE_IDS + ["backup.recovery.rpo"], cfg)
        direct = run_one("backup.restore.test", cfg)
    assert res["backup.s3.reachable"].status == Status.PASS
    assert res["backup.s3.latest_full"].status == Status.FAIL
    assert res["backup.restore.test"].status == Status.SKIPPED
    assert res["backup.recovery.rpo"].status == Status.FAIL
    assert direct.status == Status.FAIL and direct.observed.startswith("no backup found under s3://golive-backups")


def test_s3_permission_error_is_one_failure_with_the_s3_answer(sandbox, cfg):
    with sandbox.fault("s3-forbidden"):
        res = run_dag(["backup.s3.encrypted", "backup.restore.test"], cfg)
        r = run_one("backup.restore.test", cfg)  # run alone, it still says why itself
    reach = res["backup.s3.reachable"]  # listing is allowed, reading is not: one failure, the readers skip
    assert reach.status == Status.FAIL and "answered 403" in reach.observed and sandbox.s3_reader[0] in reach.observed
    assert res["backup.s3.encrypted"].status == res["backup.restore.test"].status == Status.SKIPPED
    assert r.status == Status.ERROR
    assert f"GetObject s3://golive-backups/{sandbox.backup_key} answered 403 AccessDenied" in r.cause
    assert sandbox.s3_reader[0] in r.cause and "no scratch database was created" in r.cause
    assert_no_secrets(res, cfg)


# --------------------------------------------------------------------------- the restore server


def test_restore_server_equal_to_the_source_is_refused(sandbox, cfg):
    pg = cfg.postgres
    same = with_(cfg, "restore", host=pg.host, port=pg.port, user="postgres", password=sandbox.superuser_password)
    before = source_databases(sandbox)
    res = run_dag(RESTORE_IDS, same)
    server = res["backup.restore.server"]
    assert server.status == Status.FAIL and server.observed.startswith("REFUSED: the restore server 127.0.0.1:")
    assert "is the production database server (same host and port)" in server.observed
    assert res["backup.restore.test"].status == Status.SKIPPED
    direct = run_one("backup.restore.test", same)  # the restore itself refuses too, without the DAG
    assert direct.status == Status.FAIL and direct.observed.startswith("REFUSED, nothing restored")
    assert source_databases(sandbox) == before


def test_restore_server_that_is_an_alias_of_the_source_is_refused_by_system_identifier(sandbox, cfg):
    before = source_databases(sandbox)
    with sandbox.fault("restore-is-source"):
        res = run_dag(RESTORE_IDS, cfg)
        direct = run_one("backup.restore.test", cfg)
        assert source_databases(sandbox) == before
    server = res["backup.restore.server"]
    assert server.status == Status.FAIL
    ids = server.observed["system_identifier"]
    assert ids["restore"] == ids["source"] and "same system_identifier" in server.observed["refused"]
    assert res["backup.restore.test"].status == Status.SKIPPED
    assert direct.status == Status.FAIL and "same system_identifier" in direct.observed


def test_unreachable_restore_server_is_an_error(cfg):
    res = run_dag(RESTORE_IDS, with_(cfg, "restore", port=refused_port()))
    assert res["backup.restore.server"].status == Status.ERROR
    assert "refused" in res["backup.restore.server"].cause.lower()
    assert res["backup.restore.test"].status == Status.SKIPPED


# --------------------------------------------------------------------------- time bounds and cleanup


def test_restore_slower_than_the_rto_is_killed_and_fails(sandbox, cfg):
    with throttled_s3(sandbox, rate=120_000) as fwd:
        slow = with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{fwd.port}")
        t0 = time.monotonic()
        r = run_one("backup.restore.test", with_(slow, "restore", restore_timeout_minutes=0.02))
    assert r.status == Status.FAIL and time.monotonic() - t0 < 6
    assert re.fullmatch(
        r"the restore did not finish within 0.02 min \(RTO 30 min\): pg_restore killed after "
        r"\d\.\d s, [\d,]+ of [\d,]+ bytes streamed",
        r.observed["problem"],
    ), r.observed["problem"]
    assert r.observed["scratch_dropped"] is True and 0 < r.observed["dump_bytes"] < len(sandbox.dump)


def test_restore_cut_by_the_check_budget_is_an_error_and_cleans_up(sandbox, cfg):
    with throttled_s3(sandbox, rate=120_000) as fwd:
        slow = with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{fwd.port}")
        t0 = time.monotonic()
        r = run_one("backup.restore.test", slow, timeout=2.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and took < 3.5, (r.cause, took)
    assert "time budget ran out" in r.cause or "timed out after 2.5s" in r.cause, r.cause


CHILD = """
import os, sys, threading, time
sys.path.insert(0, {repo!r})
import psycopg
from golive.flows.config import load_config
from golive.sandbox.tcpproxy import Forwarder
from tests.support.checks import run_one, with_
cfg = load_config({config!r})
fwd = Forwarder(("127.0.0.2", {s3_port}), rate=60_000).start()
slow = with_(cfg, "backups", endpoint_url=f"http://127.0.0.1:{{fwd.port}}")
threading.Thread(target=run_one, args=("backup.restore.test", slow), daemon=True).start()
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with psycopg.connect(host="127.0.0.1", port={port}, dbname="postgres", user="golive_restore",
                         password=os.environ["GOLIVE_SANDBOX_RESTORE_PASSWORD"]) as c:
        names = [r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'golive_restore_%'")]
        active = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'golive-restore' "
                           "AND datname LIKE 'golive_restore_%'").fetchone()[0]
    if names and active:
        print("restoring into", names[0], flush=True)
        sys.exit(0)          # the interpreter exits while pg_restore runs in the check's thread
    time.sleep(0.05)
sys.exit("the restore never started")
"""


def test_interpreter_exit_mid_restore_kills_pg_restore_and_drops_the_scratch_database(sandbox, cfg):
    code = CHILD.format(
        repo=str(REPO),
        config=str(sandbox.config_path),
        s3_port=sandbox.ports["s3"],
        port=sandbox.ports["postgres_restore"],
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, **sandbox.env}
    )
    assert out.returncode == 0 and out.stdout.startswith("restoring into golive_restore_"), out.stderr[-2000:]
    assert scratch_databases(sandbox) == [], out.stderr[-2000:]  # dropped at exit; pg_restore died with its thread


def test_stale_scratch_databases_of_killed_runs_are_dropped_first(sandbox, cfg):
    stale = "golive_restore_20200101t000000z_abcdef"
    with psycopg.connect(
        host="127.0.0.1",
        port=sandbox.ports["postgres_restore"],
        dbname="postgres",
        user="golive_restore",
        password=sandbox.env["GOLIVE_SANDBOX_RESTORE_PASSWORD"],
        autocommit=True,
    ) as c:
        c.execute(f"CREATE DATABASE {stale}")
    r = run_one("backup.restore.test", cfg)
    assert r.status == Status.PASS and r.details["stale_scratch_dropped"] == [stale]


def test_scratch_database_is_dropped_while_a_session_the_restore_user_may_not_end_is_leaving(sandbox, cfg):
    """DROP DATABASE ... WITH (FORCE) refuses as a whole when a session in the scratch database belongs to a role the
    restore user may not signal: after a restore that is an autovacuum worker analysing the new tables (seen in CI:
    "permission denied to terminate process", the scratch database left behind). Here a superuser session stands in
    for it, leaving after a second: the cleanup retries a plain DROP within its budget and the database is gone; a
    session that never leaves is an honest error naming the attempts."""
    import threading

    from golive.sandbox.parts import postgres as sbpg
    from golive.sandbox.parts.postgres import restore_dirs as _restore_dirs
    from golive.tasks.restore.scratch import drop_scratch

    sock = _restore_dirs(sandbox.base_dir)[1]
    t = cfg.restore
    for leaves_after in (1.0, None):
        name = f"golive_restore_20261202t000000z_{'a' if leaves_after else 'b'}bcdef"
        with psycopg.connect(
            host="127.0.0.1",
            port=sandbox.ports["postgres_restore"],
            dbname="postgres",
            user="golive_restore",
            password=sandbox.env["GOLIVE_SANDBOX_RESTORE_PASSWORD"],
            autocommit=True,
        ) as c:
            c.execute(f"CREATE DATABASE {name}")
        other = psycopg.connect(
            sbpg.admin_conninfo(sock, sandbox.ports["postgres_restore"], dbname=name), autocommit=True
        )
        other.execute("SELECT 1")
        timer = threading.Timer(leaves_after, other.close) if leaves_after else None
        if timer:
            timer.start()
        try:
            why = drop_scratch(t, name, budget=4.0 if leaves_after else 3.0)
        finally:
            if timer:
                timer.join()
            other.close()
        if leaves_after:
            assert why is None, why
            assert name not in sandbox.restore_databases()
        else:
            assert why and "attempts in 3s" in why, why
            assert drop_scratch(t, name) is None  # the session has left now
            assert name not in sandbox.restore_databases()


def test_rows_written_since_the_backup_are_within_the_tolerance(sandbox, cfg):
    with psycopg.connect(
        host="127.0.0.1",
        port=sandbox.ports["postgres"],
        dbname="merchants_prod",
        user="app_user",
        password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"],
        autocommit=True,
    ) as c:
        c.execute(
            "INSERT INTO job_runs (job_name, scheduled_for, started_at, status) "
            "VALUES ('golive_probe', now(), now(), 'success')"
        )
        try:
            ok = run_one("backup.restore.test", cfg)
            strict = run_one("backup.restore.test", with_(cfg, "restore", row_tolerance_pct=0))
        finally:
            c.execute("DELETE FROM job_runs WHERE job_name = 'golive_probe'")
    assert ok.status == Status.PASS and ok.observed["rows"]["job_runs"]["diff"] == 1
    assert strict.status == Status.FAIL
    n = ok.observed["rows"]["job_runs"]["restored"]
    assert strict.observed["problems"] == [
        f"job_runs: {n:,} restored vs {n + 1:,} in the source (allowed difference 0)"
    ]


def test_parallel_restore_spools_to_a_file_and_removes_it(sandbox, cfg):
    spool = Path(tempfile.mkdtemp(prefix="golive-spool-"))
    try:
        r = run_one("backup.restore.test", with_(cfg, "restore", jobs=2, spool_dir=str(spool)))
        assert r.status == Status.PASS, r.summary
        assert "--jobs=2" in r.evidence and r.observed["download_seconds"] >= 0
        assert list(spool.iterdir()) == []
    finally:
        spool.rmdir()


def test_integrity_suites_run_on_the_restored_copy_before_it_is_dropped(sandbox, cfg):
    seen = []

    def users_have_emails(db, ctx):
        with psycopg.connect(db.conninfo()) as c:
            bad = c.execute("SELECT count(*) FROM users WHERE email NOT LIKE '%@%'").fetchone()[0]
        seen.append(db.dbname)
        return SuiteOutcome(Status.PASS if bad == 0 else Status.FAIL, f"{bad} users without a valid email")

    register_restored_db_suite("emails", users_have_emails)
    try:
        r = run_one("backup.restore.test", cfg)
        register_restored_db_suite("broken", lambda db, ctx: 1 / 0)
        bad = run_one("backup.restore.test", cfg)
    finally:
        unregister_restored_db_suite("emails")
        unregister_restored_db_suite("broken")
    assert r.status == Status.PASS
    assert r.observed["integrity_suites"]["emails"] == "PASS: 0 users without a valid email"
    assert seen[0] == r.observed["scratch_database"]
    assert bad.status == Status.FAIL
    assert "integrity suite broken: ERROR ZeroDivisionError: division by zero" in bad.observed["problems"]


def test_the_data_integrity_suites_validate_the_restored_copy(sandbox, cfg, tmp_path):
    """The Great Expectations files production is validated with also validate the restored copy (flows register
    them); a blocking expectation that the copy fails makes the restore test FAIL, naming it."""
    from golive.expectations.restored import NAME
    from golive.expectations.suites import SUITES_DIR
    from golive.flows.catalog import all_checks

    all_checks(cfg)  # registers the suites, as every readiness run does
    try:
        good = run_one("backup.restore.test", cfg)
        suites = tmp_path / "suites"
        suites.mkdir()
        for f in SUITES_DIR.glob("*.json"):
            (suites / f.name).write_text(f.read_text())
        users = json.loads((suites / "users.json").read_text())
        users["expectations"].append(
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1, "max_value": 10},
                "meta": {
                    "golive": {
                        "fact": "at_most_ten",
                        "title": "users has at most 10 rows",
                        "seed": ["3.1 Data Quality Checks"],
                    }
                },
            }
        )
        (suites / "users.json").write_text(json.dumps(users))
        strict = cfg.model_copy(update={"postgres": cfg.postgres.model_copy(update={"suites_dir": str(suites)})})
        bad = run_one("backup.restore.test", strict)
    finally:
        unregister_restored_db_suite(NAME)
    assert good.status == Status.PASS, good.summary
    summary = good.observed["integrity_suites"][NAME]
    assert re.match(r"PASS: \d{3} expectations of 11 suites on the restored copy", summary), summary
    assert bad.status == Status.FAIL
    assert any("data.users.at_most_ten FAIL" in p for p in bad.observed["problems"]), bad.observed["problems"]
    assert_no_secrets({"r": good, "b": bad}, cfg)


# --------------------------------------------------------------------------- the archive header


def test_dump_header_and_what_non_dumps_look_like(sandbox):
    h = parse_header(sandbox.dump[:4096])
    assert (h.format, h.compression, h.dbname, h.server_version, h.pg_dump_version) == (
        "custom",
        "gzip",
        "merchants_prod",
        "18.6",
        "18.6",
    )
    assert h.archive_version.startswith("1.") and h.created[:2] == "20"
    with pytest.raises(NotADump, match="cut inside its header"):
        parse_header(sandbox.dump[:40])
    cases = {
        b"": "an empty object (0 bytes)",
        gzip.compress(b"select 1"): "gzip-compressed data (a gzipped plain-SQL dump?)",
        b"--\n-- PostgreSQL database dump\n": "a plain-text SQL dump (psql restores those; pg_restore needs "
        "pg_dump -Fc)",
        b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>": "an HTML/XML document (an error page "
        "stored as the backup?)",
        b"\x00\x01\x02\x03\xff\xfe\xfd\xfc": "unknown binary data (first bytes 00010203fffefdfc)",
        b"x" * 257 + b"ustar\x0000": "a tar archive (pg_dump -Ft? golive streams custom-format -Fc archives)",
    }
    for data, what in cases.items():
        assert sniff(data) == what, data[:20]
        with pytest.raises(NotADump):
            parse_header(data)


def test_restore_config_is_validated(cfg):
    from golive.flows.config import ConfigError, parse_config

    base = json.loads(json.dumps({"environment": "x", "restore": {"host": "h", "user": "u"}}))
    assert parse_config(base, env={}).restore.restore_limit_s == 1800
    for bad, msg in (
        (({"rto_minutes": 600}), "must be <= 239"),
        ({"scratch_prefix": "Bad-Prefix"}, "should match"),
        ({"jobs": 0}, "greater than or equal to 1"),
        ({"restore_timeout_minutes": 0}, "greater than 0"),
    ):
        with pytest.raises(ConfigError, match=msg):
            parse_config({**base, "restore": {**base["restore"], **bad}}, env={})
