"""prefect.yaml declares the same four deployments `golive serve` serves, and Prefect accepts it for real."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from golive.deployments.serve import DEPLOYMENTS

REPO = Path(__file__).resolve().parents[1]


def test_entrypoints_and_names_match_serve():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = []
    for d in spec["deployments"]:
        module, func = d["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module), func)
        names.append(f"{flow.name}/{d['name']}")
        assert d["work_pool"]["name"] == "golive" and "config" in d["parameters"]
    assert sorted(names) == sorted(DEPLOYMENTS)


def test_prefect_deploy_registers_them_with_the_schedule(prefect_api):
    api = httpx.Client(base_url=prefect_api.api_url + "/", timeout=10)
    r = api.post("work_pools/", json={"name": "golive", "type": "process"})
    assert r.status_code in (201, 409)
    env = {**os.environ, **prefect_api.client_env(), "GOLIVE_HOME": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in DEPLOYMENTS:
        dep = api.get(f"deployments/name/{name}").json()
        assert dep["work_pool_name"] == "golive", name
    nightly = api.get("deployments/name/go-live-readiness/nightly-rehearsal").json()
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"


def test_one_go_live_at_a_time_a_second_waits_for_the_slot(prefect_api):
    """Two go-live runs of one environment never race on the sign-off and the deploy: the go-live deployment (as
    prefect.yaml declares it and as `golive serve` builds it) has a concurrency limit of 1 that enqueues. On the real
    server: while a first run holds the slot, a second one's Pending is answered AwaitingConcurrencySlot; once the
    first has ended, the second gets it."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Pending, Running

    from golive.deployments.serve import build_deployments

    spec = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    assert spec["go-live"]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert all("concurrency_limit" not in d for n, d in spec.items() if n != "go-live")
    built = {d.name: d for d in build_deployments(str(REPO / "examples" / "production.yaml"))}
    go_live = built["go-live"]
    assert go_live.concurrency_limit == 1
    assert go_live.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert built["ci"].concurrency_limit is None  # a CI matrix runs many environments' checks at once

    async def scenario():
        # under a name of its own: the session's `golive serve` keeps serving the real go-live deployment
        deployment_id = await go_live.model_copy(update={"name": "go-live-one-at-a-time"}).apply()
        async with get_client() as c:
            first = await c.create_flow_run_from_deployment(deployment_id, parameters={"release": "r1"})
            second = await c.create_flow_run_from_deployment(deployment_id, parameters={"release": "r2"})
            got_first = await c.set_flow_run_state(first.id, Pending())
            waited = await c.set_flow_run_state(second.id, Pending())
            await c.set_flow_run_state(first.id, Running())
            await c.set_flow_run_state(first.id, Completed())
            got_second = await c.set_flow_run_state(second.id, Pending())
            return got_first, waited, got_second

    got_first, waited, got_second = asyncio.run(scenario())
    assert got_first.status.value == "ACCEPT", got_first
    assert waited.status.value in ("WAIT", "REJECT") and waited.state.name == "AwaitingConcurrencySlot", waited
    assert got_second.status.value == "ACCEPT", got_second
