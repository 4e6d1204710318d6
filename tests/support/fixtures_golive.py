"""`golive serve` on the sandbox with a real Prefect server: shared by the end-to-end and the UI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml


@pytest.fixture(scope="session")
def golive_config(sandbox, tmp_path_factory) -> Path:
    """The sandbox's config plus a sign-off policy and a deploy section that deploys the sandbox's next release."""
    data = yaml.safe_load(Path(sandbox.config_path).read_text())
    from golive.sandbox.release import deploy_section

    # a sign-off round waits 3 minutes: time for a browser to fill the form on a loaded CI machine (the timeout
    # test starts its run with `short_timeout_config`)
    data["approval"] = {
        "required_roles": ["CTO", "VP Engineering"],
        "timeout_minutes": 3,
        "poll_seconds": 1,
        "mail_from": "golive@swipesavvy.test",  # told through the sandbox's SMTP (its mailbox)
        "approvers": [
            {"name": "Samuel Adeyemi", "role": "CTO", "email": "cto@swipesavvy.test"},
            {"name": "Grace Liu", "role": "VP Engineering", "email": "vpe@swipesavvy.test"},
        ],
    }
    data["deploy"] = deploy_section(
        sandbox.base_dir, watch_seconds=4, poll_seconds=0.5, api_down_seconds=1, high_assess_seconds=2
    )
    path = tmp_path_factory.mktemp("golive-e2e") / "sandbox-golive.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def short_timeout_config(golive_config) -> Path:
    """The same config with a 30 s sign-off round: a go-live run started with it (its `config` parameter) times out
    soon."""
    data = yaml.safe_load(golive_config.read_text())
    data["approval"]["timeout_minutes"] = 0.5
    path = golive_config.with_name("sandbox-golive-30s.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def stale_evidence_config(golive_config) -> Path:
    """The same config with a 0.6 s evidence window: any sign-off is slower, so the deploy flow re-checks first."""
    data = yaml.safe_load(golive_config.read_text())
    data["approval"]["max_evidence_age_minutes"] = 0.01
    path = golive_config.with_name("sandbox-golive-stale.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def served(sandbox, prefect_api, golive_config, tmp_path_factory):
    """`golive serve` as a real child process, with the deployments READY on the server."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, **sandbox.env, **prefect_api.client_env(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "golive.deployments.cli",
                "serve",
                "--config",
                str(golive_config),
                "--poll-seconds",
                "1",
            ],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    from tests.support.fixtures_prefect import FIXTURE_CHILDREN

    FIXTURE_CHILDREN.add(proc.pid)
    api = httpx.Client(base_url=prefect_api.api_url + "/", timeout=10)
    try:
        from golive.deployments.serve import DEPLOYMENTS as names

        deadline = time.monotonic() + 90
        while True:
            statuses = [api.get(f"deployments/name/{n}").json().get("status") for n in names]
            if all(s == "READY" for s in statuses):
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"deployments not READY: {statuses}\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield api
    finally:
        from golive.deployments.prefect_server import stop_child

        stop_child(proc, 20)
        api.close()


def wait_mail(sandbox, after: int, match, timeout: float = 30.0):
    """The first message the sandbox's SMTP accepted after the first `after` that `match`es (delivery is best effort
    and asynchronous to the run: poll)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sandbox.mail()[after:] if match(m)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, [m["Subject"] for m in sandbox.mail()[after:]]
        time.sleep(0.3)
