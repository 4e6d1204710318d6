"""The `deploy-production` flow: deploy, smoke-test, watch the seed's rollback criteria, roll back on its own.

Only a GO triggers it (`trigger_deploy`, with an idempotency key naming the deployment and the readiness run, so a
retried readiness run never deploys twice), and it proves that itself through the Prefect API before anything runs
(`_decision_allows`): its readiness run is a go-live run of this config and release that completed, it is the one deploy
run that run triggered, and the sign-off input stored on each resume decides GO. The decision artifact is not evidence.

Rollback criteria (seed "Rollback Criteria"), evaluated every `poll_seconds` during `watch_seconds`:
- CRITICAL, immediate rollback: the API not answering healthy for longer than `api_down_seconds` (seed: 1 minute),
  the database inaccessible for longer than `db_down_seconds`, a failed smoke test right after the deploy, and the
  CRITICAL `alert_criteria` (data corruption, security breach, revenue feature) while their Prometheus alert fires;
- HIGH, rollback once failing for longer than `high_assess_seconds` (seed: assess within 5 minutes) unless an
  operator acknowledged it for this release (`golive ack`): the `high_checks` (login and the campaign list through
  the API), the error ratio from Prometheus (`error_rate_query` > `max_error_rate`) and the HIGH alert criteria;
- MEDIUM: reported only. The evaluation itself is flows/watch.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Failed
from pydantic import BaseModel, Field

from golive.tasks.catalog import load_catalog
from golive.tasks.clients.prometheus import firing_alerts, instant_query
from golive.tasks.core import (
    Board,
    CheckResult,
    CheckSpec,
    Memo,
    Redactor,
    RunContext,
    Severity,
    Status,
    execute,
    run_checks,
    select,
)

from . import artifacts, engine
from .approval import DEPLOYMENT, RECORDED_DEPLOY, submitted_decision, trigger_deploy  # noqa: F401 (re-exported)
from .catalog import with_policy
from .config import ConfigError, GoliveConfig, load_config
from .policies import DeployPolicy
from .report import Verdict, md
from .watch import (
    MAX_ANSWER_BYTES,
    Ack,
    Trip,
    Watch,
    ack_variable,
    alert_signals,
    check_signals,
    error_rate_signal,
    parse_ack,
    poll_budget,
)

if TYPE_CHECKING:
    pass


class StepResult(BaseModel):
    name: str
    ok: bool
    seconds: float
    detail: str


class DeployReport(BaseModel):
    environment: str
    release: str
    readiness_run_id: str | None
    outcome: str  # DEPLOYED / ROLLED-BACK / FAILED / REFUSED
    steps: list[StepResult] = Field(default_factory=list)
    smoke: list[dict[str, Any]] = Field(default_factory=list)
    trip: Trip | None = None
    medium: list[str] = Field(default_factory=list)
    acknowledged: list[dict[str, Any]] = Field(default_factory=list, description="HIGH criteria kept by an operator")
    deploy_seconds: float | None = None
    time_to_detect_s: float | None = None
    time_to_rollback_s: float | None = None
    watched_seconds: float = 0.0
    polls: int = 0
    evidence_age_s: float | None = Field(
        None, description="at the deploy's start: time since the readiness run started (its oldest evidence is younger)"
    )
    evidence_window_s: float | None = Field(None, description="approval.max_evidence_age_minutes, in seconds")
    recheck: dict[str, Any] | None = Field(
        None, description="the stale-evidence re-check: how many checks, and each status that changed (before, now)"
    )


def _argv(argv: list[str], release: str) -> list[str]:
    return [a.replace("{release}", release) for a in argv]


@task(name="deploy-step", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def run_step(
    name: str,
    argv: list[str] | None,
    webhook: str | None,
    release: str,
    readiness_run_id: str | None,
    timeout_s: float,
    run_key: str,
) -> StepResult:
    """Run the deploy or rollback command (or POST the webhook), bounded by its timeout. Never raises. The redactor
    is the deploy run's, from the engine's registry (`run_key`: nothing secret is a task parameter's value)."""
    redact = engine.redactor(run_key)
    t0 = time.monotonic()
    try:
        if argv:
            proc = await asyncio.create_subprocess_exec(
                *_argv(argv, release), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return StepResult(
                    name=name,
                    ok=False,
                    seconds=round(time.monotonic() - t0, 3),
                    detail=f"timed out after {timeout_s:g}s: killed",
                )
            tail = redact.clip(out.decode(errors="replace"), 1500, tail=True, one_line=False)
            return StepResult(
                name=name,
                ok=proc.returncode == 0,
                seconds=round(time.monotonic() - t0, 3),
                detail=redact.text(f"`{' '.join(_argv(argv, release))}` exited {proc.returncode}: {tail}"),
            )
        assert webhook is not None  # no command: the policy's webhook (one of the two, validated; a rollback has argv)
        async with httpx.AsyncClient(timeout=timeout_s) as c:  # bounded as a whole: httpx's timeouts are per read
            r = await asyncio.wait_for(
                c.post(webhook, json={"release": release, "readiness_run_id": readiness_run_id, "step": name}),
                timeout_s,
            )
        return StepResult(
            name=name,
            ok=r.is_success,
            seconds=round(time.monotonic() - t0, 3),
            detail=redact.text(f"POST webhook answered {r.status_code}"),
        )
    except TimeoutError:
        return StepResult(
            name=name,
            ok=False,
            seconds=round(time.monotonic() - t0, 3),
            detail=f"timed out after {timeout_s:g}s: the webhook did not answer",
        )
    except Exception as e:  # noqa: BLE001 - a broken step is evidence, not a crash
        return StepResult(
            name=name, ok=False, seconds=round(time.monotonic() - t0, 3), detail=redact.text(f"{type(e).__name__}: {e}")
        )


@dataclasses.dataclass
class DeployRun:
    """One deploy run, as its steps see it: what it deploys, with which policy, and what it has found so far."""

    cfg: GoliveConfig
    release: str
    readiness_run_id: str | None
    report: DeployReport
    run_key: str  # the engine's registry: the run's redactor and its smoke tests' board
    webhook: str | None
    logger: Any
    deployed_at: float = 0.0

    @property
    def pol(self) -> DeployPolicy:
        assert self.cfg.deploy is not None  # checked before a DeployRun is made
        return self.cfg.deploy

    @property
    def redact(self) -> Redactor:
        return engine.redactor(self.run_key)

    async def step(self, name: str, argv: list[str] | None, webhook: str | None) -> StepResult:
        return await run_step.with_options(task_run_name=f"{name} {self.release}")(
            name, argv, webhook, self.release, self.readiness_run_id, self.pol.timeout_s, self.run_key
        )


@dataclasses.dataclass
class Proof:
    """What the deploy flow proved about the GO it was triggered by (`_decision_allows`)."""

    ok: bool
    why: str
    #: when the readiness run started, as Prefect's server recorded it: every check's evidence is younger than this,
    #: so `now - evidence_from` bounds the age of the oldest evidence from above (never from a run's own artifact)
    evidence_from: datetime | None = None
    #: the blocking failures the readiness run's verdict listed (what the sign-off went over) and each status it
    #: listed for a check (blocking failures and warnings: the rest were passing or not applicable)
    signed_failures: list[str] = dataclasses.field(default_factory=list)
    before: dict[str, str] = dataclasses.field(default_factory=dict)


READINESS_FLOW = "go-live-readiness"
RECHECK_TIMEOUT_S = 600.0  # the stale-evidence re-check as a whole (each check also has its own timeout)
VERIFY_TIMEOUT_S = 180.0  # the whole proof, including the wait for the readiness run to end
READINESS_END_S = 120.0  # a readiness run ends right after it triggers its deploy; one still running is not a GO


async def _decision_allows(cfg: GoliveConfig, config: str, release: str, readiness_run_id: str | None) -> Proof:
    """Deploy only what was signed off, proven through the Prefect API; anything unproven or unreadable refuses.

    - the readiness run exists, is a `go-live-readiness` run in go-live mode of this config and this release, and
      ended Completed (a go-live run completes only on GO; it triggers this run just before it ends: waited for);
    - this run is the one it triggered: a run of `deploy.deployment` with the idempotency key naming the readiness
      run (Prefect keeps a key unique per flow, so one deploy run per readiness run), the run the readiness run's
      final state names (a deleted and re-created run is another run), in its first execution (a re-scheduled run
      would deploy the same decision twice);
    - the input Prefect stored when its sign-off runs were resumed, replayed through the sign-off rules over the
      blocking failures of its own verdict, decides GO. The decision artifact is not read: any API client can write one.
    """
    if not readiness_run_id:
        return Proof(False, "no readiness_run_id: only a GO of a readiness run triggers a deploy")
    try:
        rid = UUID(readiness_run_id)
    except ValueError:
        return Proof(False, f"readiness_run_id {readiness_run_id[:80]!r} is not a flow run id")
    try:
        return await asyncio.wait_for(_verify_sign_off(cfg, config, release, rid), VERIFY_TIMEOUT_S)
    except TimeoutError:
        return Proof(False, f"the sign-off of readiness run {rid} could not be verified within {VERIFY_TIMEOUT_S:g}s")
    except Exception as e:  # noqa: BLE001 - what cannot be read cannot be proven: refused
        return Proof(False, f"the sign-off of readiness run {rid} could not be verified: {type(e).__name__}: {e}")


async def _verify_sign_off(cfg: GoliveConfig, config: str, release: str, rid: UUID) -> Proof:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    pol, me = cfg.deploy, runtime_flow_run.id
    assert pol is not None  # deploy_production refuses a config without a deploy section before this
    if not me:
        return Proof(False, "not running as a Prefect flow run: nothing binds it to a readiness run")
    async with get_client() as client:
        try:
            run = await client.read_flow_run(rid)
        except ObjectNotFound:
            return Proof(False, f"no flow run {rid}")
        flow_name, p = (await client.read_flow(run.flow_id)).name, run.parameters
        if flow_name != READINESS_FLOW or p.get("mode") != "go-live":
            return Proof(
                False, f"flow run {rid} is a {flow_name} run in {p.get('mode')!r} mode, not a go-live readiness run"
            )
        if p.get("config") != config:
            return Proof(False, f"readiness run {rid} checked config {str(p.get('config'))[:200]!r}, not {config!r}")
        if (p.get("release") or "").strip() != release:
            return Proof(
                False,
                f"readiness run {rid} was signed off for release {str(p.get('release'))[:80]!r}, not {release[:80]!r}",
            )
        mine, dep = await asyncio.gather(
            client.read_flow_run(UUID(str(me))), client.read_deployment_by_name(pol.deployment)
        )
        if mine.deployment_id != dep.id or mine.idempotency_key != f"{pol.deployment}:{rid}":
            return Proof(
                False,
                f"this run is not the deploy readiness run {rid} triggered (a run of {pol.deployment} "
                f"with idempotency key {pol.deployment}:{rid}): a decision deploys at most once",
            )
        if mine.run_count != 1:
            return Proof(
                False, f"this deploy run is executing again (run {mine.run_count}): a decision deploys at most once"
            )
        deadline = time.monotonic() + READINESS_END_S
        while not (run.state and run.state.is_final()) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            run = await client.read_flow_run(rid)
        if not (run.state and run.state.is_completed()):
            state = f"{run.state.type.value}: {(run.state.message or '')[:300]}" if run.state else "no state"
            return Proof(False, f"readiness run {rid} did not complete with a GO ({state})")
        if not (run.state.message or "").endswith(RECORDED_DEPLOY.format(me)):
            return Proof(
                False,
                f"readiness run {rid} recorded another deploy run than this one "
                f"({(run.state.message or '')[-120:]!r}): a decision deploys at most once",
            )
        blocking, before = await _blocking_reported(client, cfg.environment, rid)
        decision, why = await submitted_decision(client, rid, blocking, cfg.approval)
    if decision != Verdict.GO:
        return Proof(False, f"the sign-off input of readiness run {rid} does not decide GO: {why}")
    return Proof(
        True,
        f"{why} (readiness run {rid}, release {release}; verified from the submitted sign-off input)",
        evidence_from=run.start_time or run.created,
        signed_failures=blocking,
        before=before,
    )


async def _blocking_reported(client: Any, env: str, rid: UUID) -> tuple[list[str], dict[str, str]]:
    """The blocking failures the readiness run's verdict listed (the union over every version it carries: one more
    written later can only add to them), and the status it listed for each failing or warning check. Its sign-offs
    are re-checked against the former; a stale GO's re-check shows the latter as "before"."""
    verdicts = await artifacts.run_json(client, "verdict", env, rid)
    if not verdicts:
        raise LookupError(f"readiness run {rid} published no verdict {artifacts.key('verdict', env)}")
    if not all(isinstance(v, dict) and isinstance(v.get("blocking"), list) for v in verdicts):
        # one that cannot be read might be the one that lists a failure: what cannot be read cannot be proven
        raise LookupError(f"a version of {artifacts.key('verdict', env)} on readiness run {rid} is not a verdict")
    before: dict[str, str] = {}
    for v in verdicts:
        for line in (*v["blocking"], *(v.get("warnings") if isinstance(v.get("warnings"), list) else ())):
            cid, _, rest = str(line).partition(" ")
            before.setdefault(cid, rest.split(":", 1)[0][:20])
    return sorted({str(b).split(" ", 1)[0] for v in verdicts for b in v["blocking"]}), before


async def _probe(specs: dict[str, CheckSpec], cfg: GoliveConfig, redact: Redactor) -> dict[str, CheckResult]:
    """One poll of the watch window: the probe checks, concurrently, with their dependencies, all within the poll
    budget (each check's timeout is cut to what is left of it): a hung target is an ERROR by the end of the poll."""
    assert cfg.deploy is not None  # a deploy run's config (deploy_production refuses one without it)
    deadline = time.monotonic() + poll_budget(cfg.deploy)
    board = Board(specs)
    memo = Memo()

    def in_poll(s: CheckSpec) -> CheckSpec:
        return dataclasses.replace(s, timeout=max(0.05, min(s.timeout, deadline - time.monotonic())))

    results = await run_checks(
        specs.values(), board, lambda s: execute(in_poll(s), cfg, redact=redact, memo=memo), redact=redact
    )
    return {r.id: r for r in results}


async def _error_rate(cfg: GoliveConfig, pol: DeployPolicy) -> float | None:
    """The error ratio from Prometheus (`error_rate_query`), where configured, read within the poll budget (the
    client every Prometheus reader uses: each exchange ends at the deadline, whatever the server does)."""
    if not (pol.error_rate_query and cfg.monitoring):
        return None
    rows = await asyncio.to_thread(
        partial(instant_query, max_bytes=MAX_ANSWER_BYTES),
        cfg.monitoring,
        RunContext(cfg, timeout=poll_budget(pol)),
        pol.error_rate_query,
    )
    return max((value for _, value in rows), default=0.0)


@flow(name="deploy-production", flow_run_name="deploy {release}", persist_result=False)
async def deploy_production(config: str, release: str, readiness_run_id: str | None = None) -> DeployReport | State:
    logger = get_run_logger()
    try:
        cfg = load_config(config)
    except ConfigError as e:
        return Failed(message=f"invalid config {e.source}: {e.problems[0]}")
    if cfg.deploy is None:
        return Failed(message="the environment config has no `deploy` section: nothing to deploy with")
    pol = cfg.deploy
    report = DeployReport(
        environment=cfg.environment, release=release, readiness_run_id=readiness_run_id, outcome="FAILED"
    )
    proof = await _decision_allows(cfg, config, release, readiness_run_id)
    why = Redactor(cfg.secrets()).text(proof.why)
    if not proof.ok:
        report.outcome = "REFUSED"
        logger.error("deploy refused: %s", why)
        await _publish(report, why)
        return Failed(message=f"deploy refused: {why}")
    logger.info("sign-off verified: %s", why)
    stale = await _fresh_enough(cfg, proof, report, logger)
    if stale:
        report.outcome = "REFUSED"
        logger.error("deploy refused: %s", stale)
        await _publish(report, stale)
        return Failed(name="NO-GO", message=f"deploy refused: {stale}")
    smoke_specs = select(load_catalog(), ids=pol.smoke_checks)
    with engine.registered_run(cfg, smoke_specs) as (run_key, _):
        run = DeployRun(
            cfg=cfg,
            release=release,
            readiness_run_id=readiness_run_id,
            report=report,
            run_key=run_key,
            webhook=pol.webhook_url.get_secret_value() if pol.webhook_url else None,
            logger=logger,
        )
        return await _deploy_and_watch(run)


def evidence_age_s(evidence_from: datetime | None, now: datetime) -> float | None:
    """Seconds since the readiness run started (an upper bound of its oldest evidence's age), None if unknown."""
    if evidence_from is None:
        return None
    if evidence_from.tzinfo is None:
        evidence_from = evidence_from.replace(tzinfo=UTC)
    return max(0.0, (now - evidence_from).total_seconds())


def recheck_specs(cfg: GoliveConfig) -> dict[str, CheckSpec]:
    """The checks a stale GO re-runs: those of `approval.recheck_sections`, with the config's policy, without the heavy
    ones (and what needs them) unless `approval.recheck_heavy`; their dependencies in other sections come along."""
    pol = cfg.approval
    specs = with_policy(cfg, load_catalog())
    heavy: dict[str, bool] = {}

    def needs_heavy(cid: str) -> bool:
        if cid not in heavy:
            spec = specs[cid]
            heavy[cid] = spec.heavy or any(needs_heavy(d) for d in spec.depends_on if d in specs)
        return heavy[cid]

    picked = [i for i, sp in specs.items() if sp.section in pol.recheck_sections]
    if not pol.recheck_heavy:
        picked = [i for i in picked if not needs_heavy(i)]
    return select(specs, ids=picked)


def changed_since(signed_failures: list[str], before: dict[str, str], now: list[CheckResult]) -> list[dict[str, str]]:
    """Every re-checked check whose status differs from what the readiness run listed, as before/now rows; a row is
    `blocking` when a blocking check fails now (FAIL, ERROR, SKIPPED) that was not among the failures signed off."""
    rows = []
    for r in now:
        was = before.get(r.id, "PASS")  # not listed as a failure or a warning: it passed (or was not applicable)
        if r.status.value == was or (was == "PASS" and r.status == Status.NOT_APPLICABLE):
            continue
        failing = r.status in (Status.FAIL, Status.ERROR, Status.SKIPPED)
        blocking = failing and r.severity == Severity.BLOCKING and r.id not in signed_failures
        rows.append(
            {"id": r.id, "before": was, "now": r.status.value, "summary": r.summary, "blocking": str(blocking).lower()}
        )
    return rows


async def _fresh_enough(cfg: GoliveConfig, proof: Proof, report: DeployReport, logger: Any) -> str | None:
    """None when the GO may deploy on its evidence: fresh enough, or re-checked and unchanged where it matters; else
    why not. A re-check that cannot finish is a refusal (fail closed)."""
    window = cfg.approval.max_evidence_age_minutes * 60
    age = evidence_age_s(proof.evidence_from, datetime.now(UTC))
    report.evidence_age_s = None if age is None else round(age, 1)
    report.evidence_window_s = window
    if age is not None and age <= window:
        logger.info("evidence is %.0f s old (window %.0f s): no re-check", age, window)
        return None
    said = "of unknown age" if age is None else f"{age / 60:.1f} min old"
    logger.warning("evidence is %s (window %g min): re-checking before the deploy", said, window / 60)
    specs = recheck_specs(cfg)
    try:
        with engine.registered_run(cfg, specs) as (run_key, st):
            results = await asyncio.wait_for(
                run_checks(st.specs.values(), st.board, engine.prefect_executor(run_key), redact=st.redact),
                RECHECK_TIMEOUT_S,
            )
    except TimeoutError:
        return f"the evidence is {said} and its re-check did not finish within {RECHECK_TIMEOUT_S:g}s: nothing deploys"
    rows = changed_since(proof.signed_failures, proof.before, results)
    report.recheck = {"checks": len(results), "changed": rows}
    for row in rows:
        logger.log(
            40 if row["blocking"] == "true" else 20,
            "re-check %s: %s -> %s: %s",
            *(row[k] for k in ("id", "before", "now", "summary")),
        )
    worse = [row for row in rows if row["blocking"] == "true"]
    if worse:
        first = worse[0]
        more = f" (+{len(worse) - 1} more)" if len(worse) > 1 else ""
        return (
            f"NO-GO: the evidence went stale ({said}) and changed: {first['id']} {first['before']} -> "
            f"{first['now']}: {first['summary']}{more}"
        )
    logger.info("re-check of %d checks: no blocking check fails that passed at sign-off", len(results))
    return None


async def _deploy_and_watch(run: DeployRun) -> State:
    cfg, pol, report, release, logger, redact = run.cfg, run.pol, run.report, run.release, run.logger, run.redact
    step = await run.step("deploy", pol.command, run.webhook)
    report.steps.append(step)
    report.deploy_seconds = step.seconds
    run.deployed_at = time.monotonic()
    if not step.ok:
        logger.error("deploy step failed: %s", step.detail)
        return await _rollback(
            run,
            Trip(
                severity="CRITICAL",
                criterion="the deploy step failed",
                evidence=step.detail,
                detected_at=datetime.now(UTC),
            ),
        )
    # smoke tests: the existing checks, as Prefect tasks (the engine's, on this run's board)
    st = engine.state(run.run_key)
    smoke = await run_checks(st.specs.values(), st.board, engine.prefect_executor(run.run_key), redact=redact)
    report.smoke = [{"id": r.id, "status": r.status.value, "summary": r.summary} for r in smoke]
    broken = [r for r in smoke if r.status not in (Status.PASS, Status.WARN, Status.NOT_APPLICABLE)]
    if broken:
        return await _rollback(
            run,
            Trip(
                severity="CRITICAL",
                criterion="smoke tests failed after the deploy",
                evidence="; ".join(f"{r.id} {r.status.value}: {r.summary}" for r in broken),
                detected_at=datetime.now(UTC),
            ),
        )
    # the watch window
    api_ids = ["application.api.health"]
    db_ids = ["dependencies.postgres.reachable"]
    probe_specs = select(load_catalog(), ids=[*api_ids, *db_ids, *pol.high_checks])
    watch = Watch(pol)
    report.medium = watch.medium
    report.acknowledged = watch.acknowledged
    end = time.monotonic() + pol.watch_seconds
    while time.monotonic() < end:
        report.polls += 1
        results, rate, firing, ack = await asyncio.gather(
            _probe(probe_specs, cfg, redact),
            _monitoring(cfg, pol, redact, watch, "error-rate query", _error_rate),
            _monitoring(cfg, pol, redact, watch, "alerts query", _firing),
            _ack(cfg.environment, release, watch),
        )
        signals = check_signals(pol, results, api_ids, db_ids)
        signals += error_rate_signal(pol, rate) + alert_signals(pol, firing or [])
        trip = watch.evaluate(time.monotonic(), signals, ack)
        if trip is not None:
            trip.evidence = redact.text(trip.evidence)
            return await _rollback(run, trip)
        await asyncio.sleep(max(0.0, min(pol.poll_seconds, end - time.monotonic())))
    report.watched_seconds = round(pol.watch_seconds, 3)
    report.outcome = "DEPLOYED"
    kept = f"; HIGH acknowledged: {', '.join(a['criterion'] for a in watch.acknowledged)}" if watch.acknowledged else ""
    await _publish(report, f"release {release} deployed and healthy through a {pol.watch_seconds:g}s watch{kept}")
    return Completed(message=f"deployed {release}: healthy through the watch window{kept}", data=report)


async def _monitoring(
    cfg: GoliveConfig,
    pol: DeployPolicy,
    redact: Redactor,
    watch: Watch,
    what: str,
    fetch: Callable[[GoliveConfig, DeployPolicy], Awaitable[Any]],
) -> Any:
    """A monitoring read (bounded by the poll budget) that fails is MEDIUM (recorded once), never a rollback of its
    own."""
    try:
        return await fetch(cfg, pol)
    except Exception as e:  # noqa: BLE001
        line = redact.text(f"{what} failed: {type(e).__name__}: {e}")
        if line not in watch.medium:
            watch.medium.append(line)
        return None


async def _firing(cfg: GoliveConfig, pol: DeployPolicy) -> list[dict[str, Any]] | None:
    if not (cfg.monitoring and pol.alert_criteria):
        return None
    return await asyncio.to_thread(
        partial(firing_alerts, max_bytes=MAX_ANSWER_BYTES), cfg.monitoring, RunContext(cfg, timeout=poll_budget(pol))
    )


async def _ack(environment: str, release: str, watch: Watch) -> Ack | None:
    """The operators' acknowledgement of HIGH criteria for this release (Prefect Variable), if any."""
    from prefect.variables import Variable

    try:
        value = await Variable.aget(ack_variable(environment))
    except Exception as e:  # noqa: BLE001 - no acknowledgement readable: none is assumed
        problem = f"acknowledgement unreadable: {type(e).__name__}: {e}"
    else:
        ack, found = parse_ack(value, release)
        if found is None:
            return ack
        problem = found
    if problem not in watch.medium:
        watch.medium.append(problem)
    return None


async def _rollback(run: DeployRun, trip: Trip) -> State:
    pol, report, logger = run.pol, run.report, run.logger
    report.trip = trip
    report.time_to_detect_s = round(time.monotonic() - run.deployed_at, 3)
    report.watched_seconds = report.time_to_detect_s
    logger.error("%s rollback criterion tripped: %s (%s)", trip.severity, trip.criterion, trip.evidence)
    if not pol.rollback_command:
        report.outcome = "FAILED"
        await _publish(report, f"{trip.criterion}; no rollback_command configured: roll back by hand")
        return Failed(message=f"{trip.criterion}: no rollback command configured")
    step = await run.step("rollback", pol.rollback_command, None)
    report.steps.append(step)
    report.time_to_rollback_s = step.seconds
    report.outcome = "ROLLED-BACK" if step.ok else "FAILED"
    why = f"{trip.severity}: {trip.criterion} -> rollback {'done' if step.ok else 'FAILED'} in {step.seconds:.1f}s"
    await _publish(report, why)
    return Failed(message=why, data=report)


async def _publish(report: DeployReport, why: str) -> None:
    icon = {"DEPLOYED": "🟢", "ROLLED-BACK": "🟠"}.get(report.outcome, "🔴")
    people = (
        f"# {icon} {report.outcome}: release `{report.release}` to `{report.environment}`\n\n{md(why, 2000)}\n\n"
        f"| deploy | time to detect | time to roll back | watched | polls |\n|---|---|---|---|---|\n"
        f"| {report.deploy_seconds} s | {report.time_to_detect_s} s | {report.time_to_rollback_s} s | "
        f"{report.watched_seconds} s | {report.polls} |"
    )
    if report.evidence_age_s is not None and report.evidence_window_s is not None:
        people += (
            f"\n\nEvidence: {report.evidence_age_s / 60:.1f} min old at the deploy's start "
            f"(window {report.evidence_window_s / 60:g} min)"
        )
    if report.recheck is not None:
        rows = report.recheck.get("changed", [])
        people += f"; re-checked {report.recheck.get('checks')} checks, {len(rows)} changed"
        if rows:
            people += "\n\n| check | at sign-off | now | blocks | summary |\n|---|---|---|---|---|\n" + "\n".join(
                f"| `{r['id']}` | {r['before']} | {r['now']} | {'yes' if r['blocking'] == 'true' else 'no'} | "
                f"{md(r['summary'], 300)} |"
                for r in rows
            )
    await artifacts.publish_json(
        "deploy",
        report.environment,
        people,
        report.model_dump(mode="json"),
        f"deploy {report.release}: {report.outcome}",
    )
