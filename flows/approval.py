"""Section 10: the sign-off. A typed form in the Prefect UI on the go-live run itself, its rules, the decision.

How it works:
- each sign-off round is one wait of the go-live run with its own key (`sign-off-N`): a run of a deployment
  *suspends* (its process exits and frees its worker or `serve` slot; a resume re-schedules the run, which starts
  again from the top, restores its report from result storage and replays the rounds already answered: Prefect
  hands back the input stored for each key without waiting); a run without a deployment cannot be re-scheduled and
  *pauses* in its process, as before;
- a round that is never answered ends the run Failed at its deadline (Prefect's pause expiry); the
  `go-live-sign-off-timer` deployment (flows/signoff_timer.py) reminds at half the time and records that timeout
  as the NO-GO decision, since no go-live process is left to do it; a pausing run records its own timeout;
- the form's description is the report summary: verdict, blocking failures, warnings, what the signer attests,
  and the rollback criteria the approvers are signing up for;
- schema problems (a missing name, an unknown role) are refused by the Prefect API itself and the run stays waiting;
  the business rules below are checked here, and a refused sign-off re-opens the form with the reason on top;
- N-of-M approvals by role: sign-offs are collected in successive rounds until every required role has a GO from a
  distinct person (one signer never counts twice); any accepted NO-GO ends it.
Prefect records no approver identity on a resume: the signer's name and role in the form are the record, published
with everything they saw as the `golive-decision-<env>` artifact. That artifact is for people: anyone with API access
can write one, so the deploy flow re-decides from the run input Prefect stored on each resume (`submitted_decision`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import get_run_logger
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_base_key
from pydantic import BaseModel, Field, ValidationError, create_model

from golive.tasks.core import Redactor, Severity

from . import artifacts
from .attestations import ATTESTATIONS
from .notify_approvers import Notice
from .notify_approvers import notify as deliver
from .policies import SECTION_SIGNOFFS, ApprovalPolicy, Decision, Role
from .report import Report, Verdict, md, plain

if TYPE_CHECKING:
    from prefect import State

ROLLBACK_CRITERIA = """\
**CRITICAL (immediate automatic rollback):** API not responding > 1 minute; database inaccessible; data corruption
detected; security breach detected; revenue-impacting feature broken.
**HIGH (assess within 5 minutes, then roll back unless acknowledged):** login failing for > 5 % of users; campaign
creation failing; payment processing down; notification delivery failing.
**MEDIUM (report only):** UI issues for some users; performance degradation > 50 %; analytics not collecting."""


# Prefect's form marks every field with a default "(Optional)". The section sign-offs and attestations have one (a
# NO-GO may leave them unticked), but a GO is refused without every one: the label says so, and why.
REQUIRED_FOR_GO = "Required for GO"
SECTION_REASON = (
    "Required for GO (a NO-GO may leave it unticked): the checklist's section 10.1 sign-off; GO is "
    "refused while any section is not signed off"
)


def required_title(title: str) -> str:
    return f"{REQUIRED_FOR_GO}: {title}"


class SignOffBase(RunInput):
    """The fields every sign-off has; attestations are added from flows.attestations."""

    signer_name: str = Field(
        min_length=2,
        max_length=120,
        title="Your full name",
        description="Prefect records no approver identity: this is the record",
    )
    signer_role: Role = Field(title="Your role")
    decision: Decision = Field(title="Decision")
    reason: str = Field(
        "", max_length=4000, title="Reason", description="required for NO-GO and for any override of a blocking failure"
    )
    override_blocking_failures: bool = Field(
        False,
        title="Override blocking failures",
        description="GO although blocking checks failed: recorded with your name and reason",
    )
    infrastructure_signed_off: bool = Field(
        False, title=required_title(SECTION_SIGNOFFS["infrastructure_signed_off"]), description=SECTION_REASON
    )
    database_signed_off: bool = Field(
        False, title=required_title(SECTION_SIGNOFFS["database_signed_off"]), description=SECTION_REASON
    )
    application_signed_off: bool = Field(
        False, title=required_title(SECTION_SIGNOFFS["application_signed_off"]), description=SECTION_REASON
    )
    security_signed_off: bool = Field(
        False, title=required_title(SECTION_SIGNOFFS["security_signed_off"]), description=SECTION_REASON
    )
    operations_signed_off: bool = Field(
        False, title=required_title(SECTION_SIGNOFFS["operations_signed_off"]), description=SECTION_REASON
    )


def attestations() -> list[Any]:
    return list(ATTESTATIONS)


def attestation_field(att: Any) -> str:
    return f"attest_{att.id}"


def signoff_form() -> type[SignOffBase]:
    """The form model: the base fields plus one checkbox per attestation (its statement and owning role)."""
    fields: dict[str, Any] = {
        attestation_field(a): (
            bool,
            Field(
                False,
                title=required_title(f"{a.statement} ({a.role})"),
                description=f"Required for GO (a NO-GO may leave it unticked): only a person can know it; "
                f"the checklist's {', '.join(a.seed) or a.source}",
            ),
        )
        for a in attestations()
    }
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
        problems.append(
            f"GO refused: {len(blocking)} blocking check(s) failed "
            f"({', '.join(blocking[:5])}{'…' if len(blocking) > 5 else ''}); "
            "tick 'Override blocking failures' and give a reason, or decide NO-GO"
        )
    if signoff.override_blocking_failures and not reason:
        problems.append("an override needs a reason")
    missing = [title for name, title in SECTION_SIGNOFFS.items() if not getattr(signoff, name)]
    if missing:
        problems.append("GO needs every section signed off; missing: " + "; ".join(missing))
    unattested = [a.statement for a in attestations() if not getattr(signoff, attestation_field(a), False)]
    if unattested:
        problems.append("GO needs every attestation; missing: " + "; ".join(unattested))
    return problems


WAIT_KEY = "sign-off-{}"  # the key of round N's wait on the go-live run (Prefect's pause/suspend key)
RECORDED_DEPLOY = "; deploy flow run {}"  # how a GO's final state message names the one deploy run it triggered
DEPLOYMENT = "deploy-production/deploy-production"  # the deploy flow's deployment (config `deploy.deployment`)
WAIT_STATES = ("suspended", "paused")  # the state names a round waits in: where Prefect keeps its input


def response_keys(round_no: int) -> list[str]:
    """Where Prefect stores the input round `round_no` was resumed with: its wait's keyset, named by the state the
    run waited in (Suspended for a run of a deployment, Paused in its process otherwise)."""
    return [keyset_from_base_key(f"{name}-{WAIT_KEY.format(round_no)}")["response"] for name in WAIT_STATES]


def answered_rounds(run: Any) -> set[str]:
    """The sign-off keys a run already waited on (Prefect records each accepted wait in the run's policy and keeps
    them across a suspended run's re-execution)."""
    keys = getattr(getattr(run, "empirical_policy", None), "pause_keys", None) or set()
    return {k for k in keys if isinstance(k, str) and k.startswith(WAIT_KEY.format(""))}


def outcome(
    accepted: list[SignOffBase], need: set[str], requesters: frozenset[str] = frozenset()
) -> tuple[Verdict, str] | None:
    """The decision the accepted sign-offs reach, if any: the first NO-GO ends it; GO once every required role has a
    GO from a distinct person and, when `requesters` (normalised names) is given, not every GO is a requester's."""
    last = accepted[-1]
    if last.decision == Decision.NO_GO:
        return Verdict.NO_GO, f"NO-GO by {last.signer_name} ({last.signer_role.value}): {last.reason.strip()}"
    go = [s for s in accepted if s.decision == Decision.GO]
    if need <= {s.signer_role.value for s in go} and not (
        requesters and {_norm(s.signer_name) for s in go} <= requesters
    ):
        return Verdict.GO, "GO signed by " + ", ".join(f"{s.signer_name} ({s.signer_role.value})" for s in accepted)
    return None


def requesters_of(run: Any) -> list[str]:
    """Who requested go-live run `run`: its `requested_by` parameter (typed when it was started) and the user the
    Prefect API reports as its creator (Prefect Cloud, a server that knows users; an open-source server reports
    none for a run started from the UI or the API)."""
    out: list[str] = []
    typed = (getattr(run, "parameters", None) or {}).get("requested_by")
    if isinstance(typed, str) and typed.strip():
        out.append(" ".join(typed.split())[:120])
    creator = getattr(run, "created_by", None)
    if creator is not None and str(getattr(creator, "type", "") or "").upper() == "USER" and creator.display_value:
        out.append(" ".join(str(creator.display_value).split())[:120])
    return out


def requester_rule(policy: ApprovalPolicy, requested_by: list[str]) -> frozenset[str]:
    """The normalised names that cannot be a go-live's only GO approvers under `policy`."""
    return frozenset() if policy.requester_may_approve_alone else frozenset(_norm(n) for n in requested_by)


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
    rounds: int = Field(0, description="sign-off rounds opened (each a wait of the go-live run, key sign-off-N)")
    requested_by: list[str] = Field(
        default_factory=list, description="who requested the go-live (typed, and the creator the Prefect API reports)"
    )
    identity: str = Field("", description="what the Prefect API says about who signed")
    waited_in: str = Field("", description="how the run waited: suspended (no process held) or paused (in process)")
    deploy_flow_run_id: str | None = None
    evidence_oldest_at: datetime | None = Field(
        None, description="when the oldest evidence of a blocking check was taken (its check's end)"
    )
    evidence_age_s: float | None = Field(None, description="that evidence's age when the decision was made")


def oldest_blocking_evidence(report: Report) -> datetime | None:
    """The end of the earliest blocking check of the report (its evidence is the oldest a GO rests on)."""
    ends = [r.finished_at for r in report.results if r.severity == Severity.BLOCKING]
    return min(ends) if ends else None


def form_description(
    report: Report,
    policy: ApprovalPolicy,
    signed: list[SignOffBase],
    problems: list[str],
    release: str | None = None,
    requested_by: Sequence[str] = (),
) -> str:
    lines = []
    if problems:
        lines += ["### ⛔ The last sign-off was refused", ""] + [f"- {md(p, 1000)}" for p in problems] + [""]
    lines += [
        f"## Go-live sign-off: `{report.environment}` — readiness {report.verdict.value}",
        "",
        f"{len(report.results)} checks in {report.duration_s:.1f} s; readiness run `{report.flow_run_id}`.",
        "",
    ]
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
    lines += [
        f"**Approvals required:** {', '.join(need)}; so far: "
        + (", ".join(f"{k} ({v})" for k, v in have.items()) or "none"),
        "",
    ]
    if requested_by:
        lines += [
            f"**Requested by:** {md(', '.join(requested_by), 250)}"
            + (
                ""
                if policy.requester_may_approve_alone
                else " (may sign, but a GO also needs an approver who did not request it)"
            ),
            "",
        ]
    atts = attestations()
    if atts:
        lines += ["**By signing GO you attest:**", ""] + [f"- {a.statement} ({a.role})" for a in atts] + [""]
    lines += [
        "**Rollback criteria you are signing up for:**",
        "",
        ROLLBACK_CRITERIA,
        "",
        f"This form times out after {policy.timeout_minutes:g} minutes: a timeout is a recorded NO-GO.",
    ]
    return "\n".join(lines)


def sign_off_url(run_id: str) -> str:
    """The run's page in the Prefect UI (PREFECT_UI_URL, or what Prefect derives from the API URL): where its
    form's Resume button is."""
    from prefect.settings import PREFECT_UI_URL

    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    return f"{base}/runs/flow-run/{run_id}" if base else f"flow run {run_id}"


async def link_current_sign_off(environment: str, go_live_run_id: str, round_no: int) -> None:
    """A markdown artifact on the go-live run (key `golive-sign-off-<env>`, a new version each round): the waiting
    form of this environment, findable from the Artifacts page. Best effort: a failure is logged, the form still
    opens."""
    url = sign_off_url(go_live_run_id)
    text = (
        f"## Sign off here: [the go-live run, round {round_no}]({url})\n\n"
        f"The go-live of `{environment}` waits for sign-off round {round_no} on run `{go_live_run_id}`: open it "
        "and press Resume to fill in the form. A refused sign-off opens the form again, on the same run."
    )
    try:
        await artifacts.publish(
            "sign-off", environment, text, f"where to sign off (round {round_no})", flow_run_id=go_live_run_id
        )
    except Exception as e:  # noqa: BLE001 - the link is a convenience; the form is what counts
        get_run_logger().warning(
            "the link to sign-off %d was not published: %s", round_no, " ".join(str(e).split())[:300]
        )


Notifier = Callable[[Any], Awaitable[Any]]  # takes a flows.notify_approvers.Notice
Timers = Callable[[int, int], Awaitable[None]]  # (round_no, timeout_s): schedule the round's reminder and deadline


def notice(
    what: str,
    report: Report,
    round_no: int,
    link: str,
    roles: list[str],
    problems: Sequence[str] = (),
    decision: str | None = None,
    release: str | None = None,
) -> Notice:
    summary = (
        f"Readiness {report.verdict.value} for {report.environment}"
        + (f", release {release}" if release else "")
        + f": {len(report.results)} checks, {len(report.blocking_failures)} blocking failure(s), "
        f"{len(report.warnings)} warning(s)."
    )
    return Notice(
        what=what,
        environment=report.environment,
        round_no=round_no,
        link=link,
        summary=plain(summary, 400),
        blocking=[f"{r.id} {r.status.value}: {plain(r.summary, 240)}" for r in report.blocking_failures],
        problems=[plain(p, 400) for p in problems],
        decision=decision,
        roles=roles,
    )


async def _remind(notify: Notifier, after_s: float, reminder: Any) -> None:
    await asyncio.sleep(after_s)  # cancelled once the round is answered: no reminder then
    await notify(reminder)


@dataclasses.dataclass
class Wait:
    """How this execution of the go-live run waits for its sign-offs."""

    run_id: str  # the go-live run: the form is on its page
    suspend: bool  # True: a run of a deployment, no process held; False: paused in this process
    answered: set[str] = dataclasses.field(default_factory=set)  # rounds waited on before (a suspended run's replay)
    answered_at: dict[str, datetime] = dataclasses.field(default_factory=dict)  # when their input was stored
    timers: Timers | None = None  # suspend only: the reminder and the recorded timeout, run while no process is left
    requested_by: list[str] = dataclasses.field(default_factory=list)  # requesters_of(the run)


async def collect_decision(
    report: Report,
    policy: ApprovalPolicy,
    release: str | None = None,
    notify: Notifier | None = None,
    wait: Wait | None = None,
) -> DecisionRecord:
    """The sign-off rounds. A round answered before this execution (`wait.answered`) is replayed: Prefect returns its
    stored input at once, and nobody is told again. For a fresh round, `notify` (best effort, never raises) hears
    that the form opened (or opened again after a refusal), then the run waits: suspended (the reminder and the
    timeout are the timers' job) or paused here (reminded at half its time, told when it timed out). The caller
    tells the decision."""
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import apause_flow_run, asuspend_flow_run

    logger = get_run_logger()
    wait = wait or Wait(run_id=report.flow_run_id or "", suspend=False)
    form = signoff_form()
    accepted: list[SignOffBase] = []
    refused: list[dict[str, Any]] = []
    problems: list[str] = []
    need = {r.value for r in policy.required_roles}
    requesters = requester_rule(policy, wait.requested_by)
    rounds = 0
    signed_at: dict[int, datetime] = {}
    rec = dict(
        environment=report.environment,
        release=release,
        readiness_flow_run_id=report.flow_run_id,
        report_verdict=report.verdict,
        required_roles=sorted(need),
        waited_in="suspended" if wait.suspend else "paused",
        requested_by=wait.requested_by,
        identity=IDENTITY,
        blocking_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.blocking_failures],
        warnings_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.warnings],
    )

    def done(decision: Verdict, why: str, timed_out: bool = False) -> DecisionRecord:
        return DecisionRecord(
            **rec,
            decision=decision,
            why=why,
            decided_at=datetime.now(UTC),
            rounds=rounds,
            signoffs=[_public(s, signed_at.get(id(s))) for s in accepted],
            refused=refused,
            timed_out=timed_out,
            overrides=[_public(s, signed_at.get(id(s))) for s in accepted if s.override_blocking_failures],
        )

    link = sign_off_url(wait.run_id)
    for round_no in range(1, policy.max_rounds + 1):
        rounds = round_no
        key, timeout_s = WAIT_KEY.format(round_no), int(policy.timeout_minutes * 60)
        waiting_form = form.with_initial_data(
            description=form_description(report, policy, accepted, problems, release, wait.requested_by)
        )
        fresh = key not in wait.answered
        missing = missing_roles(accepted, need)
        reminder: asyncio.Future[None] | None = None
        if fresh:
            if wait.run_id:
                await link_current_sign_off(report.environment, wait.run_id, round_no)
            if notify is not None:
                await notify(
                    notice(
                        "refused" if problems else "opened", report, round_no, link, missing, problems, release=release
                    )
                )
        try:
            if wait.suspend:
                if fresh and wait.timers is not None:
                    await wait.timers(round_no, timeout_s)
                # a fresh round ends this process here (Prefect's Pause signal); an answered one returns its input
                signoff = await asuspend_flow_run(wait_for_input=waiting_form, timeout=timeout_s, key=key)
            else:
                if fresh and notify is not None:
                    reminder = asyncio.ensure_future(
                        _remind(
                            notify, timeout_s / 2, notice("reminder", report, round_no, link, missing, release=release)
                        )
                    )
                signoff = await apause_flow_run(
                    wait_for_input=waiting_form, timeout=timeout_s, poll_interval=policy.poll_seconds, key=key
                )
        except FlowPauseTimeout:
            logger.warning(
                "sign-off %d: no answer within %g minutes: recorded as NO-GO", round_no, policy.timeout_minutes
            )
            if notify is not None:
                await notify(notice("timed-out", report, round_no, link, [], decision="NO-GO", release=release))
            return done(
                Verdict.NO_GO,
                f"no sign-off within {policy.timeout_minutes:g} minutes (round {round_no}): a NO-GO",
                timed_out=True,
            )
        except Exception as e:  # noqa: BLE001 - an input that cannot be read back decides nothing but NO-GO
            # (Prefect's Pause signal, which ends a suspending process, is a BaseException and passes through)
            logger.error("sign-off %d: its input could not be read: %s", round_no, plain(f"{type(e).__name__}: {e}"))
            return done(
                Verdict.NO_GO,
                f"sign-off {round_no}: its input could not be read ({plain(f'{type(e).__name__}: {e}', 300)}): a NO-GO",
            )
        finally:
            if reminder is not None:
                reminder.cancel()
        if not isinstance(signoff, SignOffBase):  # what Prefect handed back was not this form's input
            return done(Verdict.NO_GO, f"sign-off {round_no}: its stored input is not a sign-off form: a NO-GO")
        seen = "" if fresh else " (answered before this run was resumed, replayed)"
        signed_at[id(signoff)] = datetime.now(UTC) if fresh else wait.answered_at.get(key, datetime.now(UTC))
        problems = evaluate(signoff, report, accepted)
        if problems:
            refused.append({**_public(signoff, signed_at[id(signoff)]), "refused_because": problems})
            logger.warning(
                "sign-off %d by %s (%s) refused%s: %s",
                round_no,
                signoff.signer_name,
                signoff.signer_role.value,
                seen,
                "; ".join(problems),
            )
            continue
        accepted.append(signoff)
        logger.info(
            "sign-off %d by %s (%s): %s%s",
            round_no,
            signoff.signer_name,
            signoff.signer_role.value,
            signoff.decision.value,
            seen,
        )
        if reached := outcome(accepted, need, requesters):
            return done(*reached)
        if not missing_roles(accepted, need) and requesters:
            logger.info(
                "every required role has a GO, all from who requested this go-live (%s): a GO also needs "
                "an approver who did not request it",
                ", ".join(wait.requested_by),
            )
    return done(Verdict.NO_GO, f"no decision after {policy.max_rounds} sign-off rounds")


def missing_roles(accepted: list[SignOffBase], need: set[str]) -> list[str]:
    return sorted(need - {s.signer_role.value for s in accepted if s.decision == Decision.GO})


#: what golive can say about who signed: Prefect's open-source API records no identity on a resume (nor on the run
#: input it stores), so the typed name and role are the record; the run's creator, where the API reports one, is in
#: `requested_by`
IDENTITY = (
    "typed in the form: the Prefect API records no identity on a resume or on its stored input; the run's "
    "creator, when the API reports one, is in requested_by"
)


async def stored_sign_offs(client: Any, run_id: UUID, rounds: int) -> list[SignOffBase] | str:
    """The inputs rounds 1..`rounds` of go-live run `run_id` were resumed with, as Prefect stored them; a string says
    why they are not all readable and valid."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    form, out = signoff_form(), []
    for n in range(1, rounds + 1):
        found: list[str] = []
        for key in response_keys(n):  # a round waited either suspended or paused: exactly one of them holds its input
            try:
                found.append(await client.read_flow_run_input(run_id, key))
            except ObjectNotFound:
                continue
            except PrefectHTTPStatusError as e:  # the client raises a 404 as a status error here
                if e.response.status_code != 404:
                    raise
        if not found:
            return f"sign-off {n} of run {run_id} has no stored input: it was never resumed through its form"
        if len(found) > 1:  # the other one was written by an API client, not by a resume: which counts is unknowable
            return f"sign-off {n} of run {run_id} has input stored under both its suspended and its paused key"
        raw = found[0]
        try:
            out.append(form(**json.loads(raw)))
        except ValidationError as e:
            err = e.errors()[0]
            return (
                f"sign-off {n} of run {run_id}: stored input field {'.'.join(map(str, err['loc'])) or '(top)'}: "
                f"{err['msg']}"
            )
        except (ValueError, TypeError):
            return f"sign-off {n} of run {run_id}: the stored input is not a JSON object"
    return out


def replay(
    signoffs: list[SignOffBase], blocking: list[str], need: set[str], requesters: frozenset[str] = frozenset()
) -> tuple[list[SignOffBase], tuple[Verdict, str] | None, int]:
    """`collect_decision`'s rules over stored inputs in round order: (accepted, decision or None, the round that
    decided or 0)."""
    accepted: list[SignOffBase] = []
    for n, signoff in enumerate(signoffs, 1):
        if not rules(signoff, blocking, accepted):
            accepted.append(signoff)
            if reached := outcome(accepted, need, requesters):
                return accepted, reached, n
    return accepted, None, 0


async def submitted_decision(
    client: Any, readiness_run_id: UUID, blocking: list[str], policy: ApprovalPolicy
) -> tuple[Verdict | None, str]:
    """The decision re-reached from what was submitted: the run input Prefect stored when each sign-off round of the
    readiness run was resumed (never an artifact), through the same rules in the same round order as
    `collect_decision`. (None, why) when the rounds are not what a sign-off leaves behind."""
    run = await client.read_flow_run(readiness_run_id)
    keys = answered_rounds(run)
    numbers = sorted(int(k.rsplit("-", 1)[1]) for k in keys if k.rsplit("-", 1)[1].isdigit())
    if (
        not numbers
        or numbers != list(range(1, len(numbers) + 1))
        or len(numbers) != len(keys)
        or len(numbers) > policy.max_rounds
    ):
        return None, f"its sign-off rounds are {sorted(keys)[:20]}, not sign-off-1..n (n <= {policy.max_rounds})"
    signoffs = await stored_sign_offs(client, readiness_run_id, len(numbers))
    if isinstance(signoffs, str):
        return None, signoffs
    _, reached, at = replay(
        signoffs, blocking, {r.value for r in policy.required_roles}, requester_rule(policy, requesters_of(run))
    )
    if reached is None:
        return None, f"its {len(numbers)} sign-off(s) reach no decision"
    if at != len(numbers):
        return None, f"{len(numbers) - at} sign-off round(s) after round {at}, which decided"
    return reached


def _public(s: SignOffBase, signed_at: datetime | None = None) -> dict[str, Any]:
    d = s.model_dump(mode="json")
    d["signed_at"] = (signed_at or datetime.now(UTC)).isoformat()
    return d


def decision_people(d: DecisionRecord) -> str:
    """The decision artifact's text for people (the typed reasons in it are escaped: they are input)."""
    icon = "🟢" if d.decision == Verdict.GO else "🔴"
    age = (
        f"\n\nOldest blocking evidence: {d.evidence_oldest_at:%Y-%m-%d %H:%M:%S} UTC, {d.evidence_age_s / 60:.1f} min "
        "old at the decision (a deploy starting later than `approval.max_evidence_age_minutes` after the checks "
        "re-checks first)"
        if d.evidence_oldest_at is not None and d.evidence_age_s is not None
        else ""
    )
    return f"# {icon} Decision: {d.decision.value}\n\n{md(d.why, 4000)}{age}"


async def publish_decision(d: DecisionRecord, flow_run_id: str | None = None) -> None:
    """The `golive-decision-<env>` artifact (on `flow_run_id` when given: the timer records a timeout on the go-live
    run it timed out)."""
    await artifacts.publish_json(
        "decision",
        d.environment,
        decision_people(d),
        d.model_dump(mode="json"),
        f"go-live decision: {d.decision.value}",
        flow_run_id=flow_run_id,
    )


# --------------------------------------------------------------------------- the report across a suspension

REPORT_KEY = "golive-sign-off/{}.json"  # in Prefect's default result storage, by go-live run id


async def _storage() -> Any:
    from prefect.results import aget_default_result_storage

    return await aget_default_result_storage()


def binding(config_path: str, release: str, requested_by: list[str], policy: ApprovalPolicy) -> dict[str, Any]:
    """What a go-live run's sign-off is for, kept with its report: a resumed run that reads other values (its
    parameters or its config changed while it waited: both are writable) decides nothing."""
    return {
        "config": config_path,
        "release": release,
        "requested_by": requested_by,
        "approval": policy.model_dump(mode="json", exclude={"approvers", "mail_from", "notify_timeout_s"}),
    }


class Kept(BaseModel):
    report: Report
    bound: dict[str, Any]


async def save_report(report: Report, bound: dict[str, Any]) -> str | None:
    """Keep the report, and what its sign-off is for, where a re-executed (resumed) go-live run and the timer can
    read it: Prefect's default result storage (local files under PREFECT_LOCAL_STORAGE_PATH, or the block
    PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK names: it must be shared by every process that runs the go-live
    deployment). Plain JSON, never a pickle. None when kept; otherwise why not."""
    try:
        storage = await _storage()
        write = getattr(storage, "awrite_path", None) or storage.write_path
        res = write(REPORT_KEY.format(report.flow_run_id), Kept(report=report, bound=bound).model_dump_json().encode())
        if asyncio.iscoroutine(res):
            await res
        return None
    except Exception as e:  # noqa: BLE001 - then the run pauses in its process, saying why
        return f"{type(e).__name__}: {plain(str(e), 300)}"


async def load_report(run_id: str) -> Kept:
    """The report (and its binding) `save_report` kept for go-live run `run_id`; raises (LookupError naming the
    cause) when it is gone, unreadable, or belongs to another run."""
    try:
        storage = await _storage()
        read = getattr(storage, "aread_path", None) or storage.read_path
        raw = read(REPORT_KEY.format(run_id))
        if asyncio.iscoroutine(raw):
            raw = await raw
        kept = Kept.model_validate_json(raw)
        report = kept.report
    except Exception as e:  # noqa: BLE001 - named in one line by the caller
        raise LookupError(
            f"the readiness report of run {run_id} is not readable from Prefect's result storage "
            f"({type(e).__name__}: {plain(str(e), 200)}); is that storage shared by the processes "
            "that run go-live?"
        ) from None
    if report.flow_run_id != run_id:
        raise LookupError(f"the stored readiness report names run {plain(report.flow_run_id, 60)}, not {run_id}")
    return kept


def notifier(cfg: Any, logger: Any) -> Notifier:
    """Deliveries to the approvers (flows.notify_approvers) that never raise and never show a secret."""
    redact = Redactor(cfg.secrets())  # every secret: SecretStr fields, ${VAR}s and Secret blocks

    async def notify(n: Any) -> None:
        try:
            await deliver(cfg, n, redact, logger)
        except Exception as e:  # noqa: BLE001 - a notification never changes the decision
            logger.warning("notification %s failed: %s", getattr(n, "what", "?"), redact.text(plain(str(e), 300)))

    return notify


async def decide_and_deploy(
    cfg: Any, report: Report, *, config_path: str, release: str, wait: Wait | None = None
) -> State:
    """go-live mode: collect the sign-off, publish the decision, and only a GO triggers the deploy flow."""
    from prefect.states import Completed, Failed

    logger = get_run_logger()
    notify = notifier(cfg, logger)
    decision = await collect_decision(report, cfg.approval, release, notify, wait)
    if (oldest := oldest_blocking_evidence(report)) is not None:
        age = round(max(0.0, (decision.decided_at - oldest).total_seconds()), 1)
        decision = decision.model_copy(update={"evidence_oldest_at": oldest, "evidence_age_s": age})
    if not decision.timed_out:  # told before anything deploys: the deploy run waits for this run's final state
        await notify(
            notice(
                "decided",
                report,
                decision.rounds,
                sign_off_url(report.flow_run_id or ""),
                [],
                decision=decision.decision.value,
                release=release,
            )
        )
    deploy_run = None
    if decision.decision == Verdict.GO and cfg.deploy is not None and report.flow_run_id:
        try:
            await publish_decision(decision)  # on record before anything deploys (people read it; the deploy not)
            deploy_run = await trigger_deploy(config_path, release, report.flow_run_id, cfg.deploy.deployment)
        except Exception as e:  # noqa: BLE001 - a GO that could not start its deploy ends saying so, never a traceback
            why = f"GO signed, but the deploy was not triggered: {type(e).__name__}: {plain(str(e), 300)}"
            logger.error("%s", why)
            return Failed(
                name="NO-GO", message=f"NO-GO: {why}: nothing deploys; start a new go-live run", data=decision
            )
        decision = decision.model_copy(update={"deploy_flow_run_id": deploy_run})
    elif decision.decision == Verdict.GO:
        decision = decision.model_copy(update={"why": decision.why + "; no `deploy` section: nothing triggered"})
    await publish_decision(decision)
    logger.info(
        "decision %s: %s%s",
        decision.decision.value,
        decision.why,
        f"; deploy flow run {deploy_run}" if deploy_run else "",
    )
    if decision.decision == Verdict.GO:  # the deploy run checks that this final state names it (RECORDED_DEPLOY)
        return Completed(
            message=f"GO: {decision.why}" + (RECORDED_DEPLOY.format(deploy_run) if deploy_run else ""), data=decision
        )
    return Failed(name="NO-GO", message=f"NO-GO: {decision.why}", data=decision)


async def trigger_deploy(config_path: str, release: str, readiness_run_id: str, deployment: str = DEPLOYMENT) -> str:
    """Start the deploy flow's deployment once per readiness run (the idempotency key names both). The deploy run
    accepts only a run carrying that key, and the one the readiness run's final state names (RECORDED_DEPLOY)."""
    from prefect.deployments import arun_deployment

    run = await arun_deployment(
        name=deployment,
        parameters={"config": config_path, "release": release, "readiness_run_id": readiness_run_id},
        idempotency_key=f"{deployment}:{readiness_run_id}",
        timeout=0,
        as_subflow=False,
    )
    return str(run.id)
