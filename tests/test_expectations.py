"""Checklist section 3 as Great Expectations suites, against the sandbox's real PostgreSQL.

Every planted defect is made with the superuser connection and undone in a `finally` (the sandbox is shared by the
whole session), and must fail EXACTLY the check that should catch it, across the whole data section.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from datetime import UTC
from pathlib import Path

import pytest

from golive.expectations import catalog_specs, load_suites
from golive.expectations.suites import SuiteError, lint_dir, read_suite
from golive.flows.catalog import seed_items
from golive.flows.readiness import plan
from golive.tasks.catalog import load_catalog
from golive.tasks.core import Status, run_plain, select
from golive.tasks.postgres import SEED_TABLES
from tests.support.checks import as_json, assert_no_secrets, sandbox_config, with_

SUITES = Path(__file__).resolve().parents[1] / "expectations" / "suites"
PLAINTEXT = "hunter2-Plaintext-Pa55word!"  # the planted "password hash" that must never show up anywhere


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


def run_data(cfg, only: str | None = None) -> dict:
    """The whole data section (GX suites and the SQL checks) and its prerequisite, without Prefect; `only`: just
    that check's suite (its group) or SQL check, and what it depends on."""
    specs = plan(cfg, ["data"])
    if only is not None:
        group = specs[only].group
        keep = {i for i, s in specs.items() if i == only or (group and s.group == group)}
        while more := {d for i in keep for d in specs[i].depends_on if d in specs} - keep:
            keep |= more
        specs = {i: s for i, s in specs.items() if i in keep}
    return {r.id: r for r in run_plain(specs, cfg)}


def failing(results: dict) -> set[str]:
    assert not [r.id for r in results.values() if r.status == Status.ERROR], {
        r.id: r.summary for r in results.values() if r.status == Status.ERROR
    }
    return {i for i, r in results.items() if r.status == Status.FAIL}


@contextlib.contextmanager
def planted(sandbox, apply: str, undo: str):
    """A temporary defect in the sandbox database (superuser), always undone."""
    try:
        with sandbox.admin_db() as conn:
            conn.execute(apply)
        yield
    finally:
        with sandbox.admin_db() as conn:
            conn.execute(undo)


# --------------------------------------------------------------------------- the suite files


def test_every_shipped_suite_file_lints_and_maps_to_checks():
    good, errors = lint_dir(SUITES)
    assert errors == [] and len(good) == 11
    assert {s.table for s in good} == {
        "campaigns",
        "users",
        "merchants",
        "notifications",
        "campaign_analytics_daily",
        "campaign_events",
        "merchant_affinity_scores",
        "optimal_send_times",
        "campaign_optimizations",
        "ml_model_versions",
        "job_runs",
    }
    specs = catalog_specs()
    assert len(specs) == sum(len(s.expectations) for s in good)
    known = {i["ref"] for i in seed_items()}
    for cid, spec in specs.items():
        assert re.match(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+\.[a-z0-9_]+$", cid) and cid.startswith("data."), cid
        assert spec.target == "postgres" and spec.depends_on == ("dependencies.postgres.reachable",)
        assert set(spec.seed) <= known and spec.title and spec.description, cid
    # one check per expectation: the seed's 3.1 items are all covered by suites
    covered = {ref for s in specs.values() for ref in s.seed}
    assert {"3.1 Data Quality Checks", "3.1 Referential Integrity", "3.1 Timestamp Consistency"} <= covered
    # no check twice: the suites add to the built-in checks, never replace or shadow one
    full = plan(sandbox_free_config(), ["data"])
    assert {
        "data.rows.counts",
        "data.constraints.valid",
        "data.migrations.version",
        "data.timestamps.timezone",
        "data.compat.queries",
    } <= set(full) and set(specs) <= set(full)


def sandbox_free_config():
    from golive.flows.config import parse_config

    return parse_config({"environment": "x", "postgres": {"host": "h", "dbname": "d", "user": "u"}}, env={})


def test_a_typo_is_rejected_with_one_line_naming_the_file_and_the_field(tmp_path, capsys):
    from golive.deployments.cli import main

    for f in SUITES.glob("*.json"):
        shutil.copy(f, tmp_path)
    users = tmp_path / "users.json"
    users.write_text(users.read_text().replace('"kwargs": {"column": "email"}', '"kwargs": {"colum": "email"}', 1))
    merchants = tmp_path / "merchants.json"
    merchants.write_text(merchants.read_text().replace("match_regex", "match_regexp", 1))
    with pytest.raises(SuiteError) as e:
        from golive.expectations.suites import lint_suite

        lint_suite(read_suite(users))
    assert str(e.value) == (
        f"{e.value.source}: expectations[0].kwargs.colum: unknown argument of "
        "expect_column_values_to_not_be_null (did you mean 'column'?)"
    )
    assert main(["expectations", "lint", str(tmp_path)]) == 3
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2, lines  # one line per bad file, naming it and the field
    assert lines[1].endswith(
        "users.json: expectations[0].kwargs.colum: unknown argument of "
        "expect_column_values_to_not_be_null (did you mean 'column'?)"
    )
    assert (
        "merchants.json: expectations[" in lines[0]
        and ".type: unknown expectation type "
        "'expect_column_values_to_match_regexp' (did you mean 'expect_column_values_to_match_regex'?)"
        in lines[0]
    )
    assert "9 suite(s)" in out and "2 bad" in out
    # golive's own metadata is checked the same way, and a bad file fails the run's plan with that line
    users.write_text(users.read_text().replace('"seed": [', '"sed": [', 1))
    from golive.flows.config import ConfigError

    bad = with_(sandbox_free_config(), "postgres", suites_dir=str(tmp_path))
    with pytest.raises(ConfigError) as ce:
        plan(bad, ["data"])
    assert ce.value.source.endswith("users.json")
    assert ce.value.problems == ["expectations[0].meta.golive.sed: unknown key (did you mean 'seed'?)"]
    assert main(["expectations", "lint", str(tmp_path / "nope")]) == 3


# --------------------------------------------------------------------------- against the sandbox


def test_every_suite_passes_on_the_healthy_sandbox(cfg):
    t0 = time.monotonic()
    res = run_data(cfg)
    took = time.monotonic() - t0
    bad = {i: f"{r.status.value}: {r.summary}" for i, r in res.items() if r.status != Status.PASS}
    assert not bad, bad
    assert took < 15, took
    email = res["data.users.email_format"]
    assert email.observed == "0 of 500 rows unexpected" and email.expected.startswith("every email matches ^")
    assert "Great Expectations 1." in email.evidence and "app_user:***@127.0.0.1" in email.evidence
    assert res["data.notifications.user_id_fk"].observed == "0 orphaned rows"
    assert res["data.users.recent_rows"].severity.value == "advisory"
    # suite parameters were resolved by golive before the suites ran side by side: concrete, current values
    from datetime import datetime, timedelta, timezone

    for cid, delta in (
        ("data.users.updated_at_not_future", timedelta(minutes=5)),
        ("data.notifications.recent_rows", -timedelta(days=7)),
    ):
        stamp = re.search(r"\d{4}-\d\d-\d\dT[\d:.]+Z", res[cid].expected).group(0)
        value = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert abs(value - (datetime.now(UTC) + delta)) < timedelta(minutes=1), (cid, res[cid].expected)
    assert res["data.rows.counts"].observed["users"] == 500  # the documented row-count table stays one check
    assert res["data.timestamps.timezone"].observed.endswith("all timestamptz")
    assert set(res["data.compat.queries"].observed.values()) <= {"50 rows", "100 rows", "100 rows (first 100)"}
    assert_no_secrets(res, cfg)


DEFECTS = {
    "orphaned notification": (
        "SET session_replication_role = replica; INSERT INTO notifications (campaign_id, user_id, channel, status, "
        "created_at, updated_at) VALUES (1, 999999, 'email', 'sent', now() - interval "
        "'1 hour', now() - interval '1 hour'); SET session_replication_role = DEFAULT",
        "DELETE FROM notifications WHERE user_id = 999999",
        "data.notifications.user_id_fk",
    ),
    "NULL email": (
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL; "
        "CREATE TABLE golive_test_keep AS SELECT id, email FROM users WHERE id = 7; UPDATE users SET email = NULL "
        "WHERE id = 7",
        "UPDATE users u SET email = k.email FROM golive_test_keep k WHERE u.id = k.id; DROP TABLE golive_test_keep; "
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        "data.users.email_not_null",
    ),
    "malformed phone": (
        "UPDATE users SET phone = '555-0100 ext. 7' WHERE id = 8",
        "UPDATE users SET phone = '+14155550008' WHERE id = 8",
        "data.users.phone_format",
    ),
    "future timestamp": (
        "CREATE TABLE golive_test_keep AS SELECT id, updated_at FROM notifications WHERE id = 5; "
        "UPDATE notifications SET updated_at = now() + interval '2 days' WHERE id = 5",
        "UPDATE notifications n SET updated_at = k.updated_at FROM golive_test_keep k WHERE n.id = k.id; "
        "DROP TABLE golive_test_keep",
        "data.notifications.updated_at_not_future",
    ),
    "created_at after updated_at": (
        "CREATE TABLE golive_test_keep AS SELECT id, created_at FROM campaigns WHERE id = 3; "
        "UPDATE campaigns SET created_at = updated_at + interval '1 minute' WHERE id = 3",
        "UPDATE campaigns c SET created_at = k.created_at FROM golive_test_keep k WHERE c.id = k.id; "
        "DROP TABLE golive_test_keep",
        "data.campaigns.created_before_updated",
    ),
    "plaintext password": (
        "CREATE TABLE golive_test_keep AS SELECT id, password_hash FROM users WHERE id = 9; "
        f"UPDATE users SET password_hash = '{PLAINTEXT}' WHERE id = 9",
        "UPDATE users u SET password_hash = k.password_hash FROM golive_test_keep k WHERE u.id = k.id; "
        "DROP TABLE golive_test_keep",
        "data.users.password_format",
    ),
    "NOT VALID constraint": (
        "ALTER TABLE notifications ADD CONSTRAINT golive_test_nv FOREIGN KEY (campaign_id) REFERENCES campaigns (id) "
        "NOT VALID",
        "ALTER TABLE notifications DROP CONSTRAINT golive_test_nv",
        "data.constraints.valid",
    ),
    "timestamp without time zone": (
        "ALTER TABLE job_runs ALTER COLUMN finished_at TYPE timestamp USING finished_at AT TIME ZONE 'UTC'",
        "ALTER TABLE job_runs ALTER COLUMN finished_at TYPE timestamptz USING finished_at AT TIME ZONE 'UTC'",
        "data.timestamps.timezone",
    ),
}
EXAMPLE_IDS = {
    "data.users.email_not_null": 7,
    "data.users.phone_format": 8,
    "data.notifications.updated_at_not_future": 5,
    "data.campaigns.created_before_updated": 3,
    "data.users.password_format": 9,
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_planted_defect_fails_exactly_the_check_that_catches_it(sandbox, cfg, defect):
    apply, undo, check_id = DEFECTS[defect]
    with planted(sandbox, apply, undo):
        res = run_data(cfg)
    assert failing(res) == {check_id}, {i: res[i].summary for i in failing(res)}
    r = res[check_id]
    if check_id in EXAMPLE_IDS:  # row-level: the example id, and the query that lists every failing row
        assert r.details["unexpected_count"] == 1, r.evidence
        assert r.details["example_ids"] == [EXAMPLE_IDS[check_id]], r.evidence
        assert r.observed.endswith(f"e.g. id {EXAMPLE_IDS[check_id]}") and "failing rows: `SELECT" in r.evidence
    if check_id == "data.notifications.user_id_fk":
        assert r.observed.startswith("1 orphaned row;") and "NOT (EXISTS" in r.evidence
    assert PLAINTEXT not in as_json(res)
    assert failing(run_data(cfg, only=check_id)) == set()  # undone: the next test sees a healthy database


def test_wrong_schema_version_fails_exactly_the_migration_check(sandbox, cfg):
    with sandbox.fault("schema-version-wrong"):
        res = run_data(cfg)
    assert failing(res) == {"data.migrations.version"}


def test_sensitive_values_are_never_fetched_into_python(sandbox, cfg, monkeypatch):
    """Not only never shown: with a plaintext password planted and its check failing, no row GX or golive fetches
    from PostgreSQL contains it (counts and key columns only; sample queries are LIMIT 0)."""
    import psycopg

    from golive.expectations.runner import run_suite

    fetched: list[str] = []
    for name in ("fetchone", "fetchmany", "fetchall"):
        orig = getattr(psycopg.Cursor, name)

        def spy(self, *a, _orig=orig, **k):
            rows = _orig(self, *a, **k)
            fetched.append(repr(rows))
            return rows

        monkeypatch.setattr(psycopg.Cursor, name, spy)
    apply, undo, _ = DEFECTS["plaintext password"]
    users = next(s for s in load_suites() if s.name == "users")
    with planted(sandbox, apply, undo):
        run = run_suite(users, cfg.postgres)
    obs = run.observation("password_format")
    assert obs.status == Status.FAIL and obs.details["example_ids"] == [9]
    assert fetched and not any(PLAINTEXT in f for f in fetched)
    assert PLAINTEXT not in json.dumps(run.validation)


def test_suite_runs_dispose_their_engines_and_are_read_only(sandbox, cfg):
    from golive.expectations.runner import run_suite

    suites = load_suites()
    for s in suites[:3]:
        run_suite(s, cfg.postgres)
    deadline = time.monotonic() + 3
    while True:  # a backend exits a moment after its client closed the connection
        with sandbox.admin_db() as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'golive-gx'"
            ).fetchone()[0]
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == 0  # every SQLAlchemy engine GX created was disposed
    # what every transaction of a suite run gets: READ ONLY, and a statement_timeout inside the budget
    import sqlalchemy as sa

    from golive.expectations.runner import _guard, _url

    url, kwargs = _url(cfg.postgres, 10)
    engine = sa.create_engine(url, **kwargs)
    _guard(engine, time.monotonic() + 10)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            assert 9000 <= int(conn.exec_driver_sql("SHOW statement_timeout").scalar().rstrip("ms")) <= 10000
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                conn.exec_driver_sql("CREATE TABLE golive_must_not_exist (i int)")
    finally:
        engine.dispose()
    assert "golive-gx" in url and cfg.postgres.password.get_secret_value() not in url  # the password: connect args


def test_unreachable_database_skips_the_section_with_the_cause_and_never_hangs(sandbox, cfg):
    t0 = time.monotonic()
    with sandbox.fault("postgres-down"):
        res = run_data(cfg)
    assert time.monotonic() - t0 < 12
    assert res["dependencies.postgres.reachable"].status == Status.ERROR
    data = [r for r in res.values() if r.section == "data"]
    assert len(data) == len(catalog_specs()) + 5  # every suite check and the five SQL data checks
    assert all(r.status == Status.SKIPPED for r in data)
    assert all(r.cause.startswith("skipped: dependencies.postgres.reachable is ERROR") for r in data)
    # the runner on its own (no dependency in front of it): an ERROR within the budget, not a hang
    from golive.expectations.runner import SuiteRunError, run_suite

    closed = with_(cfg, "postgres", port=_closed_port())
    t0 = time.monotonic()
    with pytest.raises(SuiteRunError, match="(?i)refused|connect"):
        run_suite(load_suites()[0], closed.postgres, timeout=3)
    assert time.monotonic() - t0 < 5


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_backward_compatibility_queries(cfg):
    from tests.support.checks import run_one

    c = with_(
        cfg,
        "postgres",
        backward_compat_queries={
            "old users": "SELECT id, created_at FROM users ORDER BY created_at LIMIT 3;",
            "renamed column": "SELECT id, fullname FROM users",
            "nothing old": "SELECT * FROM users WHERE false",
        },
    )
    r = run_one("data.compat.queries", c)
    assert r.status == Status.FAIL
    assert r.observed["old users"] == "3 rows" and r.observed["nothing old"] == "0 rows"
    assert r.observed["renamed column"].startswith('error: column "fullname" does not exist')
    assert r.details["failing"] == ["nothing old", "renamed column"]
    assert (
        run_one("data.compat.queries", with_(cfg, "postgres", backward_compat_queries={})).status
        == Status.NOT_APPLICABLE
    )


# --------------------------------------------------------------------------- scaffolding


def test_scaffold_writes_reviewable_suites_from_the_live_schema(sandbox, cfg, tmp_path, capsys):
    from golive.deployments.cli import main

    setup = (
        "CREATE TABLE gl_customers (id bigint PRIMARY KEY, name text NOT NULL); "
        "CREATE TABLE gl_orders (id bigint PRIMARY KEY, gl_customer_id bigint, shop_id bigint, "
        "contact_email text, api_token text, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL); "
        "ALTER TABLE gl_orders ADD CONSTRAINT gl_shop_fk FOREIGN KEY (shop_id) REFERENCES gl_customers (id) NOT VALID; "
        "GRANT SELECT ON gl_customers, gl_orders TO app_user; "
        "INSERT INTO gl_customers VALUES (1, 'a'); "
        "INSERT INTO gl_orders VALUES (1, 1, 1, 'a@example.com', 't', now(), now()), "
        "(2, 42, 1, 'not-an-email', 't', now(), now())"
    )
    with planted(sandbox, setup, "DROP TABLE gl_orders, gl_customers"):
        config = tmp_path / "env.yaml"
        config.write_text(Path(sandbox.config_path).read_text())
        out = tmp_path / "suites"
        assert main(["expectations", "scaffold", "--config", str(config), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        # one suite per table the app user reads: the 11 of the checklist, the 2 planted here and the sandbox
        # app's own (the audit log, the scheduler's job store, heartbeat and run requests)
        written = sorted(p.stem for p in out.glob("*.json"))
        assert set(written) == {
            *SEED_TABLES,
            "gl_customers",
            "gl_orders",
            "audit_log",
            "apscheduler_jobs",
            "scheduler_heartbeat",
            "job_run_requests",
        }, written
        assert printed.count("wrote ") == len(written) == 17 and "golive expectations lint" in printed
        good, errors = lint_dir(out)
        assert errors == [] and len(good) == 17
        orders = read_suite(out / "gl_orders.json")
        facts = {e.fact: e for e in orders.expectations}
        assert facts["gl_customer_id_fk"].kwargs == {
            "column": "gl_customer_id",
            "parent_table": "gl_customers",
            "parent_column": "id",
        }
        assert "by naming convention" in facts["gl_customer_id_fk"].title
        assert "NOT VALID" in facts["shop_id_fk"].title
        assert facts["contact_email_format"].type == "expect_column_values_to_match_regex"
        assert orders.sensitive_columns == ("api_token",) and orders.key_columns == ("id",)
        assert {"created_at_not_null", "created_at_not_future", "created_before_updated", "recent_rows"} <= set(facts)
        # the starter suite runs as it is, and finds what is wrong in the new tables
        specs = catalog_specs(out)
        c = with_(cfg, "postgres", suites_dir=str(out))
        picked = select({**load_catalog(), **specs}, ids=[i for i in specs if ".gl_orders." in i])  # + reachable
        res = {r.id: r for r in run_plain(picked, c)}
        assert {i for i, r in res.items() if r.status != Status.PASS} == {
            "data.gl_orders.gl_customer_id_fk",
            "data.gl_orders.contact_email_format",
        }
        assert res["data.gl_orders.gl_customer_id_fk"].details["example_ids"] == [2]
        # the shipped suites are this scaffold, reviewed: the same checks for the checklist's 11 tables
        shipped = {(s.name, e.fact) for s in load_suites() for e in s.expectations}
        scaffolded = {(s.name, e.fact) for s in good if s.name in SEED_TABLES for e in s.expectations}
        assert shipped == scaffolded
        # an existing file is kept unless --force
        assert main(["expectations", "scaffold", "--config", str(config), "--out", str(out), "--table", "users"]) == 0
        assert "kept  " in capsys.readouterr().out


# --------------------------------------------------------------------------- the flow, Data Docs and secrets


def test_no_planted_secret_in_any_artifact_log_report_or_data_docs(sandbox, prefect_api, tmp_path, capfd):
    import asyncio

    import yaml

    from tests.support.flows import artifact, run_flow

    data = yaml.safe_load(Path(sandbox.config_path).read_text())
    docs = tmp_path / "docs"
    data["postgres"]["data_docs_dir"] = str(docs)
    config = tmp_path / "sandbox.yaml"
    config.write_text(yaml.safe_dump(data))
    apply, undo, _ = DEFECTS["plaintext password"]
    with planted(sandbox, apply, undo):
        report, state = run_flow(config, mode="ci", out=tmp_path / "reports", sections=["data"])
    res = {r.id: r for r in report.results}
    assert res["data.users.password_format"].status == Status.FAIL
    assert {r.id for r in report.results if r.status not in (Status.PASS, Status.NOT_APPLICABLE)} == {
        "data.users.password_format"
    }
    from golive.deployments.cli import _drain_prefect

    _drain_prefect()  # the log lines still queued in this process reach the server first
    out, err = capfd.readouterr()
    logs = asyncio.run(_all_logs())
    assert any("data.users.password_format" in m for m in logs)
    link = asyncio.run(artifact("golive-data-docs-sandbox"))
    url = re.fullmatch(r"\[Data Docs: 11 suites\]\((file://\S+/index\.html)\)", link["data"]).group(1)
    index = Path(url[len("file://") :])
    assert index.is_file() and docs in index.parents
    pages = [p.read_text(errors="replace") for p in docs.rglob("*.html")]
    assert len(pages) == 1 + 2 * 11 and any("password_hash" in p for p in pages)  # index, suites, validations
    artifacts = [json.dumps(asyncio.run(artifact(f"golive-{k}-sandbox"))) for k in ("report", "checks", "verdict")]
    files = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    haystack = "\n".join([out, err, *logs, *artifacts, json.dumps(link), *files, report.model_dump_json()])
    assert PLAINTEXT not in haystack
    for secret in sandbox.env.values():
        assert secret not in haystack


async def _all_logs() -> list[str]:
    """Every log line the Prefect server holds (the run, its sections and its ~160 task runs), page by page."""
    from prefect.client.orchestration import get_client

    out: list[str] = []
    async with get_client() as c:
        while True:
            page = await c.read_logs(limit=200, offset=len(out))
            out += [log.message for log in page]
            if len(page) < 200:
                return out


def test_data_docs_copy_to_s3(sandbox, cfg, tmp_path, monkeypatch):
    from golive.expectations.docs import build_data_docs, upload
    from golive.expectations.runner import run_suite
    from golive.sandbox import configfile
    from golive.sandbox.parts import s3

    runs = [run_suite(s, cfg.postgres) for s in load_suites() if s.name in ("users", "merchants")]
    index = build_data_docs(runs, tmp_path / "docs")
    assert index is not None and index.name == "index.html"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sandbox.env[configfile.ENV_S3])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    url = upload(tmp_path / "docs", f"s3://{s3.BUCKET}/golive-test-docs/", endpoint_url=sandbox.urls["s3"])
    assert url == f"s3://{s3.BUCKET}/golive-test-docs/index.html"
    client = sandbox.s3_client()
    try:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3.BUCKET, Prefix="golive-test-docs/")["Contents"]]
        assert "golive-test-docs/index.html" in keys and any(k.endswith("/users.html") for k in keys)
        head = client.head_object(Bucket=s3.BUCKET, Key="golive-test-docs/index.html")
        assert head["ContentType"] == "text/html"
    finally:
        s3.delete_prefix(client, "golive-test-docs/")


def test_a_server_that_stops_answering_mid_suite_ends_the_suite_thread(sandbox, cfg):
    """Connected and validating, then a query never gets an answer: the run ends just after its budget (the
    watchdog closes the connections), instead of leaving a thread blocked on the socket."""
    from golive.expectations.runner import SuiteRunError, run_suite
    from tests.support.servers import swallowing_proxy

    notifications = next(s for s in load_suites() if s.name == "notifications")
    with swallowing_proxy(sandbox.ports["postgres"], trigger=b"golive_parent") as port:  # the orphan query
        t0 = time.monotonic()
        with pytest.raises(SuiteRunError, match="timed out: no answer"):
            run_suite(notifications, with_(cfg, "postgres", port=port).postgres, timeout=2.0)
        assert time.monotonic() - t0 < 2.0 + 2.5  # the timeout + a busy 2-core machine's slack (1.5 s seen)
