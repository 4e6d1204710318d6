"""The Phase 4 worker as a team would write it: APScheduler 3 with a SQLAlchemy job store in the product database
(over TLS), the five jobs of seed 4.3, "every 6 hours" as `IntervalTrigger(hours=6)`, no heartbeat table (stock
APScheduler has none). Each run is recorded in the product's `job_runs` table.
Run as `python -m tests.stock.worker` with the SQLAlchemy URL in STOCK_WORKER_DB_URL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading

from sqlalchemy import create_engine, text

DB_URL_ENV = "STOCK_WORKER_DB_URL"
_engine = None


def run_job(job_id: str) -> None:
    started = dt.datetime.now(dt.UTC)
    with _engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO job_runs (job_name, scheduled_for, started_at, finished_at, status, rows_affected,"
                " created_at, updated_at) VALUES (:j, :s, :s, now(), 'success', 0, :s, now())"
            ),
            {"j": job_id, "s": started},
        )


def main() -> None:
    global _engine
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    _engine = create_engine(os.environ[DB_URL_ENV], pool_pre_ping=True, pool_size=2)
    utc = dt.UTC
    triggers = {
        "daily_analytics_aggregation": CronTrigger(hour=2, minute=0, timezone=utc),
        "weekly_model_retraining": CronTrigger(day_of_week="mon", hour=3, minute=0, timezone=utc),
        "merchant_affinity_update": IntervalTrigger(
            hours=6, timezone=utc, start_date=dt.datetime(2025, 1, 1, tzinfo=utc)
        ),
        "optimal_send_time_calculation": CronTrigger(hour=4, minute=0, timezone=utc),
        "campaign_optimization_generation": CronTrigger(hour=5, minute=0, timezone=utc),
    }
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=_engine)}, timezone=utc)
    for job_id, trigger in triggers.items():
        scheduler.add_job(
            "tests.stock.worker:run_job",
            trigger,
            id=job_id,
            name=job_id,
            args=(job_id,),
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=600,
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    stop.wait()
    scheduler.shutdown(wait=False)


if __name__ == "__main__":
    from tests.stock.worker import main as _main  # the jobs' textual reference resolves to this module

    _main()
