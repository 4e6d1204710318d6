"""Signing off through the Prefect REST API, exactly as the UI does: find the paused sign-off run, resume it with
the form's input. Used by `golive demo` (terminal prompts or `--approve NAME:ROLE`) and by the tests."""
from __future__ import annotations

import json
import time
from typing import Any

import httpx

TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def api_client(api_url: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=timeout)


def paused_sign_offs(api: httpx.Client, exclude: set[str] = frozenset()) -> list[str]:
    runs = api.post("flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
                                              "sort": "START_TIME_ASC"}).json()
    return [r["id"] for r in runs if r["name"].startswith("sign-off") and r["id"] not in exclude]


def wait_paused_sign_off(api: httpx.Client, exclude: set[str] = frozenset(), timeout: float = 60,
                         stop_if_final: str | None = None) -> str | None:
    """The next paused sign-off run; None if `stop_if_final` (a run id) ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = paused_sign_offs(api, exclude)
        if fresh:
            return fresh[0]
        if stop_if_final and state_of(api, stop_if_final)["type"] in TERMINAL:
            return None
        time.sleep(0.3)
    raise TimeoutError(f"no paused sign-off run within {timeout:g}s")


def state_of(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return api.get(f"flow_runs/{run_id}").json()["state"]


def resume(api: httpx.Client, run_id: str, fields: dict[str, Any], settle_s: float = 15.0) -> dict[str, Any]:
    """POST the form: {"status": "ACCEPT"} or {"status": "REJECT", "details": ...} (the run stays paused).

    A run is PAUSED a moment before it has saved its form's schema; a resume in that moment is answered
    "Run input schema not found": that one is retried for up to `settle_s`, every other answer is returned."""
    deadline = time.monotonic() + settle_s
    while True:
        r = api.post(f"flow_runs/{run_id}/resume", json={"run_input": fields})
        r.raise_for_status()
        answer = r.json()
        not_ready = "schema not found" in str((answer.get("details") or {}).get("reason", "")).lower()
        if not (answer.get("status") == "REJECT" and not_ready) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def wait_final(api: httpx.Client, run_id: str, timeout: float = 300, on_change=None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        run = api.get(f"flow_runs/{run_id}").json()
        if on_change and run["state"]["name"] != last:
            on_change(run)
        last = run["state"]["name"]
        if run["state"]["type"] in TERMINAL:
            return run
        time.sleep(0.3)
    raise TimeoutError(f"flow run {run_id} not finished within {timeout:g}s")


def json_artifact(api: httpx.Client, key: str) -> dict[str, Any] | None:
    """The JSON block of the latest version of a golive markdown artifact (decision, deploy, verdict)."""
    r = api.get(f"artifacts/{key}/latest")
    if r.status_code == 404:
        return None
    r.raise_for_status()
    text = r.json().get("data") or ""
    return json.loads(text.split("```json\n", 1)[1].rsplit("\n```", 1)[0])


def signoff_fields(name: str, role: str, decision: str = "GO", reason: str = "", *, attest: bool = True,
                   override: bool = False) -> dict[str, Any]:
    """A complete form: every section signed off and every attestation ticked (when `attest`)."""
    from golive.flows.approval import SECTION_SIGNOFFS, attestation_field, attestations

    return {"signer_name": name, "signer_role": role, "decision": decision, "reason": reason,
            "override_blocking_failures": override, **{k: attest for k in SECTION_SIGNOFFS},
            **{attestation_field(a): attest for a in attestations()}}
