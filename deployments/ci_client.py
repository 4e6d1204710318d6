"""`golive ci`: trigger a served readiness deployment through the Prefect API, wait, grade the verdict.

Through Prefect's own client (`SyncPrefectClient`: its auth, its retries, its schemas): a CI job needs
`PREFECT_API_URL` (or `--api-url`; and `PREFECT_API_KEY` or `PREFECT_API_AUTH_STRING` where the server wants one).
Steps: the deployment must be READY (a deployment nothing polls would leave the run Late
forever); create the flow run with an idempotency key (a retried CI job does not start a second run); poll it to a
terminal state within a timeout; read the run's verdict and checks artifacts; print; write JUnit; exit graded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from golive.flows.artifacts import parse_json

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class CiError(Exception):
    """The gate could not reach a verdict (exit 4)."""


@dataclass
class CiOutcome:
    flow_run_id: str
    state: str
    state_message: str
    verdict: dict[str, Any] | None
    checks: list[dict[str, Any]]


def _client_kwargs(api_url: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    return {
        "api": api_url.rstrip("/"),
        "api_key": api_key or os.environ.get("PREFECT_API_KEY") or None,
        "auth_string": os.environ.get("PREFECT_API_AUTH_STRING") or None,
        "httpx_settings": {"timeout": timeout},
    }


def prefect_client(api_url: str, api_key: str | None = None, timeout: float = 15.0) -> Any:
    """Prefect's own client for `api_url` (a server behind basic auth: PREFECT_API_AUTH_STRING; Prefect Cloud or
    a keyed server: `api_key`, by default PREFECT_API_KEY)."""
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(**_client_kwargs(api_url, api_key, timeout))


def prefect_async_client(api_url: str, api_key: str | None = None, timeout: float = 15.0) -> Any:
    """`prefect_client`'s async twin (the readers of flows/artifacts.py are async): the same URL and credentials."""
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(**_client_kwargs(api_url, api_key, timeout))


def default_idempotency_key(deployment: str, parameters: dict[str, Any] | None = None) -> str:
    """Stable across retries of the same CI job where the CI system says who it is; unique otherwise. The parameters
    are part of it: a CI matrix over environments against one deployment gets one run per environment, not the first
    job's run (and its verdict) back for all of them."""
    digest = hashlib.sha256(json.dumps(parameters or {}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    # each names one attempt of one job: a retried job (GitLab's CI_JOB_ID, CircleCI's CIRCLE_BUILD_NUM, GitHub's
    # run id + attempt) starts a fresh run instead of getting an old verdict back
    for var in ("GITHUB_RUN_ID", "CI_JOB_ID", "BUILD_TAG", "CIRCLE_BUILD_NUM"):
        if os.environ.get(var):
            attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "")
            return f"golive-ci:{deployment}:{var}={os.environ[var]}:{attempt}:{digest}"
    return f"golive-ci:{deployment}:{uuid.uuid4()}"


def trigger_and_wait(
    deployment: str,
    parameters: dict[str, Any],
    *,
    api_url: str,
    api_key: str | None = None,
    idempotency_key: str | None = None,
    timeout_s: float = 1800,
    poll_s: float = 2.0,
    on_state: Callable[[str, str, str | None], object] | None = None,
) -> CiOutcome:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    if not re.fullmatch(r"[^/\s]+/[^/\s]+", deployment):
        raise ValueError(f"--deployment: expected FLOW/DEPLOYMENT, got {deployment!r}")
    with prefect_client(api_url, api_key) as c:
        try:
            dep = c.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise CiError(f"deployment {deployment} not found on {api_url}") from None
        status = getattr(dep.status, "value", dep.status)
        if status != "READY":
            raise CiError(
                f"deployment {deployment} is {status}: nothing is polling it "
                "(is `golive serve` or a worker running?); not starting a run that would wait forever"
            )
        try:
            run = c.create_flow_run_from_deployment(
                dep.id,
                parameters=parameters,
                idempotency_key=idempotency_key or default_idempotency_key(deployment, parameters),
            )
        except PrefectHTTPStatusError as e:
            if e.response.status_code == 422:
                detail = e.response.json().get("detail", e.response.text) if e.response.content else ""
                raise ValueError(f"--param: the server refused the parameters: {detail}") from None
            raise
        run_id = str(run.id)
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            state = c.read_flow_run(run.id).state
            stype = state.type.value if state else "PENDING"
            if stype != last and on_state:
                on_state(run_id, stype, state.name if state else None)
            last = stype
            if stype in TERMINAL:
                break
            if stype == "PAUSED":
                raise CiError(f"flow run {run_id} paused for input: a CI deployment must not wait for a person")
            if time.monotonic() > deadline:
                raise CiError(f"flow run {run_id} not finished after {timeout_s:g}s (state {stype})")
            time.sleep(poll_s)
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    verdicts, checks = [], []
    for a in arts:
        key = a.key or ""
        if key.startswith("golive-verdict-"):
            verdicts.append(_verdict(parse_json(a.data), run_id))
        elif key.startswith("golive-checks-"):
            checks = _rows(a.data)
    # one verdict, as golive wrote it for this run; anything else (none, one unreadable, two that disagree) is no
    # verdict: `golive ci` then exits 4 saying so, never a green job
    verdict = verdicts[0] if len(verdicts) == 1 or (verdicts and all(v == verdicts[0] for v in verdicts)) else None
    return CiOutcome(
        flow_run_id=run_id,
        state=stype,
        state_message=(state.message if state else "") or "",
        verdict=verdict,
        checks=checks,
    )


def _rows(data: Any) -> list[dict[str, Any]]:
    """The checks table's rows (a JSON list of objects), or none when it is not one."""
    try:
        rows = data if isinstance(data, list) else json.loads(data)
    except (TypeError, ValueError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


EXIT_CODES = {"GO": 0, "GO-WITH-WARNINGS": 1, "NO-GO": 2}  # flows.report.Verdict.exit_code


def _verdict(payload: Any, run_id: str) -> dict[str, Any] | None:
    """A verdict payload as golive writes it for run `run_id` (its exit code the verdict's own), or None (then
    `golive ci` says the run has no verdict)."""
    ok = (
        isinstance(payload, dict)
        and payload.get("verdict") in EXIT_CODES
        and type(payload.get("exit_code")) is int
        and payload["exit_code"] == EXIT_CODES[payload["verdict"]]
        and isinstance(payload.get("environment"), str)
        and payload.get("flow_run_id") == run_id
    )
    return payload if ok else None
