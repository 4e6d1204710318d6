"""Waiting for the sign-off without holding a process: how a go-live run suspends, resumes, and is reminded and timed
out while no process of its own is left (issue #14, point 3).

- `begin`: at the start of a go-live run, read the run from the API: a run that already waited on sign-off rounds
  is a resumed one (Prefect re-executes a suspended run from the top): its report comes back from result storage
  and its answered rounds are replayed, no check runs again. A fresh run is refused while another go-live run of the
  same config is between its readiness and its decision (a suspended run frees the deployment's concurrency slot,
  so the slot alone no longer keeps go-lives one at a time).
- `schedule_timers`: before a round suspends, two runs of the `go-live-sign-off-timer` deployment are scheduled:
  one at half the round's time (the reminder) and one just after its deadline (the recorded timeout).
- `sign_off_timer`, the timer flow: acts only on the round it was scheduled for, and only while that round is
  still unanswered (reminder) or has expired (Prefect's pause expiry fails the run at its deadline; the timer
  then names that end a NO-GO in the run's state, publishes the decision record and tells the approvers).
  Any API client can start it with any parameters: it can remind, or record a timeout that Prefect already
  enforced, and never anything that deploys.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from prefect import flow, get_run_logger

from .approval import (
    IDENTITY,
    WAIT_KEY,
    DecisionRecord,
    Wait,
    answered_rounds,
    load_report,
    missing_roles,
    notice,
    notifier,
    publish_decision,
    replay,
    requester_rule,
    requesters_of,
    response_keys,
    sign_off_url,
    stored_sign_offs,
)
from .config import ConfigError, load_config
from .report import Verdict, plain

TIMER_FLOW = "go-live-sign-off-timer"
TIMER_DEPLOYMENT = f"{TIMER_FLOW}/sign-off-timer"
DEADLINE_GRACE_S = 15.0  # the timeout timer runs this long after the deadline (Prefect's expiry loop: every 5 s)
EXPIRED = "never resumed"  # in the message Prefect gives a run whose pause or suspension expired


@dataclasses.dataclass
class Start:
    """How a go-live execution begins: `wait` (how it will wait), `resumed` (answered rounds to replay: no checks),
    or `refused` (why it must not run)."""

    wait: Wait | None = None
    resumed: bool = False
    refused: str | None = None


async def begin(config_path: str, run_id: str | None) -> Start:
    """Read this go-live run (and its peers) from the API: resumed, fresh, or refused."""
    from prefect.client.orchestration import get_client

    if not run_id:  # not a flow run of a server: nothing can resume it; pause in process
        return Start(wait=Wait(run_id="", suspend=False))
    async with get_client() as client:
        own = await client.read_flow_run(UUID(run_id))
        answered = answered_rounds(own)
        # Prefect suspends only a top-level run of a deployment (it re-schedules the run through the deployment; a
        # deployment run started as a subflow is refused "Cannot suspend subflows")
        suspend = own.deployment_id is not None and own.parent_task_run_id is None
        timers = (lambda n, t: schedule_timers(config_path, run_id, n, t)) if suspend else None
        wait = Wait(run_id=run_id, suspend=suspend, answered=answered, timers=timers, requested_by=requesters_of(own))
        if answered:
            wait.answered_at = await _answered_at(client, own.id, answered)
            return Start(wait=wait, resumed=True)
        if other := await _open_go_live(client, own, config_path):
            return Start(refused=other)
    return Start(wait=wait)


async def _answered_at(client: Any, run_id: UUID, keys: set[str]) -> dict[str, datetime]:
    """When the input of each answered round was stored (the record's `signed_at` for a replayed round)."""
    out: dict[str, datetime] = {}
    try:
        for key in keys:
            n = key.rsplit("-", 1)[-1]
            if not n.isdigit():
                continue
            for rk in response_keys(int(n)):
                found = await client.filter_flow_run_input(
                    flow_run_id=run_id, key_prefix=rk, limit=1, exclude_keys=set()
                )
                if found and found[0].created:
                    out[key] = found[0].created
                    break
    except Exception as e:  # noqa: BLE001 - only the record's times are lost (they read as the replay's time)
        get_run_logger().warning(
            "when the answered sign-offs were stored is not known: %s", plain(f"{type(e).__name__}: {e}", 200)
        )
    return out


async def _open_go_live(client: Any, own: Any, config_path: str) -> str | None:
    """Another go-live run of this config that has opened a sign-off and not ended: why this one is refused."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    live = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
    flt = dict(
        flow_filter=FlowFilter(id=FlowFilterId(any_=[own.flow_id])),
        sort=FlowRunSort.ID_DESC,
        flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(not_any_=[own.id]), state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))
        ),
    )
    runs: list[Any] = []
    while len(page := await client.read_flow_runs(**flt, limit=200, offset=len(runs))) == 200 and len(runs) < 5000:
        runs += page
    runs += page
    for r in runs:
        if (
            r.parameters.get("mode") == "go-live"
            and _same_file(r.parameters.get("config"), config_path)
            and answered_rounds(r)
        ):
            return (
                f"go-live run {r.id} ({plain(r.name, 60)}) of this environment is waiting for its sign-off "
                f"({plain(r.state.name if r.state else 'no state', 40)}): one go-live at a time; sign it off "
                "or cancel it first"
            )
    return None


def _same_file(a: object, b: str) -> bool:
    """Whether two config paths name one file (`envs/p.yaml` and `./envs/p.yaml` do)."""
    from pathlib import Path

    try:
        return isinstance(a, str) and Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return a == b


async def schedule_timers(config_path: str, run_id: str, round_no: int, timeout_s: int) -> None:
    """The reminder (at half the round's time) and the recorded timeout (just after its deadline) as scheduled runs
    of the timer deployment; idempotent per run, round and purpose. Without that deployment the round still ends
    at its deadline (Prefect's pause expiry): only the reminder and the NO-GO record are lost, and that is logged."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled

    logger = get_run_logger()
    now = datetime.now(UTC)
    try:
        async with get_client() as client:
            dep = await client.read_deployment_by_name(TIMER_DEPLOYMENT)
            for what, at in (
                ("reminder", now + timedelta(seconds=timeout_s / 2)),
                ("timeout", now + timedelta(seconds=timeout_s + DEADLINE_GRACE_S)),
            ):
                await client.create_flow_run_from_deployment(
                    dep.id,
                    parameters={"config": config_path, "go_live_run_id": run_id, "round_no": round_no, "what": what},
                    state=Scheduled(scheduled_time=at),
                    idempotency_key=f"{run_id}:{WAIT_KEY.format(round_no)}:{what}",
                )
    except ObjectNotFound:
        logger.warning(
            "deployment %s not found: sign-off %d gets no reminder, and its timeout is recorded by "
            "Prefect alone (the run ends Failed at its deadline)",
            TIMER_DEPLOYMENT,
            round_no,
        )
    except Exception as e:  # noqa: BLE001 - timers are best effort; the deadline is Prefect's own
        logger.warning(
            "sign-off %d: timers not scheduled (%s): no reminder; the deadline still holds",
            round_no,
            plain(f"{type(e).__name__}: {e}", 300),
        )


@flow(name=TIMER_FLOW, flow_run_name="{what} round {round_no}", persist_result=False)
async def sign_off_timer(config: str, go_live_run_id: str, round_no: int, what: Literal["reminder", "timeout"]) -> str:
    """Remind the approvers of an unanswered sign-off round, or record an expired one as the NO-GO it is. The config
    is the go-live run's own (its `config` parameter): the timer's `config` is only where it was scheduled from, and
    any API client can start a timer with another."""
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    logger = get_run_logger()
    try:
        rid = UUID(go_live_run_id)
    except ValueError:
        return f"go_live_run_id {plain(go_live_run_id, 80)!r} is not a flow run id"
    key = WAIT_KEY.format(round_no)
    async with get_client() as client:
        run = await client.read_flow_run(rid)
        flow_name = (await client.read_flow(run.flow_id)).name
        if flow_name != "go-live-readiness" or run.parameters.get("mode") != "go-live":
            return f"flow run {rid} is not a go-live readiness run: nothing to do"
        try:
            cfg = load_config(str(run.parameters.get("config")))
        except ConfigError as e:
            return f"the go-live run's config {e.source} is invalid: {e.problems[0]}"
        state = run.state
        waiting = state is not None and state.is_paused() and state.state_details.pause_key == key
        if what == "reminder":
            if not waiting:
                return f"round {round_no} is no longer waiting: no reminder"
            try:
                report = (await load_report(go_live_run_id)).report
            except LookupError as e:
                return f"round {round_no}: no reminder: {e}"
            need = {r.value for r in cfg.approval.required_roles}
            signed = await _accepted(client, run, round_no - 1, report, cfg.approval)
            await notifier(cfg, logger)(
                notice("reminder", report, round_no, sign_off_url(go_live_run_id), missing_roles(signed, need))
            )
            return f"round {round_no}: reminded"
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while waiting and datetime.now(UTC) < deadline:  # Prefect's expiry loop ends it within seconds
            await asyncio.sleep(2)
            run = await client.read_flow_run(rid)
            state = run.state
            waiting = state is not None and state.is_paused() and state.state_details.pause_key == key
        last = max((int(k.rsplit("-", 1)[1]) for k in answered_rounds(run) if k.rsplit("-", 1)[1].isdigit()), default=0)
        expired = state is not None and state.is_failed() and EXPIRED in (state.message or "") and last == round_no
        if waiting and state is not None:  # (waiting: state is not None)
            expiry = state.state_details.pause_timeout
            if expiry is None or expiry > datetime.now(UTC):
                return f"round {round_no} is still within its time: nothing recorded"
            expired = True  # Prefect's expiry service is off on this server: the timer ends the run itself
        if not expired:
            return f"round {round_no} did not expire ({plain(state.name if state else 'no state', 40)}): nothing to do"
        policy, need = cfg.approval, {r.value for r in cfg.approval.required_roles}
        why = f"no sign-off within {policy.timeout_minutes:g} minutes (round {round_no}): a NO-GO"
        await client.set_flow_run_state(rid, Failed(name="NO-GO", message=f"NO-GO: {why}"), force=True)
        try:
            report = (await load_report(go_live_run_id)).report
        except LookupError as e:  # the run's end is recorded above; only the record for people is lost
            logger.warning("go-live run %s: %s; no decision record, no notification: %s", rid, why, e)
            return why
        signed = await _accepted(client, run, round_no - 1, report, policy)
        record = DecisionRecord(
            environment=report.environment,
            release=run.parameters.get("release"),
            readiness_flow_run_id=str(rid),
            decision=Verdict.NO_GO,
            why=why,
            decided_at=datetime.now(UTC),
            report_verdict=report.verdict,
            blocking_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.blocking_failures],
            warnings_seen=[f"{r.id} {r.status.value}: {r.summary}" for r in report.warnings],
            required_roles=sorted(need),
            signoffs=[s.model_dump(mode="json") for s in signed],
            timed_out=True,
            rounds=round_no,
            waited_in="suspended",
            requested_by=requesters_of(run),
            identity=IDENTITY,
        )
    await publish_decision(record, str(rid))
    await notifier(cfg, logger)(
        notice(
            "timed-out", report, round_no, sign_off_url(go_live_run_id), [], decision="NO-GO", release=record.release
        )
    )
    logger.warning("go-live run %s: %s", rid, why)
    return why


async def _accepted(client: Any, run: Any, rounds: int, report: Any, policy: Any) -> list[Any]:
    """The sign-offs accepted in rounds 1..`rounds` (for the reminder's 'still needed' and the timeout's record)."""
    stored = await stored_sign_offs(client, run.id, rounds)
    if isinstance(stored, str):
        return []
    accepted, _, _ = replay(
        stored,
        [r.id for r in report.blocking_failures],
        {r.value for r in policy.required_roles},
        requester_rule(policy, requesters_of(run)),
    )
    return accepted
