"""Nightly rehearsal: "what changed since last night", against a real Prefect server and the real sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from golive.flows import rehearsal
from golive.flows.config import GoliveConfig, parse_config
from golive.flows.report import Verdict, build_report
from golive.tasks.core import CheckResult, Severity, Status
from tests.support.flows import artifact, flow_run_logs, run_flow
from tests.support.servers import WEBHOOK_SECRET_PATH, Receiver, hung_server, refused_port

WEBHOOK_ENV = "GOLIVE_TEST_REHEARSAL_WEBHOOK"
SECTIONS = ["dependencies"]  # the fault is there; the whole catalog takes ~13 s a run on 2 busy cores
T0 = datetime(2025, 12, 30, 2, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def result(
    cid: str, status: Status, duration: float = 0.1, severity: Severity = Severity.BLOCKING, summary: str = ""
) -> CheckResult:
    return CheckResult(
        id=cid,
        title=cid,
        section=cid.split(".")[0],
        severity=severity,
        seed=["9.1 Team Briefing"],
        status=status,
        observed=summary or status.value,
        expected="ok",
        evidence="test",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=duration),
        duration_s=duration,
    )


def report_of(*results: CheckResult, run_id: str = "run-2", started: datetime = T0):
    return build_report(list(results), environment="nightly", mode="rehearsal", started_at=started, flow_run_id=run_id)


def env_config(sandbox, tmp_path: Path, environment: str, notify: dict | None = None) -> Path:
    """The sandbox's config under another environment name (its own artifact keys), with a `notify` block.
    Sections this config model does not know yet (the sandbox may be ahead of it) are left out."""
    data = yaml.safe_load(Path(sandbox.config_path).read_text())
    data = {k: v for k, v in data.items() if k in GoliveConfig.model_fields}
    data.update(environment=environment, **({"notify": notify} if notify else {}))
    # these tests are about the diff, not latency: a busy 2-core machine must not turn PING < 5 ms into a "change"
    data["redis"].update(max_ping_ms=200, max_replication_lag_ms=2000)
    path = tmp_path / f"{environment}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def notify_block(timeout_s: float = 5) -> dict:
    return {"webhook_url": f"${{{WEBHOOK_ENV}}}", "timeout_s": timeout_s}  # a secret: from the environment


def section_of(markdown: str) -> str:
    start = markdown.index("## What changed since the last rehearsal")
    end = markdown.find("\n## ", start + 5)
    return markdown[start : end if end > 0 else None]


# --------------------------------------------------------------------------- the diff, without Prefect


def test_diff_classifies_every_change():
    before = rehearsal.snapshot_of(
        report_of(
            result("dependencies.redis.memory", Status.PASS),
            result("backup.restore.test", Status.PASS, 10.0),
            result("team.runbooks.reachable", Status.FAIL),
            result("team.contacts.complete", Status.ERROR),
            result("security.headers.hsts", Status.PASS),
            result("data.rows.counts", Status.NOT_APPLICABLE),
            result("team.pager.legacy", Status.PASS),
            run_id="run-1",
            started=T0 - timedelta(days=1),
        )
    )
    now = report_of(
        result("dependencies.redis.memory", Status.FAIL, summary="noeviction"),
        result("backup.restore.test", Status.PASS, 16.0),  # +60 %, +6 s: slower
        result("team.runbooks.reachable", Status.PASS),
        result("team.contacts.complete", Status.FAIL),
        result("security.headers.hsts", Status.WARN),
        result("data.rows.counts", Status.SKIPPED),
        result("team.oncall.current", Status.PASS),
    )
    d = rehearsal.diff(now, before)
    assert sorted(c.id for c in d.new_failures) == ["data.rows.counts", "dependencies.redis.memory"]
    assert [c.id for c in d.fixed] == ["team.runbooks.reachable"]
    assert [(c.id, c.before, c.after) for c in d.still_failing] == [
        ("team.contacts.complete", Status.ERROR, Status.FAIL)
    ]
    assert [(c.id, c.before, c.after) for c in d.other_changes] == [("security.headers.hsts", Status.PASS, Status.WARN)]
    assert [c.id for c in d.added] == ["team.oncall.current"]
    assert [c.id for c in d.removed] == ["team.pager.legacy"]
    assert [(s.id, s.before_s, s.after_s) for s in d.slower] == [("backup.restore.test", 10.0, 16.0)]
    assert d.previous_verdict == Verdict.NO_GO and d.verdict == Verdict.NO_GO and d.changed
    md = rehearsal.to_markdown(d)
    assert "**❌ New failures (2)**" in md and "`dependencies.redis.memory` PASS → FAIL: observed noeviction" in md
    assert "**✅ Fixed (1)**" in md and "**🐢 Slower (1)**" in md and "10.0 s → 16.0 s (+60 %)" in md
    assert md.index("New failures") < md.index("Fixed") < md.index("Still failing")


def test_slower_threshold_is_configurable_and_needs_both_factor_and_seconds():
    def slower(before_s, after_s, **kw):
        prev = rehearsal.snapshot_of(report_of(result("backup.restore.test", Status.PASS, before_s), run_id="a"))
        return [
            s.id
            for s in rehearsal.diff(report_of(result("backup.restore.test", Status.PASS, after_s)), prev, **kw).slower
        ]

    assert slower(10.0, 16.0) == ["backup.restore.test"]
    assert slower(10.0, 14.0) == []  # +40 %: not > 50 %
    assert slower(0.2, 0.9) == []  # +350 % but only 0.7 s: noise
    assert slower(0.2, 1.5) == ["backup.restore.test"]
    assert slower(10.0, 14.0, slow_factor=1.2) == ["backup.restore.test"]
    assert slower(10.0, 16.0, slow_min_seconds=10) == []
    # a check that did not run (skipped, not applicable) has no duration to compare
    prev = rehearsal.snapshot_of(report_of(result("backup.restore.test", Status.SKIPPED, 0.0), run_id="a"))
    assert rehearsal.diff(report_of(result("backup.restore.test", Status.PASS, 30.0)), prev).slower == []


def test_first_night_and_nothing_changed_say_so():
    now = report_of(result("dependencies.redis.memory", Status.PASS))
    first = rehearsal.diff(now, None)
    assert first.first and first.changed
    assert "No previous rehearsal of `nightly` was found" in rehearsal.to_markdown(first)
    assert "first rehearsal" in rehearsal.to_slack(first)["text"]
    same = rehearsal.diff(
        now, rehearsal.snapshot_of(report_of(result("dependencies.redis.memory", Status.PASS), run_id="run-1"))
    )
    assert not same.changed
    assert "No status changed and no check got slower" in rehearsal.to_markdown(same)


def test_partial_previous_run_compares_only_shared_sections():
    prev = rehearsal.snapshot_of(report_of(result("dependencies.redis.memory", Status.PASS), run_id="a"))
    d = rehearsal.diff(
        report_of(result("dependencies.redis.memory", Status.PASS), result("team.runbooks.reachable", Status.PASS)),
        prev,
    )
    assert d.added == [] and "covered sections dependencies" in d.scope_note


def test_snapshot_round_trips_and_stays_small():
    results = [result(f"team.check{i:03d}.fact", Status.PASS, 1.23456) for i in range(300)]
    snap = rehearsal.snapshot_of(report_of(*results))
    md = rehearsal.snapshot_markdown(snap)
    assert len(md.encode()) < 30_000  # 300 checks; the artifact limit for events is 1.5 MB
    back = rehearsal.parse_snapshot(md)
    assert back == snap and back.checks["team.check000.fact"] == (Status.PASS, 1.235)
    assert rehearsal.parse_snapshot("# not a snapshot") is None
    assert rehearsal.parse_snapshot('```json\n{"version": 99}\n```') is None


def test_slack_payload_respects_slack_limits():
    prev = rehearsal.snapshot_of(report_of(*(result(f"team.c{i}.fact", Status.PASS) for i in range(40)), run_id="a"))
    now = report_of(*(result(f"team.c{i}.fact", Status.FAIL, summary="<b>&" + "x" * 400) for i in range(40)))
    payload = rehearsal.to_slack(rehearsal.diff(now, prev))
    assert set(payload) == {"text", "blocks"} and "40 new failures" in payload["text"]
    assert len(payload["blocks"]) <= 50
    assert payload["blocks"][0]["type"] == "header" and len(payload["blocks"][0]["text"]["text"]) <= 150
    for b in payload["blocks"]:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= 3000 and "<b>" not in b["text"]["text"]
    assert "… and 30 more" in json.dumps(payload, ensure_ascii=False)


def test_notify_policy_is_validated_without_echoing_the_url():
    from golive.flows.config import ConfigError

    cfg = parse_config(
        {"environment": "nightly", "notify": {"webhook_url": "https://hooks.example.test/x/y/z"}}, env={}
    )
    assert cfg.notify.slow_factor == 1.5 and cfg.notify.slow_min_seconds == 1.0
    assert "https://hooks.example.test/x/y/z" in cfg.secrets()
    with pytest.raises(ConfigError) as e:
        parse_config({"environment": "nightly", "notify": {"webhook_url": "ftp://secret-host/TOKEN123"}}, env={})
    assert "notify.webhook_url" in str(e.value) and "TOKEN123" not in str(e.value)


# --------------------------------------------------------------------------- the flow on a real Prefect server


def test_rehearsals_report_new_failure_then_fixed_and_post_to_the_webhook(sandbox, prefect_api, tmp_path, monkeypatch):
    with Receiver() as hook:
        monkeypatch.setenv(WEBHOOK_ENV, hook.url)
        cfg = env_config(sandbox, tmp_path, "nightly-a", notify_block())
        out = tmp_path / "reports"

        first, s1 = run_flow(cfg, mode="rehearsal", out=out, sections=SECTIONS)
        assert s1.is_completed() and first.verdict in (Verdict.GO, Verdict.GO_WITH_WARNINGS)
        md1 = (out / "nightly-a" / "latest" / "report.md").read_text()
        assert "No previous rehearsal of `nightly-a` was found" in section_of(md1)
        assert "first rehearsal" in hook.posts[0]["json"]["text"]

        with sandbox.fault("redis-noeviction"):
            broken, s2 = run_flow(cfg, mode="rehearsal", out=out, sections=SECTIONS)
        assert s2.is_completed() and broken.verdict == Verdict.NO_GO
        md2 = (out / "nightly-a" / "latest" / "report.md").read_text()
        sec2 = section_of(md2)
        new = sec2[sec2.index("New failures") :].split("\n\n**")[0]
        assert "`dependencies.redis.memory` PASS → FAIL" in new and "noeviction" in new
        assert f"flow run `{first.flow_run_id}`" in sec2 and "NO-GO" in sec2
        assert md2.index("## What changed") < md2.index("## Blocking")  # near the top, where it is read first
        assert any("1 new failure" in n for n in broken.notes)
        report_artifact = asyncio.run(artifact("golive-report-nightly-a"))
        assert "`dependencies.redis.memory` PASS → FAIL" in report_artifact["data"]

        repaired, s3 = run_flow(cfg, mode="rehearsal", out=out, sections=SECTIONS)
        sec3 = section_of((out / "nightly-a" / "latest" / "report.md").read_text())
        fixed = sec3[sec3.index("Fixed") :].split("\n\n**")[0]
        assert "`dependencies.redis.memory` FAIL → PASS" in fixed
        assert "New failures" not in sec3

    # one Slack-compatible POST per night, each naming the change
    assert len(hook.posts) == 3
    assert all(p["path"] == WEBHOOK_SECRET_PATH and p["content_type"] == "application/json" for p in hook.posts)
    second, third = hook.posts[1]["json"], hook.posts[2]["json"]
    assert "NO-GO" in second["text"] and "1 new failure" in second["text"]
    blocks = json.dumps(second["blocks"], ensure_ascii=False)
    assert second["blocks"][0]["type"] == "header" and "New failures (1)" in blocks
    assert "dependencies.redis.memory" in blocks
    assert "1 fixed" in third["text"] and "dependencies.redis.memory" in json.dumps(third["blocks"])

    # the snapshot: the latest version is the third run's, small, statuses and durations only
    snap_artifact = asyncio.run(artifact("golive-rehearsal-nightly-a"))
    snap = rehearsal.parse_snapshot(snap_artifact["data"])
    assert snap.flow_run_id == repaired.flow_run_id and snap.verdict == repaired.verdict
    assert snap.checks["dependencies.redis.memory"][0] == Status.PASS
    assert len(snap_artifact["data"].encode()) < 20_000


def test_dead_or_hung_webhook_never_fails_the_run_and_no_secret_leaks(sandbox, prefect_api, tmp_path, monkeypatch):
    from golive.deployments.cli import _drain_prefect

    secret_token = WEBHOOK_SECRET_PATH.rsplit("/", 1)[1]
    out = tmp_path / "reports"
    results = []
    for env, url, timeout_s in [
        ("nightly-dead", f"http://127.0.0.1:{refused_port()}{WEBHOOK_SECRET_PATH}", 5),
        ("nightly-hung", None, 1),
    ]:
        with hung_server() if url is None else contextlib.nullcontext(None) as port:
            monkeypatch.setenv(WEBHOOK_ENV, url or f"http://127.0.0.1:{port}{WEBHOOK_SECRET_PATH}")
            cfg = env_config(sandbox, tmp_path, env, notify_block(timeout_s))
            report, state = run_flow(cfg, mode="rehearsal", out=out, sections=["dependencies"])
        assert state.is_completed(), state.message
        note = next(n for n in report.notes if "webhook" in n)
        assert "failed" in note and secret_token not in note
        assert ("ConnectError" in note) if url else ("no answer within 1 s" in note)
        results.append((report, state))
    _drain_prefect()
    logs, _ = asyncio.run(flow_run_logs(str(results[0][1].state_details.flow_run_id)))
    assert any("rehearsal webhook http://127.0.0.1:" in m and "failed" in m for m in logs)
    artifacts = [
        json.dumps(asyncio.run(artifact(f"golive-{k}-{env}")))
        for k in ("report", "checks", "verdict", "rehearsal")
        for env in ("nightly-dead", "nightly-hung")
    ]
    files = [p.read_text() for p in out.rglob("*") if p.is_file()]
    haystack = "\n".join([*logs, *artifacts, *files, *(r.model_dump_json() for r, _ in results)])
    assert "webhook http://127.0.0.1:" in haystack
    assert secret_token not in haystack and "B0NIGHTLY" not in haystack
    for value in sandbox.env.values():
        assert value not in haystack
