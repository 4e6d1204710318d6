"""Fresh evidence at deploy time (issue 15, point 5): the rules, without a Prefect server.

The whole path (a GO signed after the window, a fault injected while the run waits, the deploy refused naming the
check; unchanged, the release deploys) is `test_a_go_on_stale_evidence_deploys_only_if_a_re_check_still_passes` in
tests/test_golive_e2e.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from golive.flows.approval import DecisionRecord, decision_people, oldest_blocking_evidence
from golive.flows.config import ConfigError, GoliveConfig, parse_config
from golive.flows.deploy import changed_since, evidence_age_s, recheck_specs
from golive.flows.policies import RECHECK_SECTIONS
from golive.flows.report import Verdict, build_report
from golive.tasks.catalog import load_catalog
from golive.tasks.core import CheckResult, Severity, Status

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def result(cid: str, status: Status, *, severity: Severity = Severity.BLOCKING, at: datetime = NOW) -> CheckResult:
    return CheckResult(
        id=cid,
        title=cid,
        section=cid.split(".", 1)[0],
        severity=severity,
        status=status,
        seed=[],
        observed=f"{cid} is {status.value}",
        started_at=at - timedelta(seconds=1),
        finished_at=at,
        duration_s=1.0,
    )


def config(**approval) -> GoliveConfig:
    return parse_config({"environment": "staging", "approval": approval})


def test_the_evidence_age_counts_from_the_readiness_runs_start_whatever_its_clock_form():
    assert evidence_age_s(NOW - timedelta(minutes=31), NOW) == 31 * 60
    assert evidence_age_s((NOW - timedelta(seconds=5)).replace(tzinfo=None), NOW) == 5  # a naive UTC time
    assert evidence_age_s(NOW + timedelta(seconds=3), NOW) == 0  # a server clock ahead: never negative
    assert evidence_age_s(None, NOW) is None  # unknown: the caller re-checks (fail closed)


def test_only_a_blocking_check_failing_now_that_passed_at_sign_off_blocks_the_deploy():
    before = {"security.headers.hsts": "FAIL", "monitoring.sentry.events": "WARN"}
    signed = ["security.headers.hsts"]  # a blocking failure the sign-off went over (an override with a reason)
    now = [
        result("infrastructure.web.reachable", Status.PASS),  # unchanged
        result("security.headers.hsts", Status.FAIL),  # unchanged, and signed over
        result("security.headers.csp", Status.FAIL),  # PASS -> FAIL: blocks
        result("dependencies.redis.ping", Status.ERROR),  # PASS -> ERROR: blocks (no evidence is no pass)
        result("monitoring.sentry.events", Status.PASS, severity=Severity.ADVISORY),  # WARN -> PASS: shown
        result("application.docs.changelog", Status.FAIL, severity=Severity.ADVISORY),  # advisory: shown, no block
        result("security.audit.log", Status.NOT_APPLICABLE),  # PASS or N/A before: not a change
    ]
    rows = {r["id"]: r for r in changed_since(signed, before, now)}
    assert set(rows) == {
        "security.headers.csp",
        "dependencies.redis.ping",
        "monitoring.sentry.events",
        "application.docs.changelog",
    }
    assert [i for i, r in rows.items() if r["blocking"] == "true"] == [
        "security.headers.csp",
        "dependencies.redis.ping",
    ]
    assert rows["security.headers.csp"]["before"] == "PASS" and rows["security.headers.csp"]["now"] == "FAIL"
    assert rows["monitoring.sentry.events"] == {
        "id": "monitoring.sentry.events",
        "before": "WARN",
        "now": "PASS",
        "summary": "observed monitoring.sentry.events is PASS",
        "blocking": "false",
    }


def test_a_blocking_check_skipped_now_blocks_too():
    """A check whose prerequisite broke since the sign-off proves nothing: SKIPPED counts as failing."""
    (row,) = changed_since([], {}, [result("data.rows.counts", Status.SKIPPED)])
    assert row["blocking"] == "true" and row["before"] == "PASS" and row["now"] == "SKIPPED"


def test_the_re_check_runs_the_light_checks_of_its_sections_and_what_they_need():
    specs = recheck_specs(config())
    catalog = load_catalog()
    assert {s.section for s in specs.values()} >= set(RECHECK_SECTIONS)
    assert not any(s.heavy for s in specs.values()), [i for i, s in specs.items() if s.heavy]
    for s in specs.values():  # closed under dependencies: nothing waits for a check the re-check does not run
        assert set(s.depends_on) <= set(specs), s.id
    # every light check of those sections is in it (only the heavy ones and what needs them are left out)
    light = {i for i, s in catalog.items() if s.section in RECHECK_SECTIONS and not s.heavy}
    needing_heavy = {i for i in light if any(catalog[d].heavy for d in catalog[i].depends_on)}
    assert light - needing_heavy <= set(specs)
    # not the data suites nor the restore test, unless asked
    assert not any(s.section in ("data", "backup") for s in specs.values() if s.id not in _dependencies(specs))


def _dependencies(specs) -> set[str]:
    return {d for s in specs.values() for d in s.depends_on}


def test_the_re_check_follows_the_config_sections_heavy_checks_and_exclusions():
    heavy_sections = sorted({s.section for s in load_catalog().values() if s.heavy})
    with_heavy = recheck_specs(config(recheck_sections=heavy_sections, recheck_heavy=True))
    assert any(s.heavy for s in with_heavy.values())
    only = recheck_specs(config(recheck_sections=["security"]))
    assert {s.section for s in only.values() if s.id not in _dependencies(only)} == {"security"}
    # checks.skip applies as in the readiness run: the check is there, landing NOT_APPLICABLE with the reason
    cfg = parse_config({"environment": "staging", "checks": {"skip": ["security.headers.hsts"]}})
    assert recheck_specs(cfg)["security.headers.hsts"].target is None


@pytest.mark.parametrize(
    ("approval", "field"),
    [
        ({"max_evidence_age_minutes": 0}, "approval.max_evidence_age_minutes"),
        ({"max_evidence_age_minutes": "soon"}, "approval.max_evidence_age_minutes"),
        ({"recheck_sections": ["sign-off"]}, "approval.recheck_sections"),
        ({"recheck_sections": []}, "approval.recheck_sections"),
    ],
)
def test_bad_evidence_settings_are_one_line_naming_the_field(approval, field):
    with pytest.raises(ConfigError) as e:
        config(**approval)
    assert any(p.startswith(field) for p in e.value.problems), e.value.problems


def test_the_go_decision_records_the_age_of_its_oldest_blocking_evidence():
    results = [
        result("infrastructure.web.reachable", Status.PASS, at=NOW - timedelta(minutes=12)),
        result("team.docs.runbook", Status.PASS, severity=Severity.ADVISORY, at=NOW - timedelta(hours=2)),
        result("security.headers.hsts", Status.PASS, at=NOW - timedelta(minutes=3)),
    ]
    report = build_report(results, environment="staging", mode="go-live", started_at=NOW - timedelta(minutes=13))
    assert oldest_blocking_evidence(report) == NOW - timedelta(minutes=12)  # advisory evidence does not count
    d = DecisionRecord(
        environment="staging",
        readiness_flow_run_id=None,
        decision=Verdict.GO,
        why="both signed",
        decided_at=NOW,
        report_verdict=Verdict.GO,
        blocking_seen=[],
        warnings_seen=[],
        required_roles=["CTO"],
        evidence_oldest_at=NOW - timedelta(minutes=12),
        evidence_age_s=720.0,
    )
    assert "Oldest blocking evidence: 2026-12-03 11:48:00 UTC, 12.0 min old at the decision" in decision_people(d)
