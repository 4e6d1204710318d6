"""Only a signed-off release deploys (issue #10, item 1): attacks on the deploy flow through the Prefect API.

Every attack is what any Prefect API client can do: write a `golive-decision-<env>` artifact saying GO (outside any
flow run), create a `deploy-production` run with any parameters and idempotency key, re-schedule a finished run. The
deploy command appends the release to a file: an attack that gets through leaves a line there. A real Prefect server
on its own PostgreSQL and `golive serve` run the flows (tests/support/deploy_auth.py); the sign-offs are real pauses
resumed through the REST API, as the UI does."""

from __future__ import annotations

import time
import uuid

import pytest

from golive.deployments.signoff_client import json_artifact, wait_final
from tests.support.deploy_auth import DEPLOYMENT, ENV, authz_stack

# the first test also starts the stack and runs the signed-off GO; its own PostgreSQL, Prefect server and `golive serve`
# make it a whole-path suite: `pytest -m e2e` (.ci/run runs it after the default suite)
pytestmark = [pytest.mark.timeout(600), pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with authz_stack(tmp_path_factory.mktemp("deployauth")) as s:
        yield s


@pytest.fixture(scope="module")
def signed_go(stack):
    """A real go-live run of 1.5.0: CTO GO, the same person again as VP (refused: one person counts once), VP GO."""
    final = stack.go_live(
        "1.5.0",
        ("Samuel Adeyemi", "CTO", "GO"),
        ("samuel  adeyemi", "VP Engineering", "GO"),
        ("Grace Liu", "VP Engineering", "GO"),
    )
    assert final["state"]["type"] == "COMPLETED", final["state"]
    decision = json_artifact(stack.api, f"golive-decision-{ENV}")
    deployed = wait_final(stack.api, decision["deploy_flow_run_id"], timeout=240)
    return final["id"], decision, deployed


def refused(stack, run: dict, because: str, before: list[str]) -> None:
    assert run["state"]["type"] == "FAILED", run["state"]
    assert run["state"]["message"].startswith("deploy refused:") and because in run["state"]["message"], run["state"][
        "message"
    ]
    assert stack.deployed() == before, "the deploy command ran"
    report = stack.deploy_report()
    assert report["outcome"] == "REFUSED" and report["release"] == run["parameters"]["release"]


def test_a_signed_off_go_deploys_its_release_once(stack, signed_go):
    run_id, decision, deployed = signed_go
    assert deployed["state"]["type"] == "COMPLETED", deployed["state"]["message"]
    assert stack.deployed() == ["1.5.0"]
    # the decision record binds environment, release, readiness run and the sign-off rounds it read: three waits
    # of the go-live run itself, suspended (no process held), each with its reminder and its deadline scheduled
    assert (decision["environment"], decision["release"], decision["readiness_flow_run_id"]) == (ENV, "1.5.0", run_id)
    assert decision["rounds"] == 3 and decision["waited_in"] == "suspended"
    assert stack.sign_off_rounds(run_id) == ["sign-off-1", "sign-off-2", "sign-off-3"]
    timers = sorted((r["parameters"]["round_no"], r["parameters"]["what"]) for r in stack.timer_runs(run_id))
    assert timers == [(n, w) for n in (1, 2, 3) for w in ("reminder", "timeout")], timers
    assert "already signed" in str(decision["refused"])
    assert deployed["idempotency_key"] == f"{DEPLOYMENT}:{run_id}" and deployed["run_count"] == 1
    verified = "sign-off verified: GO signed by Samuel Adeyemi (CTO), Grace Liu (VP Engineering)"
    deadline = time.monotonic() + 15  # run logs reach the API in batches
    while not any(
        verified in x["message"]
        for x in stack.api.post("logs/filter", json={"logs": {"flow_run_id": {"any_": [deployed["id"]]}}}).json()
    ):
        assert time.monotonic() < deadline, f"no log line {verified!r}"
        time.sleep(0.5)


def test_a_forged_go_artifact_with_a_made_up_run_id_deploys_nothing(stack, signed_go):
    before, rid = stack.deployed(), str(uuid.uuid4())
    stack.forge_go(rid, "9.9.9-never-signed-off")
    run = stack.deploy(rid, "9.9.9-never-signed-off", key=f"{DEPLOYMENT}:{rid}")
    refused(stack, run, f"no flow run {rid}", before)


@pytest.mark.parametrize("which", ["not a flow run id", "a sign-off timer run"])
def test_a_run_id_that_names_no_readiness_run_deploys_nothing(stack, signed_go, which):
    before = stack.deployed()
    rid = "1.5.0; rm -rf /" if which == "not a flow run id" else stack.timer_runs(signed_go[0])[0]["id"]
    stack.forge_go(rid, "1.5.0")
    run = stack.deploy(rid, "1.5.0", key=f"{DEPLOYMENT}:{rid}")
    refused(
        stack,
        run,
        "is not a flow run id" if which == "not a flow run id" else "is a go-live-sign-off-timer run",
        before,
    )


def test_a_go_replayed_for_another_release_deploys_nothing(stack, signed_go):
    run_id, decision, _ = signed_go
    before = stack.deployed()
    stack.forge_go(run_id, "9.9.9-never-signed-off")
    run = stack.deploy(run_id, "9.9.9-never-signed-off", key=f"{DEPLOYMENT}:other")
    refused(stack, run, "was signed off for release '1.5.0', not '9.9.9-never-signed-off'", before)
    # with the key the GO's own deploy run carries, Prefect hands back that (finished) run: nothing new runs
    again = stack.deploy(run_id, "9.9.9-never-signed-off", key=f"{DEPLOYMENT}:{run_id}")
    assert again["id"] == decision["deploy_flow_run_id"] and again["parameters"]["release"] == "1.5.0"
    assert stack.deployed() == before


def test_a_finished_deploy_run_scheduled_again_deploys_nothing(stack, signed_go):
    dep_id, before = signed_go[1]["deploy_flow_run_id"], stack.deployed()
    stack.force(dep_id, "SCHEDULED")
    run = wait_final(stack.api, dep_id, timeout=240)
    refused(stack, run, "executing again (run 2): a decision deploys at most once", before)


def test_a_go_replayed_for_the_same_release_deploys_nothing(stack, signed_go):
    run_id, decision, _ = signed_go
    before, key = stack.deployed(), f"{DEPLOYMENT}:{run_id}"
    stack.forge_go(run_id, "1.5.0")
    run = stack.deploy(run_id, "1.5.0")  # a second deploy run, without the key
    refused(stack, run, f"is not the deploy readiness run {run_id} triggered", before)
    # the GO's deploy run deleted, its key is free again: a new run can carry it, but it is not the run the GO named
    assert stack.api.delete(f"flow_runs/{decision['deploy_flow_run_id']}").status_code == 204
    run = stack.deploy(run_id, "1.5.0", key)
    refused(stack, run, f"readiness run {run_id} recorded another deploy run than this one", before)


@pytest.fixture(scope="module")
def no_go(stack):
    final = stack.go_live("1.5.0", ("Samuel Adeyemi", "CTO", "NO-GO"))
    assert final["state"]["type"] == "FAILED" and "NO-GO" in final["state"]["message"], final["state"]
    return final["id"]


def test_a_no_go_run_id_deploys_nothing(stack, signed_go, no_go):
    before = stack.deployed()
    stack.forge_go(no_go, "1.5.0")
    run = stack.deploy(no_go, "1.5.0", key=f"{DEPLOYMENT}:{no_go}")
    refused(stack, run, f"readiness run {no_go} did not complete with a GO (FAILED: NO-GO: NO-GO by Samuel", before)


def test_a_no_go_run_forced_to_a_go_state_deploys_nothing(stack, signed_go, no_go):
    """Run states are writable too (and runs deletable): what decides is the input Prefect stored when the sign-off
    round was resumed."""
    before, key = stack.deployed(), f"{DEPLOYMENT}:{no_go}"
    for earlier in stack.api.post("flow_runs/filter", json={"flow_runs": {"idempotency_key": {"any_": [key]}}}).json():
        assert stack.api.delete(f"flow_runs/{earlier['id']}").status_code == 204  # frees the key for a new run
    forged = stack.create_deploy(no_go, "1.5.0", key, hold=True)
    stack.force(no_go, "COMPLETED", f"GO: signed by Mallory; deploy flow run {forged}")  # what a GO's final state says
    stack.forge_go(no_go, "1.5.0")
    stack.force(forged, "SCHEDULED")  # now
    run = wait_final(stack.api, forged, timeout=240)
    refused(
        stack,
        run,
        f"the sign-off input of readiness run {no_go} does not decide GO: NO-GO by Samuel Adeyemi (CTO): change freeze",
        before,
    )


def test_a_rehearsal_run_id_deploys_nothing(stack, signed_go):
    before = stack.deployed()
    rid = stack.start("go-live-readiness/nightly-rehearsal", release="1.5.0", output_dir=None)
    assert wait_final(stack.api, rid, timeout=180)["state"]["type"] == "COMPLETED"
    stack.forge_go(rid, "1.5.0")
    run = stack.deploy(rid, "1.5.0", key=f"{DEPLOYMENT}:{rid}")
    refused(stack, run, "in 'rehearsal' mode, not a go-live readiness run", before)
