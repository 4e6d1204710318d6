"""The readiness flow on a real Prefect server (PostgreSQL-backed) against the real sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import pytest

from golive.flows.report import Verdict
from golive.tasks.core import SECTIONS, Status
from tests.support.flows import artifact, flow_run_logs, run_flow


@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
def test_healthy_sandbox_is_go_with_every_section(sandbox, prefect_api, tmp_path):
    report, state = run_flow(sandbox.config_path, out=tmp_path)
    assert state.is_completed()
    assert [s.section for s in report.sections] == list(SECTIONS)
    bad = [
        f"{r.id} {r.status.value} {r.summary}"
        for r in report.results
        if r.status not in (Status.PASS, Status.NOT_APPLICABLE)
    ]
    assert report.verdict == Verdict.GO, bad
    # every result carries evidence, and PASS results an observed and an expected value
    for r in report.results:
        assert r.evidence, r.id
        if r.status == Status.PASS:
            assert r.observed not in (None, "") and r.expected not in (None, ""), r.id
    # the files and the artifacts keyed per environment
    latest = tmp_path / "sandbox" / "latest"
    assert json.loads((latest / "report.json").read_text())["verdict"] == "GO"
    assert (latest / "junit.xml").read_text().count("<testcase") == len(report.results)
    verdict = asyncio.run(artifact("golive-verdict-sandbox"))
    payload = json.loads(re.search(r"```json\n(.*)\n```", verdict["data"], re.S).group(1))
    assert payload["verdict"] == "GO" and payload["flow_run_id"] == str(state.state_details.flow_run_id)
    table = asyncio.run(artifact("golive-checks-sandbox"))
    assert len(json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]) == len(report.results)
    # one task run per suite (its expectations: one validation) and per section (named by its subject or subjects),
    # timing checks included; a check alone in its section keeps its own
    names = asyncio.run(
        _task_run_names(str(state.state_details.flow_run_id), expected=_expected_task_runs(sandbox.config_path))
    )
    names = [n for n in names if not re.fullmatch(r"readiness-section-\d+", n)]  # subflows' own task runs
    suites = {f"data.{s}" for s in _suite_names()}
    expectation_ids = {r.id for r in report.results if r.id.rsplit(".", 1)[0] in suites}
    assert len(expectation_ids) > 100 and suites <= set(names) and not expectation_ids & set(names)
    assert {
        "infrastructure: backend, bastion, cdn, dns, firewall +6 more",
        "team: comms, contacts, oncall, runbooks, slack",
    } <= set(names)
    from golive.flows import readiness
    from golive.flows.config import load_config

    timing = {i for i, s in readiness.plan(load_config(sandbox.config_path)).items() if s.timing}
    assert "infrastructure.web.reachable" in timing and not timing & set(names)  # in their sections' task runs
    # every check is in the task run of its group (or its own), and there are as many as the engine makes
    task_run = _task_run_of(sandbox.config_path)
    assert all(task_run[r.id] in names for r in report.results)
    assert len(names) == len(set(names)) == _expected_task_runs(sandbox.config_path) <= 25


def _suite_names() -> set[str]:
    from golive.expectations import load_suites

    return {s.name for s in load_suites()}


def _task_run_of(config_path) -> dict[str, str]:
    """Per check id, the name of the task run the readiness flow runs it in (its group's, or its own): the plan of
    the run's config (its policy can change a check's flags, and so its group)."""
    from golive.flows import readiness
    from golive.flows.config import load_config
    from golive.flows.engine import by_section

    return {i: s.group or i for i, s in by_section(readiness.plan(load_config(config_path))).items()}


def _expected_task_runs(config_path) -> int:
    return len(set(_task_run_of(config_path).values()))


async def _task_run_names(flow_run_id, expected, wait_s=20.0):
    """The task run names of a readiness run and its section subflows (task runs are recorded from events: poll)."""
    return [r["name"] for r in await _task_runs(flow_run_id, expected, wait_s)]


async def _task_runs(flow_run_id, expected, wait_s=20.0):
    """The task runs (the API's JSON) of a readiness run and its section subflows."""
    import time

    from prefect.client.orchestration import get_client

    async with get_client() as c:
        children = await c._client.post(
            "/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
        )
        ids = [flow_run_id, *(r["id"] for r in children.json())]
        deadline = time.monotonic() + wait_s
        while True:
            runs, offset = [], 0
            while True:
                page = await c._client.post(
                    "/task_runs/filter", json={"flow_runs": {"id": {"any_": ids}}, "limit": 200, "offset": offset}
                )
                runs += page.json()
                offset += 200
                if len(page.json()) < 200:
                    break
            if len(runs) >= expected + len(ids) - 1 or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(0.5)


def test_fault_makes_ci_run_failed_and_names_the_check(sandbox, prefect_api):
    with sandbox.fault("redis-noeviction"):  # the section of the fault: the whole catalog is the healthy test's
        report, state = run_flow(sandbox.config_path, mode="ci", sections=["dependencies"])
    assert state.is_failed() and "NO-GO" in state.message
    assert report.verdict == Verdict.NO_GO
    failing = {r.id: r for r in report.blocking_failures}
    assert "dependencies.redis.memory" in failing
    assert "noeviction" in json.dumps(failing["dependencies.redis.memory"].model_dump(mode="json"))
    # rehearsal mode reports the same NO-GO but the run itself completes
    with sandbox.fault("redis-noeviction"):
        report2, state2 = run_flow(sandbox.config_path, mode="rehearsal", sections=["dependencies"])
    assert state2.is_completed() and report2.verdict == Verdict.NO_GO


def test_database_down_skips_data_checks_with_the_cause(sandbox, prefect_api):
    with sandbox.fault("postgres-down"):
        report, _ = run_flow(sandbox.config_path, sections=["data", "dependencies"])
    res = {r.id: r for r in report.results}
    assert res["dependencies.postgres.reachable"].status == Status.ERROR
    data = [r for r in report.results if r.section == "data"]
    assert data and all(r.status == Status.SKIPPED for r in data)
    assert all("dependencies.postgres.reachable" in r.cause for r in data)
    # the data section started only after its prerequisite had landed
    reach = res["dependencies.postgres.reachable"]
    assert min(r.started_at for r in data) >= reach.finished_at


def test_no_secret_in_logs_artifacts_reports_or_output(sandbox, prefect_api, tmp_path, capfd):
    secrets = [v for v in sandbox.env.values()]
    assert all(len(s) >= 16 for s in secrets)
    with sandbox.fault("smtp-no-starttls"), sandbox.fault("postgres-down"):
        report, state = run_flow(sandbox.config_path, out=tmp_path)
    assert report.verdict == Verdict.NO_GO
    out, err = capfd.readouterr()
    logs, run_ids = asyncio.run(flow_run_logs(str(state.state_details.flow_run_id)))
    assert any("dependencies.postgres.reachable" in m for m in logs)
    artifacts = [json.dumps(asyncio.run(artifact(f"golive-{k}-sandbox"))) for k in ("report", "checks", "verdict")]
    files = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    haystack = "\n".join([out, err, *logs, *artifacts, *files, report.model_dump_json()])
    assert len(files) == 3 and "<testsuites" in haystack
    for s in secrets:
        assert s not in haystack


def test_invalid_config_fails_the_run_with_the_field(prefect_api, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("environment: Prod!\nredis: {url: http://x}\n")
    from golive.flows import readiness

    state = asyncio.run(readiness.go_live_readiness(config=str(bad), mode="ci", return_state=True))
    assert state.is_failed()
    assert "environment" in state.message or "redis.url" in state.message


def test_a_section_with_timing_checks_may_need_a_check_that_waits_for_the_quiet_window(
    sandbox, prefect_api, monkeypatch
):
    """Section 1 holds timing checks (they open the quiet window) and may need a check of section 7 that waits for
    that window: the flow must not wait for it before starting section 1 (it did, and hung: found when the server
    role checks depended on monitoring.prometheus.reachable)."""
    from golive.flows import readiness

    specs = _specs(
        ("infrastructure.web.ttfb", (), True),
        ("infrastructure.hosts.status", ("monitoring.prometheus.up",), False),
        ("monitoring.prometheus.up", (), False),
    )
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, _state = _bounded_run(sandbox.config_path)
    assert report.verdict == Verdict.GO and {r.id: r.status for r in report.results} == {i: Status.PASS for i in specs}


def _specs(*items):
    """CheckSpecs from (id, depends_on, timing) triples, each body a quick PASS."""
    from golive.tasks.core import CheckSpec, Severity, passed

    def ok(_t, _ctx):
        return passed("ok", "ok", "tests/test_flow.py")

    return {
        cid: CheckSpec(
            id=cid,
            title=cid,
            seed=("x",),
            severity=Severity.BLOCKING,
            depends_on=tuple(deps),
            timeout=5,
            target=None,
            body=ok,
            timing=timing,
        )
        for cid, deps, timing in items
    }


def _bounded_run(config_path, seconds=60):
    from golive.flows import readiness

    async def bounded():
        return await asyncio.wait_for(
            readiness.go_live_readiness(config=str(config_path), mode="ci", output_dir=None, return_state=True),
            seconds,
        )

    state = asyncio.run(bounded())
    return readiness.REPORTS.pop(str(state.state_details.flow_run_id)), state


def test_no_section_subflow_starts_while_a_timing_check_runs(sandbox, prefect_api, monkeypatch):
    """A timing probe must not share the machine with a subflow's start-up: the run's board runs the checks from
    the flow's start, and the section subflows, which record them, start once the quiet window has closed
    (Prefect's own start times)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    from golive.flows import readiness

    specs = _specs(
        ("infrastructure.web.ttfb", (), True),
        ("dependencies.redis.ping", ("monitoring.a.up",), True),  # needs a check of another section
        *((f"{s}.a.b", (), False) for s in SECTIONS if s != "signoff"),
        ("monitoring.a.up", (), False),
    )
    specs = {
        **specs,
        "security.a.audit": dataclasses.replace(specs["security.a.b"], id="security.a.audit", slow=True),
    }
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, state = _bounded_run(sandbox.config_path)
    assert report.verdict == Verdict.GO

    async def subflow_starts():
        async with get_client() as c:
            parent = await c.read_flow_run(state.state_details.flow_run_id)
            runs = await c.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
            )
            return {r.name: r.start_time for r in runs}

    starts = asyncio.run(subflow_starts())
    assert len(starts) == len({s.section for s in specs.values()}) and None not in starts.values(), starts
    res = {r.id: r for r in report.results}
    probes = [res[i] for i in ("infrastructure.web.ttfb", "dependencies.redis.ping")]
    # every subflow once the window has closed: after each probe ended, or held the window QUIET_HOLD_S (a probe
    # still running then is far past any threshold, and the rest go on)
    from datetime import timedelta

    from golive.tasks.core import QUIET_HOLD_S

    closed = max(min(p.finished_at, p.started_at + timedelta(seconds=QUIET_HOLD_S)) for p in probes)
    assert all(t >= closed for t in starts.values()), (starts, closed)
    assert res["monitoring.a.up"].finished_at <= min(starts.values())  # what a probe needs ran before any subflow


def test_a_section_subflow_that_does_not_record_its_checks_makes_them_error_naming_why(
    sandbox, prefect_api, monkeypatch
):
    """A section whose subflow ends without recording its checks (the API refused it, it crashed): the run's
    board ran them all the same, but they count as ERROR in the report, naming why and what each found (a
    section is signed off from its record in Prefect), and the run reaches its verdict: NO-GO."""
    from prefect import flow
    from prefect.states import Failed

    from golive.flows import readiness

    specs = _specs(
        ("dependencies.postgres.reachable", (), False),
        ("data.users.rows", ("dependencies.postgres.reachable",), False),
        ("infrastructure.web.ttfb", (), True),
    )
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    real = readiness.section_flow

    @flow(name="readiness-section", flow_run_name="{section}", persist_result=False, validate_parameters=False)
    async def refused_for_dependencies(section: str, run_key: str):
        if section == "dependencies":
            return Failed(message="refused by the test before its body ran")
        return await real.fn(section, run_key)

    monkeypatch.setattr(readiness, "section_flow", refused_for_dependencies)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    reachable = res["dependencies.postgres.reachable"]
    assert reachable.status == Status.ERROR
    assert reachable.cause.startswith("its section's subflow did not record it (FAILED: refused by the test")
    assert reachable.cause.endswith("it found PASS: observed ok (expected ok)")
    assert res["data.users.rows"].status == Status.PASS  # its own section recorded it
    assert res["infrastructure.web.ttfb"].status == Status.PASS
    assert report.verdict == Verdict.NO_GO and state.is_failed()


def test_a_section_subflow_call_that_raises_still_ends_in_a_verdict(sandbox, prefect_api, monkeypatch):
    """The subflow call itself failing (e.g. the API refusing to create it) makes that section's checks ERROR
    naming why, and the run still builds its report (it used to end with no verdict at all)."""
    from golive.flows import readiness

    specs = _specs(("dependencies.postgres.reachable", (), False), ("team.a.b", (), False))
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    real = readiness.section_flow

    def refusing(*, section, run_key, return_state):
        if section == "dependencies":
            raise RuntimeError("the API refused the subflow run (test)")
        return real(section=section, run_key=run_key, return_state=return_state)

    monkeypatch.setattr(readiness, "section_flow", refusing)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    assert res["dependencies.postgres.reachable"].status == Status.ERROR
    assert "RuntimeError: the API refused the subflow run" in res["dependencies.postgres.reachable"].cause
    assert res["team.a.b"].status == Status.PASS and report.verdict == Verdict.NO_GO and state.is_failed()


def test_a_check_s_dependents_start_when_its_body_ends_not_when_its_task_run_does(sandbox, prefect_api, monkeypatch):
    """`team.a.quick` shares a task run with `team.a.lag` (one subject, the same dependencies); what waits for the
    quick one starts as soon as its body is done, not once the whole task run (held by the lag) has ended."""
    import time

    from golive.flows import readiness
    from golive.tasks.core import passed

    def lag(_t, _ctx):
        time.sleep(2)
        return passed("ok", "ok", "tests/test_flow.py")

    specs = _specs(
        ("team.a.quick", (), False), ("team.a.lag", (), False), ("monitoring.b.after", ("team.a.quick",), False)
    )
    specs["team.a.lag"] = dataclasses.replace(specs["team.a.lag"], body=lag)
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, _state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    assert report.verdict == Verdict.GO
    names = asyncio.run(_task_run_names(str(_state.state_details.flow_run_id), expected=2))
    assert "team.a" in names and "team.a.quick" not in names  # the two share one task run
    assert res["monitoring.b.after"].started_at < res["team.a.lag"].finished_at, res


def test_a_check_whose_task_run_prefect_cannot_start_is_error_naming_why_and_the_log_says_so(
    sandbox, prefect_api, monkeypatch
):
    """A check's body starts the moment the board lets it go, and its section's subflow sets a task run up to record
    it: a task run that cannot start (here its call fails: a stand-in, since Prefect 3.9 creates an in-flow task
    run in the flow's own engine, not by an API call that could be refused) leaves the check without a record in
    Prefect, which the approvers sign off from: it counts as ERROR, naming why and what it found (the run's verdict
    NO-GO), and the section's log says so. Its dependent ran on what it found and keeps its own result and record."""
    from golive.flows import engine, readiness

    specs = _specs(("team.a.one", (), False), ("monitoring.b.two", ("team.a.one",), False))
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    real = engine._named_record_task

    def refusing(check_id):
        if check_id != "team.a.one":
            return real(check_id)

        def call(*_a, **_k):
            async def refused():
                raise RuntimeError("the API refused the task run (test)")

            return refused()

        return call

    monkeypatch.setattr(engine, "_named_record_task", refusing)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    why = "its Prefect task run did not record it (RuntimeError: the API refused the task run (test))"
    assert res["team.a.one"].status == Status.ERROR
    assert res["team.a.one"].cause == f"{why}; it found PASS: observed ok (expected ok)"
    assert res["monitoring.b.two"].status == Status.PASS
    assert report.verdict == Verdict.NO_GO and state.is_failed()
    from golive.deployments.cli import _drain_prefect

    _drain_prefect()  # (the logs are sent in batches)
    logs, _ids = asyncio.run(flow_run_logs(str(state.state_details.flow_run_id)))
    assert f"team.a.one: {why}: ERROR in the report (it found PASS)" in logs, logs


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_check_whose_task_run_failed_by_an_exception_is_error(sandbox, prefect_api, monkeypatch, when):
    """A task run Prefect did run, that ended Failed by an exception (a bug of ours, a registry it could not read),
    is no record either, whether it raised before logging its check or after (Prefect's own handling of the state
    it returned can fail too): the check counts as ERROR naming the exception. (A Failed state is also what a
    recorded FAIL ends in: what tells them apart is that the task run logged its check and ended in the very state
    it returned.)"""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    from golive.flows import engine, readiness

    specs = _specs(("team.a.one", (), False), ("monitoring.b.two", (), False))
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    real = engine._named_record_task

    @task(name="check", task_run_name="team.a.one", cache_policy=NO_CACHE, persist_result=False)
    async def broken(check_id: str, run_key: str):
        if when == "after":
            await engine.record_task.fn(check_id, run_key)  # logs it, then fails
        raise KeyError(f"no run {run_key} (test)")

    monkeypatch.setattr(engine, "_named_record_task", lambda i: broken if i == "team.a.one" else real(i))
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    assert res["team.a.one"].status == Status.ERROR, res["team.a.one"]
    assert res["team.a.one"].cause.startswith("its Prefect task run did not record it (FAILED: "), res["team.a.one"]
    assert "KeyError" in res["team.a.one"].cause
    assert res["team.a.one"].cause.endswith("; it found PASS: observed ok (expected ok)")
    assert res["monitoring.b.two"].status == Status.PASS
    assert report.verdict == Verdict.NO_GO and state.is_failed()


@pytest.mark.parametrize("where", ["execute", "gate", "unprintable"])
def test_a_bug_of_ours_running_a_check_is_its_error_redacted_and_the_run_reaches_its_verdict(
    sandbox, prefect_api, monkeypatch, where
):
    """golive's own engine raising while it runs one check (its executor, or the gate that decides whether it
    runs) makes that check ERROR, the exception's text redacted, and every other check and the verdict go on. It
    used to end the flow with no verdict, and the exception, secret and all, in Prefect's logs. An exception whose
    message cannot itself be rendered is still named (not replaced by the error rendering it raised)."""
    from golive.flows import engine, readiness
    from golive.tasks import core

    secret = next(iter(sandbox.env.values()))
    specs = _specs(
        ("infrastructure.web.ttfb", (), True),
        ("team.a.one", (), False),
        ("team.a.two", ("team.a.one",), False),
        ("monitoring.b.three", (), False),
    )
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    victim = "infrastructure.web.ttfb" if where == "gate" else "team.a.one"

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("its str() fails too (test)")

    def bug(spec):
        if spec.id == victim:
            raise Unprintable() if where == "unprintable" else ValueError(f"a bug with {secret} in it (test)")

    if where != "gate":
        real_execute = engine.execute

        async def execute(spec, *a, **k):
            bug(spec)
            return await real_execute(spec, *a, **k)

        monkeypatch.setattr(engine, "execute", execute)
    else:
        real_gate = core.gate

        def gate(spec, deps, board):
            bug(spec)
            return real_gate(spec, deps, board)

        monkeypatch.setattr(core, "gate", gate)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    assert set(res) == set(specs)
    hit = res[victim]
    assert hit.status == Status.ERROR
    said = "Unprintable (its message could not be rendered)" if where == "unprintable" else "ValueError: a bug with "
    assert hit.cause.startswith(f"golive's engine failed running it: {said}"), hit.cause
    assert secret not in report.model_dump_json()
    rest = {i: r.status for i, r in res.items() if i != victim}
    if where != "gate":  # its dependent: SKIPPED naming it
        assert rest.pop("team.a.two") == Status.SKIPPED and "team.a.one" in res["team.a.two"].cause
    assert set(rest.values()) == {Status.PASS}, rest
    assert report.verdict == Verdict.NO_GO and state.is_failed()
    from golive.deployments.cli import _drain_prefect

    _drain_prefect()
    logs, _ids = asyncio.run(flow_run_logs(str(state.state_details.flow_run_id)))
    assert any("golive's engine failed running it" in m for m in logs) and not any(secret in m for m in logs)


def test_one_task_run_holds_a_sections_checks_that_wait_for_each_other_or_for_a_failed_one(
    sandbox, prefect_api, monkeypatch
):
    """The checks of a section share one task run whatever they wait for: one waiting for another member starts
    when that member's body ends, one whose prerequisite failed lands SKIPPED in it, and the task run ends with
    its last member (none of them waits for the task run itself)."""
    import time

    from golive.flows import readiness
    from golive.tasks.core import failed

    def lag(_t, _ctx):
        time.sleep(1)
        return failed("late", "on time", "tests/test_flow.py")

    specs = _specs(
        ("team.a.first", (), False),
        ("team.b.after", ("team.a.first",), False),
        ("team.c.lag", (), False),
        ("team.d.skipped", ("team.c.lag",), False),
    )
    specs["team.c.lag"] = dataclasses.replace(specs["team.c.lag"], body=lag)
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    assert (
        res["team.b.after"].status == Status.PASS and res["team.b.after"].started_at >= res["team.a.first"].finished_at
    )
    assert res["team.b.after"].finished_at < res["team.c.lag"].finished_at  # it did not wait for the lag
    assert res["team.c.lag"].status == Status.FAIL and res["team.d.skipped"].status == Status.SKIPPED
    names = asyncio.run(_task_run_names(str(state.state_details.flow_run_id), expected=1))
    assert [n for n in names if not re.fullmatch(r"readiness-section-\d+", n)] == ["team: a, b, c, d"]


def test_a_timing_checks_task_run_is_set_up_after_its_probe_and_bodies_do_not_wait_for_prefect(
    sandbox, prefect_api, monkeypatch
):
    """A task run's setup is milliseconds of this process's CPU: none is set up while a probe runs (a timing
    check's task run records it once the quiet window has closed), and no body waits for its task run."""
    from datetime import datetime

    from golive.flows import readiness

    specs = _specs(("infrastructure.web.ttfb", (), True), ("team.a.b", (), False))
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, state = _bounded_run(sandbox.config_path)
    res = {r.id: r for r in report.results}
    runs = {r["name"]: r for r in asyncio.run(_task_runs(str(state.state_details.flow_run_id), expected=2))}
    ttfb, team = runs["infrastructure.web.ttfb"], runs["team.a.b"]
    assert datetime.fromisoformat(ttfb["start_time"]) >= res["infrastructure.web.ttfb"].finished_at, ttfb
    assert datetime.fromisoformat(team["start_time"]) >= res["team.a.b"].started_at, team


@pytest.mark.parametrize("lag", [0, 1.5], ids=["landed-before-its-task-run", "landing-while-it-waits"])
def test_checks_landing_together_are_logged_in_one_record_and_none_is_lost(sandbox, prefect_api, monkeypatch, lag):
    """A task run logs each of its checks as it lands; those landing together (here the three skipped when their
    prerequisite fails) go in one log record, a line each: a record costs Prefect's log handler and the server
    about a millisecond, and a suite's checks land together. Whether they landed before the task run started or
    land while it waits for them."""
    import time

    from golive.flows import readiness
    from golive.tasks.core import failed

    def bad(_t, _ctx):
        time.sleep(lag)  # (the section's task run is set up and waiting by then)
        return failed("down", "up", "tests/test_flow.py")

    specs = _specs(("team.a.root", (), False), *((f"team.b.{n}", ("team.a.root",), False) for n in ("x", "y", "z")))
    specs["team.a.root"] = dataclasses.replace(specs["team.a.root"], body=bad)
    monkeypatch.setattr(readiness, "plan", lambda config, sections=None: specs)
    report, state = _bounded_run(sandbox.config_path)
    assert {r.id: r.status for r in report.results} == {
        "team.a.root": Status.FAIL,
        **{f"team.b.{n}": Status.SKIPPED for n in ("x", "y", "z")},
    }
    logs, _ids = asyncio.run(flow_run_logs(str(state.state_details.flow_run_id)))
    lines = [ln for m in logs for ln in m.splitlines() if re.match(r"(FAIL|SKIPPED) team\.", ln)]
    assert sorted(ln.split(":")[0] for ln in lines) == [
        "FAIL team.a.root",
        "SKIPPED team.b.x",
        "SKIPPED team.b.y",
        "SKIPPED team.b.z",
    ]
    assert any(all(f"SKIPPED team.b.{n}:" in m for n in ("x", "y", "z")) for m in logs), logs
