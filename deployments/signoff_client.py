"""Signing off through the Prefect API, exactly as the UI does: find the go-live run waiting for a sign-off
(Suspended, or Paused when it has no deployment; its wait's key is `sign-off-N`), resume it with the form's input.
`golive approve` goes through Prefect's own client (`submit_sign_off`); the REST helpers above it (an httpx client
on the API URL, as the UI and a curl would) serve `golive demo` (terminal prompts or `--approve NAME:ROLE`) and the
tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any, NamedTuple, overload

import httpx

from golive.flows.artifacts import parse_json

TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def api_client(api_url: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=timeout)


class Waiting(NamedTuple):
    """One open sign-off round: the go-live run waiting for it and the wait's key (`sign-off-N`). Reads as the run's
    id (a suspended run waits again, under the next key, after a refused round)."""

    run_id: str
    key: str

    def __str__(self) -> str:
        return self.run_id

    @property
    def round_no(self) -> int:
        tail = self.key.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 0


SIGN_OFF_KEY = "sign-off-"  # flows.approval.WAIT_KEY's prefix


def waiting_round(run: dict[str, Any]) -> Waiting | None:
    """The sign-off round `run` waits for, if it is waiting for one."""
    state = run.get("state") or {}
    key = (state.get("state_details") or {}).get("pause_key") or ""
    if state.get("type") == "PAUSED" and isinstance(key, str) and key.startswith(SIGN_OFF_KEY):
        return Waiting(run["id"], key)
    return None


def paused_sign_offs(
    api: httpx.Client, exclude: Collection[Waiting] = frozenset(), run_id: str | None = None
) -> list[Waiting]:
    """The open sign-off rounds (of run `run_id` only, when given), oldest run first."""
    flt: dict[str, Any] = {"state": {"type": {"any_": ["PAUSED"]}}}
    if run_id:
        flt["id"] = {"any_": [run_id]}
    runs = api.post("flow_runs/filter", json={"flow_runs": flt, "sort": "START_TIME_ASC"}).json()
    return [w for r in runs if (w := waiting_round(r)) and w not in exclude]


@overload
def wait_paused_sign_off(
    api: httpx.Client,
    exclude: Collection[Waiting] = ...,
    timeout: float = ...,
    stop_if_final: None = None,
    run_id: str | None = None,
) -> Waiting: ...


@overload
def wait_paused_sign_off(
    api: httpx.Client,
    exclude: Collection[Waiting] = ...,
    timeout: float = ...,
    stop_if_final: str | None = None,
    run_id: str | None = None,
) -> Waiting | None: ...


def wait_paused_sign_off(
    api: httpx.Client,
    exclude: Collection[Waiting] = frozenset(),
    timeout: float = 60,
    stop_if_final: str | None = None,
    run_id: str | None = None,
) -> Waiting | None:
    """The next open sign-off round (of run `run_id`, when given); None if `stop_if_final` (a run id) ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = paused_sign_offs(api, exclude, run_id)
        if fresh:
            return fresh[0]
        if stop_if_final and state_of(api, stop_if_final)["type"] in TERMINAL:
            return None
        time.sleep(0.3)
    raise TimeoutError(f"no open sign-off within {timeout:g}s")


def state_of(api: httpx.Client, run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = api.get(f"flow_runs/{run_id}").json()["state"]
    return state


def resume(api: httpx.Client, run_id: str | Waiting, fields: dict[str, Any], settle_s: float = 15.0) -> dict[str, Any]:
    """POST the form: {"status": "ACCEPT"} or {"status": "REJECT", "details": ...} (the run stays paused).

    A run is PAUSED a moment before it has saved its form's schema; a resume in that moment is answered
    "Run input schema not found": that one is retried for up to `settle_s`, every other answer is returned."""
    deadline = time.monotonic() + settle_s
    while True:
        r = api.post(f"flow_runs/{str(run_id)}/resume", json={"run_input": fields})
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        not_ready = "schema not found" in str((answer.get("details") or {}).get("reason", "")).lower()
        if not (answer.get("status") == "REJECT" and not_ready) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def wait_final(
    api: httpx.Client, run_id: str, timeout: float = 300, on_change: Callable[[dict[str, Any]], object] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.get(f"flow_runs/{run_id}").json()
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
    return parse_json(r.json().get("data"))


def signoff_fields(
    name: str, role: str, decision: str = "GO", reason: str = "", *, attest: bool = True, override: bool = False
) -> dict[str, Any]:
    """A complete form: every section signed off and every attestation ticked (when `attest`)."""
    from golive.flows.approval import attestation_field, attestations
    from golive.flows.policies import SECTION_SIGNOFFS

    return {
        "signer_name": name,
        "signer_role": role,
        "decision": decision,
        "reason": reason,
        "override_blocking_failures": override,
        **{k: attest for k in SECTION_SIGNOFFS},
        **{attestation_field(a): attest for a in attestations()},
    }


# --------------------------------------------------------------------------- `golive approve`


class ApproveError(Exception):
    """Nothing was submitted (no such run, no open sign-off, the API refused): the message says why."""


def open_sign_off(client: Any, run_id: str) -> tuple[Any, Waiting]:
    """Go-live run `run_id` (read through Prefect's client) and the sign-off round it waits for."""
    from prefect.exceptions import ObjectNotFound

    try:
        run = client.read_flow_run(uuid.UUID(run_id))
    except ObjectNotFound:
        raise ApproveError(f"no flow run {run_id} on this Prefect server") from None
    state = run.state
    key = state.state_details.pause_key if state is not None else None
    if state is not None and state.is_paused() and isinstance(key, str) and key.startswith(SIGN_OFF_KEY):
        return run, Waiting(str(run.id), key)
    name = _p(state.name if state else "no state")
    if state is not None and state.is_final():
        raise ApproveError(f"flow run {run_id} has ended ({name}): nothing was submitted")
    raise ApproveError(f"flow run {run_id} ({_p(run.name)}, {name}) has no sign-off waiting: nothing was submitted")


def _p(text: Any, limit: int = 300) -> str:
    """Server-controlled text as one plain line (control characters written out: no terminal escapes)."""
    from golive.flows.report import plain

    return plain(text if isinstance(text, str) else str(text), limit)


def form_text(client: Any, run: Any, wait_s: float = 10.0) -> str:
    """The text the waiting run's form shows (what is signed for; why the last sign-off was refused). A run is
    PAUSED a moment before it saves its form's description: wait for it."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.input.run_input import keyset_from_base_key

    key = keyset_from_base_key(f"{(run.state.name or '').lower()}-{run.state.state_details.pause_key}")["description"]
    deadline = time.monotonic() + wait_s
    while True:
        try:
            value = json.loads(client.read_flow_run_input(run.id, key))
            return value if isinstance(value, str) else json.dumps(value)
        except (ObjectNotFound, PrefectHTTPStatusError, ValueError):
            if time.monotonic() > deadline:
                return ""
        time.sleep(0.3)


def _resume(client: Any, run_id: str, fields: dict[str, Any], settle_s: float = 15.0) -> Any:
    """Prefect's resume with the form's input; a resume in the moment before the run saved its form's schema is
    answered "Run input schema not found": that one is retried for up to `settle_s`."""
    deadline = time.monotonic() + settle_s
    while True:
        answer = client.resume_flow_run(uuid.UUID(run_id), run_input=fields)
        reason = str(getattr(answer.details, "reason", "") or "")
        if (
            not (answer.status.value == "REJECT" and "schema not found" in reason.lower())
            or time.monotonic() > deadline
        ):
            return answer
        time.sleep(0.2)


def submit_sign_off(client: Any, run_id: str, fields: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Resume the open sign-off of go-live run `run_id` with `fields` (validated by the caller with the form's own
    model) through Prefect's client, then follow the run until it has judged the sign-off: {"outcome": "recorded" |
    "refused" | "ended" | "submitted" (judgement not seen), "problems": [...], "sign_off_run": id, "round": N,
    "state": ..., "message": ...}. A suspended run starts again after the resume (a new process): `timeout` covers
    that."""
    _, waiting = open_sign_off(client, run_id)
    answer = _resume(client, waiting.run_id, fields)
    if answer.status.value != "ACCEPT":
        reason = getattr(answer.details, "reason", None) or answer.status.value
        raise ApproveError(
            f"Prefect refused the input for sign-off {waiting.round_no} of run {waiting.run_id}: {_p(reason)}"
        )
    out: dict[str, Any] = {
        "outcome": "submitted",
        "problems": [],
        "sign_off_run": waiting.run_id,
        "round": waiting.round_no,
        "state": None,
        "message": None,
    }
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            run = client.read_flow_run(uuid.UUID(waiting.run_id))
            state = run.state
            out["state"] = _p(state.name if state else "no state", 60)
            if state is not None and state.is_final():
                out["outcome"], out["message"] = "ended", _p(state.message or "", 500)
                return out
            key = state.state_details.pause_key if state is not None and state.is_paused() else None
            if key == f"{SIGN_OFF_KEY}{waiting.round_no + 1}":
                text = form_text(client, run)
                if REFUSED in text:
                    section = text.split(REFUSED, 1)[1].split("\n## ", 1)[0]
                    out["outcome"] = "refused"
                    out["problems"] = [_p(line[2:], 500) for line in section.splitlines() if line.startswith("- ")]
                elif text:
                    out["outcome"] = "recorded"  # another role's sign-off is still needed
                return out
            time.sleep(0.5)
    except Exception as e:  # noqa: BLE001 - the sign-off was sent: say what was seen, never a traceback
        out["message"] = _p(f"following the run failed: {type(e).__name__}: {e}", 300)
    return out


REFUSED = "The last sign-off was refused"  # flows.approval.form_description's heading for a refused round
