"""The sign-off rules (flows.approval.evaluate) on real report objects; the pauses themselves are tested end to end
in test_golive_e2e.py and test_ui.py."""

from __future__ import annotations

from datetime import UTC, datetime, timezone

import pytest

from golive.flows.approval import (
    SECTION_SIGNOFFS,
    attestation_field,
    attestations,
    evaluate,
    form_description,
    signoff_form,
)
from golive.flows.policies import ApprovalPolicy
from golive.flows.report import build_report
from golive.tasks.core import CheckResult, Severity, Status


def result(cid: str, status: Status) -> CheckResult:
    now = datetime.now(UTC)
    return CheckResult(
        id=cid,
        title=cid,
        section=cid.split(".")[0],
        severity=Severity.BLOCKING,
        seed=["x"],
        status=status,
        observed="o",
        expected="e",
        evidence="ev",
        started_at=now,
        finished_at=now,
        duration_s=0.0,
    )


def report(*statuses: Status):
    return build_report(
        [result(f"security.x.c{i}", s) for i, s in enumerate(statuses)],
        environment="prod",
        mode="go-live",
        started_at=datetime.now(UTC),
        flow_run_id="run-1",
    )


def form(**kw):
    fields = {
        "signer_name": "Samuel Adeyemi",
        "signer_role": "CTO",
        "decision": "GO",
        **{k: True for k in SECTION_SIGNOFFS},
        **{attestation_field(a): True for a in attestations()},
    }
    fields.update(kw)
    return signoff_form()(**fields)


def test_a_complete_go_on_a_green_report_is_accepted():
    assert evaluate(form(), report(Status.PASS), []) == []


def test_go_over_a_blocking_failure_needs_override_and_reason():
    red = report(Status.PASS, Status.FAIL)
    assert any(
        p.startswith("GO refused: 1 blocking check(s) failed (security.x.c1)") for p in evaluate(form(), red, [])
    )
    assert evaluate(form(override_blocking_failures=True), red, []) == ["an override needs a reason"]
    assert evaluate(form(override_blocking_failures=True, reason="known flaky probe, fixed in 1.5.1"), red, []) == []


def test_no_go_needs_a_reason_and_nothing_else():
    assert evaluate(form(decision="NO-GO"), report(Status.PASS), []) == ["a NO-GO needs a reason"]
    assert (
        evaluate(form(decision="NO-GO", reason="freeze", infrastructure_signed_off=False), report(Status.PASS), [])
        == []
    )


def test_go_needs_every_section_sign_off_and_every_attestation():
    problems = evaluate(
        form(database_signed_off=False, **{attestation_field(attestations()[0]): False}), report(Status.PASS), []
    )
    assert any("Database: all checks complete" in p for p in problems)
    assert any(attestations()[0].statement in p for p in problems)


def test_one_person_counts_once_whatever_the_spacing_or_case():
    first = form()
    problems = evaluate(
        form(signer_name="  samuel   ADEYEMI ", signer_role="VP Engineering"), report(Status.PASS), [first]
    )
    assert len(problems) == 1 and problems[0].endswith("has already signed: one person counts once")


def test_the_form_shows_what_is_signed_for():
    text = form_description(report(Status.PASS, Status.ERROR), ApprovalPolicy(), [], ["GO refused: x"])
    assert "The last sign-off was refused" in text and "security.x.c1" in text
    assert "API not responding > 1 minute" in text and "CTO, VP Engineering" in text


def test_every_box_a_go_needs_is_labelled_required_with_why():
    """Prefect's form shows "(Optional)" on every field with a default: the boxes a GO cannot do without say they
    are required for GO, and why, in their own label (issue #14: the form misled)."""
    props = signoff_form().model_json_schema()["properties"]
    needed = [*SECTION_SIGNOFFS, *(attestation_field(a) for a in attestations())]
    assert len(needed) > 10
    for name in needed:
        assert props[name]["title"].startswith("Required for GO: "), props[name]
        assert props[name]["description"].startswith("Required for GO (a NO-GO may leave it unticked): "), name
    for a in attestations():
        assert a.statement in props[attestation_field(a)]["title"]
    # and nothing else is labelled so: the override box and the reason are not required for a GO
    others = set(props) - set(needed)
    assert not [n for n in others if "Required for GO" in props[n].get("title", "")]
    # every box so labelled is one `rules` refuses a GO without
    blank = form(**dict.fromkeys(needed, False))
    problems = " ".join(evaluate(blank, report(Status.PASS), []))
    for name in SECTION_SIGNOFFS:
        assert SECTION_SIGNOFFS[name] in problems
    for a in attestations():
        assert a.statement in problems


def test_the_form_names_the_release_a_go_deploys_as_text():
    text = form_description(report(Status.PASS), ApprovalPolicy(), [], [], "v2.4.0")
    assert "**Release a GO deploys:** v2\\.4\\.0" in text or "**Release a GO deploys:** v2.4.0" in text, text
    hostile = form_description(report(Status.PASS), ApprovalPolicy(), [], [], "v1](http://evil)`<b>")
    assert "v1\\](http" in hostile and "<b>" not in hostile  # escaped: text, not a link or HTML


def test_approvers_config_is_validated_naming_the_field():
    """A mail header smuggled into `mail_from`, an address that is not one, a webhook that is not http(s): one
    problem each, naming the key; the webhook URL (a secret) never in the message."""
    import pytest

    from golive.flows.config import ConfigError, parse_config

    cases = [
        ({"mail_from": "golive@x.test\nBcc: all@x.test"}, "approval.mail_from"),
        (
            {"approvers": [{"name": "Sam Adeyemi", "role": "CTO", "email": "not an address"}]},
            "approval.approvers[0].email",
        ),
        (
            {"approvers": [{"name": "Sam Adeyemi", "role": "CTO", "slack_webhook": "ftp://hooks/SECRET123"}]},
            "approval.approvers[0].slack_webhook",
        ),
    ]
    for approval, field in cases:
        with pytest.raises(ConfigError) as e:
            parse_config({"environment": "staging", "approval": approval}, env={})
        assert field in str(e.value) and "SECRET123" not in str(e.value), str(e.value)


def test_who_requested_the_go_live_cannot_be_its_only_approver():
    """Issue #14 point 4: the requester may sign, but a GO also needs someone who did not request it (on by default,
    `approval.requester_may_approve_alone` turns it off); the deploy flow's replay applies the same rule."""
    from types import SimpleNamespace

    from golive.flows.approval import outcome, replay, requester_rule, requesters_of
    from golive.flows.report import Verdict

    run = SimpleNamespace(
        parameters={"requested_by": "  Samuel   Adeyemi "},
        created_by=SimpleNamespace(type="USER", display_value="mallory@example.com"),
    )
    assert requesters_of(run) == ["Samuel Adeyemi", "mallory@example.com"]
    assert (
        requesters_of(SimpleNamespace(parameters={}, created_by=SimpleNamespace(type="DEPLOYMENT", display_value="x")))
        == []
    )
    policy = ApprovalPolicy(required_roles=["CTO"])
    rule = requester_rule(policy, requesters_of(run))
    alone = [form(signer_name="samuel adeyemi")]
    assert outcome(alone, {"CTO"}) == (Verdict.GO, "GO signed by samuel adeyemi (CTO)")  # no requester known
    assert outcome(alone, {"CTO"}, rule) is None  # the requester alone: not yet a GO
    both = alone + [form(signer_name="Grace Liu")]
    assert outcome(both, {"CTO"}, rule)[0] == Verdict.GO
    assert outcome([form(signer_name="Grace Liu")], {"CTO"}, rule)[0] == Verdict.GO  # not requested by her
    no_go = [form(signer_name="Samuel Adeyemi", decision="NO-GO", reason="freeze")]
    assert outcome(no_go, {"CTO"}, rule)[0] == Verdict.NO_GO  # a requester's NO-GO still ends it
    assert (
        requester_rule(ApprovalPolicy(required_roles=["CTO"], requester_may_approve_alone=True), ["Samuel Adeyemi"])
        == frozenset()
    )
    # the replay the deploy flow runs over stored inputs: the requester's GO alone decides nothing
    assert replay(alone, [], {"CTO"}, rule)[1] is None
    accepted, reached, at = replay(both, [], {"CTO"}, rule)
    assert reached[0] == Verdict.GO and at == 2 and len(accepted) == 2
    text = form_description(report(Status.PASS), policy, [], [], "1.5.0", ["Samuel Adeyemi"])
    assert "**Requested by:** Samuel Adeyemi (may sign, but a GO also needs an approver who did not request it)" in text


def test_a_suspended_run_reads_back_only_its_own_report_and_never_unpickles(prefect_api, tmp_path):
    """A suspended go-live run keeps its report in Prefect's result storage and reads it back when a sign-off resumes
    it. Whoever can write that storage must not be able to run code in the gate (a pickle is never loaded: a
    payload that would create a file on unpickling stays inert) nor swap in another run's report. (Prefect asks its
    API for a server-wide default storage block first: the session's server has none.)"""
    import asyncio
    import pickle

    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from golive.flows.approval import REPORT_KEY, Kept, load_report, save_report

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    rep = report(Status.PASS, Status.FAIL).model_copy(update={"flow_run_id": "run-A"})
    with temporary_settings(updates={PREFECT_LOCAL_STORAGE_PATH: tmp_path}):
        assert asyncio.run(save_report(rep, {"release": "1.5.0"})) is None
        back = asyncio.run(load_report("run-A"))
        assert back.report == rep and back.bound == {"release": "1.5.0"}
        assert [r.id for r in back.report.blocking_failures] == ["security.x.c1"]
        # another run's report under this run's key: refused
        (tmp_path / REPORT_KEY.format("run-B")).write_text(Kept(report=rep, bound={}).model_dump_json())
        with pytest.raises(LookupError, match="names run run-A, not run-B"):
            asyncio.run(load_report("run-B"))
        # a pickle planted under a run's key: not JSON, refused, never executed
        (tmp_path / REPORT_KEY.format("run-C")).write_bytes(pickle.dumps(Boom()))
        with pytest.raises(LookupError, match="not readable from Prefect's result storage"):
            asyncio.run(load_report("run-C"))
        assert not (tmp_path / "pwned").exists()
        with pytest.raises(LookupError, match="not readable"):  # nothing kept at all
            asyncio.run(load_report("run-D"))
