"""`golive approve`: a sign-off without the UI, through the same form model and rules, on a real Prefect server
(issue #14, point 2). The waiting run here is golive's own sign-off flow (`flows.approval.sign_off_step`, the
subflow a go-live run pauses in); the whole go-live path with two roles is the e2e suite's."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from golive.deployments.cli import main
from golive.deployments.signoff_client import paused_sign_offs


@pytest.fixture
def waiting_sign_off(prefect_api):
    """A real sign-off run paused for its form; yields (run id, the dict it returns once resumed)."""
    import asyncio

    from golive.flows.approval import sign_off_step

    api = httpx.Client(base_url=prefect_api.api_url + "/", timeout=10)
    before = set(paused_sign_offs(api))
    result: dict = {}
    # the go-live run whose page links to the form: a real flow run on the server
    flow_id = api.post("flows/", json={"name": "go-live-readiness"}).json()["id"]
    go_live = api.post("flow_runs/", json={"flow_id": flow_id, "name": "a go-live"}).json()["id"]
    result["go_live"] = go_live

    def run():
        try:
            result["value"] = asyncio.run(sign_off_step(round_no=1, description="sign here", timeout_s=90, poll_s=1,
                                                        environment="approve-cli", go_live_run_id=go_live))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            result["error"] = e

    import contextvars

    th = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)  # the test's API URL
    th.start()
    deadline = time.monotonic() + 60
    while not (fresh := set(paused_sign_offs(api)) - before):
        assert time.monotonic() < deadline, "the sign-off run never paused"
        time.sleep(0.3)
    [run_id] = fresh
    yield run_id, result, th, api, prefect_api.api_url
    if th.is_alive():  # a test that left it waiting: answer it (a cancel is not seen by a pause for a while)
        from golive.deployments.signoff_client import resume, signoff_fields

        resume(api, run_id, signoff_fields("Test Teardown", "CTO", "NO-GO", "test ended", attest=False))
        th.join(15)


def test_one_waiting_sign_off_from_the_terminal(waiting_sign_off, capsys):
    """One paused sign-off, as an approver meets it: the go-live run's page links to the form (issue #14, point 6);
    bad input is refused naming the flag and the run keeps waiting; a NO-GO with its reason resumes the run with
    exactly the form the UI would send."""
    run_id, result, th, api, url = waiting_sign_off

    # the go-live run's own artifacts say where to sign off (the sign-off run's UI page)
    art = api.get("artifacts/golive-sign-off-approve-cli/latest").json()
    assert art["flow_run_id"] == result["go_live"], art
    assert f"/runs/flow-run/{run_id})" in art["data"] and "sign-off 1" in art["data"], art["data"]

    # bad input: one line naming the flag, nothing submitted
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:Janitor", "--no-go", "--reason", "x"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--no-go"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--go"]) == 3  # no --attest
    assert main(["approve", "--api-url", url, run_id, "--as", "S:CTO", "--no-go", "--reason", "x"]) == 3  # min length
    assert main(["approve", "--api-url", url, "not-a-run", "--as", "Sam Adeyemi:CTO", "--go", "--attest"]) == 3
    assert main(["approve", "--api-url", url, run_id, "--as", "Sam Adeyemi:CTO", "--go", "--attest", "--override"]) == 3
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("golive: error: ")]
    assert [e.split(":", 2)[2].split(":")[0].strip() for e in errors] == \
        ["--as", "--reason", "--attest", "--as", "RUN", "--reason"], errors
    assert "The CEO and CFO were informed of the go-live" in "\n".join(err)  # what a GO attests, listed
    assert api.get(f"flow_runs/{run_id}").json()["state"]["type"] == "PAUSED" and th.is_alive()

    # a NO-GO with its reason: resumed with the form the UI would send
    code = main(["approve", "--api-url", url, run_id, "--as", "  Grace Liu :VP Engineering", "--no-go", "--reason",
                 "the payment provider's sandbox certificate expires tomorrow"])
    assert code == 0, capsys.readouterr()
    th.join(30)
    assert "error" not in result, result
    got = result["value"]
    assert (got["signer_name"], got["signer_role"], got["decision"]) == ("Grace Liu", "VP Engineering", "NO-GO")
    assert got["reason"] == "the payment provider's sandbox certificate expires tomorrow"
    assert not got["override_blocking_failures"] and not got["database_signed_off"]  # a NO-GO attests nothing
    assert "NO-GO by Grace Liu (VP Engineering) submitted (sign-off run" in capsys.readouterr().out


def test_a_run_with_no_sign_off_waiting_is_an_error_and_nothing_is_submitted(prefect_api, capsys):
    import uuid

    url = prefect_api.api_url
    assert main(["approve", "--api-url", url, str(uuid.uuid4()), "--as", "Sam Adeyemi:CTO", "--no-go", "--reason", "r"]) == 4
    assert "no flow run" in capsys.readouterr().err


