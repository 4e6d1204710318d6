"""Approvers are told (issue #14, point 1): a sign-off opened, refused, half its time gone, timed out, decided. Email
through the config's own SMTP (the sandbox's: STARTTLS + AUTH, messages kept in its mailbox) and each approver's
Slack-compatible webhook (a real HTTP receiver); best effort, and no secret in any message or problem line."""

from __future__ import annotations

import asyncio
import json

from golive.flows.notify_approvers import Notice, notify
from golive.tasks.core import Redactor, collect_secrets
from tests.support.checks import sandbox_config
from tests.support.servers import Receiver


def config_with_approvers(sandbox, hook_url: str):
    from golive.flows.policies import ApprovalPolicy

    cfg = sandbox_config(sandbox)
    approval = ApprovalPolicy(
        **{
            **cfg.approval.model_dump(),
            "mail_from": "golive@swipesavvy.test",
            "approvers": [
                {"name": "Samuel Adeyemi", "role": "CTO", "email": "cto@swipesavvy.test", "slack_webhook": hook_url},
                {"name": "Grace Liu", "role": "VP Engineering", "email": "vpe@swipesavvy.test"},
            ],
        }
    )
    return cfg.model_copy(update={"approval": approval})


def a_notice(what: str, roles: list[str], **kw) -> Notice:
    return Notice(
        what=what,
        environment="sandbox",
        round_no=2,
        link="http://127.0.0.1:4200/runs/flow-run/abc",
        summary="Readiness GO for sandbox, release 1.5.0: 273 checks, 0 blocking failure(s), 0 warning(s).",
        roles=roles,
        **kw,
    )


def test_the_approvers_still_needed_get_an_email_and_their_webhook_with_the_link(sandbox):
    with Receiver() as hook:
        cfg = config_with_approvers(sandbox, hook.url)
        before = len(sandbox.mail())
        problems = asyncio.run(notify(cfg, a_notice("opened", ["CTO"]), Redactor(collect_secrets(cfg))))
        assert problems == []
        mail = sandbox.mail()[before:]
        assert len(mail) == 1, [m["Subject"] for m in mail]
        m = mail[0]
        assert m["X-Rcpt-To"] == "cto@swipesavvy.test"  # the VP Engineering has signed: not bothered
        assert m["Subject"] == "[golive] sandbox: go-live waits for your sign-off"
        body = m.get_content()
        assert "http://127.0.0.1:4200/runs/flow-run/abc" in body and "Still needed: CTO" in body
        [post] = hook.posts
        assert "runs/flow-run/abc" in post["json"]["text"] and post["json"]["golive"]["what"] == "opened"

        # a decision goes to everyone, with the verdict in the subject
        problems = asyncio.run(notify(cfg, a_notice("decided", [], decision="GO"), Redactor(collect_secrets(cfg))))
        assert problems == []
        decided = sandbox.mail()[before + 1 :]
        assert sorted(d["X-Rcpt-To"] for d in decided) == ["cto@swipesavvy.test, vpe@swipesavvy.test"]
        assert decided[0]["Subject"].endswith("go-live decided GO")


def test_a_refusal_says_why_and_a_dead_webhook_is_a_redacted_problem_never_an_exception(sandbox):
    with Receiver(status=404) as hook:
        cfg = config_with_approvers(sandbox, hook.url)
        before = len(sandbox.mail())
        n = a_notice(
            "refused", ["CTO", "VP Engineering"], problems=["Samuel Adeyemi has already signed: one person counts once"]
        )
        problems = asyncio.run(notify(cfg, n, Redactor(collect_secrets(cfg))))
    [line] = problems
    assert line.startswith("webhook of Samuel Adeyemi: HTTPStatusError") and "404" in line
    secrets = [s for s in collect_secrets(cfg) if s]
    assert hook.url in secrets
    blob = json.dumps(problems) + "".join(str(m) for m in sandbox.mail()[before:])
    for s in secrets:
        assert s not in blob
    [m] = sandbox.mail()[before:]
    assert "Refused because:\n- Samuel Adeyemi has already signed" in m.get_content().replace("\r\n", "\n")


def test_without_smtp_the_email_is_one_problem_line_and_the_webhook_still_goes(sandbox):
    with Receiver() as hook:
        cfg = config_with_approvers(sandbox, hook.url).model_copy(update={"smtp": None})
        problems = asyncio.run(notify(cfg, a_notice("timed-out", [], decision="NO-GO"), Redactor(collect_secrets(cfg))))
        assert problems == ["email: RuntimeError: approvers have email addresses but the config has no `smtp` section"]
        assert hook.posts and hook.posts[0]["json"]["golive"]["what"] == "timed-out"


def test_a_server_that_never_answers_cannot_hold_the_run_and_slack_markup_stays_text(sandbox):
    """A webhook that accepts and then trickles nothing holds each delivery at most `notify_timeout_s` (all of
    them at once); a hostile check summary's Slack markup (`<!channel>`, a disguised link) reaches Slack as text."""
    import socket
    import time

    from golive.flows.policies import ApprovalPolicy

    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen(8)
    try:
        with Receiver() as hook:
            cfg = config_with_approvers(sandbox, hook.url)
            approvers = [
                *cfg.approval.model_dump()["approvers"],
                {"name": "Tar Pit", "role": "CTO", "slack_webhook": f"http://127.0.0.1:{tarpit.getsockname()[1]}/x"},
            ]
            approval = ApprovalPolicy(**{**cfg.approval.model_dump(), "approvers": approvers, "notify_timeout_s": 1})
            cfg = cfg.model_copy(update={"approval": approval, "smtp": None})
            n = a_notice("opened", ["CTO"], blocking=["security.x FAIL: <!channel> <https://evil.test|Sign-off form>"])
            t0 = time.monotonic()
            problems = asyncio.run(notify(cfg, n, Redactor(collect_secrets(cfg))))
            took = time.monotonic() - t0
        assert took < 3, took
        assert any(p.startswith("webhook of Tar Pit: TimeoutError") for p in problems), problems
        [post] = hook.posts
        assert "<!channel>" not in post["json"]["text"] and "&lt;!channel&gt;" in post["json"]["text"]
        assert "<https://evil.test|" not in post["json"]["text"]
    finally:
        tarpit.close()
