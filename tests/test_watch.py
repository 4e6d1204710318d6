"""The deploy watch window's rollback criteria (flows/watch.py): the evaluation poll by poll, the firing alerts read
from the sandbox's Prometheus API, and the operators' acknowledgement kept in a real Prefect server's Variable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from golive.flows.policies import DeployPolicy
from golive.flows.watch import Ack, Signal, Watch, ack_variable, alert_signals, parse_ack
from golive.tasks.clients.prometheus import firing_alerts
from golive.tasks.core import RunContext

REPO = Path(__file__).resolve().parents[1]
POLICY = DeployPolicy(command=["true"], high_assess_seconds=300, api_down_seconds=60)


def sig(sev, name, failing, allowed=0.0):
    return Signal(sev, name, failing, f"{name} evidence" if failing else "", allowed)


def test_critical_trips_once_failing_longer_than_allowed_and_recovery_resets_the_clock():
    w = Watch(POLICY)
    assert w.evaluate(0, [sig("CRITICAL", "API not responding", True, 60)], None) is None
    assert w.evaluate(59, [sig("CRITICAL", "API not responding", True, 60)], None) is None
    assert w.evaluate(70, [sig("CRITICAL", "API not responding", False, 60)], None) is None  # recovered
    assert w.evaluate(100, [sig("CRITICAL", "API not responding", True, 60)], None) is None  # a new outage
    trip = w.evaluate(161, [sig("CRITICAL", "API not responding", True, 60)], None)
    assert trip.severity == "CRITICAL" and "API not responding for 61.0s (allowed 60s)" in trip.criterion


def test_high_rolls_back_after_the_assessment_unless_acknowledged_and_critical_never_is():
    ack = Ack(
        release="1.5.0",
        by="Dana Whitfield: Deployment Lead",
        reason="payments fall back to the queue",
        criteria=["payment"],
    )
    w = Watch(POLICY)
    high = sig("HIGH", "payment processing down", True, 300)
    assert w.evaluate(0, [high], ack) is None
    assert w.evaluate(301, [high], ack) is None  # acknowledged: kept, and recorded once
    assert w.evaluate(400, [high], ack) is None
    assert [a["criterion"] for a in w.acknowledged] == ["payment processing down"]
    assert w.acknowledged[0]["by"] == "Dana Whitfield: Deployment Lead" and w.acknowledged[0]["failing_for_s"] == 301
    # another HIGH criterion the acknowledgement does not name still rolls back
    other = sig("HIGH", "campaign creation failing", True, 300)
    assert w.evaluate(500, [high, other], ack) is None
    assert w.evaluate(801, [high, other], ack).criterion.startswith("campaign creation failing")
    # CRITICAL ignores any acknowledgement
    everything = Ack(release="1.5.0", by="Dana Whitfield", reason="we accept every HIGH risk")
    assert (
        Watch(POLICY).evaluate(0, [sig("CRITICAL", "data corruption detected", True)], everything).severity
        == "CRITICAL"
    )
    # without an acknowledgement, HIGH rolls back at the end of its assessment time
    assert Watch(POLICY).evaluate(0, [high], None) is None
    w2 = Watch(POLICY)
    w2.evaluate(0, [high], None)
    assert w2.evaluate(300, [high], None).severity == "HIGH"


def test_medium_is_recorded_once_and_never_trips():
    w = Watch(POLICY)
    for t in (0, 10, 10_000):
        assert w.evaluate(t, [sig("MEDIUM", "analytics not collecting", True)], None) is None
    assert w.medium == ["analytics not collecting: analytics not collecting evidence"]


def test_an_acknowledgement_is_for_one_release_and_a_bad_one_is_named_in_one_line():
    good = {"release": "1.5.0", "by": "Dana Whitfield", "reason": "payments fall back to the queue"}
    assert parse_ack(good, "1.5.0")[0].by == "Dana Whitfield"
    assert parse_ack(good, "1.6.0") == (None, None)  # does not carry over to the next release
    assert parse_ack(None, "1.5.0") == (None, None)
    ack, problem = parse_ack({**good, "reason": "ok"}, "1.5.0")
    assert ack is None and problem.startswith("acknowledgement ignored: reason:") and "\n" not in problem
    assert parse_ack("yes", "1.5.0")[1].startswith("acknowledgement ignored:")


def test_the_seed_alert_criteria_map_firing_alerts_to_signals():
    firing = [
        {
            "labels": {"alertname": "DataCorruptionDetected", "severity": "critical"},
            "state": "firing",
            "activeAt": "2026-11-27T08:00:00Z",
            "annotations": {"summary": "checksums differ"},
        }
    ]
    by_name = {s.criterion: s for s in alert_signals(POLICY, firing)}
    assert by_name["data corruption detected"].failing and by_name["data corruption detected"].severity == "CRITICAL"
    assert "checksums differ" in by_name["data corruption detected"].evidence
    assert by_name["payment processing down"].allowed_s == 300 and not by_name["payment processing down"].failing
    assert {s.severity for s in by_name.values()} == {"CRITICAL", "HIGH", "MEDIUM"}


def test_firing_alerts_are_read_from_the_prometheus_api(sandbox):
    prometheus = SimpleNamespace(prometheus_url=sandbox.urls["prometheus"], ca_file=None)
    assert firing_alerts(prometheus, RunContext()) == []
    sandbox.break_("alert-data-corruption")
    try:
        firing = firing_alerts(prometheus, RunContext())
    finally:
        sandbox.repair("alert-data-corruption")
    assert [a["labels"]["alertname"] for a in firing] == ["DataCorruptionDetected"]
    trip = Watch(POLICY).evaluate(0, alert_signals(POLICY, firing), None)
    assert trip.severity == "CRITICAL" and trip.criterion.startswith("data corruption detected")


def golive(*args, prefect_api):
    env = {**os.environ, **prefect_api.client_env()}
    return subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_golive_ack_sets_the_variable_the_deploy_flow_reads_and_clear_removes_it(prefect_api):
    from golive.flows.deploy import _ack

    env = "ack-test"
    out = golive(
        "ack",
        "--environment",
        env,
        "--release",
        "1.5.0",
        "--by",
        "Dana Whitfield: Deployment Lead",
        "--reason",
        "payments fall back to the queue",
        "--criterion",
        "payment",
        prefect_api=prefect_api,
    )
    assert out.returncode == 0, out.stderr
    assert f"Prefect Variable {ack_variable(env)}" in out.stdout
    w = Watch(POLICY)
    ack = asyncio.run(_ack(env, "1.5.0", w))
    assert ack.criteria == ["payment"] and ack.at is not None and w.medium == []
    assert asyncio.run(_ack(env, "1.6.0", w)) is None
    bad = golive(
        "ack", "--environment", env, "--release", "1.5.0", "--by", "Dana", "--reason", "short", prefect_api=prefect_api
    )
    assert (
        bad.returncode == 3
        and bad.stderr.strip().splitlines()[-1] == "golive: error: --reason: String should have at least 10 characters"
    )
    assert golive("ack", "--environment", env, "--clear", prefect_api=prefect_api).returncode == 0
    assert asyncio.run(_ack(env, "1.5.0", w)) is None


@pytest.mark.parametrize("value", [{"release": "1.5.0", "by": "Dana"}, [1, 2]])
def test_a_malformed_acknowledgement_in_the_variable_is_ignored_and_reported(prefect_api, value):
    from prefect.variables import Variable

    from golive.flows.deploy import _ack

    env = "ack-bad"
    Variable.set(ack_variable(env), value, overwrite=True)
    try:
        w = Watch(POLICY)
        assert asyncio.run(_ack(env, "1.5.0", w)) is None
        assert len(w.medium) == 1 and w.medium[0].startswith("acknowledgement ignored:")
    finally:
        Variable.unset(ack_variable(env))
