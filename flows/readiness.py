"""The `go-live-readiness` flow: sections 1-9 as async subflows over one shared check DAG, then the report.

Design notes (measured, see docs/architecture.md):
- sections are *async* subflows gathered concurrently: a sync subflow costs ~1 s (heartbeat join), and a
  blocking `future.result()` inside an async flow would serialise everything;
- the run's board runs every check from the flow's start, in the flow's own process and event loop, as the plain
  runner does (engine.run_bodies): each check starts when the checks it needs have landed, wherever they are
  (data waits for `dependencies.postgres.reachable`, application/security for `infrastructure.web.reachable`),
  timing checks one at a time in the quiet window, heavy ones once the light ones have landed;
- the section subflows start once the quiet window has closed (a subflow's start-up is about seven API calls: none
  competes with a latency probe) and record their checks as task runs as they land (engine.record): one per
  section, named by its subject or subjects, and one per suite (engine.by_section: 134 task runs -> 20 on the
  sandbox); a check's dependents never wait for Prefect's bookkeeping. A section whose subflow did not record its
  checks makes them ERROR in the report (engine.results);
- nothing secret crosses the Prefect API: flow/subflow parameters are a config path, a section name and an
  opaque run key; the loaded config, its secrets and the results stay in this process (flows/engine.py's
  registry).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prefect import State, flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Failed

from golive.expectations import prestart_worker
from golive.tasks.core import (
    SECTIONS,
    CheckSpec,
    Redactor,
    RunContext,
    select,
)

from . import artifacts, engine
from .approval import binding, decide_and_deploy, load_report, save_report
from .catalog import SKIP_REASON, all_checks, with_policy  # noqa: F401 (SKIP_REASON re-exported)
from .config import ConfigError, GoliveConfig, load_config
from .datadocs import publish_data_docs
from .history import config_fingerprint, counts_of
from .metrics import export_metrics
from .rehearsal import Rehearsed, since_last_rehearsal
from .report import Report, Verdict, build_report, to_json, to_junit, to_markdown, to_table, verdict_of
from .signoff_timer import begin

Mode = Literal["rehearsal", "ci", "go-live"]


#: Reports of the runs of this process, by flow run id (a flow's return value is awkward to read back from a
#: Failed state; in-process callers pop theirs here, remote ones read the verdict artifact).
REPORTS: dict[str, Report] = {}


def plan(config: GoliveConfig, sections: list[str] | None = None) -> dict[str, CheckSpec]:
    """The checks this environment runs, with the config's policy applied (advisory downgrades, exclusions)."""
    return with_policy(config, select(all_checks(config), sections=sections))


@flow(name="readiness-section", flow_run_name="{section}", persist_result=False, validate_parameters=False)
async def section_flow(section: str, run_key: str) -> State:
    """One checklist section: its checks recorded as Prefect task runs as they land (the run's board runs them)."""
    st = engine.state(run_key)
    results = await engine.record(run_key, [i for i, s in st.specs.items() if s.section == section])
    st.recorded.add(section)
    v = verdict_of(results)
    msg = f"{SECTIONS[section]}: {v.value} ({len(results)} checks)"
    return Failed(message=msg) if v == Verdict.NO_GO else Completed(message=msg)


async def _run_section(section: str, run_key: str) -> None:
    """The section's subflow. One that did not record all its checks (the API refused it, it crashed) makes them
    ERROR in the report, naming why (engine.results)."""
    st = engine.state(run_key)
    try:
        state = await section_flow(section=section, run_key=run_key, return_state=True)
        what = f"{state.type.value}: {state.message or ''}"
    except Exception as e:  # noqa: BLE001 - the subflow call itself failed (e.g. the API refused to create it):
        # the run goes on to its verdict (re-raising ended the run without one)
        what = f"{type(e).__name__}: {e}"
    if section not in st.recorded:  # (a crash's message is Prefect's, or an exception's: redacted)
        what = " ".join(st.redact.text(what).split())[:200]
        st.unrecorded[section] = f"its section's subflow did not record it ({what})"


def _write_files(report: Report, markdown: str, output_dir: Path, extra: dict[str, str] | None = None) -> Path:
    stamp = report.started_at.strftime("%Y%m%dT%H%M%SZ")
    out = output_dir / report.environment / stamp
    out.mkdir(parents=True, exist_ok=True)
    files = {"report.json": to_json(report), "report.md": markdown, "junit.xml": to_junit(report), **(extra or {})}
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)  # never a half-written report
    latest = output_dir / report.environment / "latest"
    tmp_link = output_dir / report.environment / ".latest.tmp"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    tmp_link.replace(latest)
    return out


def verdict_payload(report: Report) -> dict[str, Any]:
    """The machine-readable verdict (published as an artifact, since a flow's return value is not readable over REST)."""
    return {
        "environment": report.environment,
        "mode": report.mode,
        "verdict": report.verdict.value,
        "exit_code": report.verdict.exit_code,
        "flow_run_id": report.flow_run_id,
        "started_at": report.started_at.isoformat(),
        "duration_s": report.duration_s,
        "counts": counts_of(r.status for r in report.results),  # `golive history` (issue 15)
        "config_fingerprint": report.config_fingerprint,
        "sections": {s.section: s.verdict.value for s in report.sections},
        "blocking": [f"{r.id} {r.status.value}: {r.summary}" for r in report.blocking_failures],
        "warnings": [f"{r.id} {r.status.value}: {r.summary}" for r in report.warnings],
    }


async def publish(
    report: Report,
    redact: Redactor,
    output_dir: Path | None,
    extra_section: str = "",
    extra_files: dict[str, str] | None = None,
) -> Path | None:
    md = to_markdown(report, redact)
    if extra_section:  # a markdown `## ` section (the rehearsal's diff), placed before the report's first section
        head, sep, tail = md.partition("\n## ")
        md = f"{head}\n{redact.text(extra_section).rstrip()}\n{sep}{tail}"  # (no section at all: appended)
    env = report.environment
    await asyncio.gather(  # three independent API calls
        artifacts.publish("report", env, md, f"go-live readiness report: {report.verdict.value}"),
        artifacts.publish(
            "checks", env, to_table(report), f"every check with its evidence ({report.verdict.value})", type_="table"
        ),
        artifacts.publish_json(
            "verdict", env, "", verdict_payload(report), f"verdict {report.verdict.value}", redact=redact.text
        ),
    )
    return _write_files(report, md, output_dir, extra_files) if output_dir else None


async def _since_last_rehearsal(report: Report, cfg: GoliveConfig, redact: Redactor) -> Rehearsed:
    """Rehearsal mode: diff with the previous rehearsal, notify, the trend and flaky checks, publish tonight's
    snapshot (flows/rehearsal.py)."""
    return await since_last_rehearsal(report, cfg, redact)


@flow(name="go-live-readiness", persist_result=False, validate_parameters=True)
async def go_live_readiness(
    config: str,
    mode: Mode = "rehearsal",
    sections: list[str] | None = None,
    output_dir: str | None = "golive-reports",
    release: str | None = None,
    requested_by: str | None = None,
) -> Report | State:
    """Run the checklist against one environment and publish the GO / NO-GO report.

    `config` is the path of the environment's YAML file (secrets come from the environment or Prefect Secret
    blocks, never from parameters). In `ci` mode the run ends Failed on NO-GO so an API client can wait on it.
    In `go-live` mode it then waits for the sign-off (section 10) and only a GO triggers the deploy of `release`;
    `requested_by` names who asks for it (by default they cannot be its only GO approver).
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    try:
        cfg = load_config(config)
        specs = plan(cfg, sections)
    except ConfigError as e:
        logger.error("config %s is invalid:\n%s", e.source, e)
        return Failed(message=f"invalid config {e.source}: {e.problems[0]} (+{len(e.problems) - 1} more)")
    except KeyError as e:
        return Failed(message=f"bad parameter: {e.args[0]}")
    if mode == "go-live" and not (release or "").strip():
        # not defaulted from the config: the deploy flow verifies the release against the readiness run's own
        # parameter (a config edited between sign-off and deploy must not change what deploys)
        return Failed(
            message="bad parameter: go-live mode needs `release` (the version a GO deploys); a Quick run "
            "has none: use Custom run and fill it in"
        )
    start = None
    if mode == "go-live":  # a resumed (re-executed) go-live run goes straight back to its sign-off
        try:
            start = await begin(config, str(runtime_flow_run.id or "") or None)
        except Exception as e:  # noqa: BLE001 - a go-live run that cannot read itself decides nothing
            return Failed(
                name="NO-GO",
                message=f"NO-GO: this go-live run could not be read from the Prefect API "
                f"({type(e).__name__}: {' '.join(str(e).split())[:300]})",
            )
        if start.refused:
            return Failed(message=f"refused: {start.refused}")
        if start.resumed:
            return await _resume_sign_off(cfg, config, (release or "").strip(), start)
    with engine.registered_run(cfg, specs, group_by_section=True) as (run_key, st):
        prestart_worker(specs, RunContext(cfg, redact=st.redact))  # GX imports in its process while light checks run
        fingerprint = config_fingerprint(cfg, st.redact)  # (now, not at the end: the report waits for nothing else)
        present = [s for s in SECTIONS if any(sp.section == s for sp in specs.values())]
        bodies = asyncio.ensure_future(engine.run_bodies(run_key))
        try:  # the subflows start once the quiet window has closed: no start-up shares the machine with a probe
            await st.board.quiet_window_closed()
            await asyncio.gather(*(_run_section(s, run_key) for s in present))
            await bodies
        finally:
            bodies.cancel()  # (done by then, unless the run is being cancelled)
        report = build_report(
            engine.results(st),
            environment=cfg.environment,
            mode=mode,
            started_at=started,
            flow_run_id=str(runtime_flow_run.id or "") or None,
        )
        report.config_fingerprint = fingerprint
        if report.flow_run_id:
            REPORTS[report.flow_run_id] = report
        rehearsed = await _since_last_rehearsal(report, cfg, st.redact) if mode == "rehearsal" else Rehearsed("")
        await export_metrics(report, cfg, st.redact)  # before publishing: a failed export is a note in the report
        path = await publish(
            report,
            st.redact,
            Path(output_dir) if output_dir else None,
            rehearsed.markdown,
            {"trend.svg": rehearsed.trend_svg} if rehearsed.trend_svg else None,
        )
        await publish_data_docs(cfg, st.specs, st.memo, report.started_at.strftime("%Y%m%dT%H%M%SZ"))
        logger.info(
            "verdict %s for %s (%d checks, %.1f s)%s",
            report.verdict.value,
            cfg.environment,
            len(report.results),
            report.duration_s,
            f"; files in {path}" if path else "",
        )
    emit_verdict(report, config)
    if mode == "go-live":
        wait = start.wait if start else None
        bound = binding(config, (release or "").strip(), wait.requested_by if wait else [], cfg.approval)
        if wait is not None and wait.suspend and (why := await save_report(report, bound)):
            # (pausing in this process instead would not hold: a deployment run leaving Running gives back its
            # concurrency slot, and Prefect then cancels the paused run when its slot's lease cannot be renewed)
            return Failed(
                name="NO-GO",
                message=f"NO-GO: the report could not be kept while this run waits for its "
                f"sign-off without a process ({why}): nothing deploys",
            )
        return await decide_and_deploy(cfg, report, config_path=config, release=(release or "").strip(), wait=wait)
    message = (
        f"{report.verdict.value}: {len(report.blocking_failures)} blocking check(s) failed, "
        f"{len(report.warnings)} warning(s), {len(report.results)} checks"
    )
    if mode == "ci" and report.verdict == Verdict.NO_GO:
        return Failed(name="NO-GO", message=message, data=report)
    # the state's name is the verdict: a NO-GO rehearsal reads NO-GO in the run list and to an Automation
    return Completed(name=report.verdict.value, message=message, data=report)


async def _resume_sign_off(cfg: GoliveConfig, config: str, release: str, start: Any) -> State:
    """A suspended go-live run re-executed after a sign-off: its report from result storage (no check runs again),
    then the sign-off rounds, the answered ones replayed."""
    logger = get_run_logger()
    try:
        kept = await load_report(start.wait.run_id)
    except LookupError as e:
        return Failed(name="NO-GO", message=f"NO-GO: {e}: nothing deploys; start a new go-live run")
    report, now = kept.report, binding(config, release, start.wait.requested_by, cfg.approval)
    if changed := sorted(k for k in set(now) | set(kept.bound) if now.get(k) != kept.bound.get(k)):
        return Failed(
            name="NO-GO",
            message=f"NO-GO: this go-live run's {', '.join(changed)} changed while it waited "
            "for its sign-off (its parameters or its config were edited): the "
            "sign-offs were given for the first; nothing deploys",
        )
    logger.info(
        "resumed after sign-off round(s) %s: readiness %s from %s (not run again)",
        ", ".join(sorted(start.wait.answered)),
        report.verdict.value,
        report.started_at.isoformat(),
    )
    return await decide_and_deploy(cfg, report, config_path=config, release=release, wait=start.wait)


def emit_verdict(report: Report, config_path: str) -> None:
    """A `golive.verdict` Prefect event (resource `golive.environment.<env>`, related to this flow run): what an
    Automation triggers on (notify on a NO-GO rehearsal). Best effort: an events outage never changes the verdict."""
    from prefect.events import emit_event

    c = Counter(r.status.value for r in report.results)
    try:
        emit_event(
            event="golive.verdict",
            resource={
                "prefect.resource.id": f"golive.environment.{report.environment}",
                "prefect.resource.name": report.environment,
                "golive.verdict": report.verdict.value,
                "golive.mode": report.mode,
            },
            related=[
                {"prefect.resource.id": f"prefect.flow-run.{report.flow_run_id}", "prefect.resource.role": "flow-run"}
            ]
            if report.flow_run_id
            else [],
            payload={
                "environment": report.environment,
                "mode": report.mode,
                "verdict": report.verdict.value,
                "exit_code": report.verdict.exit_code,
                "counts": dict(c),
                "config": Path(config_path).name,
                "blocking": [r.id for r in report.blocking_failures][:50],
                "report_artifact": f"golive-report-{report.environment}",
                "duration_s": round(report.duration_s, 3),
            },
        )
    except Exception as e:  # noqa: BLE001 - an events outage is logged, never the verdict's concern
        get_run_logger().warning("golive.verdict event not emitted: %s", type(e).__name__)
