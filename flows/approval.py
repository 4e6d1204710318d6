"""Section 10: the sign-off. A typed form in the Prefect UI (a paused run waiting for input), its rules, the decision.

How it works:
- each sign-off is one pause in its own small subflow (`go-live-sign-off`): a pause timeout forces *that* run to
  Failed, and the readiness flow records the timeout as a NO-GO instead of failing with it;
- the form's description is the report summary: verdict, blocking failures, warnings, what the signer attests,
  and the rollback criteria the approvers are signing up for;
- schema problems (a missing name, an unknown role) are refused by the Prefect API itself and the run stays paused;
  the business rules below are checked here, and a refused sign-off re-opens the form with the reason on top;
- N-of-M approvals by role: sign-offs are collected in successive pauses until every required role has a GO from a
  distinct person (one signer never counts twice); any accepted NO-GO ends it.
Prefect records no approver identity on a resume: the signer's name and role in the form are the record, published
with everything they saw as the `golive-decision-<env>` artifact. That artifact is for people: anyone with API access
can write one, so the deploy flow re-decides from the run input Prefect stored on each resume (`submitted_decision`).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput, keyset_from_paused_state
from prefect.states import Paused
from pydantic import BaseModel, Field, ValidationError, create_model

from .policies import SECTION_SIGNOFFS, ApprovalPolicy, Decision, Role
from .report import Report, Verdict, md, plain

ROLLBACK_CRITERIA = """\
**CRITICAL (immediate automatic rollback):** API not responding > 1 minute; database inaccessible; data corruption
detected; security breach detected; revenue-impacting feature broken.
**HIGH (assess within 5 minutes, then roll back unless acknowledged):** login failing for > 5 % of users; campaign
creation failing; payment processing down; notification delivery failing.
**MEDIUM (report only):** UI issues for some users; performance degradation > 50 %; analytics not collecting."""


# Prefect's form marks every field with a default "(Optional)". The section sign-offs and attestations have one (a
# NO-GO may leave them unticked), but a GO is refused without every one: the label says so, and why.
REQUIRED_FOR_GO = "Required for GO"
SECTION_REASON = ("Required for GO (a NO-GO may leave it unticked): the checklist's section 10.1 sign-off; GO is "
                  "refused while any section is not signed off")


def required_title(title: str) -> str:
    return f"{REQUIRED_FOR_GO}: {title}"


class SignOffBase(RunInput):
    """The fields every sign-off has; attestations are added from flows.attestations."""

    signer_name: str = Field(min_length=2, max_length=120, title="Your full name",
                             description="Prefect records no approver identity: this is the record")
    signer_role: Role = Field(title="Your role")
    decision: Decision = Field(title="Decision")
    reason: str = Field("", max_length=4000, title="Reason",
                        description="required for NO-GO and for any override of a blocking failure")
    override_blocking_failures: bool = Field(
        False, title="Override blocking failures",
        description="GO although blocking checks failed: recorded with your name and reason")
    infrastructure_signed_off: bool = Field(False, title=required_title(SECTION_SIGNOFFS["infrastructure_signed_off"]),
                                            description=SECTION_REASON)
    database_signed_off: bool = Field(False, title=required_title(SECTION_SIGNOFFS["database_signed_off"]),
                                      description=SECTION_REASON)
    application_signed_off: bool = Field(False, title=required_title(SECTION_SIGNOFFS["application_signed_off"]),
                                         description=SECTION_REASON)
    security_signed_off: bool = Field(False, title=required_title(SECTION_SIGNOFFS["security_signed_off"]),
                                      description=SECTION_REASON)
    operations_signed_off: bool = Field(False, title=required_title(SECTION_SIGNOFFS["operations_signed_off"]),
                                        description=SECTION_REASON)


def attestations() -> list[Any]:
    try:
        from .attestations import ATTESTATIONS
    except ImportError:  # pragma: no cover - the module ships with golive
        return []
    return list(ATTESTATIONS)


def attestation_field(att: Any) -> str:
    return f"attest_{att.id}"


def signoff_form() -> type[SignOffBase]:
    """The form model: the base fields plus one checkbox per attestation (its statement and owning role)."""
    fields = {attestation_field(a): (bool, Field(
        False, title=required_title(f"{a.statement} ({a.role})"),
        description=f"Required for GO (a NO-GO may leave it unticked): only a person can know it; "
                    f"the checklist's {', '.join(a.seed) or a.source}")) for a in attestations()}
    return create_model("GoLiveSignOff", __base__=SignOffBase, **fields)


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def evaluate(signoff: SignOffBase, report: Report, prior: list[SignOffBase]) -> list[str]:
    """The business rules; an empty list means the sign-off is accepted."""
    return rules(signoff, [r.id for r in report.blocking_failures], prior)


def rules(signoff: SignOffBase, blocking: list[str], prior: list[SignOffBase]) -> list[str]:
    """`evaluate` on the ids of the blocking failures: what the deploy flow re-checks, without the report."""
    problems: list[str] = []
    if _norm(signoff.signer_name) in {_norm(p.signer_name) for p in prior}:
        problems.append(f"{signoff.signer_name} has already signed: one person counts once")
    reason = signoff.reason.strip()
    if signoff.decision == Decision.NO_GO:
        if not reason:
            problems.append("a NO-GO needs a reason")
        return problems
    if blocking and not signoff.override_blocking_failures:
        problems.append(f"GO refused: {len(blocking)} blocking check(s) failed "
                        f"({', '.join(blocking[:5])}{'…' if len(blocking) > 5 else ''}); "
                        "tick 'Override blocking failures' and give a reason, or decide NO-GO")
    if signoff.override_blocking_failures and not reason:
        problems.append("an override needs a reason")
    missing = [title for name, title in SECTION_SIGNOFFS.items() if not getattr(signoff, name)]
    if missing:
        problems.append("GO needs every section signed off; missing: " + "; ".join(missing))
    unattested = [a.statement for a in attestations() if not getattr(signoff, attestation_field(a), False)]
    if unattested:
        problems.append("GO needs every attestation; missing: " + "; ".join(unattested))
    return problems


SIGN_OFF_FLOW = "go-live-sign-off"
RECORDED_DEPLOY = "; deploy flow run {}"  # how a GO's final state message names the one deploy run it triggered


def response_key(round_no: int) -> str:
    """Where Prefect stores the input sign-off run `round_no` was resumed with (its Paused state's keyset)."""
    return keyset_from_paused_state(Paused(pause_key=f"sign-off-{round_no}"))["response"]


def outcome(accepted: list[SignOffBase], need: set[str]) -> tuple[Verdict, str] | None:
    """The decision the accepted sign-offs reach, if any: the first NO-GO ends it; GO once every required role has a
    GO from a distinct person."""
    last = accepted[-1]
    if last.decision == Decision.NO_GO:
        return Verdict.NO_GO, f"NO-GO by {last.signer_name} ({last.signer_role.value}): {last.reason.strip()}"
    if need <= {s.signer_role.value for s in accepted if s.decision == Decision.GO}:
        return Verdict.GO, "GO signed by " + ", ".join(f"{s.signer_name} ({s.signer_role.value})" for s in accepted)
    return None


class DecisionRecord(BaseModel):
    environment: str
    release: str | None = None
    readiness_flow_run_id: str | None
    decision: Verdict  # GO or NO-GO (GO-WITH-WARNINGS never: people decide GO or NO-GO)
    why: str
    decided_at: datetime
    report_verdict: Verdict
    blocking_seen: list[str]
    warnings_seen: list[str]
    required_roles: list[str]
    signoffs: list[dict[str, Any]] = Field(default_factory=list)
    refused: list[dict[str, Any]] = Field(default_factory=list)
    overrides: list[dict[str, Any]] = Field(default_factory=list)
    timed_out: bool = False
    signoff_runs: list[str] = Field(default_factory=list, description="the go-live-sign-off runs, round by round")
    deploy_flow_run_id: str | None = None


def form_description(report: Report, policy: ApprovalPolicy, signed: list[SignOffBase], problems: list[str],
                     release: str | None = None) -> str:
    lines = []
    if problems:
        lines += ["### ⛔ The last sign-off was refused", ""] + [f"- {md(p, 1000)}" for p in problems] + [""]
    lines += [f"## Go-live sign-off: `{report.environment}` — readiness {report.verdict.value}", "",
              f"{len(report.results)} checks in {report.duration_s:.1f} s; readiness run `{report.flow_run_id}`.", ""]
    if release:
        lines += [f"**Release a GO deploys:** {md(release, 200)}", ""]
    if report.blocking_failures:
        lines += ["**Blocking failures** (GO needs an explicit, recorded override with a reason):", ""]
        lines += [f"- `{r.id}` {r.status.value}: {md(r.summary, 240)}" for r in report.blocking_failures] + [""]
    if report.warnings:
        lines += ["**Warnings:**", ""] + [f"- `{r.id}` {r.status.value}: {md(r.summary, 240)}" for r in report.warnings]
        lines.append("")
    need = [r.value for r in policy.required_roles]
    have = {s.signer_role.value: s.signer_name for s in signed}
    lines += [f"**Approvals required:** {', '.join(need)}; so far: "
              + (", ".join(f"{k} ({v})" for k, v in have.items()) or "none"), ""]
    atts = attestations()
    if atts:
        lines += ["**By signing GO you attest:**", ""] + [f"- {a.statement} ({a.role})" for a in atts] + [""]
    lines += ["**Rollback criteria you are signing up for:**", "", ROLLBACK_CRITERIA, "",
              f"This form times out after {policy.timeout_minutes:g} minutes: a timeout is a recorded NO-GO."]
    return "\n".join(lines)


def sign_off_url(run_id: str) -> str:
    """The sign-off run's page in the Prefect UI (PREFECT_UI_URL, or what Prefect derives from the API URL)."""
    from prefect.settings import PREFECT_UI_URL

    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{base}/runs/flow-run/{run_id}" if base else f"flow run {run_id}"


async def link_current_sign_off(environment: str, go_live_run_id: str, round_no: int) -> None:
    """A markdown artifact on the go-live run: where to sign off now. Best effort: a failure is logged, the form
    still opens."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    own = str(flow_run.id)
    url = sign_off_url(own)
    text = (f"## Sign off here: [sign-off {round_no}]({url})\n\n"
            f"The go-live of `{environment}` waits for its sign-off in run `{own}` (round {round_no}); the link "
            "moves to the new form when a sign-off is refused and the form opens again.")
    try:
        async with get_client() as c:
            await c.create_artifact(ArtifactCreate(key=f"golive-sign-off-{environment}", type="markdown", data=text,
                                                   flow_run_id=UUID(go_live_run_id),
                                                   description=f"where to sign off (round {round_no})"))
    except Exception as e:  # noqa: BLE001 - the link is a convenience; the form is what counts
        get_run_logger().warning("the link to sign-off %d was not published: %s", round_no,
                                 " ".join(str(e).split())[:300])


@flow(name=SIGN_OFF_FLOW, flow_run_name="sign-off {round_no}", persist_result=False, validate_parameters=False)
async def sign_off_step(round_no: int, description: str, timeout_s: int, poll_s: int,
                        environment: str | None = None, go_live_run_id: str | None = None) -> dict:
    """One pause for one sign-off. Its own run, so a timeout fails this run and not the readiness run. Before it
    waits, the go-live run's own page gets a link to this round's form (`golive-sign-off-<env>`, a new version each
    round), so nobody hunts for the child run whose URL changes with every refused round."""
    form = signoff_form()
    if environment and go_live_run_id:
        await link_current_sign_off(environment, go_live_run_id, round_no)
    signoff = await pause_flow_run(wait_for_input=form.with_initial_data(description=description),
                                   timeout=timeout_s, poll_interval=poll_s, key=f"sign-off-{round_no}")
    return signoff.model_dump(mode="json")


Notifier = Callable[[Any], Awaitable[Any]]  # takes a flows.notify_approvers.Notice


async def _paused_child(go_live_run_id: str | None, round_no: int, step: asyncio.Task, wait_s: float = 120.0
                        ) -> str | None:
    """The id of sign-off run `round_no` of the go-live run once it is PAUSED (its form is open); None if the step
    ended first, the run is not known to the API, or it took longer than `wait_s`."""
    if not go_live_run_id:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    try:
        async with get_client() as c:
            while not step.done() and loop.time() < deadline:
                runs = await c.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(go_live_run_id)])))
                for r in runs:
                    if r.name == f"sign-off {round_no}" and r.state is not None and r.state.is_paused():
                        return str(r.id)
                await asyncio.sleep(0.5)
    except Exception as e:  # noqa: BLE001 - only the notification's link is lost; the sign-off goes on
        get_run_logger().warning("sign-off %d: its run was not found through the API (%s); the notification links "
                                 "the go-live run instead", round_no, plain(str(e), 200))
    return None


def notice(what: str, report: Report, round_no: int, link: str, roles: list[str], problems: list[str] = (),
           decision: str | None = None, release: str | None = None) -> Any:
    from .notify_approvers import Notice

    summary = (f"Readiness {report.verdict.value} for {report.environment}"
               + (f", release {release}" if release else "")
               + f": {len(report.results)} checks, {len(report.blocking_failures)} blocking failure(s), "
               f"{len(report.warnings)} warning(s).")
    return Notice(what=what, environment=report.environment, round_no=round_no, link=link, summary=plain(summary, 400),
                  blocking=[f"{r.id} {r.status.value}: {plain(r.summary, 240)}" for r in report.blocking_failures],
                  problems=[plain(p, 400) for p in problems], decision=decision, roles=roles)


async def _remind(notify: Notifier, after_s: float, reminder: Any, step: asyncio.Future) -> None:
    await asyncio.sleep(after_s)
    if not step.done():  # answered meanwhile: no reminder
        await notify(reminder)


async def collect_decision(report: Report, policy: ApprovalPolicy, release: str | None = None,
                           notify: Notifier | None = None) -> DecisionRecord:
    """The sign-off rounds. `notify` (best effort, never raises) hears when a form opens (or opens again after a
    refusal), at half its timeout while it still waits, and when it timed out; the caller tells the decision."""
    logger = get_run_logger()
    form = signoff_form()
    accepted: list[SignOffBase] = []
    refused: list[dict[str, Any]] = []
    problems: list[str] = []
    runs: list[str] = []
    need = {r.value for r in policy.required_roles}
    rec = dict(environment=report.environment, release=release, readiness_flow_run_id=report.flow_run_id,
               report_verdict=report.verdict, required_roles=sorted(need), signoff_runs=runs,
               blocking_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.blocking_failures],
               warnings_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.warnings])

    def done(decision: Verdict, why: str, timed_out: bool = False) -> DecisionRecord:
        return DecisionRecord(**rec, decision=decision, why=why, decided_at=datetime.now(UTC),
                              signoffs=[_public(s) for s in accepted], refused=refused, timed_out=timed_out,
                              overrides=[_public(s) for s in accepted if s.override_blocking_failures])

    for round_no in range(1, policy.max_rounds + 1):
        timeout_s = int(policy.timeout_minutes * 60)
        step = asyncio.ensure_future(sign_off_step(
            round_no=round_no, description=form_description(report, policy, accepted, problems, release),
            timeout_s=timeout_s, poll_s=policy.poll_seconds, environment=report.environment,
            go_live_run_id=report.flow_run_id, return_state=True))
        reminder: asyncio.Future | None = None
        link = f"the go-live run {report.flow_run_id}"
        try:
            if notify is not None:
                opened = asyncio.get_running_loop().time()
                child = await _paused_child(report.flow_run_id, round_no, step)
                if child:
                    link = sign_off_url(child)
                missing = sorted(need - {s.signer_role.value for s in accepted})
                await notify(notice("refused" if problems else "opened", report, round_no, link, missing, problems,
                                    release=release))
                half = max(0.0, timeout_s / 2 - (asyncio.get_running_loop().time() - opened))
                reminder = asyncio.ensure_future(_remind(notify, half, notice(
                    "reminder", report, round_no, link, missing, release=release), step))
            state = await step
        finally:
            if reminder is not None:
                reminder.cancel()
            if not step.done():  # an error above: the form must not stay open with nobody listening
                step.cancel()
        runs.append(str(state.state_details.flow_run_id))
        if not state.is_completed():
            timed_out = state.is_failed() and "never resumed" in (state.message or "")
            what = "no sign-off within " + f"{policy.timeout_minutes:g} minutes" if timed_out else \
                f"the sign-off run ended {state.type.value} ({plain(state.message or '', 200)})"
            logger.warning("sign-off %d ended %s: recorded as NO-GO", round_no, state.type.value)
            if notify is not None and timed_out:  # any other end is told as the decision, by the caller
                await notify(notice("timed-out", report, round_no, link, [], decision="NO-GO", release=release))
            return done(Verdict.NO_GO, f"{what} (round {round_no}): a NO-GO", timed_out=timed_out)
        signoff = form(**await state.result())
        problems = evaluate(signoff, report, accepted)
        if problems:
            refused.append({**_public(signoff), "refused_because": problems})
            logger.warning("sign-off by %s (%s) refused: %s", signoff.signer_name, signoff.signer_role.value,
                           "; ".join(problems))
            continue
        accepted.append(signoff)
        logger.info("sign-off by %s (%s): %s", signoff.signer_name, signoff.signer_role.value,
                    signoff.decision.value)
        if reached := outcome(accepted, need):
            return done(*reached)
    return done(Verdict.NO_GO, f"no decision after {policy.max_rounds} sign-off rounds")


async def submitted_decision(client: Any, readiness_run_id: UUID, blocking: list[str],
                             policy: ApprovalPolicy) -> tuple[Verdict | None, str]:
    """The decision re-reached from what was submitted: the run input Prefect stored when each `go-live-sign-off` run
    of the readiness run was resumed (never an artifact), through the same rules in the same round order as
    `collect_decision`. (None, why) when the runs are not what a sign-off leaves behind."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.exceptions import ObjectNotFound

    found = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[SIGN_OFF_FLOW])),
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[readiness_run_id])))
    by_round = {r.parameters.get("round_no"): r for r in found}
    rounds = [by_round.get(n) for n in range(1, len(found) + 1)]
    if not found or None in rounds or len(found) > policy.max_rounds:
        return None, (f"its sign-off runs are rounds {sorted(str(r.parameters.get('round_no')) for r in found)}, "
                      f"not 1..n (n <= {policy.max_rounds})")
    form, need, accepted = signoff_form(), {r.value for r in policy.required_roles}, []
    for n, run in enumerate(rounds, 1):
        reached = None
        if run.state is None or not run.state.is_completed():
            reached = Verdict.NO_GO, f"sign-off {n} ended {run.state.type.value if run.state else 'stateless'}"
        else:
            try:
                signoff = form(**json.loads(await client.read_flow_run_input(run.id, response_key(n))))
            except ObjectNotFound:
                return None, f"sign-off {n} ({run.id}) has no stored input: it was never resumed through its form"
            except ValidationError as e:
                err = e.errors()[0]
                return None, (f"sign-off {n} ({run.id}): stored input field "
                              f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}")
            except (ValueError, TypeError):
                return None, f"sign-off {n} ({run.id}): the stored input is not a JSON object"
            if not rules(signoff, blocking, accepted):
                accepted.append(signoff)
                reached = outcome(accepted, need)
        if reached:
            return reached if n == len(rounds) else (None, f"{len(rounds) - n} sign-off run(s) after round {n}, "
                                                           "which decided")
    return None, f"its {len(rounds)} sign-off(s) reach no decision"


def _public(s: SignOffBase) -> dict[str, Any]:
    d = s.model_dump(mode="json")
    d["signed_at"] = datetime.now(UTC).isoformat()
    return d


def decision_markdown(d: DecisionRecord) -> str:
    icon = "🟢" if d.decision == Verdict.GO else "🔴"
    body = json.dumps(d.model_dump(mode="json"), indent=2)
    return f"# {icon} Decision: {d.decision.value}\n\n{d.why}\n\n```json\n{body}\n```\n"


async def publish_decision(d: DecisionRecord) -> None:
    from prefect.artifacts import acreate_markdown_artifact

    await acreate_markdown_artifact(key=f"golive-decision-{d.environment}", markdown=decision_markdown(d),
                                    description=f"go-live decision: {d.decision.value}")


async def decide_and_deploy(cfg: Any, report: Report, *, config_path: str, release: str):
    """go-live mode: collect the sign-off, publish the decision, and only a GO triggers the deploy flow."""
    from prefect.states import Completed, Failed

    from .deploy import trigger_deploy

    logger = get_run_logger()
    from golive.tasks.core import Redactor

    from .notify_approvers import notify as deliver

    redact = Redactor(cfg.secrets())  # every secret: SecretStr fields, ${VAR}s and Secret blocks

    async def notify(n: Any) -> None:
        try:
            await deliver(cfg, n, redact, logger)
        except Exception as e:  # noqa: BLE001 - a notification never changes the decision
            logger.warning("notification %s failed: %s", getattr(n, "what", "?"), redact.text(plain(str(e), 300)))

    decision = await collect_decision(report, cfg.approval, release, notify)
    if not decision.timed_out:  # told before anything deploys: the deploy run waits for this run's final state
        await notify(notice("decided", report, len(decision.signoff_runs), sign_off_url(report.flow_run_id or ""),
                            [], decision=decision.decision.value, release=release))
    deploy_run = None
    if decision.decision == Verdict.GO and cfg.deploy is not None and report.flow_run_id:
        await publish_decision(decision)  # on record before anything deploys (people read it; the deploy does not)
        deploy_run = await trigger_deploy(config_path, release, report.flow_run_id, cfg.deploy.deployment)
        decision = decision.model_copy(update={"deploy_flow_run_id": deploy_run})
    elif decision.decision == Verdict.GO:
        decision = decision.model_copy(update={"why": decision.why + "; no `deploy` section: nothing triggered"})
    await publish_decision(decision)
    logger.info("decision %s: %s%s", decision.decision.value, decision.why,
                f"; deploy flow run {deploy_run}" if deploy_run else "")
    if decision.decision == Verdict.GO:  # the deploy run checks that this final state names it (RECORDED_DEPLOY)
        return Completed(message=f"GO: {decision.why}" + (RECORDED_DEPLOY.format(deploy_run) if deploy_run else ""),
                         data=decision)
    return Failed(message=f"NO-GO: {decision.why}", data=decision)
