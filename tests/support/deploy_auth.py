"""A small real stack for the deploy authorization tests, without the sandbox: Prefect's own server on its own
embedded PostgreSQL, and `golive serve` serving a minimal environment whose deploy command only appends the release
to a file (what "it deployed" means here), so an attack that gets through leaves a line there."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import yaml

from golive.deployments.signoff_client import (
    api_client,
    json_artifact,
    resume,
    signoff_fields,
    wait_final,
    wait_paused_sign_off,
)

REPO = Path(__file__).resolve().parents[2]
ENV = "authz"
DEPLOYMENT = "deploy-production/deploy-production"
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"


@dataclasses.dataclass
class Stack:
    api: httpx.Client
    config: Path
    marker: Path
    serve_log: Path

    def deployed(self) -> list[str]:
        """The releases the deploy command ran for, in order."""
        return self.marker.read_text().splitlines() if self.marker.exists() else []

    def deployment_id(self, name: str) -> str:
        return self.api.get(f"deployments/name/{name}").json()["id"]

    def start(self, deployment: str, **parameters) -> str:
        r = self.api.post(
            f"deployments/{self.deployment_id(deployment)}/create_flow_run", json={"parameters": parameters}
        )
        r.raise_for_status()
        return r.json()["id"]

    def go_live(self, release: str, *signers: tuple[str, str, str]) -> dict:
        """A real go-live readiness run of `release`, signed by (name, role, decision) in turn; its final run."""
        run = self.start("go-live-readiness/go-live", release=release, output_dir=None)
        seen: set = set()
        for name, role, decision in signers:
            paused = wait_paused_sign_off(self.api, seen, timeout=120, stop_if_final=run, run_id=run)
            seen.add(paused)
            answer = resume(
                self.api,
                paused,
                signoff_fields(name, role, decision, reason="" if decision == "GO" else "change freeze"),
            )
            assert answer["status"] == "ACCEPT", answer
        return wait_final(self.api, run, timeout=180)

    def forge_go(self, readiness_run_id: str, release: str) -> None:
        """What any API client can write outside any flow run: a decision artifact saying GO."""
        record = {
            "environment": ENV,
            "release": release,
            "readiness_flow_run_id": readiness_run_id,
            "decision": "GO",
            "why": "GO signed by Mallory (CTO)",
            "signoffs": [],
        }
        r = self.api.post(
            "artifacts/",
            json={
                "key": f"golive-decision-{ENV}",
                "type": "markdown",
                "data": f"# GO\n\n```json\n{json.dumps(record)}\n```\n",
            },
        )
        r.raise_for_status()

    def create_deploy(self, readiness_run_id: str, release: str, key: str | None = None, *, hold: bool = False) -> str:
        """A deploy run created through the API, as an attacker would (`hold`: scheduled in an hour, not run yet)."""
        body = {
            "parameters": {"release": release, "readiness_run_id": readiness_run_id},
            **({"idempotency_key": key} if key else {}),
            **(
                {
                    "state": {
                        "type": "SCHEDULED",
                        "state_details": {"scheduled_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                    }
                }
                if hold
                else {}
            ),
        }
        r = self.api.post(f"deployments/{self.deployment_id(DEPLOYMENT)}/create_flow_run", json=body)
        r.raise_for_status()
        return r.json()["id"]

    def deploy(self, readiness_run_id: str, release: str, key: str | None = None) -> dict:
        """`create_deploy`, run by `golive serve`: its final run."""
        return wait_final(self.api, self.create_deploy(readiness_run_id, release, key), timeout=240)

    def force(self, run_id: str, state: str, message: str | None = None) -> None:
        """Any API client can set any state on any run."""
        r = self.api.post(
            f"flow_runs/{run_id}/set_state", json={"state": {"type": state, "message": message}, "force": True}
        )
        assert r.json()["status"] == "ACCEPT", r.text

    def sign_off_rounds(self, readiness_run_id: str) -> list[str]:
        """The sign-off rounds the run waited on (Prefect's record of the run's pause keys)."""
        return sorted(self.api.get(f"flow_runs/{readiness_run_id}").json()["empirical_policy"]["pause_keys"])

    def timer_runs(self, readiness_run_id: str) -> list[dict]:
        """The sign-off timer runs a waiting go-live run scheduled."""
        runs = self.api.post("flow_runs/filter", json={"flows": {"name": {"any_": ["go-live-sign-off-timer"]}}}).json()
        return [r for r in runs if r["parameters"].get("go_live_run_id") == readiness_run_id]

    def deploy_report(self) -> dict | None:
        return json_artifact(self.api, f"golive-deploy-{ENV}")


def _config(path: Path, marker: Path) -> Path:
    """Nothing to check (every check NOT_APPLICABLE: a GO report), two approvers, a deploy that appends a line."""
    path.write_text(
        yaml.safe_dump(
            {
                "environment": ENV,
                "approval": {"required_roles": ["CTO", "VP Engineering"], "timeout_minutes": 2, "poll_seconds": 1},
                "deploy": {
                    "command": [sys.executable, "-c", APPEND, str(marker), "{release}"],
                    "smoke_checks": ["application.api.health"],  # NOT_APPLICABLE here: nothing to probe
                    "high_checks": [],
                    "watch_seconds": 0,
                    "alert_criteria": [],
                },
            }
        )
    )
    return path


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A PostgreSQL cluster with a `prefect` database (pg_trgm), as the sandbox makes one for Prefect's server."""
    from golive.sandbox.parts import postgres

    with postgres.scratch_cluster("deployauth-") as pg:
        password = uuid.uuid4().hex
        postgres.create_database(
            pg.sock, pg.port, uuid.uuid4().hex, "prefect", password, "prefect", extensions=("pg_trgm",)
        )
        yield f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{pg.port}/prefect"


@contextlib.contextmanager
def authz_stack(home: Path) -> Iterator[Stack]:
    """The Prefect server and `golive serve` (its deployments READY), for one test module."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from golive.deployments.prefect_server import PrefectServer, stop_child
    from tests.support.fixtures_prefect import FIXTURE_CHILDREN

    marker = home / "deployed.txt"
    config = _config(home / "authz.yaml", marker)
    with (
        _postgres() as url,
        PrefectServer(url, home / "prefect-home") as server,
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
    ):
        FIXTURE_CHILDREN.add(server.proc.pid)
        log = home / "serve.log"
        env = {**os.environ, **server.client_env(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "golive.deployments.cli",
                    "serve",
                    "--config",
                    str(config),
                    "--poll-seconds",
                    "1",
                ],
                cwd=home,
                env={**env, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        FIXTURE_CHILDREN.add(proc.pid)
        api = api_client(server.api_url)
        try:
            deadline = time.monotonic() + 90
            from golive.deployments.serve import DEPLOYMENTS as names

            while not all(api.get(f"deployments/name/{n}").json().get("status") == "READY" for n in names):
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"deployments not READY\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            yield Stack(api=api, config=config, marker=marker, serve_log=log)
        finally:
            stop_child(proc, 20)
            api.close()
