"""The `deploy-production` flow: deploy, smoke-test, watch the seed's rollback criteria, roll back on its own.

Only a GO triggers it (`trigger_deploy`, with an idempotency key naming the deployment and the readiness run, so a
retried readiness run never deploys twice), and it checks that itself: it refuses to deploy unless the decision
artifact of its readiness run says GO.

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
import json
import time
from datetime import datetime, timezone
from typing import Any

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field

from tasks.core import Board, CheckResult, Memo, Redactor, Status, execute, load_catalog, run_checks, select

from .config import ConfigError, GoliveConfig, load_config
from .policies import DeployPolicy
from .readiness import prefect_executor, registered_run
from .watch import (Ack, Trip, Watch, ack_variable, alert_signals, check_signals, error_rate_signal, firing_alerts,
                    parse_ack)

DEPLOYMENT = "deploy-production/deploy-production"


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


def _argv(argv: list[str], release: str) -> list[str]:
    return [a.replace("{release}", release) for a in argv]


@task(name="deploy-step", cache_policy=NO_CACHE, persist_result=False, retries=0)
async def run_step(name: str, argv: list[str] | None, webhook: str | None, release: str, readiness_run_id: str | None,
                   timeout_s: float, redact_key: str) -> StepResult:
    """Run the deploy or rollback command (or POST the webhook), bounded by its timeout. Never raises."""
    redact = _REDACTORS.get(redact_key, Redactor())
    t0 = time.monotonic()
    try:
        if argv:
            proc = await asyncio.create_subprocess_exec(*_argv(argv, release), stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                return StepResult(name=name, ok=False, seconds=round(time.monotonic() - t0, 3),
                                  detail=f"timed out after {timeout_s:g}s: killed")
            tail = out.decode(errors="replace")[-1500:].strip()
            return StepResult(name=name, ok=proc.returncode == 0, seconds=round(time.monotonic() - t0, 3),
                              detail=redact.text(f"`{' '.join(_argv(argv, release))}` exited {proc.returncode}: {tail}"))
        async with httpx.AsyncClient(timeout=timeout_s) as c:
            r = await c.post(webhook, json={"release": release, "readiness_run_id": readiness_run_id, "step": name})
        return StepResult(name=name, ok=r.is_success, seconds=round(time.monotonic() - t0, 3),
                          detail=redact.text(f"POST webhook answered {r.status_code}"))
    except Exception as e:  # noqa: BLE001 - a broken step is evidence, not a crash
        return StepResult(name=name, ok=False, seconds=round(time.monotonic() - t0, 3),
                          detail=redact.text(f"{type(e).__name__}: {e}"))


_REDACTORS: dict[str, Redactor] = {}


async def _decision_allows(env: str, readiness_run_id: str | None) -> tuple[bool, str]:
    """Deploy only what a GO decided: the latest decision artifact of this environment must be GO for this run."""
    if not readiness_run_id:
        return False, "no readiness_run_id: only a GO of a readiness run triggers a deploy"
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        r = await client._client.get(f"/artifacts/golive-decision-{env}/latest")
    if r.status_code == 404:
        return False, f"no decision artifact golive-decision-{env}"
    r.raise_for_status()
    text = r.json().get("data") or ""
    try:
        payload = json.loads(text.split("```json\n", 1)[1].rsplit("\n```", 1)[0])
    except (IndexError, ValueError):
        return False, "the decision artifact is not readable"
    if payload.get("readiness_flow_run_id") != readiness_run_id:
        return False, (f"the latest decision is for readiness run {payload.get('readiness_flow_run_id')}, "
                       f"not {readiness_run_id}")
    if payload.get("decision") != "GO":
        return False, f"the decision for readiness run {readiness_run_id} is {payload.get('decision')}"
    return True, payload.get("why", "GO")


async def _probe(specs: dict, cfg: GoliveConfig, redact: Redactor) -> dict[str, CheckResult]:
    """One poll of the watch window: the probe checks, concurrently, with their dependencies."""
    board = Board(specs)
    memo = Memo()
    results = await run_checks(specs.values(), board, lambda s: execute(s, cfg, redact=redact, memo=memo))
    return {r.id: r for r in results}


async def _error_rate(cfg: GoliveConfig, pol: DeployPolicy) -> float | None:
    """The error ratio from Prometheus (`error_rate_query`), where configured."""
    if not (pol.error_rate_query and cfg.monitoring):
        return None
    async with httpx.AsyncClient(timeout=5.0, verify=str(cfg.monitoring.ca_file) if getattr(
            cfg.monitoring, "ca_file", None) else True) as c:
        r = await c.get(f"{str(cfg.monitoring.prometheus_url).rstrip('/')}/api/v1/query",
                        params={"query": pol.error_rate_query})
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return max((float(x["value"][1]) for x in result), default=0.0)


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
    report = DeployReport(environment=cfg.environment, release=release, readiness_run_id=readiness_run_id,
                          outcome="FAILED")
    allowed, why = await _decision_allows(cfg.environment, readiness_run_id)
    if not allowed:
        report.outcome = "REFUSED"
        await _publish(report, why)
        return Failed(message=f"deploy refused: {why}")
    redact_key = str(runtime_flow_run.id or id(report))
    redact = _REDACTORS[redact_key] = Redactor(cfg.secrets())
    webhook = pol.webhook_url.get_secret_value() if pol.webhook_url else None
    try:
        return await _deploy_and_watch(cfg, pol, report, release, readiness_run_id, webhook, redact, redact_key,
                                       logger)
    finally:
        _REDACTORS.pop(redact_key, None)


async def _deploy_and_watch(cfg, pol, report, release, readiness_run_id, webhook, redact, redact_key, logger):
    catalog = load_catalog()
    step = await run_step.with_options(task_run_name=f"deploy {release}")(
        "deploy", pol.command, webhook, release, readiness_run_id, pol.timeout_s, redact_key)
    report.steps.append(step)
    report.deploy_seconds = step.seconds
    deployed_at = time.monotonic()
    if not step.ok:
        logger.error("deploy step failed: %s", step.detail)
        return await _rollback(cfg, pol, report, release, readiness_run_id, redact_key, logger, deployed_at,
                               Trip(severity="CRITICAL", criterion="the deploy step failed", evidence=step.detail,
                                    detected_at=datetime.now(timezone.utc)))
    # smoke tests: the existing checks, as Prefect tasks
    smoke_specs = select(catalog, ids=pol.smoke_checks)
    with registered_run(cfg, smoke_specs) as (run_key, st):
        smoke = await run_checks(smoke_specs.values(), st.board, prefect_executor(run_key))
    report.smoke = [{"id": r.id, "status": r.status.value, "summary": r.summary} for r in smoke]
    broken = [r for r in smoke if r.status not in (Status.PASS, Status.WARN, Status.NOT_APPLICABLE)]
    if broken:
        return await _rollback(cfg, pol, report, release, readiness_run_id, redact_key, logger, deployed_at,
                               Trip(severity="CRITICAL", criterion="smoke tests failed after the deploy",
                                    evidence="; ".join(f"{r.id} {r.status.value}: {r.summary}" for r in broken),
                                    detected_at=datetime.now(timezone.utc)))
    # the watch window
    api_ids = ["application.api.health"]
    db_ids = ["dependencies.postgres.reachable"]
    probe_specs = select(catalog, ids=[*api_ids, *db_ids, *pol.high_checks])
    watch = Watch(pol)
    report.medium = watch.medium
    report.acknowledged = watch.acknowledged
    end = time.monotonic() + pol.watch_seconds
    while time.monotonic() < end:
        report.polls += 1
        results, rate, firing, ack = await asyncio.gather(
            _probe(probe_specs, cfg, redact), _monitoring(cfg, pol, redact, watch, "error-rate query", _error_rate),
            _monitoring(cfg, pol, redact, watch, "alerts query", _firing), _ack(cfg.environment, release, watch))
        signals = check_signals(pol, results, api_ids, db_ids)
        signals += error_rate_signal(pol, rate) + alert_signals(pol, firing or [])
        trip = watch.evaluate(time.monotonic(), signals, ack)
        if trip is not None:
            trip.evidence = redact.text(trip.evidence)
            return await _rollback(cfg, pol, report, release, readiness_run_id, redact_key, logger, deployed_at,
                                   trip)
        await asyncio.sleep(max(0.0, min(pol.poll_seconds, end - time.monotonic())))
    report.watched_seconds = round(pol.watch_seconds, 3)
    report.outcome = "DEPLOYED"
    kept = f"; HIGH acknowledged: {', '.join(a['criterion'] for a in watch.acknowledged)}" if watch.acknowledged else ""
    await _publish(report, f"release {release} deployed and healthy through a {pol.watch_seconds:g}s watch{kept}")
    return Completed(message=f"deployed {release}: healthy through the watch window{kept}", data=report)


async def _monitoring(cfg, pol, redact, watch: Watch, what: str, fetch):
    """A monitoring read that fails is MEDIUM (recorded once), never a rollback of its own."""
    try:
        return await fetch(cfg, pol)
    except Exception as e:  # noqa: BLE001
        line = redact.text(f"{what} failed: {type(e).__name__}: {e}")
        if line not in watch.medium:
            watch.medium.append(line)
        return None


async def _firing(cfg: GoliveConfig, pol: DeployPolicy) -> list[dict] | None:
    if not (cfg.monitoring and pol.alert_criteria):
        return None
    ca = getattr(cfg.monitoring, "ca_file", None)
    return await firing_alerts(str(cfg.monitoring.prometheus_url), verify=str(ca) if ca else True)


async def _ack(environment: str, release: str, watch: Watch) -> Ack | None:
    """The operators' acknowledgement of HIGH criteria for this release (Prefect Variable), if any."""
    from prefect.variables import Variable

    try:
        value = await Variable.aget(ack_variable(environment))
    except Exception as e:  # noqa: BLE001 - no acknowledgement readable: none is assumed
        value, problem = None, f"acknowledgement unreadable: {type(e).__name__}: {e}"
    else:
        ack, problem = parse_ack(value, release)
        if problem is None:
            return ack
    if problem not in watch.medium:
        watch.medium.append(problem)
    return None


async def _rollback(cfg, pol, report, release, readiness_run_id, redact_key, logger, deployed_at, trip: Trip):
    report.trip = trip
    report.time_to_detect_s = round(time.monotonic() - deployed_at, 3)
    report.watched_seconds = report.time_to_detect_s
    logger.error("%s rollback criterion tripped: %s (%s)", trip.severity, trip.criterion, trip.evidence)
    if not pol.rollback_command:
        report.outcome = "FAILED"
        await _publish(report, f"{trip.criterion}; no rollback_command configured: roll back by hand")
        return Failed(message=f"{trip.criterion}: no rollback command configured")
    step = await run_step.with_options(task_run_name=f"rollback {release}")(
        "rollback", pol.rollback_command, None, release, readiness_run_id, pol.timeout_s, redact_key)
    report.steps.append(step)
    report.time_to_rollback_s = step.seconds
    report.outcome = "ROLLED-BACK" if step.ok else "FAILED"
    why = f"{trip.severity}: {trip.criterion} -> rollback {'done' if step.ok else 'FAILED'} in {step.seconds:.1f}s"
    await _publish(report, why)
    return Failed(message=why, data=report)


async def _publish(report: DeployReport, why: str) -> None:
    icon = {"DEPLOYED": "🟢", "ROLLED-BACK": "🟠"}.get(report.outcome, "🔴")
    body = json.dumps(report.model_dump(mode="json"), indent=2)
    md = (f"# {icon} {report.outcome}: release `{report.release}` to `{report.environment}`\n\n{why}\n\n"
          f"| deploy | time to detect | time to roll back | watched | polls |\n|---|---|---|---|---|\n"
          f"| {report.deploy_seconds} s | {report.time_to_detect_s} s | {report.time_to_rollback_s} s | "
          f"{report.watched_seconds} s | {report.polls} |\n\n```json\n{body}\n```\n")
    await acreate_markdown_artifact(key=f"golive-deploy-{report.environment}", markdown=md,
                                    description=f"deploy {report.release}: {report.outcome}")


async def trigger_deploy(config_path: str, release: str, readiness_run_id: str,
                         deployment: str = DEPLOYMENT) -> str:
    """Start the deploy flow's deployment once per readiness run (the idempotency key names both)."""
    from prefect.deployments import run_deployment

    run = await run_deployment(name=deployment, parameters={"config": config_path, "release": release,
                                                            "readiness_run_id": readiness_run_id},
                               idempotency_key=f"{deployment}:{readiness_run_id}", timeout=0, as_subflow=False)
    return str(run.id)
