"""Team readiness (seed section 9): the checks a machine can know, against local fakes of Slack and PagerDuty that
answer like the real APIs and run for real on 127.0.0.1, and the runbooks and contacts against the sandbox; and the
attestations, what only people can know."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from golive.flows.config import GoliveConfig, parse_config
from golive.sandbox.fakes import team_apis as saas
from golive.tasks.catalog import load_catalog
from golive.tasks.core import Redactor, Status, run_plain
from tests.support.checks import run_ids, run_one, sandbox_config, with_
from tests.support.servers import refused_port

SLACK_TOKEN = "xoxb-2046-golive-TEST-q8Vn3KdL0pZs"
PD_TOKEN = "u+Golive7pd-TEST-Zm4Rk9WcX2"
WRONG_TOKEN = "xoxb-9999-WRONG-token-Hq5Tf1"
IDS = ["team.comms.templates", "team.slack.channels", "team.oncall.current"]
CATALOG = load_catalog()
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fakes():
    switches: set[str] = set()
    state = saas.Saas(SLACK_TOKEN, PD_TOKEN, lambda: switches)
    with saas.running(state) as base:
        yield base, state, switches


@pytest.fixture()
def faults(fakes):
    base, state, switches = fakes
    switches.clear()
    state.requests.clear()
    yield switches
    switches.clear()


def team_config(base: str, **team: object) -> GoliveConfig:
    """Loaded like production loads its own: tokens are `${VAR}` references resolved from the environment."""
    u = saas.urls(base)
    section = {
        "comms": {k: u[k] for k in ("release_notes", "status_page_template", "customer_email_template")},
        "slack": {"bot_token": "${TEST_SLACK_TOKEN}", "api_url": u["slack_api_url"]},
        "oncall": {
            "api_token": "${TEST_PD_TOKEN}",
            "api_url": u["pagerduty_api_url"],
            "escalation_policy_id": u["escalation_policy_id"],
            "schedule_ids": list(saas.SCHEDULE_IDS),
        },
    }
    section.update(team)
    return parse_config(
        {"environment": "team-test", "team": section}, env={"TEST_SLACK_TOKEN": SLACK_TOKEN, "TEST_PD_TOKEN": PD_TOKEN}
    )


def run(cfg: GoliveConfig, ids: list[str] = IDS) -> dict:
    return {r.id: r for r in run_plain({i: CATALOG[i] for i in ids}, cfg)}


def blob(results: dict) -> str:
    return json.dumps([r.model_dump(mode="json") for r in results.values()])


# --------------------------------------------------------------------------- the checks


def test_declared_with_seed_items_and_timeouts():
    seed = {i["ref"] for i in json.loads((REPO / "flows" / "seed_items.json").read_text())}
    for cid in IDS:
        spec = CATALOG[cid]
        assert spec.target == "team" and set(spec.seed) <= seed and 0 < spec.timeout <= 30 and spec.description
    assert "7.2 On-Call Setup" in CATALOG["team.oncall.current"].seed
    assert "9.2 Post-Deployment Communication" in CATALOG["team.comms.templates"].seed


def test_all_pass_against_the_fakes_paginating_slack(fakes, faults):
    base, state, _ = fakes
    res = run(team_config(base))
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in IDS}, {
        i: r.summary for i, r in res.items()
    }
    slack = res["team.slack.channels"]
    assert all(slack.observed[c].startswith("exists") for c in ("#deployment", "#alerts-production"))
    pages = [p for m, p in state.requests if p.endswith("conversations.list")]
    assert len(pages) >= 3 and f"{len(pages)} page(s)" in slack.evidence  # the two channels sit on later pages
    oncall = res["team.oncall.current"]
    assert any(w.startswith("L1 Dana Whitfield") for w in oncall.observed["on_call_now"])
    assert oncall.observed["escalation_delays_min"] == [5.0, 5.0, 5.0]
    assert set(res["team.comms.templates"].observed.values()) == {"200"}
    assert SLACK_TOKEN not in blob(res) and PD_TOKEN not in blob(res)


def test_wrong_tokens_are_errors_that_never_show_the_token(fakes, faults):
    base, _, _ = fakes
    cfg = parse_config(
        {
            "environment": "team-test",
            "team": {
                "slack": {"bot_token": WRONG_TOKEN, "api_url": saas.urls(base)["slack_api_url"]},
                "oncall": {
                    "api_token": WRONG_TOKEN,
                    "api_url": saas.urls(base)["pagerduty_api_url"],
                    "escalation_policy_id": saas.ESCALATION_POLICY_ID,
                },
            },
        },
        env={},
    )
    res = run(cfg, IDS[1:])
    assert {r.status for r in res.values()} == {Status.ERROR}
    assert WRONG_TOKEN not in blob(res)


def test_unknown_escalation_policy_and_uncovered_schedule_fail(fakes, faults):
    base, _, _ = fakes
    u = saas.urls(base)
    res = run(
        team_config(
            base,
            oncall={
                "api_token": "${TEST_PD_TOKEN}",
                "api_url": u["pagerduty_api_url"],
                "escalation_policy_id": "PNOSUCH",
            },
        ),
        ["team.oncall.current"],
    )
    r = res["team.oncall.current"]
    assert r.status == Status.FAIL and "escalation policy PNOSUCH not found" in json.dumps(r.observed)
    res = run(
        team_config(
            base,
            oncall={
                "api_token": "${TEST_PD_TOKEN}",
                "api_url": u["pagerduty_api_url"],
                "escalation_policy_id": saas.ESCALATION_POLICY_ID,
                "schedule_ids": ["PSCHED01", "PWEEKEND"],
            },
        ),
        ["team.oncall.current"],
    )
    assert "nobody on call now on schedule PWEEKEND" in json.dumps(res["team.oncall.current"].observed)
    faults.add("oncall-nobody")  # nobody on call at all: each schedule the config names is named in turn
    r = run(team_config(base), ["team.oncall.current"])["team.oncall.current"]
    assert r.observed["problems"] == [
        "nobody on call at level 1 now",
        *(f"nobody on call now on schedule {s}" for s in saas.SCHEDULE_IDS),
    ]


def test_missing_channel_fails_and_names_it(fakes, faults):
    base, _, _ = fakes
    res = run(
        team_config(
            base,
            slack={
                "bot_token": "${TEST_SLACK_TOKEN}",
                "api_url": saas.urls(base)["slack_api_url"],
                "channels": ["#deployment", "#war-room"],
            },
        ),
        ["team.slack.channels"],
    )
    r = res["team.slack.channels"]
    assert r.status == Status.FAIL and r.observed["#war-room"].startswith("not found")
    assert r.details["failing"] == ["#war-room"]


def test_not_applicable_without_tokens_or_sections():
    cfg = parse_config({"environment": "team-test", "team": {"runbooks": {}}}, env={})
    res = run(cfg)
    assert {r.status for r in res.values()} == {Status.NOT_APPLICABLE}
    assert "team.slack.bot_token" in res["team.slack.channels"].cause
    assert "team.oncall" in res["team.oncall.current"].cause and "team.comms" in res["team.comms.templates"].cause
    cfg = parse_config({"environment": "team-test", "team": {"oncall": {"escalation_policy_id": "P1"}}}, env={})
    assert "api_token" in run(cfg, ["team.oncall.current"])["team.oncall.current"].cause


def test_comms_templates_as_files(tmp_path):
    notes = tmp_path / "release-notes.md"
    notes.write_text("# 1.4.0\n")
    empty = tmp_path / "status.md"
    empty.write_text("")
    cfg = parse_config(
        {
            "environment": "team-test",
            "team": {
                "comms": {
                    "release_notes": str(notes),
                    "status_page_template": str(empty),
                    "customer_email_template": str(tmp_path / "nope.txt"),
                }
            },
        },
        env={},
    )
    r = run(cfg, ["team.comms.templates"])["team.comms.templates"]
    assert r.status == Status.FAIL
    assert r.observed == {
        "release_notes": "file, 8 bytes",
        "status_page_template": "file is empty",
        "customer_email_template": "file missing",
    }
    assert f"stat {notes}" in r.evidence
    cfg = parse_config({"environment": "team-test", "team": {"comms": {"release_notes": str(notes)}}}, env={})
    r = run(cfg, ["team.comms.templates"])["team.comms.templates"]
    assert r.status == Status.FAIL and r.observed["customer_email_template"] == "not declared in team.comms"


def test_config_rejects_bad_api_urls_and_channel_names():
    from golive.flows.config import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_config(
            {
                "environment": "t",
                "team": {
                    "slack": {"api_url": "slack.com/api", "channels": ["#Deploy"]},
                    "oncall": {"api_token": "abcd1234"},
                },
            },
            env={},
        )
    problems = "\n".join(e.value.problems)
    assert "team.slack.api_url" in problems and "team.slack.channels" in problems
    assert "team.oncall.escalation_policy_id: required key is missing" in problems and "abcd1234" not in problems


# --------------------------------------------------------------------------- runbooks and contacts, on the sandbox

RUNBOOK_CONTACT_IDS = ["team.runbooks.reachable", "team.contacts.complete"]


@pytest.fixture(scope="module")
def sandbox_cfg(sandbox):
    """The sandbox's config: its runbooks are served over HTTPS by its own CA, which the config trusts (team.ca_file)."""
    cfg = sandbox_config(sandbox)
    assert cfg.team.ca_file == sandbox.ca_file
    return cfg


def test_sandbox_runbooks_and_contacts_pass(sandbox_cfg):
    res = run_ids(RUNBOOK_CONTACT_IDS, sandbox_cfg)
    assert res["team.runbooks.reachable"].status == Status.PASS, res["team.runbooks.reachable"].summary
    assert res["team.runbooks.reachable"].observed == {"deployment": "200", "rollback": "200"}
    assert res["team.contacts.complete"].status == Status.PASS
    assert res["team.contacts.complete"].observed == "all 8 roles complete"


def test_runbook_on_an_untrusted_or_dead_host_fails(sandbox_cfg):
    r = run_one("team.runbooks.reachable", with_(sandbox_cfg, "team", ca_file=None))  # the sandbox CA is not trusted
    assert r.status == Status.FAIL and "CERTIFICATE_VERIFY_FAILED" in r.observed["deployment"]
    r = run_one(
        "team.runbooks.reachable",
        with_(sandbox_cfg, "team", runbooks={"deployment": f"http://127.0.0.1:{refused_port()}/rb"}),
    )
    assert r.status == Status.FAIL and r.observed["deployment"].startswith("unreachable: ConnectError")


def test_file_runbooks(tmp_path, sandbox_cfg):
    (tmp_path / "deploy.md").write_text("# Deploy\n1. ...\n")
    (tmp_path / "empty.md").write_text("")
    books = {"deployment": str(tmp_path / "deploy.md"), "rollback": f"file://{tmp_path / 'deploy.md'}"}
    r = run_one("team.runbooks.reachable", with_(sandbox_cfg, "team", runbooks=books))
    assert r.status == Status.PASS and r.observed["deployment"].startswith("file, ")
    books = {**books, "dr": str(tmp_path / "empty.md"), "oncall": str(tmp_path / "nope.md")}
    r = run_one("team.runbooks.reachable", with_(sandbox_cfg, "team", runbooks=books))
    assert r.status == Status.FAIL
    assert r.observed["dr"] == "file is empty" and r.observed["oncall"] == "file missing"
    r = run_one("team.runbooks.reachable", with_(sandbox_cfg, "team", runbooks={}))
    assert r.status == Status.FAIL and r.observed == "no runbooks declared"


def test_incomplete_contacts_are_listed(sandbox_cfg):
    contacts = [c.model_dump() for c in sandbox_cfg.team.contacts if c.role != "CTO"]
    contacts[0] = {**contacts[0], "phone": "555-0101"}
    contacts[1] = {**contacts[1], "slack": ""}
    contacts[2] = {**contacts[2], "email": "priya.raman@"}
    contacts[3] = {**contacts[3], "phone": "+1 (415) 555-0104"}  # formatted E.164 is fine
    r = run_one("team.contacts.complete", with_(sandbox_cfg, "team", contacts=contacts))
    assert r.status == Status.FAIL
    inc = r.observed["incomplete"]
    assert set(inc) == {"CTO", contacts[0]["role"], contacts[1]["role"], contacts[2]["role"]}
    assert inc["CTO"] == ["no contact for this role"]
    assert "is not E.164" in inc[contacts[0]["role"]][0]
    assert "slack handle/channel missing" in inc[contacts[1]["role"]][0]
    assert "is not a valid address" in inc[contacts[2]["role"]][0]


# --------------------------------------------------------------------------- the fakes answer like the APIs


def test_fakes_answer_like_slack_and_pagerduty(fakes, faults):
    base, _, _ = fakes
    with httpx.Client(base_url=base, timeout=5) as c:
        r = c.get("/slack/api/conversations.list")
        assert r.status_code == 200 and r.json() == {"ok": False, "error": "not_authed"}
        r = c.get("/slack/api/conversations.list", headers={"Authorization": "Bearer xoxb-nope"})
        assert r.json() == {"ok": False, "error": "invalid_auth"}
        auth = {"Authorization": f"Bearer {SLACK_TOKEN}"}
        names, cursor, pages = [], "", 0
        while True:
            form = {"limit": "200", "exclude_archived": "true", **({"cursor": cursor} if cursor else {})}
            body = c.post("/slack/api/conversations.list", headers=auth, data=form).json()
            pages += 1
            assert body["ok"] and len(body["channels"]) <= saas.SLACK_PAGE_CAP
            names += [ch["name"] for ch in body["channels"]]
            cursor = body["response_metadata"]["next_cursor"]
            if not cursor:
                break
        assert pages > 1 and "deployment" in names and "random-archive" not in names and "leadership" not in names
        assert c.get("/slack/api/conversations.list", headers=auth, params={"cursor": "garbage!"}).json() == {
            "ok": False,
            "error": "invalid_cursor",
        }
        assert (
            c.get("/slack/api/conversations.list", headers=auth, params={"types": "bogus"}).json()["error"]
            == "invalid_types"
        )

        r = c.get("/pagerduty/oncalls")
        assert r.status_code == 401 and r.json()["error"]["message"] == "Unauthorized"
        pd = {"Authorization": f"Token token={PD_TOKEN}", "Accept": "application/vnd.pagerduty+json;version=2"}
        body = c.get("/pagerduty/oncalls", headers=pd, params={"limit": 1}).json()
        assert len(body["oncalls"]) == 1 and body["more"] is True and body["limit"] == 1 and body["offset"] == 0
        o = body["oncalls"][0]
        assert o["user"]["type"] == "user_reference" and o["escalation_level"] == 1
        assert o["schedule"]["id"] == "PSCHED01"
        r = c.get(f"/pagerduty/escalation_policies/{saas.ESCALATION_POLICY_ID}", headers=pd)
        rules = r.json()["escalation_policy"]["escalation_rules"]
        assert [x["escalation_delay_in_minutes"] for x in rules] == [5, 5, 5]
        assert c.get("/pagerduty/escalation_policies/PNOSUCH", headers=pd).status_code == 404
        faults.add("saas-bad-token")
        assert c.get("/pagerduty/oncalls", headers=pd).status_code == 401


def test_saas_main_serves_on_the_given_port_with_tokens_from_the_environment():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, saas.SLACK_TOKEN_ENV: SLACK_TOKEN, saas.PAGERDUTY_TOKEN_ENV: PD_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "golive.sandbox.fakes.team_apis", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/pagerduty/oncalls",
                    timeout=2,
                    headers={"Authorization": f"Token token={PD_TOKEN}"},
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["oncalls"]
        assert SLACK_TOKEN not in " ".join(proc.args) and PD_TOKEN not in " ".join(proc.args)
    finally:
        proc.terminate()
        proc.wait(10)


# --------------------------------------------------------------------------- attestations


def test_attestations_are_typed_owned_and_cover_known_seed_items():
    from golive.flows.attestations import ATTESTATIONS, EVERY_SIGNER, attestation, covering, for_role
    from golive.flows.catalog import coverage, render_catalog
    from golive.flows.policies import Role

    seed = {i["ref"] for i in json.loads((REPO / "flows" / "seed_items.json").read_text())}
    ids = [a.id for a in ATTESTATIONS]
    assert len(ids) == len(set(ids)) and all(i.isidentifier() for i in ids)
    assert {a.role for a in ATTESTATIONS} <= {r.value for r in Role} | {EVERY_SIGNER}
    for a in ATTESTATIONS:
        assert set(a.seed) <= seed, a.id
        assert a.seed or a.source.startswith("10.3"), a.id  # only the personal 10.3 acknowledgements map to no item
    for ref in [
        "9.1 Team Briefing",
        "9.2 Stakeholder Notification",
        "8.2 Rollback Decision",
        "9.2 Post-Deployment Communication",
    ]:
        assert ref in covering(), ref
    assert attestation("rollback_procedures_understood").role == EVERY_SIGNER
    assert {a.id for a in for_role(Role.PRODUCT_LEAD)} >= {"blog_post_drafted", "available_post_deployment"}
    cov = coverage()
    assert len(cov) == 112
    assert "attestation: team_briefed (Deployment Coordinator)" in cov["9.1 Team Briefing"]
    assert cov["9.2 Post-Deployment Communication"][0] == "team.comms.templates"
    md = render_catalog(fmt="md")
    assert "| 9.2 Stakeholder Notification | attestation: executives_informed (VP Engineering)" in md
    assert "covered by a check, an attestation" in md


def test_no_secret_survives_the_redactor_in_evidence(fakes, faults):
    base, _, _ = fakes
    cfg = team_config(base)
    red = Redactor(cfg.secrets())
    assert red.text(f"Bearer {SLACK_TOKEN} Token token={PD_TOKEN}") == "Bearer *** Token token=***"


# --------------------------------------------------------------------------- through the flow, on a real Prefect server


def test_team_section_through_the_flow_leaks_no_token(fakes, faults, prefect_api, tmp_path, monkeypatch):
    """The team section as Prefect task runs: the results land in the report, and neither token is in the logs,
    the artifacts, the report files or the report (the tokens travel only in Authorization headers)."""
    import asyncio

    import yaml

    from golive.deployments.cli import _drain_prefect
    from tests.support.flows import artifact, flow_run_logs, run_flow

    base, _, _ = fakes
    u = saas.urls(base)
    monkeypatch.setenv("TEST_SLACK_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("TEST_PD_TOKEN", PD_TOKEN)
    team = {
        "comms": {k: u[k] for k in ("release_notes", "status_page_template", "customer_email_template")},
        "slack": {"bot_token": "${TEST_SLACK_TOKEN}", "api_url": u["slack_api_url"]},
        "oncall": {
            "api_token": "${TEST_PD_TOKEN}",
            "api_url": u["pagerduty_api_url"],
            "escalation_policy_id": saas.ESCALATION_POLICY_ID,
        },
    }
    cfg = tmp_path / "team.yaml"
    cfg.write_text(yaml.safe_dump({"environment": "team-flow", "team": team}))
    out = tmp_path / "reports"
    states = []
    for fault in (None, "saas-bad-token"):
        faults.clear()
        if fault:
            faults.add(fault)
        report, state = run_flow(cfg, mode="ci", out=out, sections=["team"])
        res = {r.id: r.status for r in report.results}
        expected = Status.ERROR if fault else Status.PASS
        assert res["team.slack.channels"] == res["team.oncall.current"] == expected, res
        assert res["team.comms.templates"] == Status.PASS
        states.append(state)
    _drain_prefect()
    logs, _ = asyncio.run(flow_run_logs(str(states[-1].state_details.flow_run_id)))
    assert any("Slack rejected the bot token" in m for m in logs)
    artifacts = [json.dumps(asyncio.run(artifact(f"golive-{k}-team-flow"))) for k in ("report", "checks", "verdict")]
    files = [p.read_text() for p in out.rglob("*") if p.is_file()]
    haystack = "\n".join([*logs, *artifacts, *files])
    assert "team.oncall.current" in haystack
    for token in (SLACK_TOKEN, PD_TOKEN):
        assert token not in haystack
