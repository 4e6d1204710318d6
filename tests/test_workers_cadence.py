"""`application.workers.jobs` compares cadences by what a trigger does, not how it is written (issue #11): the seed's
"Merchant affinity updates (every 6 hours)" is an APScheduler `IntervalTrigger(hours=6)` as often as a cron; a daily
2 AM job may be an interval started at 02:00. Each healthy variant is written by a real APScheduler 3 into a real
PostgreSQL job store; the nearest unhealthy variant of each fails, naming what differs."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from golive.tasks.core import Status
from golive.tasks.workers import parse_cadence
from tests.support.job_store import Store, run_check, store  # noqa: F401 - the real job store's database

_tables = itertools.count()
NEXT_2AM = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)


def _cron(**kw):
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(timezone="UTC", **kw)


def _every(start: dt.datetime | None = None, **kw):
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(timezone="UTC", start_date=start, **kw)


def _or(*triggers):
    from apscheduler.triggers.combining import OrTrigger

    return OrTrigger(list(triggers))


def _table_with(store: Store, trigger, *, paused: bool = False) -> str:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    table = f"variant_jobs_{next(_tables)}"
    p = store.postgres
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(
                url=f"postgresql+psycopg://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['dbname']}",
                tablename=table,
            )
        },
        timezone="UTC",
    )
    scheduler.start(paused=True)
    job = scheduler.add_job("time:sleep", trigger, id="the_job", args=[0])
    if paused:
        job.pause()
    scheduler.shutdown(wait=False)
    return table


SIX_HOURS = [  # healthy forms of "every 6 hours"
    ("IntervalTrigger(hours=6)", lambda: _every(hours=6)),
    ("IntervalTrigger(minutes=360) started at 01:30", lambda: _every(NEXT_2AM - dt.timedelta(minutes=30), minutes=360)),
    ("cron hour=*/6", lambda: _cron(hour="*/6", minute="0")),
    ("cron hour=1,7,13,19 minute=15", lambda: _cron(hour="1,7,13,19", minute="15")),
    ("OrTrigger of two 12-hourly crons", lambda: _or(_cron(hour="0,12", minute="0"), _cron(hour="6,18", minute="0"))),
]
DAILY_2AM = [  # healthy forms of "Daily analytics aggregation (2 AM UTC)"
    ("cron hour=2", lambda: _cron(hour="2", minute="0")),
    ("IntervalTrigger(days=1) started at 02:00", lambda: _every(NEXT_2AM, days=1)),
    (
        "IntervalTrigger(hours=24) started at 02:00 a week ago",
        lambda: _every(NEXT_2AM - dt.timedelta(days=8), hours=24),
    ),
]


@pytest.mark.parametrize("expected", ["every 6h", "every 6 hours", "interval 6h"])
@pytest.mark.parametrize("name, trigger", SIX_HOURS, ids=[n for n, _ in SIX_HOURS])
def test_every_six_hours_in_any_healthy_form_passes(store, expected, name, trigger):
    r = run_check(store.config(_table_with(store, trigger()), {"the_job": expected}))
    assert r.status == Status.PASS, (name, expected, r.summary)


@pytest.mark.parametrize("name, trigger", [SIX_HOURS[2], SIX_HOURS[4]], ids=[SIX_HOURS[2][0], SIX_HOURS[4][0]])
def test_a_cron_expectation_is_met_by_any_trigger_with_its_fire_times(store, name, trigger):
    r = run_check(store.config(_table_with(store, trigger()), {"the_job": "0 */6 * * *"}))
    assert r.status == Status.PASS, (name, r.summary)


@pytest.mark.parametrize("name, trigger", DAILY_2AM, ids=[n for n, _ in DAILY_2AM])
def test_daily_at_two_in_any_healthy_form_passes(store, name, trigger):
    r = run_check(store.config(_table_with(store, trigger()), {"the_job": "0 2 * * *"}))
    assert r.status == Status.PASS, (name, r.summary)


@pytest.mark.parametrize(
    "expected, trigger, problem",
    [
        ("every 6h", lambda: _every(hours=7), "fires every 7:00:00 (expected every 6:00:00)"),
        ("every 6h", lambda: _cron(hour="*/8", minute="0"), "fires every 8:00:00 (expected every 6:00:00)"),
        ("every 6h", lambda: _cron(hour="0,6,12", minute="0"), "expected every 6:00:00"),  # irregular: 6h, 6h, 12h
        ("0 2 * * *", lambda: _every(NEXT_2AM + dt.timedelta(hours=1), days=1), "fire times differ"),
        ("0 2 * * *", lambda: _every(NEXT_2AM, hours=12), "fire times differ"),
        ("0 */6 * * *", lambda: _every(NEXT_2AM - dt.timedelta(minutes=30), hours=6), "is not a fire time"),
    ],
    ids=["7h-interval", "8-hourly-cron", "irregular-cron", "daily-at-3", "twice-daily", "every-6h-wrong-phase"],
)
def test_the_nearest_unhealthy_variant_fails_naming_what_differs(store, expected, trigger, problem):
    r = run_check(store.config(_table_with(store, trigger()), {"the_job": expected}))
    assert r.status == Status.FAIL and problem in r.observed["problems"]["the_job"], r.observed


def test_a_paused_interval_job_fails(store):
    r = run_check(store.config(_table_with(store, _every(hours=6), paused=True), {"the_job": "every 6h"}))
    assert r.status == Status.FAIL and "paused" in r.observed["problems"]["the_job"], r.observed


def test_cadence_spellings_and_their_one_line_errors():
    assert parse_cadence("every 6h") == parse_cadence("interval 6 hours") == dt.timedelta(hours=6)
    assert parse_cadence("every 30 minutes") == dt.timedelta(minutes=30)
    assert parse_cadence("0 */6 * * *")["hour"] == frozenset({0, 6, 12, 18})
    for bad, why in [
        ("every six hours", "every <n><unit>"),
        ("every 6 fortnights", "every <n><unit>"),
        ("every 10s", "from 1 minute to 31 days"),
        ("0 */6 * *", "5 fields"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_cadence(bad)


@pytest.mark.parametrize(
    "state, problem",
    [
        ({"triggers": 5}, "OrTrigger with int triggers"),
        (
            {
                "triggers": [("apscheduler.triggers.interval:IntervalTrigger", {"interval": dt.timedelta(hours=6)})]
                * 500
            },
            "OrTrigger with list triggers: expected a list of 1..32",
        ),
        (
            {"triggers": [("apscheduler.triggers.interval:IntervalTrigger", {"interval": "6h", "start_date": 1})]},
            "interval <str>: not an interval of a minute or more",
        ),
    ],
)
def test_a_crafted_combining_trigger_is_that_jobs_problem_not_a_crash(state, problem):
    """A row whose OrTrigger state is not what APScheduler writes: one line for that job, in bounded work."""
    from golive.tasks.workers import _cadence_problems, _child

    now = dt.datetime.now(dt.UTC)
    out = _cadence_problems(
        _child("apscheduler.triggers.combining:OrTrigger", state), dt.timedelta(hours=6), now, now, {}
    )
    assert len(out) == 1 and out[0].startswith("trigger not comparable") and problem in out[0], out
