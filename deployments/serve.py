"""`golive serve`: the five deployments in one process for a single machine.

- `go-live-readiness/go-live`            manual, from the UI: readiness, the sign-off (the run suspends: no process
                                         is held while it waits), and a GO deploys
- `go-live-readiness/nightly-rehearsal`  cron (default 02:00 UTC): readiness only, and what changed since last night
- `go-live-readiness/ci`                 triggered through the API: ends Failed on NO-GO
- `deploy-production/deploy-production`  triggered only by a GO (run_deployment with an idempotency key)
- `go-live-sign-off-timer/sign-off-timer` scheduled by a waiting go-live run: the reminder at half the sign-off's
                                         time, the recorded NO-GO at its deadline

`serve()` pauses its deployments and drops their scheduled runs when it stops; for schedules that survive a
stopped process use `prefect.yaml` with a work pool and workers (see the repo root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

DEPLOYMENTS = (
    "go-live-readiness/go-live",
    "go-live-readiness/nightly-rehearsal",
    "go-live-readiness/ci",
    "deploy-production/deploy-production",
    "go-live-sign-off-timer/sign-off-timer",
)


def build_deployments(config_path: str, *, cron: str = "0 2 * * *", timezone: str = "UTC") -> list[RunnerDeployment]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from golive.flows.deploy import deploy_production
    from golive.flows.readiness import go_live_readiness
    from golive.flows.signoff_timer import sign_off_timer

    cfg = str(Path(config_path).resolve())
    # One go-live at a time for the environment this config describes: a second run waits (AwaitingConcurrencySlot)
    # while the first runs its checks (prefect.yaml declares the same); a suspended run frees the slot, so a run that
    # starts while another waits for its sign-off is refused by the run itself (flows/signoff_timer.begin).
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    # (the cast: outside an event loop, as here, Prefect's async_dispatch runs to_deployment's sync implementation:
    # RunnerDeployments, never the coroutines its types also allow)
    return cast(
        "list[RunnerDeployment]",
        [
            go_live_readiness.to_deployment(
                name="go-live",
                parameters={"config": cfg, "mode": "go-live"},
                description="Readiness, then the sign-off form; only a GO deploys.",
                tags=["golive"],
                concurrency_limit=one_at_a_time,
            ),
            go_live_readiness.to_deployment(
                name="nightly-rehearsal",
                parameters={"config": cfg, "mode": "rehearsal"},
                schedules=[Cron(cron, timezone=timezone)],
                tags=["golive"],
                description="Nightly readiness rehearsal: report and what changed.",
            ),
            go_live_readiness.to_deployment(
                name="ci",
                parameters={"config": cfg, "mode": "ci"},
                tags=["golive"],
                description="For CI through the API: Completed on GO, Failed on NO-GO.",
            ),
            deploy_production.to_deployment(
                name="deploy-production",
                parameters={"config": cfg},
                tags=["golive"],
                description="Deploy, smoke-test, watch the rollback criteria, roll back.",
            ),
            sign_off_timer.to_deployment(
                name="sign-off-timer",
                parameters={"config": cfg},
                tags=["golive"],
                description="Scheduled by a waiting go-live run: the approvers' reminder, "
                "and the NO-GO record of a sign-off that timed out.",
            ),
        ],
    )


def serve(config_path: str, *, cron: str = "0 2 * * *", timezone: str = "UTC", poll_seconds: float = 1.0) -> None:
    """Blocks, serving the deployments; a triggered run starts within about `poll_seconds`."""
    from golive.deployments.prefect_server import export_client_env

    if "PREFECT_RUNNER_POLL_FREQUENCY" not in os.environ:  # (Prefect may be imported: it reads it again)
        export_client_env({"PREFECT_RUNNER_POLL_FREQUENCY": str(max(1, int(poll_seconds)))})
    from prefect import serve as prefect_serve

    prefect_serve(
        *build_deployments(config_path, cron=cron, timezone=timezone),
        query_seconds=poll_seconds,
        print_starting_message=True,
    )
