"""Stock-server conformance (issue #11): the whole catalog against an environment built from Debian's own server
packages with their stock configuration (tests/stock/env.py), configured the way a user writes a golive config.

Every check must PASS or be NOT_APPLICABLE with its reason: a FAIL here is either the environment (fixed there, the
way an operator would) or golive refusing a healthy real-world form (fixed in the check). Run with
`pytest -m stock` (Debian's postgresql, pgbouncer, redis-server, nginx-light, prometheus, prometheus-alertmanager,
prometheus-node-exporter installed; a missing one is a failure naming it, never a skip).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
import redis

from golive.flows.config import load_config
from golive.flows.readiness import plan
from golive.flows.report import build_report
from golive.sandbox import procs
from golive.tasks.catalog import load_catalog
from golive.tasks.core import Redactor, Status, run_plain
from tests.stock.env import (
    APP_USER,
    BACKUP_PREFIX,
    BUCKET,
    CONFIG_PREFIX,
    DBNAME,
    ENV,
    REPO,
    S3_HOST,
    WAL_PREFIX,
    StockEnv,
    missing_packages,
)
from tests.support.checks import assert_no_secrets
from tests.support.cli import assert_no_leak, golive

pytestmark = [pytest.mark.stock, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def stock():
    if missing := missing_packages():
        pytest.fail(
            f"Debian server packages missing: {', '.join(missing)} (apt-get install -y postgresql "
            "pgbouncer redis-server nginx-light prometheus prometheus-alertmanager prometheus-node-exporter)"
        )
    with StockEnv.start() as env:
        yield env


@pytest.fixture(scope="module")
def user_env(stock):
    """What the operator exports: the secrets the config references, nothing else (the private CA is each TLS
    target's own `ca_file` / `sslrootcert` in the config: no process-wide PGSSLROOTCERT, AWS_CA_BUNDLE, ...)."""
    mp = pytest.MonkeyPatch()
    for k in ("PGSSLROOTCERT", "AWS_CA_BUNDLE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        mp.delenv(k, raising=False)
    for k, v in stock.secrets.items():
        mp.setenv(k, v)
    yield
    mp.undo()


def test_the_servers_are_the_distributions(stock):
    """Not the sandbox: the versions Debian 12 ships answer on the ports golive is given."""
    with psycopg.connect(stock.pg_conninfo(dbname=DBNAME, user=APP_USER)) as c:
        assert c.info.server_version // 10000 == 15
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    info = redis.Redis(port=stock.ports["redis"], password=stock.secrets[ENV["redis"]]).info()
    assert info["redis_version"].startswith("7.") and info["maxmemory_policy"] == "allkeys-lru"
    r = httpx.get(f"https://localhost:{stock.ports['https']}/health", verify=str(stock.ca_file))
    assert r.status_code == 200 and r.headers["server"].startswith("nginx")
    shown = subprocess.run(
        [
            "openssl",
            "s_client",
            "-showcerts",
            "-connect",
            f"127.0.0.1:{stock.ports['https']}",
            "-servername",
            "localhost",
        ],
        input=b"",
        capture_output=True,
        timeout=10,
        check=False,
    ).stdout
    assert shown.count(b"BEGIN CERTIFICATE") == 3 and b"Legacy Root CA X3" in shown  # the long chain is served
    build = httpx.get(f"http://127.0.0.1:{stock.ports['prometheus']}/api/v1/status/buildinfo").json()["data"]
    assert build["version"].startswith("2.")
    assert len(stock.backup_keys) == 30


def test_every_check_passes_or_is_not_applicable_with_a_reason(stock, user_env):
    cfg = load_config(stock.config_path)
    specs = plan(cfg, None)  # checks.skip applied, as the flow and golive check do
    assert set(load_catalog()) <= set(specs)  # the whole catalog (+ the data suites' checks)
    results = run_plain(specs, cfg, redact=Redactor(cfg.secrets()))
    by_id = {r.id: r for r in results}
    bad = {
        r.id: f"{r.status.value}: {r.observed!r} (expected {r.expected!r}) {r.cause or ''}"
        for r in results
        if r.status not in (Status.PASS, Status.NOT_APPLICABLE)
    }
    assert not bad, "\n".join(f"{k}: {v}" for k, v in sorted(bad.items()))
    unexplained = [r.id for r in results if r.status == Status.NOT_APPLICABLE and not (r.cause or "").strip()]
    assert not unexplained, unexplained
    report = build_report(results, environment=cfg.environment, mode="check", started_at=dt.datetime.now(dt.UTC))
    assert report.verdict.exit_code == 0, report.verdict
    counts = collections.Counter(r.status for r in results)
    assert counts[Status.PASS] >= 220, counts  # what the environment runs is really checked
    # the stock forms were the ones judged
    assert by_id["performance.lb.distribution"].observed["algorithm_family"] == "least_connections"
    assert "declared 10000 Mb/s" in str(by_id["infrastructure.backend.link"].observed)  # a veth: speed -1
    assert by_id["backup.s3.retention"].status == Status.PASS
    assert by_id["dependencies.redis.replication"].status == Status.PASS
    assert by_id["backup.restore.test"].status == Status.PASS
    assert_no_secrets(by_id, cfg)


def test_config_init_on_the_stock_servers_validates_and_runs_go(stock, tmp_path):
    """README "Your first real run", step by step, as a new user: `golive config init` with the addresses a team
    knows (passwords inside the DSN and the Redis URL, the private CA once as --ca-file, S3 credentials from boto3's
    chain), the unedited file validates and `golive check --config` on it is GO; no password anywhere."""
    p, s, ca = stock.ports, stock.secrets, str(stock.ca_file)
    db_pw, redis_pw = s[ENV["db"]], s[ENV["redis"]]
    shell = {
        k: v
        for k, v in os.environ.items()  # a team member's shell: no golive, sandbox, Prefect or TLS exports
        if not k.startswith(("STOCK_", "GOLIVE_", "PREFECT_", "AWS_", "PGSSL", "SSL_CERT", "REQUESTS_CA"))
    }
    shell |= {
        "AWS_ACCESS_KEY_ID": "AKIASTOCKBACKUPREADER",
        "AWS_SECRET_ACCESS_KEY": s[ENV["s3"]],
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    out = tmp_path / "envs" / "stock.yaml"
    flags = {
        "--environment": "stock-init",
        "--out": str(out),
        "--site-url": f"https://localhost:{p['https']}",
        "--database-dsn": f"postgresql://{APP_USER}:{quote(db_pw, safe='')}@127.0.0.1:{p['pg']}/{DBNAME}"
        "?sslmode=verify-full",
        "--redis-url": f"redis://:{quote(redis_pw, safe='')}@127.0.0.1:{p['redis']}/0",
        "--s3-bucket": BUCKET,
        "--s3-endpoint": f"https://{S3_HOST}:{p['s3']}",
        "--prometheus-url": f"http://localhost:{p['prometheus']}",
        "--smtp-host": f"localhost:{p['smtp']}",
        "--ca-file": ca,
    }
    t0 = time.monotonic()
    r = golive("config", "init", *(x for kv in flags.items() for x in kv), env=shell)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 60, "discovery is bounded (10 s per server)"
    text, suites = out.read_text(), sorted((out.parent / "suites-stock-init").glob("*.json"))
    assert suites and "Written commented out" not in text, text  # every server answered
    for secret in (db_pw, redis_pw):
        assert_no_leak(secret, text, r.stdout, r.stderr, *(x.read_text() for x in suites))
    assert "export before `golive check`: GOLIVE_POSTGRES_PASSWORD, GOLIVE_REDIS_PASSWORD" in r.stdout

    secrets = {"GOLIVE_POSTGRES_PASSWORD": db_pw, "GOLIVE_REDIS_PASSWORD": redis_pw}
    cfg = load_config(out, env=secrets)
    # the stock forms were discovered: the private CA on every TLS target, the interval job, the nested S3 layout
    assert {str(x) for x in (cfg.postgres.sslrootcert, cfg.backups.ca_file, cfg.smtp.ca_file, cfg.web.ca_file)} == {ca}
    assert cfg.workers.jobs["merchant_affinity_update"] == "every 6h" and cfg.workers.heartbeat_table is None
    assert cfg.workers.jobs["weekly_model_retraining"] == "0 3 * * 1"
    assert (cfg.backups.prefix, cfg.backups.wal_prefix, cfg.backups.config_prefix) == (
        BACKUP_PREFIX,
        WAL_PREFIX,
        CONFIG_PREFIX,
    )
    assert cfg.redis.replica_urls == [f"redis://127.0.0.1:{p['redis_replica']}/0"]
    assert cfg.monitoring.roles == {}  # `localhost:<port>` names no role: left to the user, not guessed
    for line in (
        "merchant_affinity_update: every 6h",
        f"prefix: {BACKUP_PREFIX}  # discovered, review",
        "expected_title: SwipeSavvy  # discovered, review",
        "# alert 'database down': PostgresDown",
    ):
        assert line in text, line

    v = golive("config", "validate", str(out), env=shell | secrets)
    assert v.returncode == 0, v.stdout + v.stderr
    c = golive("check", "--config", str(out), env=shell | secrets)
    assert c.returncode == 0 and "VERDICT: GO " in c.stdout, c.stdout[-6000:] + c.stderr[-2000:]
    lines = [ln.split(None, 3) for ln in c.stdout.splitlines() if ln.startswith("  ") and len(ln.split()) >= 3]
    status = {x[2]: x[1] for x in lines if x[1] in ("PASS", "WARN", "FAIL", "ERROR", "SKIPPED", "NOT_APPLICABLE")}
    assert collections.Counter(status.values())["PASS"] >= 200, collections.Counter(status.values())
    assert all(
        status[k] == "PASS"
        for k in (
            "application.workers.jobs",
            "backup.s3.retention",
            "infrastructure.tls.chain",
            "dependencies.postgres.reachable",
            "dependencies.redis.replication",
            "security.admin.mfa",
            "monitoring.alerts.critical",
        )
    ), status
    unexplained = [x[2] for x in lines if x[1] == "NOT_APPLICABLE" and len(x) < 4]
    assert not unexplained, unexplained
    assert_no_leak(db_pw, c.stdout, c.stderr)
    assert_no_leak(redis_pw, c.stdout, c.stderr)


OWNER = """
import json, time
from tests.stock.env import StockEnv
from golive.sandbox import procs
e = StockEnv.start()
pids = [q for p in e.procs.values() for q in (p.pid, *procs.descendants(p.pid))]
print(json.dumps({"pids": pids, "base": str(e.base), "ports": list(e.ports.values())}), flush=True)
time.sleep(600)
"""


def test_every_server_dies_with_the_process_that_started_it(stock):
    """SIGKILL the owner (no atexit, no cleanup): PR_SET_PDEATHSIG takes every server down with it, postmaster's
    backends and nginx included (it runs without a master process for this)."""
    owner = procs.spawn(
        [sys.executable, "-c", OWNER], cwd=REPO, capture=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    try:
        assert select.select([owner.stdout], [], [], 150)[0], "the environment did not come up"
        started = json.loads(owner.stdout.readline())
        assert len(started["pids"]) >= 15 and all(procs.proc_identity(p) for p in started["pids"])
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 20
        while (alive := [p for p in started["pids"] if procs.proc_identity(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in alive]
    finally:
        owner.kill()
        owner.wait()
        if "started" in locals():
            shutil.rmtree(started["base"], ignore_errors=True)
