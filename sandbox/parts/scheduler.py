"""The sandbox's worker: a real APScheduler (3.x) with its SQLAlchemy job store in the product database.

Run as `python -m golive.sandbox.parts.scheduler`; the SQLAlchemy URL (with the app user's password) is read from the
environment variable DB_URL_ENV. It registers the checklist's five Phase 4 jobs (seed 4.3) with their cron cadence in
UTC (`replace_existing`: a restart re-creates a deleted job), and two housekeeping interval jobs:
- `scheduler_heartbeat` upserts a row of `scheduler_heartbeat` (id, hostname, pid, started_at, beat_at) every
  HEARTBEAT_SECONDS: "the scheduler is alive" is a fresh row, readable by anyone who can read the database;
- `run_requests` picks up rows of `job_run_requests` (an operator's "run this job now", e.g. golive's opt-in
  `workers.trigger_job`) and makes APScheduler itself run the job now (`modify(next_run_time=now)`).

Every job run records itself in `job_runs` (the table golive's data checks read): scheduled_for, started/finished,
status, rows_affected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import socket
import threading

from ..part import Service, Stack, child_env, python

JOBS: dict[str, dict[str, str]] = {  # job id -> cron fields (UTC): seed 4.3 "Jobs Configured"
    "daily_analytics_aggregation": {"hour": "2", "minute": "0"},
    "weekly_model_retraining": {"day_of_week": "mon", "hour": "3", "minute": "0"},
    "merchant_affinity_update": {"hour": "*/6", "minute": "0"},
    "optimal_send_time_calculation": {"hour": "4", "minute": "0"},
    "campaign_optimization_generation": {"hour": "5", "minute": "0"},
}
DB_URL_ENV = "SWIPESAVVY_SCHEDULER_DB_URL"
HEARTBEAT_SECONDS = 2
REQUEST_POLL_SECONDS = 1
SCHEDULER_ID = "swipesavvy-phase4"
PORTS = ()  # it listens on none: it is up once its jobs are registered and it has beaten (jobs_ready)

DDL = """
CREATE TABLE IF NOT EXISTS scheduler_heartbeat (
    id          text PRIMARY KEY,
    hostname    text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS job_run_requests (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        text NOT NULL,
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    picked_at     timestamptz
);
"""


def services(stack: Stack) -> list[Service]:
    """The Phase 4 scheduler, its job store in the product database (started once that is seeded)."""
    return [
        Service(
            "scheduler",
            lambda: python("golive.sandbox.parts.scheduler"),
            (),
            env={**child_env(), **scheduler_env(stack)},
            ready=lambda: jobs_ready(stack),
        )
    ]


def scheduler_env(stack: Stack) -> dict[str, str]:
    from urllib.parse import quote

    from ..configfile import ENV_DB
    from .postgres import APP_USER, DBNAME

    url = (
        f"postgresql+psycopg://{APP_USER}:{quote(stack.env[ENV_DB], safe='')}@127.0.0.1:"
        f"{stack.ports['postgres']}/{DBNAME}"
    )
    return {DB_URL_ENV: url}


def jobs_ready(stack: Stack) -> bool:
    """The scheduler process just started has registered its five jobs and beaten once.

    Both tables outlive the process (its job store and heartbeat are in the product database), so a row alone proves
    nothing after a restart: the heartbeat must carry this process's pid. (Counting any row let a restart return
    before the new process had beaten, and a test run right after it saw the stopped process's stale heartbeat.)"""
    import psycopg

    proc = stack.services["scheduler"].proc
    if proc is None:
        return False
    try:
        with stack.admin_db() as conn:
            n = conn.execute("SELECT count(*) FROM apscheduler_jobs WHERE id = ANY(%s)", (list(JOBS),)).fetchone()[0]
            beat = conn.execute(
                "SELECT count(*) FROM scheduler_heartbeat WHERE id = %s AND pid = %s", (SCHEDULER_ID, proc.pid)
            ).fetchone()[0]
        return n == len(JOBS) and beat > 0
    except psycopg.Error:
        return False


_engine = None
_started = dt.datetime.now(dt.UTC)


def _conn():
    global _engine
    if _engine is None:
        from sqlalchemy import create_engine

        _engine = create_engine(os.environ[DB_URL_ENV], pool_pre_ping=True, pool_size=3)
    return _engine.begin()


def run_job(job_id: str) -> None:
    """One Phase 4 job: a small, idempotent piece of the real work, recorded in job_runs."""
    from sqlalchemy import text

    started = dt.datetime.now(dt.UTC)
    with _conn() as c:
        if job_id == "daily_analytics_aggregation":
            n = c.execute(
                text("UPDATE campaign_analytics_daily SET updated_at = now() WHERE day = current_date - 1")
            ).rowcount
        elif job_id == "merchant_affinity_update":
            n = c.execute(
                text(
                    "UPDATE merchant_affinity_scores SET computed_at = now(), updated_at = now() WHERE user_id % 50 = 0"
                )
            ).rowcount
        else:
            n = c.execute(text("SELECT count(*) FROM ml_model_versions WHERE is_active")).scalar_one()
        c.execute(
            text(
                "INSERT INTO job_runs (job_name, scheduled_for, started_at, finished_at, status, "
                "rows_affected, created_at, updated_at) VALUES (:j, :s, :s, now(), 'success', :n, :s, now())"
            ),
            {"j": job_id, "s": started, "n": int(n or 0)},
        )


def heartbeat() -> None:
    from sqlalchemy import text

    with _conn() as c:
        c.execute(
            text(
                "INSERT INTO scheduler_heartbeat (id, hostname, pid, started_at, beat_at) "
                "VALUES (:id, :h, :p, :s, now()) ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, "
                "pid = excluded.pid, started_at = excluded.started_at, beat_at = excluded.beat_at"
            ),
            {"id": SCHEDULER_ID, "h": socket.gethostname(), "p": os.getpid(), "s": _started},
        )


def make_run_requests(scheduler):
    def run_requests() -> None:
        from sqlalchemy import text

        with _conn() as c:
            rows = c.execute(
                text("UPDATE job_run_requests SET picked_at = now() WHERE picked_at IS NULL RETURNING job_id")
            ).fetchall()
        for (job_id,) in rows:
            job = scheduler.get_job(job_id)
            if job is not None:
                job.modify(next_run_time=dt.datetime.now(dt.UTC))

    return run_requests


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.parts.scheduler")
    p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from sqlalchemy import text

    with _conn() as c:
        c.execute(text(DDL))
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=_engine), "internal": MemoryJobStore()},
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
    )
    for job_id, fields in JOBS.items():
        scheduler.add_job(
            "golive.sandbox.parts.scheduler:run_job",
            CronTrigger(timezone="UTC", **fields),
            id=job_id,
            name=job_id,
            args=(job_id,),
            replace_existing=True,
        )
    scheduler.add_job(
        heartbeat,
        "interval",
        seconds=HEARTBEAT_SECONDS,
        id="scheduler_heartbeat",
        jobstore="internal",
        next_run_time=dt.datetime.now(dt.UTC),
    )
    scheduler.add_job(
        make_run_requests(scheduler), "interval", seconds=REQUEST_POLL_SECONDS, id="run_requests", jobstore="internal"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    stop.wait()
    scheduler.shutdown(wait=False)
    _engine.dispose()


if __name__ == "__main__":
    from golive.sandbox.parts.scheduler import (
        main as _main,  # the jobs' textual references resolve to that module, not __main__
    )

    _main()
