"""The suite worker process (expectations/worker.py): Great Expectations validates in a child process of the gate.

Against the sandbox's real PostgreSQL: the worker's results are the in-process runner's; a worker that dies or stops
answering never holds a suite past its deadline and says why; it never holds a secret in its environment; and where
it cannot start, the suites run in the gate's own process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from golive.expectations import load_suites, worker
from golive.expectations.runner import SuiteRunError
from golive.expectations.runner import run_suite as in_process
from golive.expectations.suites import SuiteError, parse_suite
from golive.tasks.core import RunContext
from tests.support.checks import sandbox_config, with_
from tests.support.servers import hung_server


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


@pytest.fixture
def fresh():
    """No worker before the test (it starts one under the test's environment), none left after it."""
    worker.stop()
    worker._UNAVAILABLE = ""
    yield
    worker.stop()
    worker._UNAVAILABLE = ""


def started(cfg) -> worker._Worker:
    worker.prestart(RunContext(cfg))
    w = worker._WORKER
    assert w is not None and w.ready.wait(60) and w.gx_version, worker._UNAVAILABLE or (w and w.exit_reason)
    return w


def group(pgid: int) -> list[int]:
    """The live processes of a process group (zombies left out)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(p.name))
    return out


def facts(run) -> dict:
    return {
        k: (type(v).__name__, str(v))
        if isinstance(v, Exception)
        else (v.status, v.observed, v.expected, v.evidence, v.details)
        for k, v in run.outcomes.items()
    }


def test_the_worker_validates_every_suite_as_the_gate_itself_would_on_several_cores(cfg, fresh):
    w = started(cfg)
    assert len(group(w.proc.pid)) == min(2, len(os.sched_getaffinity(0)))  # the first process and what it forked
    ctx, now, sensitive = RunContext(cfg), datetime.now(UTC), cfg.postgres.sensitive_columns
    for suite in load_suites():
        there = worker.run_suite(suite, cfg.postgres, ctx=ctx, now=now, sensitive_columns=sensitive)
        here = in_process(suite, cfg.postgres, now=now, sensitive_columns=sensitive)
        assert facts(there) == facts(here), suite.name
        for part in ("results", "statistics", "success"):  # what Data Docs are built from: samples already removed
            assert there.validation[part] == here.validation[part]  # (its meta holds each run's load time)
    assert worker._WORKER is w  # one worker for the whole process, started once


def in_flight(t, cfg, timeout: float = 30.0) -> tuple[threading.Thread, dict]:
    """One suite sent to the worker against `t` (a server that never answers): it stays in flight."""
    out: dict = {}
    suite = next(s for s in load_suites() if s.name == "users")

    def go() -> None:
        t0 = time.monotonic()
        try:
            out["run"] = worker.run_suite(suite, t, timeout=timeout, ctx=RunContext(cfg))
        except Exception as e:  # noqa: BLE001
            out["error"] = e
        out["took"] = time.monotonic() - t0

    th = threading.Thread(target=go, daemon=True)
    th.start()
    time.sleep(1.0)  # sent, and taken by a validator (connecting to the silent port)
    return th, out


@pytest.mark.parametrize(
    "which",
    [
        "first process",
        pytest.param(
            "forked validator",
            marks=pytest.mark.skipif(
                len(os.sched_getaffinity(0)) < 2, reason="one core: the worker forks no validator"
            ),
        ),
    ],
)
def test_a_worker_process_that_dies_fails_what_it_ran_at_once_naming_it_and_the_next_suite_gets_a_new_worker(
    cfg, fresh, which
):
    w = started(cfg)
    with hung_server() as port:
        th, out = in_flight(with_(cfg, "postgres", port=port).postgres, cfg)
        members = group(w.proc.pid)
        victim = w.proc.pid if which == "first process" else next(p for p in members if p != w.proc.pid)
        os.kill(victim, signal.SIGKILL)
        th.join(10)
    assert not th.is_alive() and out["took"] < 10  # not the suite's 30 s
    assert isinstance(out["error"], SuiteRunError)
    code = -9 if which == "first process" else 70  # (the first process exits 70 when a validator it forked dies)
    assert f"the Great Expectations worker process (pid {w.proc.pid}) ended with exit code {code}" in str(out["error"])
    deadline = time.monotonic() + 5
    while group(w.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group(w.proc.pid) == []  # the whole group ended: no validator left behind
    users = next(s for s in load_suites() if s.name == "users")
    run = worker.run_suite(users, cfg.postgres, ctx=RunContext(cfg))
    assert run.observation("email_not_null").status.value == "PASS"
    assert worker._WORKER is not w and worker._WORKER.alive


def test_a_worker_that_stops_answering_cannot_hold_a_suite_past_its_deadline_and_is_replaced(cfg, fresh):
    w = started(cfg)
    os.killpg(w.proc.pid, signal.SIGSTOP)
    try:
        users = next(s for s in load_suites() if s.name == "users")
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no answer from the Great Expectations worker within the suite's 2s"):
            worker.run_suite(users, cfg.postgres, timeout=2.0, ctx=RunContext(cfg))
        assert time.monotonic() - t0 < 2.0  # within the check's own budget: what it says is what the check reports
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.proc.pid, signal.SIGCONT)
    assert w._gone.wait(5)
    deadline = time.monotonic() + 5
    while group(w.proc.pid) and time.monotonic() < deadline:  # (SIGKILLed: gone a moment later)
        time.sleep(0.05)
    assert group(w.proc.pid) == []  # a wedged worker is ended...
    run = worker.run_suite(users, cfg.postgres, ctx=RunContext(cfg))  # ...and the next suite gets a new one
    assert run.observation("email_not_null").status.value == "PASS" and worker._WORKER is not w


def test_the_worker_holds_no_secret_and_no_prefect_setting(cfg, fresh, monkeypatch):
    """The password travels in each request over the pipe; the worker's environment and argv hold no secret of the
    run and none of Prefect's settings (an API credential among them)."""
    password = cfg.postgres.password.get_secret_value()
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:prefect-Secret-9f2")
    monkeypatch.setenv("APP_DB_PASSWORD_COPY", password)
    w = started(cfg)
    for pid in group(w.proc.pid):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        for blob in (environ, argv):
            assert password.encode() not in blob and b"prefect-Secret-9f2" not in blob
        assert not [v for v in environ.split(b"\0") if v.startswith(b"PREFECT_")]  # no Prefect setting at all
    users = next(s for s in load_suites() if s.name == "users")
    assert (
        worker.run_suite(users, cfg.postgres, ctx=RunContext(cfg)).observation("email_not_null").status.value == "PASS"
    )


def test_where_the_worker_cannot_start_the_suites_run_in_the_gate_saying_why_once(
    cfg, fresh, tmp_path, monkeypatch, caplog
):
    (tmp_path / "great_expectations.py").write_text("raise ImportError('GX broken on purpose in the worker')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the worker's import of GX fails; this process has its own
    users = next(s for s in load_suites() if s.name == "users")
    with caplog.at_level("WARNING", logger="golive.expectations.worker"):
        for _ in range(2):
            run = worker.run_suite(users, cfg.postgres, ctx=RunContext(cfg))
            assert run.observation("email_not_null").status.value == "PASS"
    assert "GX broken on purpose in the worker" in worker._UNAVAILABLE
    lines = [r.getMessage() for r in caplog.records if r.name == "golive.expectations.worker"]
    assert len(lines) == 1 and "run in the gate's own process" in lines[0] and "GX broken on purpose" in lines[0]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core already: nothing to narrow")
def test_a_worker_allowed_one_core_forks_no_second_validator(cfg, fresh):
    """A container's cpuset or `taskset` leaves the gate fewer cores than the machine has: the worker counts the
    cores it may run on (a second validator on a core it may not use only competes with the first)."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # this thread's: the worker's process inherits it
    try:
        w = started(cfg)
    finally:
        os.sched_setaffinity(0, allowed)
    assert len(group(w.proc.pid)) == 1
    users = next(s for s in load_suites() if s.name == "users")
    run = worker.run_suite(users, cfg.postgres, ctx=RunContext(cfg))
    assert run.observation("email_not_null").status.value == "PASS"


def test_a_suite_file_error_crosses_the_process_boundary_whole():
    e = SuiteError(Path("expectations/suites/users.json"), "expectations[2].kwargs.column", "unknown column 'mail'")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is SuiteError and str(back) == str(e) and back.where == e.where


LONG_KEYS = (
    "CREATE TABLE golive_test_long_keys (k text, v int); "
    "INSERT INTO golive_test_long_keys SELECT repeat(chr(64 + i), 1048576), NULL FROM generate_series(1, 3) AS i; "
    "GRANT SELECT ON golive_test_long_keys TO PUBLIC"
)


def test_a_crafted_key_column_of_megabyte_values_is_evidence_of_200_characters_each(sandbox, cfg, fresh, tmp_path):
    """A key column is whatever the suite names: a target's row can hold megabytes in it. Each example key is clipped
    to 200 characters where it is fetched, so neither the frame the worker answers with nor the evidence carries it."""
    data = {
        "name": "golive_test_long_keys",
        "meta": {"golive": {"table": "golive_test_long_keys", "title": "Long keys", "key_columns": ["k"]}},
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "v"},
                "meta": {
                    "golive": {"fact": "v_not_null", "title": "v has no NULLs", "seed": ["3.1 Data Quality Checks"]}
                },
            }
        ],
    }
    suite = parse_suite(data, tmp_path / "golive_test_long_keys.json")
    try:
        with sandbox.admin_db() as conn:
            conn.execute(LONG_KEYS)
        started(cfg)
        there = worker.run_suite(suite, cfg.postgres, ctx=RunContext(cfg))
        here = in_process(suite, cfg.postgres)
    finally:
        with sandbox.admin_db() as conn:
            conn.execute("DROP TABLE IF EXISTS golive_test_long_keys")
    for run in (there, here):
        obs = run.observation("v_not_null")
        assert obs.status.value == "FAIL" and obs.details["unexpected_count"] == 3
        assert obs.details["example_ids"] == [c * 200 + "..." for c in "ABC"]
    assert facts(there) == facts(here)
    assert len(pickle.dumps(there)) < 64 * 1024  # the worker's whole answer, validation JSON included: no megabyte
    assert len(pickle.dumps(worker._detached(here))) < 64 * 1024  # (what it would answer for the in-process run)
