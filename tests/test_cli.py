"""The `golive` command line: config validation, schema, catalog, exit codes, and the demo end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from golive.deployments.cli import main
from golive.flows.catalog import coverage, render_catalog, seed_items, unknown_seed_refs
from golive.flows.config import load_config

REPO = Path(__file__).resolve().parents[1]


def golive(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *args],
        cwd=REPO,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_config_validate_names_every_bad_key_and_exits_3(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "environment: Prod!\nredis: {url: http://cache:6379, pasword: x}\n"
        "web: {base_url: http://a.example}\npostgres: {host: db, dbname: d, user: u, password: '${NOPE_X}'}\n"
    )
    assert main(["config", "validate", str(bad)]) == 3
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}: postgres.password: environment variable NOPE_X is not set" in err
    bad.write_text(bad.read_text().replace("${NOPE_X}", "pw"))
    assert main(["config", "validate", str(bad)]) == 3
    err = capsys.readouterr().err
    for line in (
        "environment: String should match pattern",
        "redis.url: not a redis:// or rediss:// URL",
        "redis.pasword: unknown key (typo?)",
        "web.base_url: must be an https:// URL",
    ):
        assert f"{bad}: {line}" in err
    assert len(err.strip().splitlines()) == 4  # one line per problem


def test_config_validate_yaml_syntax_error_and_missing_file(tmp_path, capsys):
    f = tmp_path / "x.yaml"
    f.write_text("environment: [unclosed\n")
    assert main(["config", "validate", str(f)]) == 3
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["config", "validate", str(tmp_path / "missing.yaml")]) == 3
    assert "cannot read" in capsys.readouterr().err


def test_example_production_config_is_valid(monkeypatch, tmp_path):
    env = {
        k: "value-of-" + k
        for k in (
            "GOLIVE_WEB_PASSWORD",
            "GOLIVE_DB_PASSWORD",
            "GOLIVE_SMTP_PASSWORD",
            "GOLIVE_BACKUP_ACCESS_KEY_ID",
            "GOLIVE_BACKUP_SECRET_ACCESS_KEY",
            "GOLIVE_PGBOUNCER_PASSWORD",
        )
    }
    cfg = load_config(
        REPO / "examples" / "production.yaml", env=env, secret_loader=lambda name: f"block-value-of-{name}"
    )
    assert cfg.environment == "production" and cfg.web.min_cert_days == 30
    assert cfg.redis.password.get_secret_value() == "block-value-of-golive-redis-password"
    assert "block-value-of-golive-redis-password" in cfg.secrets()
    assert "value-of-GOLIVE_DB_PASSWORD" not in repr(cfg)  # SecretStr never prints
    # every section of the checklist has its part of the example
    assert all(
        getattr(cfg, k) is not None
        for k in (
            "hosts",
            "network",
            "loadbalancer",
            "loadtest",
            "app",
            "workers",
            "security",
            "pgbouncer",
            "saas",
            "containers",
            "observability",
            "notify",
            "deploy",
        )
    )
    assert "approval" in yaml.safe_load(
        (REPO / "examples" / "production.yaml").read_text()
    )  # written out, not defaulted


def test_golive_check_honours_checks_skip_like_the_flow(tmp_path, capsys):
    """An excluded check lands NOT_APPLICABLE saying why, in `golive check` as in the readiness flow (`plan`)."""
    from golive.flows.readiness import SKIP_REASON, plan

    base = "environment: t\nsmtp: {host: smtp.example, hourly_capacity: 100}\n"
    low = tmp_path / "low.yaml"
    low.write_text(base)
    assert main(["check", "--config", str(low), "--check", "dependencies.smtp.capacity"]) == 1  # advisory FAIL
    skipped = tmp_path / "skipped.yaml"
    skipped.write_text(base + "checks: {skip: [dependencies.smtp.capacity]}\n")
    capsys.readouterr()
    assert main(["check", "--config", str(skipped), "--check", "dependencies.smtp.capacity"]) == 0
    assert SKIP_REASON in capsys.readouterr().out
    from golive.tasks.core import Status, run_plain

    spec = plan(load_config(skipped), ["dependencies"])["dependencies.smtp.capacity"]
    (r,) = run_plain({spec.id: spec}, load_config(skipped))
    assert r.status == Status.NOT_APPLICABLE and r.cause == SKIP_REASON
    # a check whose needs are not configured here still says why it did not run: it was excluded (no dependencies:
    # run alone, it lands on its own)
    repo = tmp_path / "repo.yaml"
    repo.write_text("environment: t\nsecurity: {}\nchecks: {skip: [security.secrets.repository]}\n")
    spec = plan(load_config(repo), ["security"])["security.secrets.repository"]
    assert spec.depends_on == ()
    (r,) = run_plain({spec.id: spec}, load_config(repo))
    assert r.status == Status.NOT_APPLICABLE and r.cause == SKIP_REASON


def test_schema_and_usage_errors():
    r = golive("config", "schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert {"web", "postgres", "redis", "smtp", "backups", "monitoring", "team"} <= set(schema["properties"])
    r = golive("frobnicate")
    assert r.returncode == 3 and "invalid choice" in r.stderr
    r = golive("demo", "--break", "no-such-fault")
    assert r.returncode == 3 and "unknown fault 'no-such-fault'" in r.stderr
    r = golive("--help")
    assert r.returncode == 0 and "2  NO-GO" in r.stdout and "4  the gate itself failed" in r.stdout


def test_catalog_lists_every_check_with_known_seed_items():
    r = golive("catalog", "--format", "json")
    rows = json.loads(r.stdout)
    assert r.returncode == 0 and len(rows) >= 27
    sections = {row["section"] for row in rows}
    assert sections == {
        "infrastructure",
        "dependencies",
        "data",
        "application",
        "security",
        "performance",
        "monitoring",
        "backup",
        "team",
    }
    for row in rows:
        assert row["seed"] and row["timeout_s"] > 0 and row["severity"] in ("blocking", "advisory"), row["id"]
    assert unknown_seed_refs() == []
    assert len(seed_items()) == 112 and len(coverage()) == 112


def test_docs_checklist_is_generated_from_the_code():
    assert (REPO / "docs" / "checklist.md").read_text() == render_catalog(fmt="md"), (
        "docs/checklist.md is stale: run `golive catalog --format md > docs/checklist.md`"
    )


# the Foundation's acceptance: `golive demo --break tls-expiry` and at least four other faults print NO-GO naming the
# failing check and its evidence (the four others in one demo run: each its own sandbox start otherwise)
@pytest.mark.parametrize(
    "faults",
    [
        {"tls-expiry": "infrastructure.tls.expiry"},
        {
            "hsts-short": "security.headers.hsts",
            "redis-noeviction": "dependencies.redis.memory",
            "backup-unencrypted": "backup.s3.encrypted",
            "postgres-down": "dependencies.postgres.reachable",
        },
    ],
    ids=["tls-expiry", "four-more"],
)
@pytest.mark.e2e
def test_demo_break_prints_no_go_naming_the_check_and_evidence(faults, tmp_path):
    args = [a for f in faults for a in ("--break", f)]
    r = golive("demo", *args, "--out", str(tmp_path), timeout=240)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert "VERDICT: NO-GO" in r.stdout
    blocking = r.stdout.split("Blocking:", 1)[1]
    for check in faults.values():
        assert check in blocking, check
        after = blocking.split(check, 1)[1]
        assert "evidence:" in after[:600], (check, after[:300])  # the evidence line right under the check
    assert json.loads((tmp_path / "sandbox" / "latest" / "report.json").read_text())["verdict"] == "NO-GO"
    assert re.search(r"^demo phases: (.*\| )?sandbox [0-9.]+ s \|.* checks [0-9.]+ s \|.*\| total ", r.stdout, re.M)


@pytest.mark.e2e
def test_demo_signs_off_deploys_and_rolls_back_a_broken_release(tmp_path):
    r = golive(
        "demo",
        "--approve",
        "Samuel Adeyemi:CTO",
        "--approve",
        "Grace Liu:VP Engineering",
        "--break-release",
        "--out",
        str(tmp_path),
        timeout=300,
    )
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    assert "DECISION: GO" in r.stdout
    assert "DEPLOY: ROLLED-BACK" in r.stdout and "API not responding" in r.stdout
    assert "health now reports version 1.4.0" in r.stdout


def test_demo_approve_needs_name_and_known_role_and_a_known_release():
    r = golive("demo", "--approve", "Samuel Adeyemi")
    assert r.returncode == 3 and "--approve: expected 'NAME:ROLE'" in r.stderr
    r = golive("demo", "--approve", "Samuel Adeyemi:CTO", "--release", "9.9.9")
    assert r.returncode == 3 and "--release: unknown sandbox release '9.9.9'" in r.stderr


def test_progress_lines_never_hold_the_run_up_and_all_come_out_in_order():
    # the board calls the listener on the run's event loop: it hands each line over and goes on, even while the
    # terminal takes nothing; leaving the block writes every queued line, in order, before the report
    import datetime as dt
    import io
    import threading

    from rich.console import Console

    from golive.deployments.cli import _Progress
    from golive.tasks.core import CheckResult, Severity, Status

    taken = threading.Event()

    class StuckTerminal(io.StringIO):
        def write(self, s: str) -> int:
            taken.wait(20)
            return super().write(s)

    out = StuckTerminal()
    now = dt.datetime.now(dt.UTC)
    results = [
        CheckResult(
            id=f"infrastructure.web.check_{i}",
            title=f"check {i}",
            section="infrastructure",
            severity=Severity.BLOCKING,
            seed=["1.1"],
            status=Status.PASS,
            started_at=now,
            finished_at=now,
            duration_s=0.01,
        )
        for i in range(5)
    ]
    with _Progress(Console(file=out, width=160, highlight=False, emoji=False)) as listener:
        for r in results:
            listener(r)  # (written synchronously, the first call would wait for the terminal)
        assert out.getvalue() == "" and not taken.is_set()
        taken.set()
    assert [line.split()[2] for line in out.getvalue().splitlines()] == [r.id for r in results]
