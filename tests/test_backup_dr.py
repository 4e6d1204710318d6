"""Disaster recovery: RTO/RPO, the rollback script and its rehearsal, the release tag. Against the sandbox's files,
git repository (with a bare `origin`) and S3, plus files written per test. The sandbox's stale rehearsal and
missing release tag against their checks: tests/test_faults.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess

import pytest

from golive.tasks.core import Status
from tests.support.checks import run_dag, with_
from tests.support.restore import cfg, no_gx_on_restored_copies, nothing_left_behind  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_gx_on_restored_copies")  # the RTO reads a restore's time, not its suites

DR_IDS = [
    "backup.recovery.rpo",
    "backup.recovery.rto",
    "backup.rollback.script",
    "backup.rollback.rehearsal",
    "backup.code.release_tag",
]


def test_healthy_sandbox_recovery_facts_pass(cfg):
    res = run_dag(DR_IDS, cfg)
    assert all(r.status == Status.PASS for r in res.values()), {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    assert res["backup.recovery.rpo"].observed.endswith("(newest WAL/incremental: wal/000000010000000000000003)")
    rto = res["backup.recovery.rto"]
    assert rto.details["rollback_minutes"] == 15 and 0 < rto.details["restore_minutes"] < 1
    script = res["backup.rollback.script"].observed
    assert script["syntax"] == "ok" and script["interpreter"] == "/usr/bin/env bash"
    reh = res["backup.rollback.rehearsal"].observed
    assert 1.99 < reh["age_days"] < 2.01 and reh["duration_minutes"] == 9 and reh["script_unchanged_since"] is True
    tag = res["backup.code.release_tag"].observed
    assert tag["tag"] == "v2.4.0" and tag["commits_in_history"] == 3 and tag["shallow"] is False
    assert tag["remote"] == {"origin": tag["commit"]}


def test_rto_counts_the_measured_restore_plus_the_rollback(cfg):
    r = run_dag(["backup.recovery.rto"], with_(cfg, "restore", rollback_minutes=29.999))["backup.recovery.rto"]
    assert r.status == Status.FAIL and r.expected == "RTO < 30 min"
    r = run_dag(["backup.recovery.rto"], with_(cfg, "restore", rto_minutes=10))
    assert r["backup.recovery.rto"].status == Status.FAIL  # 15 min of rollback alone exceeds it


def test_rpo_without_wal_falls_back_to_the_newest_full_backup(cfg):
    r = run_dag(["backup.recovery.rpo"], with_(cfg, "backups", wal_prefix=None))["backup.recovery.rpo"]
    assert r.status == Status.PASS and "full backup (no WAL archived)" in r.observed  # 2 minutes old here
    r = run_dag(["backup.recovery.rpo"], with_(cfg, "restore", rpo_minutes=0.001))["backup.recovery.rpo"]
    assert r.status == Status.FAIL


def test_rehearsal_records_failed_slow_changed_or_unreadable(tmp_path, cfg):
    script = tmp_path / "rollback.sh"
    script.write_text("#!/bin/sh\necho rollback\n")
    script.chmod(0o755)
    sha = hashlib.sha256(script.read_bytes()).hexdigest()
    now = dt.datetime.now(dt.UTC)
    record = tmp_path / "rehearsals.jsonl"

    def run(*entries: dict) -> object:
        record.write_text("".join(json.dumps(e) + "\n" for e in entries))
        c = with_(cfg, "restore", rollback_script=str(script), rehearsal_record=str(record))
        return run_dag(["backup.rollback.rehearsal"], c)["backup.rollback.rehearsal"]

    good = {
        "finished_at": (now - dt.timedelta(days=1)).isoformat(),
        "status": "success",
        "duration_seconds": 300,
        "script_sha256": sha,
    }
    old_bad = {**good, "finished_at": (now - dt.timedelta(days=3)).isoformat(), "status": "failed"}
    assert run(old_bad, good).status == Status.PASS  # JSON lines: the last wins
    r = run(good, old_bad)
    assert r.status == Status.FAIL and r.observed["problems"] == [
        "the last rehearsal did not succeed (status 'failed')"
    ]
    r = run({**good, "duration_seconds": 20 * 60})
    assert r.status == Status.FAIL and r.observed["problems"] == ["the rollback took 20.0 min > 15 min"]
    r = run({**good, "script_sha256": "0" * 64})
    assert r.status == Status.FAIL and r.observed["problems"] == ["the rollback script changed since it was rehearsed"]
    r = run({**good, "finished_at": "last tuesday"})
    assert r.status == Status.FAIL and r.observed.startswith("unreadable rehearsal record: ValueError")
    record.unlink()
    r = run_dag(["backup.rollback.rehearsal"], with_(cfg, "restore", rehearsal_record=str(record)))
    assert r["backup.rollback.rehearsal"].observed == f"no rehearsal record at {record}"


def test_missing_unexecutable_or_broken_rollback_script_fails(tmp_path, cfg):
    def run(path) -> object:
        return run_dag(["backup.rollback.script"], with_(cfg, "restore", rollback_script=str(path)))[
            "backup.rollback.script"
        ]

    assert run(tmp_path / "nope.sh").observed == f"{tmp_path / 'nope.sh'} does not exist"
    plain = tmp_path / "rollback.sh"
    plain.write_text("#!/bin/bash\necho ok\n")
    plain.chmod(0o644)
    r = run(plain)
    assert r.status == Status.FAIL and r.observed["problems"] == ["not executable"]
    plain.chmod(0o755)
    assert run(plain).status == Status.PASS
    plain.write_text("#!/bin/bash\nif true; then\n  echo unfinished\n")
    r = run(plain)
    assert r.status == Status.FAIL and r.observed["problems"][0].startswith("syntax error: ")
    empty = tmp_path / "empty.sh"
    empty.write_text("")
    empty.chmod(0o755)
    assert run(empty).observed["problems"] == ["empty"]
    r = run_dag(["backup.rollback.script"], with_(cfg, "restore", rollback_script=None))["backup.rollback.script"]
    assert r.status == Status.NOT_APPLICABLE


def test_a_shallow_or_diverged_copy_fails_the_release_tag(sandbox, cfg, tmp_path):
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", "--branch", "v2.4.0", f"file://{sandbox.repo}", str(shallow)],
        check=True,
        capture_output=True,
    )
    r = run_dag(["backup.code.release_tag"], with_(cfg, "restore", git_repo=str(shallow)))["backup.code.release_tag"]
    assert r.status == Status.FAIL and r.observed["shallow"] is True
    assert r.observed["problems"] == ["shallow clone: the full history is not available here"]
    r = run_dag(["backup.code.release_tag"], with_(cfg, "restore", git_remote="nowhere"))["backup.code.release_tag"]
    assert r.status == Status.FAIL and r.observed["problems"][0].startswith("remote nowhere not readable: ")
