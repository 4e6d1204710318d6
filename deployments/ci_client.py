"""`golive ci`: trigger a served readiness deployment through the Prefect REST API, wait, grade the verdict.

Only the REST API and httpx: a CI job needs `PREFECT_API_URL` (and `PREFECT_API_KEY` where the server wants one),
nothing else of Prefect's. Steps: the deployment must be READY (a deployment nothing polls would leave the run Late
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
from dataclasses import dataclass
from typing import Any

import httpx

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


def _client(api_url: str, api_key: str | None, timeout: float = 15.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout)


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


def trigger_and_wait(deployment: str, parameters: dict[str, Any], *, api_url: str, api_key: str | None = None,
                     idempotency_key: str | None = None, timeout_s: float = 1800, poll_s: float = 2.0,
                     on_state=None) -> CiOutcome:
    if not re.fullmatch(r"[^/\s]+/[^/\s]+", deployment):
        raise ValueError(f"--deployment: expected FLOW/DEPLOYMENT, got {deployment!r}")
    with _client(api_url, api_key) as c:
        flow_name, dep_name = deployment.split("/")
        r = c.get(f"deployments/name/{flow_name}/{dep_name}")
        if r.status_code == 404:
            raise CiError(f"deployment {deployment} not found on {api_url}")
        r.raise_for_status()
        dep = r.json()
        if dep.get("status") != "READY":
            raise CiError(f"deployment {deployment} is {dep.get('status')}: nothing is polling it "
                          "(is `golive serve` or a worker running?); not starting a run that would wait forever")
        body = {"parameters": parameters, "idempotency_key": idempotency_key or default_idempotency_key(deployment, parameters)}
        r = c.post(f"deployments/{dep['id']}/create_flow_run", json=body)
        if r.status_code == 422:
            raise ValueError(f"--param: the server refused the parameters: {r.json().get('detail', r.text)}")
        r.raise_for_status()
        run_id = r.json()["id"]
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            run = c.get(f"flow_runs/{run_id}").json()
            state = (run.get("state") or {})
            stype = state.get("type", "PENDING")
            if stype != last and on_state:
                on_state(run_id, stype, state.get("name"))
            last = stype
            if stype in TERMINAL:
                break
            if stype == "PAUSED":
                raise CiError(f"flow run {run_id} paused for input: a CI deployment must not wait for a person")
            if time.monotonic() > deadline:
                raise CiError(f"flow run {run_id} not finished after {timeout_s:g}s (state {stype})")
            time.sleep(poll_s)
        arts = c.post("artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    verdict, checks = None, []
    for a in arts:
        key = a.get("key") or ""
        if key.startswith("golive-verdict-"):
            verdict = json.loads(a["data"].split("```json\n", 1)[1].rsplit("\n```", 1)[0])
        elif key.startswith("golive-checks-"):
            checks = a["data"] if isinstance(a["data"], list) else json.loads(a["data"])
    return CiOutcome(flow_run_id=run_id, state=stype, state_message=state.get("message") or "", verdict=verdict,
                     checks=checks)
