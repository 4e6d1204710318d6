"""`golive config init` (issue #11): a starter config from the URLs a team knows, run as a user would.

Against the real sandbox (its URLs, its DSN with the password in it, not its own config helper): the file validates,
`golive check` on it is GO, and no password is in the file, the suites or any output. Then the attacks and the
failures: an unreachable and a hung Prometheus, a database without the tables the defaults name, a crafted pickle in
the job store, credentials in flags that have no secret field, an existing file.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from golive.deployments.cli import main
from golive.flows.config import load_config
from tests.support.cli import assert_no_leak, golive

REPO = Path(__file__).resolve().parents[1]


def user_env(**extra: str) -> dict[str, str]:
    """A shell without the sandbox's exported secrets or a Prefect API: what a team member has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLIVE_SANDBOX_", "PREFECT_", "AWS_"))}
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_args(sb, out: Path, **override: str) -> list[str]:
    p, env = sb.ports, sb.env
    flags = {
        "--environment": "sandbox-init",
        "--site-url": sb.urls["web"],
        "--database-dsn": f"postgresql://app_user:{env['GOLIVE_SANDBOX_DB_PASSWORD']}@127.0.0.1:{p['postgres']}"
        "/merchants_prod",
        "--redis-url": f"redis://:{env['GOLIVE_SANDBOX_REDIS_PASSWORD']}@127.0.0.1:{p['redis']}/0",
        "--s3-bucket": "golive-backups",
        "--s3-endpoint": sb.urls["s3"],
        "--prometheus-url": sb.urls["prometheus"],
        "--smtp-host": f"127.0.0.1:{p['smtp']}",
        "--ca-file": str(sb.ca_file),
        "--out": str(out),
        **override,
    }
    return ["config", "init", *(x for kv in flags.items() for x in kv)]


@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
def test_init_against_the_sandbox_validates_and_runs_go(sandbox, tmp_path):
    sb = sandbox
    out = tmp_path / "golive-sandbox-init.yaml"
    aws = {"AWS_ACCESS_KEY_ID": sb.s3_reader[0], "AWS_SECRET_ACCESS_KEY": sb.s3_reader[1]}
    db_pw, redis_pw = sb.env["GOLIVE_SANDBOX_DB_PASSWORD"], sb.env["GOLIVE_SANDBOX_REDIS_PASSWORD"]
    r = golive(*init_args(sb, out), env=user_env(**aws))
    assert r.returncode == 0, r.stdout + r.stderr
    text = out.read_text()
    suites = sorted((tmp_path / "suites-sandbox-init").glob("*.json"))
    assert len(suites) >= 10
    for secret in (db_pw, redis_pw):
        assert_no_leak(secret, text, r.stdout, r.stderr, *(p.read_text() for p in suites))
    assert "${GOLIVE_POSTGRES_PASSWORD}" in text and "${GOLIVE_REDIS_PASSWORD}" in text
    assert "GOLIVE_POSTGRES_PASSWORD" in r.stdout and "GOLIVE_REDIS_PASSWORD" in r.stdout

    secrets = {"GOLIVE_POSTGRES_PASSWORD": db_pw, "GOLIVE_REDIS_PASSWORD": redis_pw}
    cfg = load_config(out, env=secrets)
    # what was discovered, each marked for review
    from golive.tasks.workers import SEED_JOBS, parse_cadence

    assert set(cfg.workers.jobs) == set(SEED_JOBS)  # the sandbox scheduler's five (its cadences: the GO below)
    assert parse_cadence(cfg.workers.jobs["weekly_model_retraining"]) == parse_cadence("0 3 * * mon")
    assert cfg.workers.heartbeat_table == "scheduler_heartbeat"
    assert (cfg.security.mfa_column, cfg.security.audit_table) == ("totp_enabled", "audit_log")
    assert cfg.redis.replica_urls == [f"redis://127.0.0.1:{sb.ports['redis_replica']}/0"]
    assert (cfg.backups.prefix, cfg.backups.wal_prefix, cfg.backups.config_prefix) == ("backups/", "wal/", "config/")
    assert set(cfg.backups.config_files) == {".env.production", "nginx.conf", "database.yml"}
    assert cfg.postgres.schema_version == sb.schema_version and "users" in cfg.postgres.required_tables
    assert cfg.web.expected_title == "SwipeSavvy"
    for line in (
        f"schema_version: '{sb.schema_version}'  # discovered, review",
        "mfa_column: totp_enabled  # discovered, review",
        "# alert 'API down': APIDown (discovered, review)",
    ):
        assert line in text

    v = golive("config", "validate", str(out), env=user_env(**secrets))
    assert v.returncode == 0, v.stderr
    c = golive("check", "--config", str(out), env=user_env(**aws, **secrets))
    assert c.returncode == 0 and "VERDICT: GO " in c.stdout, c.stdout[-4000:] + c.stderr[-2000:]
    assert_no_leak(db_pw, c.stdout, c.stderr)
    assert_no_leak(redis_pw, c.stdout, c.stderr)

    # never overwritten without --force (the file is untouched), replaced with it
    again = golive(*init_args(sb, out), "--no-discover", env=user_env())
    assert again.returncode == 3 and "--out" in again.stderr and out.read_text() == text
    forced = golive(*init_args(sb, out), "--no-discover", "--force", env=user_env())
    assert forced.returncode == 0, forced.stderr
    assert not [ln for ln in out.read_text().splitlines() if ln.endswith("# discovered, review")]
    assert load_config(out, env=secrets).redis is not None


def test_unreachable_prometheus_leaves_a_valid_file_with_the_section_commented(tmp_path, capsys):
    out = tmp_path / "golive.yaml"
    port = free_port()
    assert (
        main(
            [
                "config",
                "init",
                "--environment",
                "staging",
                "--prometheus-url",
                f"http://127.0.0.1:{port}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text()
    assert f"# monitoring: not enabled: http://127.0.0.1:{port} could not be read: ConnectError" in text
    assert "#   prometheus_url: http://127.0.0.1:" in text
    cfg = load_config(out, env={})
    assert cfg.monitoring is None and cfg.environment == "staging"
    assert "monitoring: commented out" in capsys.readouterr().out


def test_a_hung_prometheus_is_bounded_by_the_discovery_timeout(tmp_path, capsys):
    out = tmp_path / "golive.yaml"
    with socket.socket() as hung:  # accepts (the kernel's backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        t0 = time.monotonic()
        assert (
            main(
                [
                    "config",
                    "init",
                    "--environment",
                    "staging",
                    "--timeout",
                    "1",
                    "--out",
                    str(out),
                    "--prometheus-url",
                    f"http://127.0.0.1:{hung.getsockname()[1]}",
                ]
            )
            == 0
        )
        elapsed = time.monotonic() - t0
    line = next(ln for ln in out.read_text().splitlines() if ln.startswith("# monitoring: not enabled"))
    assert elapsed < 5 and ("no answer within 1 s" in line or "Timeout" in line), line
    assert load_config(out, env={}).monitoring is None


def test_secrets_in_bad_input_are_never_echoed(tmp_path, capsys):
    pw = "p@ss/w:rd%1 é"
    out = tmp_path / "x.yaml"
    for flag, value in (
        ("--smtp-host", f"mailer:{pw}@smtp.example.com:587"),
        ("--site-url", f"https://admin:{quote(pw, safe='')}@app.example.com"),
    ):
        assert main(["config", "init", "--environment", "x", flag, value, "--out", str(out)]) == 3
        err = capsys.readouterr().err
        assert flag in err and "credentials" in err
        assert_no_leak(pw, err)
    assert (
        main(["config", "init", "--environment", "x", "--site-url", "http://app.example.com", "--out", str(out)]) == 3
    )
    assert "--site-url: must be an https:// URL" in capsys.readouterr().err
    # an unreachable database: the DSN's password (URL-encoded in it) is in neither the file nor the output
    dsn = f"postgresql://app:{quote(pw, safe='')}@127.0.0.1:{free_port()}/app"
    assert main(["config", "init", "--environment", "x", "--database-dsn", dsn, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "# postgres: not enabled: 127.0.0.1:" in out.read_text()
    assert_no_leak(pw, out.read_text(), captured.out, captured.err)
    assert not out.with_name("suites-x").exists()
    assert not list(tmp_path.glob(".x.yaml.*")), "no temp file is left behind"


class _Pwn:  # a job_state that runs a command when a plain pickle.loads reads it
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_defaults_never_name_tables_the_app_lacks_and_a_crafted_job_row_is_not_run(sandbox, tmp_path):
    """A second database on the sandbox's server: users without 2FA or role columns, a job store without heartbeat or
    job_runs tables, and a job_state that would run a command if unpickled naively."""
    marker = tmp_path / "pwned"
    with sandbox.admin_db() as conn:
        conn.execute("DROP DATABASE IF EXISTS bare_app")
        conn.execute("CREATE DATABASE bare_app OWNER app_user")
    import psycopg

    from golive.sandbox.parts import postgres as pgs

    info = pgs.admin_conninfo(sandbox.base_dir / "pgsock", sandbox.ports["postgres"], "bare_app", pgs.APP_USER)
    with psycopg.connect(info, autocommit=True) as c:
        c.execute("CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, password_hash text NOT NULL)")
        c.execute(
            "CREATE TABLE apscheduler_jobs (id varchar(191) PRIMARY KEY, next_run_time double precision, "
            "job_state bytea NOT NULL)"
        )
        c.execute("INSERT INTO apscheduler_jobs VALUES ('evil', 1e10, %s)", [pickle.dumps(_Pwn(marker))])
        from apscheduler.triggers.interval import (
            IntervalTrigger,  # what APScheduler pickles: the job's state dict
        )

        state = {"version": 1, "id": "sync", "trigger": IntervalTrigger(hours=6, timezone="UTC"), "args": ()}
        c.execute("INSERT INTO apscheduler_jobs VALUES ('sync', 1e10, %s)", [pickle.dumps(state)])
    pw = sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"]
    out = tmp_path / "bare.yaml"
    dsn = f"host=127.0.0.1 port={sandbox.ports['postgres']} dbname=bare_app user=app_user password={pw}"
    r = golive("config", "init", "--environment", "bare", "--database-dsn", dsn, "--out", str(out), env=user_env())
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert_no_leak(pw, text, r.stdout, r.stderr)
    assert not marker.exists(), "the job store's pickle was executed"
    assert "# job evil not listed: UnpicklingError: refused global posix.system" in text
    data = yaml.safe_load(text)
    assert data["workers"]["heartbeat_table"] is None and data["workers"]["jobs"] == {"sync": "every 6h"}
    assert data["security"]["mfa_column"] is None and "audit_table" not in data["security"]
    assert "# runs_table: no job_runs(job_name, started_at, status) table" in text
    assert load_config(out, env={"GOLIVE_POSTGRES_PASSWORD": pw}).postgres.required_tables == ["users"]


def test_interactive_prompts_on_a_terminal_only_and_hides_the_dsn(tmp_path):
    import pty
    import select

    out, pw = tmp_path / "tty.yaml", "Sekr3t-pw-42"
    argv = [
        sys.executable,
        "-m",
        "golive.deployments.cli",
        "config",
        "init",
        "--environment",
        "tty",
        "--interactive",
        "--no-discover",
        "--out",
        str(out),
    ]
    answers = [b"https://app.example.com\n", f"postgresql://u:{pw}@db.example.com/app\n".encode()] + [b"\n"] * 4
    pid, fd = pty.fork()
    if pid == 0:  # the child: a real terminal on stdin
        os.chdir(REPO)
        os.execv(sys.executable, argv)
    screen, asked = b"", 0
    while select.select([fd], [], [], 30)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        screen += chunk
        if screen.count(b"(empty: leave a TODO): ") > asked and answers:  # one answer per prompt shown
            asked += 1
            os.write(fd, answers.pop(0))
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, screen.decode(errors="replace")
    assert not answers and b"database DSN" in screen
    assert_no_leak(pw, screen.decode(errors="replace"), out.read_text())  # getpass: the DSN is never echoed
    cfg = load_config(out, env={"GOLIVE_POSTGRES_PASSWORD": pw})
    assert str(cfg.web.base_url) == "https://app.example.com/" and cfg.postgres.host == "db.example.com"
    # not a terminal: no prompt, the missing sections are TODOs
    piped = golive(*argv[3:], "--force", env=user_env())
    assert piped.returncode == 0 and "database DSN" not in piped.stdout + piped.stderr
    assert "# postgres: not enabled: TODO: pass --database-dsn" in out.read_text()


def test_a_hostile_prometheus_cannot_add_keys_through_the_comments(tmp_path, capsys):
    """Labels and rule names are written in comments: line breaks (also YAML's NEL / LS) and terminal escapes in them
    must not end the comment and add a section, nor reach the terminal."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    evil_job = "app\nrestore:\n  host: evil.example\r\nteam: {}"
    answers = {
        "/api/v1/targets": {
            "activeTargets": [
                {
                    "labels": {"job": evil_job, "instance": "i-1\u2028deploy: {}"},
                    "health": "up",
                    "scrapeUrl": "http://10.9.8.7:8080/metrics",
                },
                {"labels": {"job": "node\x85saas: {}", "instance": "\x1b[2Jbackend-1"}, "health": "up"},
            ]
        },
        "/api/v1/rules": {
            "groups": [
                {
                    "name": "g",
                    "rules": [
                        {"type": "alerting", "name": "APIDown\u2029loadtest: {}", "query": "up == 0"},
                        {"type": "alerting", "name": "\x1b]0;pwned\x07HighCPU\nnetwork: {}", "query": "x > 0.8"},
                    ],
                }
            ]
        },
    }

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"status": "success", "data": answers.get(self.path.split("?")[0], {})}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    out = tmp_path / "golive.yaml"
    try:
        assert (
            main(
                [
                    "config",
                    "init",
                    "--environment",
                    "hostile",
                    "--out",
                    str(out),
                    "--prometheus-url",
                    f"http://127.0.0.1:{srv.server_address[1]}",
                ]
            )
            == 0
        )
    finally:
        srv.shutdown()
        srv.server_close()
    text, printed = out.read_text(), capsys.readouterr().out
    assert "restore:" in text and "# scrape targets" in text  # the payloads are there, inside comments
    assert set(yaml.safe_load(text)) == {"environment", "description", "monitoring"}
    cfg = load_config(out, env={})
    assert cfg.restore is None and cfg.team is None and cfg.deploy is None and cfg.saas is None
    assert "\x1b" not in text + printed and "\x07" not in text + printed


def test_the_private_ca_reaches_every_tls_target_it_names(tmp_path):
    """--ca-file: the site, an https S3 endpoint, rediss:// and a database whose DSN asks to verify the server; the
    DSN's own sslrootcert wins; a DSN that does not verify the server gets none (libpq would not read it)."""
    import trustme

    ca, db_ca = tmp_path / "ca.pem", tmp_path / "db-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    trustme.CA().cert_pem.write_to_path(str(db_ca))

    def init(dsn: str, name: str):
        out = tmp_path / name
        assert (
            main(
                [
                    "config",
                    "init",
                    "--environment",
                    "x",
                    "--no-discover",
                    "--out",
                    str(out),
                    "--ca-file",
                    str(ca),
                    "--site-url",
                    "https://app.example.com",
                    "--database-dsn",
                    dsn,
                    "--s3-bucket",
                    "b",
                    "--redis-url",
                    "rediss://cache.internal:6380/0",
                    "--s3-endpoint",
                    "https://minio.internal:9000",
                ]
            )
            == 0
        )
        return load_config(out, env={})

    c = init("postgresql://app@db.internal/app?sslmode=verify-full", "a.yaml")
    assert {str(x) for x in (c.web.ca_file, c.postgres.sslrootcert, c.redis.ca_file, c.backups.ca_file)} == {str(ca)}
    dsn = f"host=db.internal dbname=app user=app sslmode=verify-ca sslrootcert={db_ca}"
    assert str(init(dsn, "b.yaml").postgres.sslrootcert) == str(db_ca)
    assert init("postgresql://app@db.internal/app?sslmode=require", "c.yaml").postgres.sslrootcert is None


@pytest.mark.parametrize(
    "keys, found",
    [
        (
            ["pg/app/app_20261130.dump", "pg/app/app_20261201.dump", "pg/wal/0000000100000001", "etc/nginx.conf"],
            ("pg/app/", "pg/wal/", "etc/"),
        ),  # one folder per database host, WAL beside the dumps
        (
            ["backups/2026/11/30/app.dump", "backups/2026/12/01/app.dump", "wal/0000000100000001"],
            ("backups/", "wal/", None),
        ),  # date folders under one prefix: the prefix itself
    ],
    ids=["nested by kind", "nested by date"],
)
def test_backup_prefixes_are_found_one_level_down_when_a_folder_groups_kinds(tmp_path, monkeypatch, keys, found):
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {
            "AWS_ACCESS_KEY_ID": "AKIAINIT",
            "AWS_SECRET_ACCESS_KEY": "init",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(k, v)
        s3, bucket = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}"), f"dumps-{len(keys)}"  # moto's state
        s3.create_bucket(Bucket=bucket)  # is per process
        for k in keys:
            s3.put_object(Bucket=bucket, Key=k, Body=b"x" * 2048)
        out = tmp_path / "s3.yaml"
        assert (
            main(
                [
                    "config",
                    "init",
                    "--environment",
                    "x",
                    "--out",
                    str(out),
                    "--s3-bucket",
                    bucket,
                    "--s3-endpoint",
                    f"http://127.0.0.1:{port}",
                ]
            )
            == 0
        )
    finally:
        server.stop()
    b = load_config(out, env={}).backups
    assert (b.prefix, b.wal_prefix, b.config_prefix) == found
