"""`golive approve`: a sign-off without the UI, through the same form model and rules, on a real Prefect server
(issue #14, point 2). The waiting run here is a real flow run waiting in golive's own sign-off rounds
(`flows.approval.collect_decision`, paused in its process as a go-live run without a deployment waits); the
whole go-live path with two roles, suspended, is the e2e suite's."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from prefect import flow

from golive.deployments.cli import main
from golive.deployments.signoff_client import paused_sign_offs


@flow(name="go-live-readiness", flow_run_name="a go-live", persist_result=False)
async def waiting_go_live(requested_by: str | None = None) -> dict:
    """The sign-off rounds of a go-live run over a green report, for one CTO, begun as the readiness flow begins
    them (`begin`: this run has no deployment, so it pauses in its process)."""
    from datetime import UTC, datetime

    from prefect.runtime import flow_run

    from golive.flows.approval import collect_decision
    from golive.flows.policies import ApprovalPolicy
    from golive.flows.report import build_report
    from golive.flows.signoff_timer import begin

    run_id = str(flow_run.id)
    start = await begin("approve-cli.yaml", run_id)
    assert start.wait is not None and not start.wait.suspend and not start.resumed
    report = build_report(
        [], environment="approve-cli", mode="go-live", started_at=datetime.now(UTC), flow_run_id=run_id
    )
    policy = ApprovalPolicy(required_roles=["CTO"], timeout_minutes=1.5, poll_seconds=1)
    decision = await collect_decision(report, policy, "1.5.0", wait=start.wait)
    return decision.model_dump(mode="json")


@pytest.fixture(params=[None])
def waiting_sign_off(prefect_api, request):
    """A real go-live-like run paused for its sign-off form (`requested_by` from the test's parameter); yields
    (run id, its result once decided, ...)."""
    import asyncio
    import contextvars

    api = httpx.Client(base_url=prefect_api.api_url + "/", timeout=10)
    before = set(paused_sign_offs(api))
    result: dict = {}

    def run():
        try:
            result["value"] = asyncio.run(waiting_go_live(requested_by=request.param))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            result["error"] = e

    th = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)  # the test's API URL
    th.start()
    deadline = time.monotonic() + 60
    while not (fresh := set(paused_sign_offs(api)) - before):
        assert time.monotonic() < deadline, "the run never paused for its sign-off"
        time.sleep(0.3)
    [waiting] = fresh
    yield waiting.run_id, result, th, api, prefect_api.api_url
    if th.is_alive():  # a test that left it waiting: answer it (a cancel is not seen by a pause for a while)
        from golive.deployments.signoff_client import resume, signoff_fields

        resume(api, waiting.run_id, signoff_fields("Test Teardown", "CTO", "NO-GO", "test ended", attest=False))
        th.join(15)


def test_one_waiting_sign_off_from_the_terminal(waiting_sign_off, capsys):
    """One paused sign-off, as an approver meets it: the go-live run's page links to the form (issue #14, point 6);
    bad input is refused naming the flag and the run keeps waiting; a NO-GO with its reason resumes the run with
    exactly the form the UI would send."""
    run_id, result, th, api, url = waiting_sign_off

    # the go-live run's own artifacts say where to sign off: its own page, where the form is
    art = api.get("artifacts/golive-sign-off-approve-cli/latest").json()
    assert art["flow_run_id"] == run_id, art
    assert f"/runs/flow-run/{run_id})" in art["data"] and "round 1" in art["data"], art["data"]

    # bad input: one line naming the flag, nothing submitted
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:Janitor", "--no-go", "--reason", "x"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--no-go"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--go"]) == 3  # no --attest
    assert main(["approve", "--api-url", url, run_id, "--as", "S:CTO", "--no-go", "--reason", "x"]) == 3  # min length
    assert main(["approve", "--api-url", url, "not-a-run", "--as", "Sam Adeyemi:CTO", "--go", "--attest"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--go", "--attest", "--override"]) == 3
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("golive: error: ")]
    assert [e.split(":", 2)[2].split(":")[0].strip() for e in errors] == [
        "--as",
        "--reason",
        "--attest",
        "--as",
        "RUN",
        "--reason",
    ], errors
    assert "The CEO and CFO were informed of the go-live" in "\n".join(err)  # what a GO attests, listed
    assert api.get(f"flow_runs/{run_id}").json()["state"]["type"] == "PAUSED" and th.is_alive()

    # a NO-GO with its reason: resumed with the form the UI would send
    code = main(
        [
            "approve",
            "--api-url",
            url,
            run_id,
            "--as",
            "  Grace Liu :VP Engineering",
            "--no-go",
            "--reason",
            "the payment provider's sandbox certificate expires tomorrow",
        ]
    )
    assert code == 0, capsys.readouterr()
    th.join(30)
    assert "error" not in result, result
    decided = result["value"]
    assert decided["decision"] == "NO-GO" and decided["waited_in"] == "paused" and decided["rounds"] == 1
    [got] = decided["signoffs"]
    assert (got["signer_name"], got["signer_role"], got["decision"]) == ("Grace Liu", "VP Engineering", "NO-GO")
    assert got["reason"] == "the payment provider's sandbox certificate expires tomorrow"
    assert not got["override_blocking_failures"] and not got["database_signed_off"]  # a NO-GO attests nothing
    out = capsys.readouterr().out
    assert (
        f"NO-GO by Grace Liu (VP Engineering) submitted (sign-off 1 of go-live run {run_id}); the go-live run "
        "ended" in out
    ), out


def test_a_run_with_no_sign_off_waiting_is_an_error_and_nothing_is_submitted(prefect_api, capsys):
    import uuid

    url = prefect_api.api_url
    assert (
        main(["approve", "--api-url", url, str(uuid.uuid4()), "--as", "Sam Adeyemi:CTO", "--no-go", "--reason", "r"])
        == 4
    )
    assert "no flow run" in capsys.readouterr().err


@pytest.mark.parametrize("waiting_sign_off", ["Sam Adeyemi"], indirect=True)
def test_who_requested_the_go_live_cannot_be_its_only_approver(waiting_sign_off, capsys):
    """Issue #14 point 4 on a real server: the run was requested by Sam Adeyemi (`requested_by`); Sam's GO as the one
    required role is recorded but decides nothing; a GO by someone who did not request it decides."""
    run_id, result, th, api, url = waiting_sign_off
    assert main(["approve", "--api-url", url, run_id, "--as", "sam  adeyemi:CTO", "--go", "--attest"]) == 0
    out = capsys.readouterr().out
    assert "GO by sam  adeyemi (CTO) recorded (sign-off 1 of go-live run" in out, out
    assert th.is_alive() and api.get(f"flow_runs/{run_id}").json()["state"]["type"] == "PAUSED"
    assert main(["approve", "--api-url", url, run_id, "--as", "Grace Liu:CTO", "--go", "--attest"]) == 0
    th.join(30)
    assert "error" not in result, result
    decided = result["value"]
    assert decided["decision"] == "GO" and decided["requested_by"] == ["Sam Adeyemi"]
    assert [s["signer_name"] for s in decided["signoffs"]] == ["sam  adeyemi", "Grace Liu"]
    assert "the Prefect API records no identity on a resume" in decided["identity"]
