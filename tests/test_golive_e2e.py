"""The three ways golive is used, end to end on real processes: `golive serve` serving the deployments on a real
Prefect server, `golive ci` through the REST API, and the go-live run with its sign-off pause and the deploy flow.
The scenarios are the `e2e` suite (`pytest -m e2e`, which .ci/run runs after the default suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from golive.deployments.signoff_client import json_artifact, signoff_fields, wait_final, wait_paused_sign_off
from golive.deployments.signoff_client import resume as post_resume
from tests.support.fixtures_golive import wait_mail

REPO = Path(__file__).resolve().parents[1]


def golive(*args, prefect_api, timeout=240, env=None):
    env = {**os.environ, **prefect_api.client_env(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# the CI path is what these test (the whole catalog through Prefect is tests/test_flow.py's): two sections each
CI_SECTIONS = 'sections=["security", "application"]'


@pytest.mark.e2e
def test_ci_returns_0_on_go_and_writes_junit_and_the_job_summary(served, prefect_api, tmp_path):
    junit, summary = tmp_path / "readiness.xml", tmp_path / "step-summary.md"
    r = golive(
        "ci",
        "--deployment",
        "go-live-readiness/ci",
        "--param",
        CI_SECTIONS,
        "--junit",
        str(junit),
        "--poll-seconds",
        "0.5",
        prefect_api=prefect_api,
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERDICT: GO" in r.stdout
    root = ET.parse(junit).getroot()
    assert len(root.findall(".//testcase")) >= 25 and not root.findall(".//failure")
    run_url = next(line.split("the run: ", 1)[1].strip() for line in r.stdout.splitlines() if "the run: " in line)
    assert run_url.startswith(prefect_api.api_url.removesuffix("/api") + "/runs/flow-run/")
    assert httpx.get(prefect_api.api_url + "/flow_runs/" + run_url.rsplit("/", 1)[1]).json()["state"]["name"] == "GO"
    text = summary.read_text()
    assert text.startswith("### 🟢 golive: GO for `sandbox`") and f"]({run_url})" in text and "| security |" in text


@pytest.mark.e2e
def test_ci_returns_2_on_no_go_naming_the_check(served, sandbox, prefect_api, tmp_path):
    junit = tmp_path / "readiness.xml"
    with sandbox.fault("hsts-short"):
        r = golive(
            "ci", "--param", CI_SECTIONS, "--junit", str(junit), "--poll-seconds", "0.5", prefect_api=prefect_api
        )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "VERDICT: NO-GO" in r.stdout and "security.headers.hsts" in r.stdout
    failures = ET.parse(junit).getroot().findall(".//testcase/failure/..")
    assert [c.get("name") for c in failures] == ["security.headers.hsts"]


@pytest.mark.e2e
def test_a_ci_matrix_over_two_environments_gets_a_run_and_a_verdict_each(served, golive_config, prefect_api, tmp_path):
    """Issue #14: one deployment, two environments, concurrent `golive ci` calls from one CI run (a matrix): each gets
    its own flow run and its own environment's verdict; a retried job gets its own run back."""
    import concurrent.futures

    import yaml

    other = tmp_path / "sandbox-b.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load(golive_config.read_text()), "environment": "sandbox-b"}))
    ci_env = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1"}

    def job(config: Path):
        return golive(
            "ci",
            "--param",
            f"config={json.dumps(str(config))}",
            "--param",
            CI_SECTIONS,
            "--poll-seconds",
            "0.5",
            prefect_api=prefect_api,
            env=ci_env,
        )

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(job, [golive_config, other])
    for r in (a, b):
        assert r.returncode == 0, r.stdout + r.stderr

    def run_id(r):
        return next(
            line.split("the run: ", 1)[1].strip() for line in r.stdout.splitlines() if "the run: " in line
        ).rsplit("/", 1)[1]

    assert run_id(a) != run_id(b)
    assert "VERDICT: GO for sandbox " in a.stdout and "VERDICT: GO for sandbox-b " in b.stdout, a.stdout + b.stdout
    again = job(golive_config)  # the same job retried: the same run, not a new one
    assert again.returncode == 0 and run_id(again) == run_id(a)


def test_ci_refuses_a_deployment_nothing_polls(prefect_api):
    r = golive("ci", "--deployment", "go-live-readiness/nope", prefect_api=prefect_api)
    assert r.returncode == 4 and "not found" in r.stdout


# --------------------------------------------------------------------------- the go-live run


#: the sections a run needs when a test is about the sign-off and deploy mechanics, not the checks: the data and
#: backup sections (GX suites, the restore test) are run end to end by test_go_with_both_sign_offs_deploys_exactly_once
LIGHT = ["infrastructure", "dependencies", "application", "security", "performance", "monitoring", "team"]


def start_go_live(
    api: httpx.Client, release: str, sections: list[str] | None = None, config: Path | None = None
) -> str:
    dep = api.get("deployments/name/go-live-readiness/go-live").json()
    params = {
        "release": release,
        **({"sections": sections} if sections else {}),
        **({"config": str(config)} if config else {}),
    }
    r = api.post(f"deployments/{dep['id']}/create_flow_run", json={"parameters": params})
    r.raise_for_status()
    return r.json()["id"]


def resume(api: httpx.Client, run_id: str, **fields) -> dict:
    return post_resume(api, run_id, fields)


def holders(run_id: str) -> list[int]:
    """The processes executing flow run `run_id` (a runner starts each with PREFECT__FLOW_RUN_ID in its environment;
    the tests and `golive serve` run as this user, so /proc shows them)."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours
                continue
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (an exited child its parent has not reaped yet is a zombie: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate, timeout: float, what: str):
    import time

    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def deploy_runs(api: httpx.Client) -> list[dict]:
    dep = api.get("deployments/name/deploy-production/deploy-production").json()
    return api.post("flow_runs/filter", json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}}).json()


def decision(api: httpx.Client) -> dict:
    return json_artifact(api, "golive-decision-sandbox")


def all_signed(name: str, role: str, decision: str = "GO", **extra) -> dict:
    return {**signoff_fields(name, role, decision), **extra}


@pytest.mark.e2e
def test_go_with_both_sign_offs_deploys_exactly_once(served, sandbox, prefect_api):
    api = served
    before = {r["id"] for r in deploy_runs(api)}
    mails = len(sandbox.mail())
    run = start_go_live(api, "1.5.0")
    # while it runs its checks, a process executes it; once it waits for its sign-off, none does (suspended: the
    # serve slot is free) until a sign-off resumes it
    running = wait_for(lambda: holders(run), 60, "no process ever executed the go-live run")
    first = wait_paused_sign_off(api, set(), run_id=run)
    assert first.run_id == run and first.key == "sign-off-1"
    assert api.get(f"flow_runs/{run}").json()["state"]["name"] == "Suspended"
    wait_for(
        lambda: not holders(run) and not any(alive(pid) for pid in running),
        15,
        f"a process still executes the waiting run: {holders(run)}, {[p for p in running if alive(p)]}",
    )
    # both approvers are told, with a link that opens this form in the Prefect UI
    opened = wait_mail(sandbox, mails, lambda m: "waits for your sign-off" in m["Subject"])
    assert opened["X-Rcpt-To"] == "cto@swipesavvy.test, vpe@swipesavvy.test"
    link = next(w for w in opened.get_content().split() if "/runs/flow-run/" in w)
    page = httpx.get(link, headers={"Accept": "text/html"})  # as a browser asks (the UI's routes answer pages)
    assert link.endswith(f"/runs/flow-run/{first}") and page.status_code == 200 and "<html" in page.text.lower()
    # invalid input is refused by the API and the run stays paused
    bad = api.post(f"flow_runs/{first}/resume", json={"run_input": {"signer_role": "Intern"}}).json()
    assert bad["status"] == "REJECT"
    assert api.get(f"flow_runs/{first}").json()["state"]["type"] == "PAUSED"
    # both roles sign from a terminal: `golive approve` (the same form model and rules as the UI)
    cto = golive("approve", run, "--as", "Samuel Adeyemi:CTO", "--go", "--attest", prefect_api=prefect_api)
    assert cto.returncode == 0 and "GO by Samuel Adeyemi (CTO) recorded (sign-off 1 of go-live run" in cto.stdout, (
        cto.stdout + cto.stderr
    )
    second = wait_paused_sign_off(api, {first}, run_id=run)
    assert second.run_id == run and second.key == "sign-off-2"  # the same run, started again: its next round
    wait_for(lambda: not holders(run), 15, "a process still executes the run waiting for round 2")
    # the same person signing again (as another role) counts once: refused, the form opens again. Signed without
    # the UI: `golive approve` on the go-live run's id says the go-live run refused it, and why (exit 2)
    again = golive(
        "approve", run, "--as", "samuel  adeyemi:VP Engineering", "--go", "--attest", prefect_api=prefect_api
    )
    assert again.returncode == 2 and "REFUSED by the go-live run" in again.stdout, again.stdout + again.stderr
    assert "already signed: one person counts once" in again.stdout
    third = wait_paused_sign_off(api, {first, second}, run_id=run)
    ok = golive("approve", run, "--as", "Grace Liu:VP Engineering", "--go", "--attest", prefect_api=prefect_api)
    assert ok.returncode == 0 and "GO by Grace Liu (VP Engineering) submitted" in ok.stdout, ok.stdout + ok.stderr
    assert "the go-live run ended Completed: GO" in ok.stdout, ok.stdout
    assert third
    final = wait_final(api, run)
    assert final["state"]["type"] == "COMPLETED", final["state"]
    d = decision(api)
    assert d["decision"] == "GO" and d["readiness_flow_run_id"] == run
    assert d["waited_in"] == "suspended" and d["rounds"] == 3
    assert [s["signer_name"] for s in d["signoffs"]] == ["Samuel Adeyemi", "Grace Liu"]
    assert "already signed" in json.dumps(d["refused"])
    new = [r for r in deploy_runs(api) if r["id"] not in before]
    assert len(new) == 1 and new[0]["id"] == d["deploy_flow_run_id"]
    refused = wait_mail(sandbox, mails, lambda m: "refused" in m["Subject"])
    assert "one person counts once" in refused.get_content() and refused["X-Rcpt-To"] == "vpe@swipesavvy.test"
    wait_mail(sandbox, mails, lambda m: m["Subject"].endswith("go-live decided GO"))
    deployed = wait_final(api, new[0]["id"])
    assert deployed["state"]["type"] == "COMPLETED", deployed["state"]
    assert httpx.get(sandbox.urls["web"] + "/health", verify=str(sandbox.ca_file)).json()["version"] == "1.5.0"
    # a retried readiness run triggers with the same idempotency key: still one deploy run
    import asyncio

    from golive.flows.deploy import trigger_deploy

    again = asyncio.run(trigger_deploy("x.yaml", "1.5.0", run))
    assert again == new[0]["id"]
    assert len([r for r in deploy_runs(api) if r["id"] not in before]) == 1
    subprocess.run(
        [sys.executable, "-m", "golive.sandbox.release", "--base-dir", str(sandbox.base_dir), "rollback"], check=True
    )


@pytest.mark.e2e
def test_no_go_deploys_nothing(served):
    api = served
    before = {r["id"] for r in deploy_runs(api)}
    run = start_go_live(api, "1.5.0", LIGHT)
    p = wait_paused_sign_off(api, set(), run_id=run)
    # a NO-GO without a reason is refused; with one it ends the run
    resume(api, p, signer_name="Samuel Adeyemi", signer_role="CTO", decision="NO-GO")
    p2 = wait_paused_sign_off(api, {p}, run_id=run)
    resume(api, p2, signer_name="Samuel Adeyemi", signer_role="CTO", decision="NO-GO", reason="marketing freeze")
    final = wait_final(api, run)
    assert final["state"]["type"] == "FAILED" and "NO-GO" in final["state"]["message"]
    assert decision(api)["decision"] == "NO-GO" and "marketing freeze" in decision(api)["why"]
    assert {r["id"] for r in deploy_runs(api)} == before


@pytest.mark.e2e
def test_pause_timeout_is_a_recorded_no_go(served, sandbox, short_timeout_config):
    api = served
    before = {r["id"] for r in deploy_runs(api)}
    mails = len(sandbox.mail())
    run = start_go_live(api, "1.5.0", LIGHT, config=short_timeout_config)
    wait_paused_sign_off(api, set(), run_id=run)
    wait_for(lambda: not holders(run), 15, "a process still executes the waiting run")
    # the suspended run freed the deployment's concurrency slot: a second go-live of this environment now gets it,
    # and is refused by the run itself, naming the one that waits (one go-live at a time)
    second = wait_final(api, start_go_live(api, "1.6.0", LIGHT, config=short_timeout_config), timeout=60)
    assert second["state"]["type"] == "FAILED", second["state"]
    assert (
        second["state"]["message"].startswith(f"refused: go-live run {run} ")
        and "one go-live at a time" in second["state"]["message"]
    ), second["state"]["message"]
    # Prefect ends the suspended run at its deadline (approval timeout: 30 s in this config); with no go-live process
    # left, the sign-off timer (a scheduled run of its own) reminded the approvers at half the time and, after the
    # deadline, names the end a NO-GO, records the decision and tells the approvers
    final = wait_final(api, run, timeout=120)
    assert final["state"]["type"] == "FAILED"
    wait_mail(sandbox, mails, lambda m: "timed out: NO-GO" in m["Subject"], timeout=60)
    subjects = [m["Subject"] for m in sandbox.mail()[mails:]]
    assert any("(half its time is gone)" in s for s in subjects), subjects
    d = decision(api)
    assert d["decision"] == "NO-GO" and d["timed_out"] and d["readiness_flow_run_id"] == run
    state = api.get(f"flow_runs/{run}").json()["state"]
    assert state["name"] == "NO-GO" and "no sign-off within 0.5 minutes (round 1)" in state["message"], state
    assert {r["id"] for r in deploy_runs(api)} == before


@pytest.mark.e2e
def test_go_over_a_blocking_failure_needs_an_override_with_a_reason(served, sandbox):
    api = served
    with sandbox.fault("hsts-short"):
        run = start_go_live(api, "1.5.0", LIGHT)
        p = wait_paused_sign_off(api, set(), run_id=run)
    resume(api, p, **all_signed("Samuel Adeyemi", "CTO"))
    p2 = wait_paused_sign_off(api, {p}, run_id=run)
    form = api.get(f"flow_runs/{p2}").json()
    resume(api, p2, signer_name="Samuel Adeyemi", signer_role="CTO", decision="NO-GO", reason="HSTS regression")
    final = wait_final(api, run)
    assert final["state"]["type"] == "FAILED"
    refused = json.dumps(decision(api)["refused"])
    assert "GO refused:" in refused and "security.headers.hsts" in refused
    assert form["state"]["type"] == "PAUSED"


def sign_go(api: httpx.Client, run: str, first: str | None = None) -> None:
    """Both required roles sign GO, each in its round (`first`: the first round's pause, when already waited for)."""
    p = first or wait_paused_sign_off(api, set(), run_id=run)
    resume(api, p, **all_signed("Samuel Adeyemi", "CTO"))
    resume(api, wait_paused_sign_off(api, {p}, run_id=run), **all_signed("Grace Liu", "VP Engineering"))


@pytest.mark.e2e
def test_a_go_on_stale_evidence_deploys_only_if_a_re_check_still_passes(served, sandbox, stale_evidence_config):
    """Issue 15, point 5: a GO signed after the evidence window (0.6 s here) re-runs the light checks first; a check
    that broke while the run waited refuses the deploy, naming it; unchanged, the release deploys."""
    api = served
    version = lambda: httpx.get(sandbox.urls["web"] + "/health", verify=str(sandbox.ca_file)).json()["version"]  # noqa: E731
    was = version()
    run = start_go_live(api, "1.5.0", LIGHT, config=stale_evidence_config)
    first = wait_paused_sign_off(api, set(), run_id=run)  # the checks are done: HSTS passed
    with sandbox.fault("hsts-short"):  # ... and breaks while the run waits for its sign-off
        sign_go(api, run, first)
        assert wait_final(api, run)["state"]["type"] == "COMPLETED"
        d = decision(api)
        assert d["decision"] == "GO" and d["evidence_oldest_at"] and d["evidence_age_s"] > 0.6
        refused = wait_final(api, d["deploy_flow_run_id"], timeout=180)
    msg = refused["state"]["message"]
    assert refused["state"]["type"] == "FAILED", refused["state"]
    assert "the evidence went stale" in msg and "security.headers.hsts PASS -> FAIL" in msg, msg
    report = json_artifact(api, "golive-deploy-sandbox")
    assert report["outcome"] == "REFUSED" and report["evidence_age_s"] > report["evidence_window_s"] == 0.6
    changed = {r["id"]: r for r in report["recheck"]["changed"]}
    assert changed["security.headers.hsts"]["before"] == "PASS" and changed["security.headers.hsts"]["now"] == "FAIL"
    assert report["recheck"]["checks"] > 50 and report["steps"] == []  # nothing ran: not even the deploy step
    assert version() == was
    # the same, with nothing broken meanwhile: the re-check passes and the release deploys, showing both
    run = start_go_live(api, "1.5.0", LIGHT, config=stale_evidence_config)
    sign_go(api, run)
    assert wait_final(api, run)["state"]["type"] == "COMPLETED"
    deployed = wait_final(api, decision(api)["deploy_flow_run_id"], timeout=180)
    assert deployed["state"]["type"] == "COMPLETED", deployed["state"]
    report = json_artifact(api, "golive-deploy-sandbox")
    assert report["outcome"] == "DEPLOYED" and report["recheck"]["checks"] > 50
    assert not [r for r in report["recheck"]["changed"] if r["blocking"] == "true"], report["recheck"]
    assert version() == "1.5.0"
    subprocess.run(
        [sys.executable, "-m", "golive.sandbox.release", "--base-dir", str(sandbox.base_dir), "rollback"], check=True
    )


@pytest.mark.e2e
def test_broken_release_is_rolled_back_on_its_own(served, sandbox):
    api = served
    run = start_go_live(api, "1.5.0-broken", LIGHT)
    p = wait_paused_sign_off(api, set(), run_id=run)
    resume(api, p, **all_signed("Samuel Adeyemi", "CTO"))
    resume(api, wait_paused_sign_off(api, {p}, run_id=run), **all_signed("Grace Liu", "VP Engineering"))
    assert wait_final(api, run)["state"]["type"] == "COMPLETED"
    dep_id = decision(api)["deploy_flow_run_id"]
    deployed = wait_final(api, dep_id)
    assert deployed["state"]["type"] == "FAILED" and "rollback done" in deployed["state"]["message"]
    report = json_artifact(api, "golive-deploy-sandbox")
    assert report["outcome"] == "ROLLED-BACK" and report["trip"]["severity"] == "CRITICAL"
    assert report["time_to_detect_s"] > 0 and report["time_to_rollback_s"] > 0
    assert httpx.get(sandbox.urls["web"] + "/health", verify=str(sandbox.ca_file)).json()["version"] == "1.4.0"


def _go_live_with_an_alert(api, sandbox, release: str, fault: str) -> dict:
    """A GO for `release`; the alert starts firing as the deploy begins (the readiness run never sees it)."""
    run = start_go_live(api, release, LIGHT)
    p = wait_paused_sign_off(api, set(), run_id=run)
    resume(api, p, **all_signed("Samuel Adeyemi", "CTO"))
    p2 = wait_paused_sign_off(api, {p}, run_id=run)
    resume(api, p2, **all_signed("Grace Liu", "VP Engineering"))
    sandbox.break_(fault)
    try:
        assert wait_final(api, run)["state"]["type"] == "COMPLETED"
        return wait_final(api, decision(api)["deploy_flow_run_id"])
    finally:
        sandbox.repair(fault)


@pytest.mark.e2e
def test_an_acknowledged_high_alert_keeps_the_release(served, sandbox, prefect_api):
    ack = golive(
        "ack",
        "--environment",
        "sandbox",
        "--release",
        "1.5.0",
        "--by",
        "Dana Whitfield: Deployment Lead",
        "--reason",
        "payments fall back to the retry queue",
        "--criterion",
        "payment",
        prefect_api=prefect_api,
    )
    assert ack.returncode == 0, ack.stderr
    try:
        deployed = _go_live_with_an_alert(served, sandbox, "1.5.0", "alert-payments-down")
    finally:
        golive("ack", "--environment", "sandbox", "--clear", prefect_api=prefect_api)
    report = json_artifact(served, "golive-deploy-sandbox")
    assert deployed["state"]["type"] == "COMPLETED", deployed["state"]
    assert "HIGH acknowledged: payment processing down" in deployed["state"]["message"]
    assert report["outcome"] == "DEPLOYED" and report["acknowledged"][0]["by"] == "Dana Whitfield: Deployment Lead"
    assert "PaymentProcessingDown" in report["acknowledged"][0]["evidence"]
    subprocess.run(
        [sys.executable, "-m", "golive.sandbox.release", "--base-dir", str(sandbox.base_dir), "rollback"], check=True
    )


@pytest.mark.e2e
def test_a_critical_alert_rolls_back_at_once_whatever_was_acknowledged(served, sandbox, prefect_api):
    golive(
        "ack",
        "--environment",
        "sandbox",
        "--release",
        "1.5.0",
        "--by",
        "Dana Whitfield: Deployment Lead",
        "--reason",
        "we accept every HIGH risk tonight",
        prefect_api=prefect_api,
    )
    try:
        deployed = _go_live_with_an_alert(served, sandbox, "1.5.0", "alert-data-corruption")
    finally:
        golive("ack", "--environment", "sandbox", "--clear", prefect_api=prefect_api)
    report = json_artifact(served, "golive-deploy-sandbox")
    assert deployed["state"]["type"] == "FAILED" and "rollback done" in deployed["state"]["message"]
    assert report["outcome"] == "ROLLED-BACK" and report["trip"]["severity"] == "CRITICAL"
    assert report["trip"]["criterion"].startswith("data corruption detected")
    assert "DataCorruptionDetected" in report["trip"]["evidence"] and report["time_to_rollback_s"] > 0
    assert httpx.get(sandbox.urls["web"] + "/health", verify=str(sandbox.ca_file)).json()["version"] == "1.4.0"


@pytest.mark.e2e
def test_a_release_changed_while_the_run_waits_deploys_nothing(served):
    """Attack: a suspended go-live run starts again from its parameters, and any API client can PATCH them. Signed
    for 1.5.0, patched to 9.9.9 while waiting: the resumed run sees that what it was signed for changed and ends
    NO-GO, naming it; nothing deploys."""
    api = served
    before = {r["id"] for r in deploy_runs(api)}
    run = start_go_live(api, "1.5.0", LIGHT)
    first = wait_paused_sign_off(api, set(), run_id=run)
    params = api.get(f"flow_runs/{run}").json()["parameters"]
    r = api.patch(f"flow_runs/{run}", json={"parameters": {**params, "release": "9.9.9"}})
    assert r.status_code == 204, r.text
    assert resume(api, first, **all_signed("Samuel Adeyemi", "CTO"))["status"] == "ACCEPT"
    final = wait_final(api, run, timeout=120)
    assert final["state"]["type"] == "FAILED" and final["state"]["name"] == "NO-GO", final["state"]
    assert "release changed while it waited for its sign-off" in final["state"]["message"], final["state"]["message"]
    assert {r["id"] for r in deploy_runs(api)} == before
