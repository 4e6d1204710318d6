"""Who a failure is blamed on (issue 11's one root cause, one failure, and its review): a check that could not
connect to a service another check reports on is SKIPPED naming that check only when that check did not pass; when
it passed (a flap between the two probes) or was not in the run, the failure is the check's own ERROR again, with
what it saw. A body that turned a refused connection into its own error (`raise ... from None`) keeps its word."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from golive.flows.report import Verdict, build_report
from golive.tasks import core
from golive.tasks.core import CheckSpec, Observation, Severity, Status, run_plain
from tests.support.servers import refused_port

OWNER, CALLER = "dependencies.svc.reachable", "application.svc.uses"


def _spec(cid, body, deps=()):
    return CheckSpec(
        id=cid, title=cid, seed=("x",), severity=Severity.BLOCKING, depends_on=deps, timeout=5.0, target=None, body=body
    )


@pytest.fixture
def port(monkeypatch):
    p = refused_port()
    monkeypatch.setitem(core.SERVICES, OWNER, lambda _cfg: [("127.0.0.1", p)])
    return p


def _run(port, owner_status):
    def owner(_t, _ctx):
        return Observation(status=owner_status, observed="o", expected="e", evidence="owner's probe")

    def caller(_t, _ctx):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # refused: raises httpx.ConnectError

    specs = {CALLER: _spec(CALLER, caller)} | ({OWNER: _spec(OWNER, owner)} if owner_status else {})
    rep = build_report(run_plain(specs, None), environment="t", mode="ci", started_at=datetime.now(UTC))
    return rep, {r.id: r for r in rep.results}[CALLER]


def test_blamed_on_the_reporting_check_when_it_failed(port):
    rep, r = _run(port, Status.FAIL)
    assert r.status == Status.SKIPPED and r.details["blocked_by"] == OWNER
    assert f"127.0.0.1:{port} is refused ({OWNER} reports it)" in r.cause
    assert "this check saw: ConnectError" in r.evidence
    assert rep.verdict == Verdict.NO_GO


@pytest.mark.parametrize(
    "owner_status, why", [(Status.PASS, f"{OWNER} passed"), (None, f"{OWNER} was not in this run")]
)
def test_its_own_error_when_the_named_check_passed_or_did_not_run(port, owner_status, why):
    rep, r = _run(port, owner_status)
    assert r.status == Status.ERROR and why in r.cause and "ConnectError" in r.cause
    assert "blocked_by" not in r.details and rep.verdict == Verdict.NO_GO  # never a GO either way


def test_a_body_that_chose_its_own_error_keeps_it(port):
    def caller(_t, _ctx):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.ConnectError:
            raise ValueError("the partner API is down: see the runbook") from None

    r = run_plain({CALLER: _spec(CALLER, caller)}, None)[0]
    assert r.status == Status.ERROR and "the partner API is down" in (r.cause or r.evidence)
