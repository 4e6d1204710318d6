"""The run engine: checks run over one shared dependency board and are recorded as Prefect task runs (one per check,
or one per group of checks), for every flow that runs checks (the readiness sections, the deploy flow's smoke tests).

A check's result goes on the board the moment its body is done, so the checks waiting for it start then, not once
Prefect has finished its task run's bookkeeping (with a hundred task runs ending together that queue is long).
The readiness flow runs every body from its own board (`run_bodies`) and its section subflows record them
(`record`); the deploy flow sets a task run up alongside each body (`prefect_executor`).

Nothing secret crosses the Prefect API: a task run's parameters are a check id and an opaque run key; the loaded
config, its secrets, the board and the results stay in this process, in one registry (`registered_run`), which the
deploy flow's steps also read their redactor from.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, cast

from prefect import State, Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.states import Completed, Failed

from golive.tasks.core import (
    Board,
    CheckResult,
    CheckSpec,
    Memo,
    Redactor,
    Status,
    engine_error,
    exc_text,
    execute,
    make_result,
    run_checks,
)

from .config import GoliveConfig


@dataclasses.dataclass
class RunState:
    config: GoliveConfig
    redact: Redactor
    specs: dict[str, CheckSpec]
    board: Board
    memo: Memo = dataclasses.field(default_factory=Memo)
    bodies: dict[str, asyncio.Future[CheckResult]] = dataclasses.field(default_factory=dict)  # check -> its body
    groups: dict[str, asyncio.Future[State]] = dataclasses.field(default_factory=dict)  # group -> its task run
    recorded: set[str] = dataclasses.field(default_factory=set)  # sections whose subflow recorded all its checks
    unrecorded: dict[str, str] = dataclasses.field(default_factory=dict)  # section -> why its subflow did not
    # check -> the state its task run of ours returned once it had logged it (`record` wants the run to end in it)
    logged: dict[str, tuple[StateType, str | None]] = dataclasses.field(default_factory=dict)
    unrecorded_checks: dict[str, str] = dataclasses.field(default_factory=dict)  # check -> why its task run did not


_RUNS: dict[str, RunState] = {}
#: In-process listeners (the CLI's progress display): called with every result as it lands.
LISTENERS: list[Callable[[CheckResult], None]] = []


async def _run_one(st: RunState, check_id: str) -> CheckResult:
    spec = st.specs[check_id]
    try:
        res = await execute(spec, st.config, redact=st.redact, memo=st.memo)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - (execute never raises: a bug of ours is an ERROR, never a pass)
        res = engine_error(spec, e, st.redact)
    st.board.post(res)  # its dependents go now (the executor's caller posting it again changes nothing)
    return res


def _body(st: RunState, check_id: str) -> asyncio.Future[CheckResult]:
    """The check's body, started the first time it is asked for: the moment the board lets the check go
    (`run_bodies`; the deploy flow's `prefect_executor`, whose task run, set up alongside, awaits the same future)."""
    fut = st.bodies.get(check_id)
    if fut is None:
        fut = st.bodies[check_id] = asyncio.ensure_future(_run_one(st, check_id))
    return fut


_LEVEL = {Status.FAIL: logging.ERROR, Status.ERROR: logging.ERROR, Status.WARN: logging.WARNING}


def _log(*results: CheckResult, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
    """One log record of the results' lines, at the worst of their levels (FAIL/ERROR error, WARN warning): each
    record costs Prefect's log handler and the server about a millisecond, and a suite's checks land together."""
    lines = [f"{r.status.value} {r.id}: {r.summary} [{r.evidence}]" for r in results]
    level = max(_LEVEL.get(r.status, logging.INFO) for r in results)
    (logger or get_run_logger()).log(level, "\n".join(lines))


def _state_of(res: CheckResult) -> State:
    """A check's log line, and its task run's final state: FAIL/ERROR show as Failed runs in the UI, the rest
    Completed."""
    _log(res)
    if res.status in (Status.FAIL, Status.ERROR):
        return Failed(message=f"{res.status.value}: {res.summary}"[:500])
    return Completed(message=f"{res.status.value}: {res.summary}"[:500])


@task(name="check", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def check_task(check_id: str, run_key: str) -> State:
    """One check as a Prefect task run that runs its body (`prefect_executor`)."""
    return _state_of(await _body(_RUNS[run_key], check_id))


@task(name="check", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def record_task(check_id: str, run_key: str) -> State:
    """One check as a Prefect task run that records it: it ends when the check lands on the board (its body run
    by `run_bodies`, or SKIPPED without one)."""
    st = _RUNS[run_key]
    state = _state_of((await st.board.wait([check_id]))[check_id])
    st.logged[check_id] = (state.type, state.message)  # (what `record` requires of a task run that recorded it)
    return state


@task(name="check group", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def group_task(group: str, check_ids: list[str], run_key: str) -> State:
    """The checks of one group (the expectations of one suite: one validation of its table; the checks of one
    section, `by_section`) as one task run; each check keeps its own result, evidence and log line, logged as it
    lands (the lines of those landing together in one record)."""
    st = _RUNS[run_key]
    logger = get_run_logger()
    pending: list[CheckResult] = []  # landed, not logged yet: those landing together go in one record

    def flush() -> None:
        if pending:
            _log(*pending, logger=logger)
            pending.clear()

    async def landed(check_id: str) -> CheckResult:  # (a member's body starts when the board lets it go, or the
        res = (await st.board.wait([check_id]))[check_id]  # board lands it SKIPPED without one)
        if not pending:  # (after the other members woken by the same landings)
            asyncio.get_running_loop().call_soon(flush)
        pending.append(res)
        return res

    results = await asyncio.gather(*(landed(i) for i in check_ids))
    flush()
    counts = ", ".join(f"{n} {s.value}" for s in Status if (n := sum(r.status == s for r in results)))
    bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
    msg = f"{group}: {counts}" + (f"; {bad[0].id} {bad[0].status.value}: {bad[0].summary}" if bad else "")
    state: State = (Failed if bad else Completed)(message=msg[:500])
    st.logged.update(dict.fromkeys(check_ids, (state.type, state.message)))  # (what `record` requires of it)
    return state


@functools.lru_cache(maxsize=4096)
def _named_task(check_id: str) -> Task[[str, str], Coroutine[Any, Any, State]]:
    """`check_task` named by the check id (Task.with_options copies the task: ~3 ms, so once per id, not per run)."""
    return check_task.with_options(task_run_name=check_id)


@functools.lru_cache(maxsize=4096)
def _named_record_task(check_id: str) -> Task[[str, str], Coroutine[Any, Any, State]]:
    return record_task.with_options(task_run_name=check_id)


@functools.lru_cache(maxsize=1024)
def _named_group_task(group: str) -> Task[[str, list[str], str], Coroutine[Any, Any, State]]:
    return group_task.with_options(task_run_name=group)


async def _settled(run: asyncio.Future[State]) -> State | BaseException:
    try:
        return await run
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - Prefect could not run the task run: its caller says what that means
        return e


def _warn_unrecorded(st: RunState, state: State | BaseException, results: list[CheckResult]) -> None:
    """The deploy flow's checks (`prefect_executor`): a task run Prefect could not run (its call failed, it crashed)
    leaves the check's own result, and the log says so. (A smoke test decides a rollback on what it found; the
    readiness flow's checks are another matter: `record`.)"""
    if isinstance(state, State) and not state.is_crashed():
        return
    what = f"{state.type.value}: {state.message}" if isinstance(state, State) else exc_text(state)
    what = st.redact.clip(what, 300)
    for res in results:
        get_run_logger().warning(
            "%s: its Prefect task run did not record it (%s); its result stands: %s", res.id, what, res.status.value
        )


def prefect_executor(run_key: str) -> Callable[[CheckSpec], Awaitable[CheckResult]]:
    """Runs one check as a Prefect task run (named by its id) and returns its result.

    The body starts at once, and the task run is set up alongside it and records it: a task run's setup is several
    milliseconds of this process's event loop, and with a section's checks let go together, each body waiting for
    its own setup made the last of them start most of a second late. The evidence carries the body's own times."""
    st = _RUNS[run_key]

    # (the casts: Prefect types an async task's `return_state=True` call as its State; called in a flow's event loop,
    # as here, it is a coroutine of that State)
    def start_run(spec: CheckSpec) -> asyncio.Future[State]:
        if spec.group:  # the first member to get here starts the group's one task run
            run = st.groups.get(spec.group)
            if run is None:
                ids = sorted(i for i, s in st.specs.items() if s.group == spec.group)
                run = st.groups[spec.group] = asyncio.ensure_future(
                    cast("Awaitable[State]", _named_group_task(spec.group)(spec.group, ids, run_key, return_state=True))
                )
            return run
        return asyncio.ensure_future(
            cast("Awaitable[State]", _named_task(spec.id)(spec.id, run_key, return_state=True))
        )

    async def via_prefect(spec: CheckSpec) -> CheckResult:
        state: State | BaseException | None = None
        if spec.timing and not spec.group:  # its task run's setup is this process's CPU: before its probe (which
            # it starts), not during it. (A group's task run starts no body: it awaits its members')
            run = start_run(spec)
            state = await _settled(run)
            body = _body(st, spec.id)  # (done by then; started here only if its task run never ran)
        else:
            body = _body(st, spec.id)
            await asyncio.sleep(0)  # the bodies let go in one pass all start before the first task run's setup
            run = start_run(spec)
        try:
            res = await body
        except asyncio.CancelledError:
            if not spec.group:  # (a group's run ends with its members, which the section lands whatever happens)
                run.cancel()
            raise
        except Exception as e:  # noqa: BLE001 - (execute never raises: a bug of ours is an ERROR, never a pass)
            res = engine_error(spec, e, st.redact)
        if state is None:
            state = await _settled(run)
        _warn_unrecorded(st, state, [res])
        return res

    return via_prefect


def _group_name(section: str, ids: list[str]) -> str:
    """A group's task-run name: its subject (`backup.s3`) when it has one, else its section and subjects
    (`team: comms, contacts, oncall`), at most about 60 characters (`+2 more`)."""
    subjects = list(dict.fromkeys(i.rsplit(".", 1)[0] for i in ids))
    if len(subjects) == 1:
        return subjects[0]
    tails = [sub.split(".", 1)[1] if "." in sub else sub for sub in subjects]
    shown: list[str] = []
    for k, tail in enumerate(tails):
        if shown and len(section) + len(", ".join([*shown, tail])) > 56:
            return f"{section}: {', '.join(shown)} +{len(tails) - k} more"
        shown.append(tail)
    return f"{section}: {', '.join(shown)}"


def by_section(specs: dict[str, CheckSpec]) -> dict[str, CheckSpec]:
    """`specs` with the checks of one section recorded as one Prefect task run, named by their subject
    (`backup.s3`) or by the section and its subjects (`team: comms, contacts, ...`); each check still has its own
    result, evidence and log line in it, and its own line in the report, the checks table and the JUnit file. A task
    run only records (`record`: the bodies run from the run's board), so what its checks wait for, their phase or
    timing, does not matter to it. Each task run costs the flow's process and the Prefect server about 20 ms of CPU,
    on 2 cores shared with the checks: 134 task runs of a sandbox run become 20. Left alone: groups already made (a
    suite's expectations: one task run per table), and a check alone in its section."""
    sets: dict[str, list[str]] = {}
    for i, s in specs.items():
        if s.group is None:
            sets.setdefault(s.section, []).append(i)
    out = dict(specs)
    names = {s.group for s in specs.values() if s.group}
    for section, ids in sets.items():
        if len(ids) < 2:
            continue
        base = _group_name(section, ids)
        name, n = base, 1
        while name in names or name in specs:  # (a name a suite or a check already has)
            n += 1
            name = f"{base} #{n}"
        names.add(name)
        for i in ids:
            out[i] = dataclasses.replace(specs[i], group=name)
    return out


@contextlib.contextmanager
def registered_run(
    cfg: GoliveConfig, specs: dict[str, CheckSpec], *, group_by_section: bool = False
) -> Iterator[tuple[str, RunState]]:
    """Keep a run's config, secrets and board in this process (never in Prefect parameters) while it runs.
    `group_by_section`: record the checks of one section as one task run (`by_section`)."""
    run_key = uuid.uuid4().hex
    board = Board(specs)
    if group_by_section:
        specs = by_section(specs)
    board.listeners.extend(LISTENERS)
    _RUNS[run_key] = st = RunState(config=cfg, redact=Redactor(cfg.secrets()), specs=specs, board=board)
    try:
        yield run_key, st
    finally:
        _RUNS.pop(run_key, None)


async def run_bodies(run_key: str) -> None:
    """Run every check of the run from its board, in the run's own process and event loop, as `run_plain` does;
    `record` sets up their Prefect task runs. Never raises but a cancellation (a bug of ours running a check is its
    ERROR: `_run_one`, `run_checks`); whatever becomes of it, every check lands (a section subflow recording one
    waits for it) and no body outlives it."""
    st = _RUNS[run_key]
    why = "the run ended before running it"
    try:
        await run_checks(st.specs.values(), st.board, lambda spec: _body(st, spec.id), redact=st.redact)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - (run_checks never raises: a bug of ours ends in a verdict, not a crash)
        why = st.redact.clip(f"golive's engine failed: {exc_text(e)}", 300)
        try:
            get_run_logger().error("%s", why)
        except Exception:  # noqa: BLE001 - (no run context: the checks' causes still say it)
            logging.getLogger("golive.engine").error("%s", why)
    finally:
        for body in st.bodies.values():
            body.cancel()  # (done by now, unless the run was cancelled or the engine failed)
        for spec in st.specs.values():
            if spec.id not in st.board.results:
                st.board.post(
                    make_result(spec, Status.ERROR, started=datetime.now(UTC), t0=time.monotonic(), cause=why)
                )


async def record(run_key: str, check_ids: list[str]) -> list[CheckResult]:
    """Record the checks `check_ids` (a section's) as Prefect task runs: one per group, one per other check, each
    ending once its checks have landed on the board and logging each as it lands. Returns their results as the
    report counts them (`reported`). A task run that did not record its checks (its call failed, it crashed, it
    failed by an exception before logging them, it did not end in the state it returned) makes them ERROR, naming
    why and what each found (`RunState.unrecorded_checks`): the approvers sign a section off from its record in
    Prefect, and a check without one is not proven. Its dependents ran on what it found, and keep their own results
    and records."""
    st = _RUNS[run_key]
    runs: list[tuple[list[str], Awaitable[State]]] = []
    seen: set[str] = set()
    for i in check_ids:
        group = st.specs[i].group
        if group is None:
            runs.append(([i], cast("Awaitable[State]", _named_record_task(i)(i, run_key, return_state=True))))
        elif group not in seen:
            seen.add(group)
            ids = [j for j in check_ids if st.specs[j].group == group]
            runs.append(
                (ids, cast("Awaitable[State]", _named_group_task(group)(group, ids, run_key, return_state=True)))
            )
    states = await asyncio.gather(*(_settled(asyncio.ensure_future(run)) for _, run in runs))
    results = await st.board.wait(check_ids)
    for (ids, _), state in zip(runs, states, strict=True):
        if isinstance(state, State) and all(st.logged.get(i) == (state.type, state.message) for i in ids):
            continue  # (it logged them and ended in the state it returned: Completed, or Failed with a FAIL)
        what = f"{state.type.value}: {state.message or ''}" if isinstance(state, State) else exc_text(state)
        why = f"its Prefect task run did not record it ({st.redact.clip(what, 300)})"
        for i in ids:
            st.unrecorded_checks[i] = why
            get_run_logger().error("%s: %s: ERROR in the report (it found %s)", i, why, results[i].status.value)
    return [reported(st, results[i]) for i in check_ids]


def reported(st: RunState, r: CheckResult) -> CheckResult:
    """A check's result as the report counts it: ERROR, naming why and what it found, when its section's subflow
    (`RunState.unrecorded`: the API refused it, it crashed) or its own task run (`RunState.unrecorded_checks`)
    did not record it: the approvers sign a section off from its record in Prefect, and a check without one is not
    proven."""
    why = st.unrecorded.get(r.section) or st.unrecorded_checks.get(r.id)
    if why is None:
        return r
    cause = st.redact.clip(f"{why}; it found {r.status.value}: {r.summary}", 500)
    return r.model_copy(update={"status": Status.ERROR, "cause": cause})


def results(st: RunState) -> list[CheckResult]:
    """The run's results, for its report, as it counts them (`reported`)."""
    return [reported(st, r) for r in st.board.results.values()]


def state(run_key: str) -> RunState:
    """The registered run `run_key` (a KeyError when it is not, or no longer, registered)."""
    return _RUNS[run_key]


def redactor(run_key: str) -> Redactor:
    """The redactor of a registered run (one that knows no secret when the run is gone: nothing to hide then)."""
    st = _RUNS.get(run_key)
    return st.redact if st is not None else Redactor()
