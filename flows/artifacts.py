"""golive's Prefect artifacts: every key, and the one format of the machine-readable ones, written and read here only.

A machine-readable artifact is markdown: text for people first, then the payload as JSON in one fenced block, always
the last block of the artifact (`json_markdown`). Its readers take the *last* fence (`parse_json`), so text a person
typed that lands in the people's part (a sign-off reason, a check's summary) cannot pose as the payload. Writing and
reading go through Prefect's client; the REST clients of `deployments/` parse with `parse_json`.

| kind | key | type | written by | read by |
|---|---|---|---|---|
| report | `golive-report-<env>` | markdown | readiness | people |
| checks | `golive-checks-<env>` | table | readiness | `golive ci` (JUnit) |
| verdict | `golive-verdict-<env>` | JSON | readiness | `golive ci`, the deploy flow (blocking failures), `golive history` |
| decision | `golive-decision-<env>` | JSON | sign-off, timer | people, the demo (never the deploy flow) |
| deploy | `golive-deploy-<env>` | JSON | deploy flow | people, the demo |
| rehearsal | `golive-rehearsal-<env>` | JSON | rehearsal | the next rehearsals (what changed, trend, flaky), `golive history` |
| sign-off | `golive-sign-off-<env>` | markdown | sign-off | people (where to sign) |
| data-docs | `golive-data-docs-<env>` | markdown (a link) | readiness | people |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

Kind = Literal["report", "checks", "verdict", "decision", "deploy", "rehearsal", "sign-off", "data-docs"]
KINDS: tuple[Kind, ...] = ("report", "checks", "verdict", "decision", "deploy", "rehearsal", "sign-off", "data-docs")
FENCE, CLOSE = "```json\n", "\n```"


def key(kind: Kind, environment: str) -> str:
    """The artifact key of `kind` for an environment (Prefect keeps every version of a key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}")
    return f"golive-{kind}-{environment}"


def json_markdown(
    people: str, payload: Any, *, compact: bool = False, redact: Callable[[str], str] | None = None
) -> str:
    """`people` (markdown), then `payload` as the artifact's last block: fenced JSON (which never holds a raw
    newline inside a string, so nothing in it can close the fence), passed through `redact` when given."""

    def dump(v: Any) -> str:
        return json.dumps(v, separators=(",", ":")) if compact else json.dumps(v, indent=2)

    body = dump(payload)
    if redact:
        body = redact(body)  # the text as written: a secret in any of JSON's escapings is caught
        try:
            json.loads(body)
        except ValueError:  # a mask that broke the JSON: redact each string instead, so the payload stays readable
            body = dump(_each_string(payload, redact))
    return f"{people.rstrip()}\n\n{FENCE}{body}{CLOSE}\n" if people.strip() else f"{FENCE}{body}{CLOSE}\n"


def parse_json(markdown: Any) -> Any | None:
    """The payload of a golive JSON artifact (the last fenced JSON block); None when `markdown` is not one. Never
    raises: an artifact is API-writable input."""
    if not isinstance(markdown, str) or FENCE not in markdown:
        return None
    body = markdown.rsplit(FENCE, 1)[1]
    end = body.rfind(CLOSE)
    try:
        return json.loads(body[:end] if end >= 0 else body)
    except (ValueError, RecursionError):  # (JSON nested thousands deep raises RecursionError)
        return None


def _context_ids(flow_run_id: str | UUID | None) -> tuple[UUID | None, UUID | None]:
    """(flow run, task run) the artifact belongs to: `flow_run_id` when given, else the running flow or task."""
    if flow_run_id:
        return UUID(str(flow_run_id)), None
    from prefect.utilities.context import get_task_and_flow_run_ids

    task_run_id, ctx_flow_run_id = get_task_and_flow_run_ids()
    return ctx_flow_run_id, task_run_id


async def publish(
    kind: Kind,
    environment: str,
    data: Any,
    description: str,
    *,
    type_: Literal["markdown", "table"] = "markdown",
    flow_run_id: str | UUID | None = None,
) -> None:
    """A new version of `kind`'s artifact for `environment`, on the running flow/task run or on `flow_run_id`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    run, task_run = _context_ids(flow_run_id)
    if type_ == "table":
        data = json.dumps(_no_nan(data))  # how Prefect stores a table artifact (JSON rows; NaN as null)
    async with get_client() as client:
        await client.create_artifact(
            ArtifactCreate(
                key=key(kind, environment),
                type=type_,
                data=data,
                description=description,
                flow_run_id=run,
                task_run_id=task_run,
            )
        )


def _each_string(v: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return fn(v)
    if isinstance(v, dict):
        return {k: _each_string(x, fn) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_each_string(x, fn) for x in v]
    return v


def _no_nan(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_no_nan(x) for x in v]
    return v


async def publish_json(
    kind: Kind,
    environment: str,
    people: str,
    payload: Any,
    description: str,
    *,
    flow_run_id: str | UUID | None = None,
    compact: bool = False,
    redact: Callable[[str], str] | None = None,
) -> None:
    await publish(
        kind,
        environment,
        json_markdown(people, payload, compact=compact, redact=redact),
        description,
        flow_run_id=flow_run_id,
    )


async def latest_json(kind: Kind, environment: str, client: Any = None) -> Any | None:
    """The payload of the latest version of `kind`'s artifact for `environment` (None: none, or not golive JSON)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    flt = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key(kind, environment)]))
    if client is None:
        async with get_client() as c:
            found = await c.read_latest_artifacts(artifact_filter=flt, limit=1)
    else:
        found = await client.read_latest_artifacts(artifact_filter=flt, limit=1)
    return parse_json(found[0].data) if found else None


async def run_json(client: Any, kind: Kind, environment: str, flow_run_id: UUID) -> list[Any]:
    """The payloads of every version of `kind`'s artifact a flow run carries; None for a version that is not golive
    JSON (the caller decides: the deploy flow refuses)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    arts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key(kind, environment)]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
        )
    )
    return [parse_json(a.data) for a in arts]


class Version(NamedTuple):
    """One version of a JSON artifact: its payload (None: not golive JSON), when Prefect stored it, its flow run."""

    payload: Any
    created: datetime | None
    flow_run_id: str | None


PAGE = 200  # the Prefect server's largest page (PREFECT_API_DEFAULT_LIMIT)


async def versions_json(kind: Kind, environment: str, limit: int, client: Any = None) -> list[Version]:
    """The last `limit` versions of `kind`'s artifact for `environment`, newest first (Prefect keeps every version
    of a key): what `golive history` and the rehearsal's trend read. The caller bounds the time it takes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    flt = ArtifactFilter(key=ArtifactFilterKey(any_=[key(kind, environment)]))

    async def read(c: Any) -> list[Version]:
        out: list[Version] = []
        while len(out) < limit:
            want = min(PAGE, limit - len(out))
            page = await c.read_artifacts(
                artifact_filter=flt, sort=ArtifactSort.CREATED_DESC, limit=want, offset=len(out)
            )
            out += [Version(parse_json(a.data), a.created, str(a.flow_run_id) if a.flow_run_id else None) for a in page]
            if len(page) < want:
                break
        return out

    if client is None:
        async with get_client() as c:
            return await read(c)
    return await read(client)
