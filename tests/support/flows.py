"""Running the readiness flow in the tests, on the session's Prefect server, and reading back what it left there:
artifacts and the logs of a run and its subflows. No tests in here."""

from __future__ import annotations

import asyncio


def run_flow(config_path, mode="ci", out=None, sections=None):
    """The readiness flow run in-process on the current Prefect API: (its report, its final state)."""
    from golive.flows import readiness

    state = asyncio.run(
        readiness.go_live_readiness(
            config=str(config_path),
            mode=mode,
            sections=sections,
            output_dir=str(out) if out else None,
            return_state=True,
        )
    )
    return readiness.REPORTS.pop(str(state.state_details.flow_run_id)), state


async def artifact(key):
    """The latest artifact under `key`, as Prefect's API returns it."""
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        r = await c._client.get(f"/artifacts/{key}/latest")
        r.raise_for_status()
        return r.json()


async def flow_run_logs(flow_run_id):
    """The log messages of one readiness run and of its section / sign-off subflows (those still queued in this
    process are sent first: Prefect sends logs in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from golive.deployments.cli import _drain_prefect

    await asyncio.to_thread(_drain_prefect)
    async with get_client() as c:
        children = await c._client.post(
            "/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
        )
        children.raise_for_status()
        ids = [flow_run_id, *(r["id"] for r in children.json())]
        logs = []
        while True:  # the API pages logs by 200
            page = await c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200, offset=len(logs))
            logs += page
            if len(page) < 200:
                break
        return [entry.message for entry in logs], ids
