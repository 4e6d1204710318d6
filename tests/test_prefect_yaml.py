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
    out = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in DEPLOYMENTS:
        dep = api.get(f"deployments/name/{name}").json()
        assert dep["work_pool_name"] == "golive", name
    nightly = api.get("deployments/name/go-live-readiness/nightly-rehearsal").json()
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
