"""Verdicts Prefect can see (issue 14, point 5): a readiness run's final state is named by its verdict (a NO-GO
rehearsal ends Completed named NO-GO, a NO-GO ci run Failed named NO-GO), and every run emits a `golive.verdict`
event an Automation can trigger on. On a real Prefect server against the real sandbox, one section with a fault."""

from __future__ import annotations

import asyncio
import time

import pytest

from golive.flows.report import Verdict
from tests.support.flows import run_flow


async def _verdict_events(flow_run_id: str, deadline_s: float = 20.0) -> list[dict]:
    """The golive.verdict events related to one flow run (the server persists events a moment after they arrive)."""
    from prefect.client.orchestration import get_client

    end = time.monotonic() + deadline_s
    async with get_client() as c:
        while True:
            r = await c._client.post(
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["golive.verdict"]},
                        "related": {"id": [f"prefect.flow-run.{flow_run_id}"]},
                    },
                    "limit": 10,
                },
            )
            r.raise_for_status()
            events = r.json()["events"]
            if events or time.monotonic() > end:
                return events
            await asyncio.sleep(0.5)


def test_a_no_go_rehearsal_ends_named_no_go_and_emits_its_verdict(sandbox, prefect_api):
    from golive.deployments.cli import _drain_prefect

    with sandbox.fault("hsts-short"):
        report, state = run_flow(sandbox.config_path, mode="rehearsal", sections=["security"])
    _drain_prefect()
    assert report.verdict == Verdict.NO_GO
    assert state.is_completed() and state.name == "NO-GO" and state.message.startswith("NO-GO: ")
    (event,) = asyncio.run(_verdict_events(str(state.state_details.flow_run_id)))
    assert event["resource"]["prefect.resource.id"] == f"golive.environment.{report.environment}"
    assert event["resource"]["golive.verdict"] == "NO-GO"
    p = event["payload"]
    assert (p["verdict"], p["mode"], p["exit_code"]) == ("NO-GO", "rehearsal", 2)
    assert "security.headers.hsts" in p["blocking"] and p["counts"]["FAIL"] >= 1
    assert p["report_artifact"] == f"golive-report-{report.environment}"
    assert not any(v and v in str(event) for v in sandbox.env.values())  # no secret in the event


def test_a_go_ci_run_ends_named_go_and_a_no_go_one_failed_named_no_go(sandbox, prefect_api):
    report, state = run_flow(sandbox.config_path, mode="ci", sections=["team"])
    assert report.verdict == Verdict.GO and state.is_completed() and state.name == "GO"
    with sandbox.fault("hsts-short"):
        report, state = run_flow(sandbox.config_path, mode="ci", sections=["security"])
    assert state.is_failed() and state.name == "NO-GO"


@pytest.mark.e2e
def test_a_no_go_rehearsal_triggers_an_automation_that_posts_to_a_webhook(sandbox, prefect_api, tmp_path):
    """Issue #14 acceptance: the verdict is Prefect's to route. An Automation created through the API (trigger: the
    `golive.verdict` event with verdict NO-GO; action: call a Webhook block) posts to a local Slack-compatible fake
    when a rehearsal reaches NO-GO. On its own Prefect server with the triggers service on (golive's lean server
    runs without it), on the same database."""
    from prefect.blocks.webhook import Webhook
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from golive.deployments.cli import _drain_prefect
    from golive.deployments.prefect_server import PrefectServer
    from tests.support.servers import Receiver

    server = PrefectServer(sandbox.prefect_database_url(), tmp_path / "home", services=("TRIGGERS",)).start()
    try:
        # Prefect keeps one events worker per process whatever the API URL: one an earlier test started would
        # send this run's events to that test's server (drained and dropped here, as the CLI does at exit)
        _drain_prefect()
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}), Receiver() as hook:
            block_id = Webhook(url=hook.url, allow_private_urls=True).save("golive-no-go-hook", overwrite=True)
            import httpx

            r = httpx.post(
                server.api_url + "/automations/",
                json={
                    "name": "golive: tell the team about a NO-GO",
                    "enabled": True,
                    "trigger": {
                        "type": "event",
                        "posture": "Reactive",
                        "expect": ["golive.verdict"],
                        "match": {"prefect.resource.id": "golive.environment.*", "golive.verdict": "NO-GO"},
                        "threshold": 1,
                        "within": 0,
                    },
                    "actions": [
                        {
                            "type": "call-webhook",
                            "block_document_id": str(block_id),
                            "payload": '{"text": "golive {{ event.resource[\'golive.verdict\'] }} for '
                            "{{ event.resource['prefect.resource.name'] }}\"}",
                        }
                    ],
                },
                timeout=10,
            )
            assert r.status_code == 201, r.text
            time.sleep(2)  # the triggers service loads automations on a short loop
            with sandbox.fault("hsts-short"):
                report, state = run_flow(sandbox.config_path, mode="rehearsal", sections=["security"])
            _drain_prefect()
            assert report.verdict == Verdict.NO_GO
            deadline = time.monotonic() + 60
            while not hook.posts and time.monotonic() < deadline:
                time.sleep(0.5)
            assert hook.posts, "the Automation did not call the webhook within 60 s"
            assert hook.posts[0]["json"] == {"text": f"golive NO-GO for {report.environment}"}, hook.posts
    finally:
        server.stop()
