"""The sandbox against its real processes: every service answers, every fault flips its fact, nothing leaks."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path
from urllib.parse import urlparse

import bcrypt
import httpx
import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from golive.sandbox import FAULTS, Sandbox, procs
from golive.sandbox.stack import ROOT, _reap_stale
from tests.conftest import debian_faults
from tests.support.probes_application import SANDBOX_PROBES as APP_PROBES
from tests.support.probes_dependencies import SANDBOX_PROBES as DEPENDENCY_PROBES
from tests.support.probes_infrastructure import SANDBOX_PROBES as INFRA_PROBES

REPO = Path(__file__).resolve().parent.parent
TABLES = [
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
]
CRITICAL = ["/api/campaigns", "/api/users", "/api/merchants", "/api/analytics/portfolio", "/api/phase4/health"]
EVIL = "https://evil.example"


# ---------------------------------------------------------------------------------------------------- helpers
def tls_context(sb: Sandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sb.ca_file))


def web(sb: Sandbox, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=sb.urls["web"], verify=tls_context(sb), timeout=timeout)


def get(sb: Sandbox, path: str, **kw) -> httpx.Response:
    with web(sb) as c:
        return c.get(path, **kw)


def login(sb: Sandbox) -> httpx.Response:
    with web(sb) as c:
        return c.post(
            "/api/auth/login",
            json={"username": "ops@swipesavvy.test", "password": sb.env["GOLIVE_SANDBOX_WEB_PASSWORD"]},
        )


def app_db(sb: Sandbox, **kw) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=sb.ports["postgres"],
        dbname="merchants_prod",
        user="app_user",
        password=sb.env["GOLIVE_SANDBOX_DB_PASSWORD"],
        connect_timeout=3,
        **kw,
    )


def rds(sb: Sandbox, port_name: str = "redis") -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=sb.ports[port_name], password=sb.env["GOLIVE_SANDBOX_REDIS_PASSWORD"], socket_timeout=3
    )


def s3(sb: Sandbox):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=sb.urls["s3"],
        region_name="us-east-1",
        aws_access_key_id="golive-sandbox",
        aws_secret_access_key=sb.env["GOLIVE_SANDBOX_S3_SECRET"],
    )


def objects(sb: Sandbox, prefix: str) -> list[dict]:
    return s3(sb).list_objects_v2(Bucket="golive-backups", Prefix=prefix).get("Contents", [])


def prom(sb: Sandbox, path: str, **params) -> httpx.Response:
    return httpx.get(sb.urls["prometheus"] + path, params=params, timeout=5)


def cert_days_left(sb: Sandbox) -> float:
    with (
        socket.create_connection(("127.0.0.1", sb.ports["https"]), timeout=3) as raw,
        tls_context(sb).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        not_after = ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"])
    return (not_after - time.time()) / 86400


def alive(identities: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [i for i in identities if procs.proc_identity(i[0]) == i]


# ---------------------------------------------------------------------------------------------------- config
def test_config_validates_against_the_golive_models(sandbox):
    from golive.flows.config import ConfigError, load_config

    cfg = load_config(sandbox.config_path, env=sandbox.env)
    assert cfg.environment == "sandbox"
    assert str(cfg.web.base_url) == sandbox.urls["web"] + "/"
    assert cfg.web.ca_file == cfg.smtp.ca_file == cfg.team.ca_file == sandbox.ca_file
    assert cfg.web.auth.password.get_secret_value() == sandbox.env["GOLIVE_SANDBOX_WEB_PASSWORD"]
    assert cfg.postgres.port == sandbox.ports["postgres"] and cfg.postgres.schema_version == "20251231080000"
    assert cfg.postgres.password.get_secret_value() == sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"]
    assert cfg.redis.url == sandbox.urls["redis"] and cfg.redis.replica_urls == [sandbox.urls["redis_replica"]]
    assert cfg.smtp.port == sandbox.ports["smtp"] and cfg.smtp.starttls
    assert cfg.backups.endpoint_url == sandbox.urls["s3"] and cfg.backups.min_size_bytes == 10000
    assert cfg.backups.secret_access_key.get_secret_value() == sandbox.env["GOLIVE_SANDBOX_S3_SECRET"]
    assert cfg.backups.access_key_id == sandbox.s3_reader[0] and cfg.backups.config_prefix == "config/"
    assert cfg.restore.port == sandbox.ports["postgres_restore"] != cfg.postgres.port
    assert cfg.restore.password.get_secret_value() == sandbox.env["GOLIVE_SANDBOX_RESTORE_PASSWORD"]
    assert cfg.restore.git_repo == sandbox.repo and cfg.restore.release_tag == "v2.4.0"
    assert cfg.restore.rollback_script == sandbox.rollback_script and cfg.restore.pg_restore.endswith("pg_restore")
    assert str(cfg.monitoring.prometheus_url).rstrip("/") == sandbox.urls["prometheus"]
    assert set(cfg.team.required_roles) <= {c.role for c in cfg.team.contacts}
    assert all(
        c.name and re.fullmatch(r"\+[1-9]\d{7,14}", c.phone) and c.slack and "@" in c.email for c in cfg.team.contacts
    )
    # the secrets live in the env, not the file; without them the config does not load
    text = sandbox.config_path.read_text()
    assert not any(secret in text for secret in sandbox.env.values())
    with pytest.raises(ConfigError, match="GOLIVE_SANDBOX_DB_PASSWORD"):
        load_config(sandbox.config_path, env={})


# ---------------------------------------------------------------------------------------------------- postgres
def test_postgres_serves_the_seeded_merchants_prod(sandbox):
    with app_db(sandbox) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        assert all(n > 0 for n in counts.values()), counts
        assert (counts["users"], counts["merchants"], counts["campaigns"], counts["notifications"]) == (
            500,
            50,
            100,
            2000,
        )
        assert (
            conn.execute("SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1").fetchone()[0]
            == "20251231080000"
        )
        assert conn.execute("SELECT bool_and(success) FROM schema_migrations").fetchone()[0] is True
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
        assert owners == [("app_user",)]
        # every foreign key column is indexed (first column of some index)
        unindexed = conn.execute("""
            SELECT c.conrelid::regclass, a.attname FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND NOT EXISTS (
                SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])""").fetchall()
        assert unindexed == []
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()[0] == 14
        # data quality the checklist asks for
        bad = conn.execute(r"""SELECT
            count(*) FILTER (WHERE email !~ '^[^@\s]+@[^@\s]+\.[a-z]{2,}$'),
            count(*) FILTER (WHERE phone !~ '^\+[1-9][0-9]{7,14}$'),
            count(*) FILTER (WHERE password_hash !~ '^\$2[aby]\$1[0-9]\$.{53}$') FROM users""").fetchone()
        assert bad == (0, 0, 0)
        assert conn.execute("SELECT count(*) FROM merchants WHERE website_url !~ '^https://'").fetchone()[0] == 0
        user_hash = conn.execute("SELECT password_hash FROM users WHERE id = 4").fetchone()[0]
        assert bcrypt.checkpw(b"Summer2025!", user_hash.encode())  # a real bcrypt hash (of a known seed password)
        for t in TABLES:
            future, inverted = conn.execute(
                f"SELECT count(*) FILTER (WHERE created_at > now() OR updated_at > now()), "
                f"count(*) FILTER (WHERE created_at > updated_at) FROM {t}"
            ).fetchone()
            assert (t, future, inverted) == (t, 0, 0)
        assert (
            conn.execute("SELECT count(*) FROM notifications WHERE created_at > now() - interval '1 hour'").fetchone()[
                0
            ]
            > 0
        )
        assert conn.execute("SELECT count(DISTINCT job_name) FROM job_runs WHERE status = 'success'").fetchone()[0] == 5
        assert conn.execute("SHOW TimeZone").fetchone()[0] == "UTC"
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 130000


def test_postgres_requires_the_password_and_has_a_superuser(sandbox):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host="127.0.0.1",
            port=sandbox.ports["postgres"],
            dbname="merchants_prod",
            user="app_user",
            password="wrong",
            connect_timeout=3,
        )
    with psycopg.connect(
        host="127.0.0.1",
        port=sandbox.ports["postgres"],
        dbname="merchants_prod",
        user="postgres",
        password=sandbox.superuser_password,
        connect_timeout=3,
    ) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is True


# ---------------------------------------------------------------------------------------------------- redis
def test_redis_primary_and_replica(sandbox):
    primary, replica = rds(sandbox), rds(sandbox, "redis_replica")
    assert primary.ping()
    assert primary.info("persistence")["aof_enabled"] == 1
    assert primary.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert primary.info("memory")["maxmemory"] == 64 * 1024 * 1024
    repl = primary.info("replication")
    assert repl["role"] == "master" and repl["connected_slaves"] == 1
    assert repl["slave0"]["port"] == sandbox.ports["redis_replica"] and repl["slave0"]["state"] == "online"
    assert replica.info("replication")["master_link_status"] == "up"
    key = f"golive:test:{time.time_ns()}"
    primary.set(key, "replicated", ex=60)
    deadline = time.monotonic() + 5
    while replica.get(key) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert replica.get(key) == b"replicated"
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors for seconds
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=sandbox.ports["redis"], password="wrong", retry=no_retry).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=sandbox.ports["redis"], retry=no_retry).get(key)


# ---------------------------------------------------------------------------------------------------- s3
def test_s3_holds_an_encrypted_restorable_backup_and_wal(sandbox):
    client = s3(sandbox)
    assert urlparse(sandbox.urls["s3"]).hostname == "127.0.0.2"  # its own address: off the DB server
    enc = client.get_bucket_encryption(Bucket="golive-backups")["ServerSideEncryptionConfiguration"]
    assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    backups = objects(sandbox, "backups/")
    ages = sorted((time.time() - o["LastModified"].timestamp()) / 86400 for o in backups)
    assert len(backups) == 11 and ages[0] < 0.01 and 30 <= ages[-1] < 30.01  # 30 days of history, really that old
    assert [round(a) for a in ages] == [0, 1, 2, 3, 4, 5, 6, 7, 14, 21, 30]
    backup = max(backups, key=lambda o: o["LastModified"])
    assert backup["Key"] == sandbox.backup_key
    assert re.fullmatch(r"backups/merchants_prod-\d{8}T\d{6}Z\.dump", backup["Key"])
    assert backup["Size"] > 10000
    head = client.head_object(Bucket="golive-backups", Key=backup["Key"])
    assert head["ServerSideEncryption"] == "AES256"
    body = client.get_object(Bucket="golive-backups", Key=backup["Key"])["Body"].read()
    assert body.startswith(b"PGDMP")  # a real custom-format pg_dump
    pg_restore = Path(sandbox.services["postgres"].argv()[0]).with_name("pg_restore")
    listing = subprocess.run([str(pg_restore), "--list"], input=body, capture_output=True, check=True).stdout.decode()
    assert all(f"TABLE public {t} app_user" in listing for t in TABLES + ["schema_migrations"])
    wal = objects(sandbox, "wal/")
    assert [o["Key"] for o in wal] == [
        "wal/000000010000000000000001",
        "wal/000000010000000000000002",
        "wal/000000010000000000000003",
    ]
    assert max(wal, key=lambda o: (o["LastModified"], o["Key"]))["Key"].endswith("3")
    rules = client.get_bucket_lifecycle_configuration(Bucket="golive-backups")["Rules"]
    assert {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules} == {
        "backups/": 35,
        "wal/": 35,
        "config/": 365,
    }
    assert sorted(o["Key"] for o in objects(sandbox, "config/")) == [
        "config/.env.production",
        "config/database.yml",
        "config/nginx.conf",
    ]


def test_s3_auth_is_off_until_switched_on_and_golive_reads_with_an_iam_key(sandbox):
    import boto3
    from botocore.exceptions import ClientError

    key_id, secret = sandbox.s3_reader
    assert key_id.startswith("AKIA") and secret == sandbox.env["GOLIVE_SANDBOX_S3_SECRET"]
    reader = boto3.client(
        "s3",
        endpoint_url=sandbox.urls["s3"],
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    assert reader.list_objects_v2(Bucket="golive-backups", Prefix="wal/")["KeyCount"] == 3
    with sandbox.fault("s3-forbidden"):
        assert reader.list_objects_v2(Bucket="golive-backups", Prefix="wal/")["KeyCount"] == 3
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):  # signatures are verified
            boto3.client(
                "s3",
                endpoint_url=sandbox.urls["s3"],
                region_name="us-east-1",
                aws_access_key_id=key_id,
                aws_secret_access_key="wrong-secret",
            ).list_objects_v2(Bucket="golive-backups")
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            s3(sandbox).list_objects_v2(Bucket="golive-backups")
    assert s3(sandbox).list_objects_v2(Bucket="golive-backups", Prefix="wal/")["KeyCount"] == 3


# ---------------------------------------------------------------------------------------------------- restore server
def restore_admin(sb: Sandbox, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=sb.ports["postgres_restore"],
        dbname=dbname,
        user="golive_restore",
        password=sb.env["GOLIVE_SANDBOX_RESTORE_PASSWORD"],
        connect_timeout=3,
        autocommit=True,
    )


def test_restore_server_is_a_separate_cluster_where_golive_may_create_databases(sandbox):
    with restore_admin(sandbox) as conn:
        ident = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        su, createdb = conn.execute(
            "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert (su, createdb) == (False, True)
        conn.execute("CREATE DATABASE golive_sandbox_probe")
        conn.execute("DROP DATABASE golive_sandbox_probe")
    with app_db(sandbox) as conn:
        assert conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0] != ident
    assert sandbox.restore_databases() == ["postgres", "template0", "template1"]


def test_dr_artifacts_git_tag_rollback_script_and_rehearsal(sandbox):
    repo = sandbox.repo
    git = ["git", "-C", str(repo)]
    assert (
        subprocess.run(git + ["rev-parse", "v2.4.0^{commit}"], capture_output=True, text=True).stdout.strip()
        == subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    )
    remote = subprocess.run(git + ["ls-remote", "--tags", "origin"], capture_output=True, text=True).stdout
    assert "refs/tags/v2.4.0" in remote and "refs/tags/v2.3.2" in remote
    script = sandbox.rollback_script
    assert os.access(script, os.X_OK) and subprocess.run(["bash", "-n", str(script)]).returncode == 0
    record = json.loads(sandbox.rehearsal_record.read_text())
    assert record["status"] == "success" and record["duration_seconds"] < 15 * 60
    import hashlib

    assert record["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- smtp
def test_smtp_requires_starttls_then_authenticates(sandbox):
    user, password = "alerts@swipesavvy.test", sandbox.env["GOLIVE_SANDBOX_SMTP_PASSWORD"]
    with smtplib.SMTP("127.0.0.1", sandbox.ports["smtp"], timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")  # no AUTH in the clear
        code, _ = smtp.mail(user)
        assert code == 530  # STARTTLS first
        smtp.rset()
        smtp.starttls(context=tls_context(sandbox))
        smtp.ehlo()
        assert smtp.has_extn("auth") and {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].split())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(user, "wrong")
        assert smtp.login(user, password)[0] == 235
        assert smtp.sendmail(user, ["ops@swipesavvy.test"], "Subject: golive test\r\n\r\nhello\r\n") == {}


# ---------------------------------------------------------------------------------------------------- web
def test_web_frontend_and_assets(sandbox):
    with web(sandbox) as c:
        page = c.get("/")
        assert page.status_code == 200 and "<title>SwipeSavvy</title>" in page.text
        for path, ctype, magic in (
            ("/static/app.css", "text/css", b":root"),
            ("/static/app.js", "text/javascript", b"//"),
            ("/static/logo.png", "image/png", b"\x89PNG\r\n\x1a\n"),
        ):
            assert path in page.text
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith(ctype) and r.content.startswith(magic)
        health = c.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "healthy",
            "version": health.json()["version"],
            "python": platform.python_version(),
            "database": "ok",
            "redis": "ok",
        }
        assert c.get("/api/health").json()["status"] == "healthy"
        for name in ("deployment", "rollback"):
            r = c.get(f"/runbooks/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
            assert r.text.startswith("# SwipeSavvy")
    days = cert_days_left(sandbox)
    assert 364 < days <= 365  # explicit expiry, not trustme's year 3000


def test_web_auth_sessions_and_errors(sandbox):
    first, second = login(sandbox), login(sandbox)
    assert first.status_code == second.status_code == 200
    token = first.json()["token"]
    assert token != second.json()["token"]  # rotated on every login
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"session={token};")
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Max-Age=86400"} <= {p.strip() for p in cookie.split(";")}
    with web(sandbox) as c:
        wrong = c.post("/api/auth/login", json={"username": "ops@swipesavvy.test", "password": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"
        for path in CRITICAL:
            anonymous = c.get(path)
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
            assert anonymous.json()["message"]
            assert c.get(path, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
            ok = c.get(path, headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and ok.json()
        missing = c.get("/api/invalid-endpoint")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found" and missing.json()["message"]


def test_web_security_headers_on_every_response(sandbox):
    with web(sandbox) as c:
        for r in (c.get("/"), c.get("/api/campaigns"), c.get("/api/invalid-endpoint"), c.get("/static/logo.png")):
            assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert "default-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["referrer-policy"]


def test_web_http_redirects_and_cors_allows_only_approved_origins(sandbox):
    r = httpx.get(sandbox.urls["web_http"] + "/api/health?x=1", timeout=5)
    assert r.status_code == 301 and r.headers["location"] == sandbox.urls["web"] + "/api/health?x=1"
    with web(sandbox) as c:
        for origin in ("https://app.swipesavvy.test", "https://admin.swipesavvy.test"):
            pre = c.options("/api/campaigns", headers={"Origin": origin, "Access-Control-Request-Method": "GET"})
            assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == origin
            assert "GET" in pre.headers["access-control-allow-methods"]
        evil = c.options("/api/campaigns", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in evil.headers
        assert "access-control-allow-origin" not in c.get("/api/health", headers={"Origin": EVIL}).headers


def test_web_rate_limit_per_client(sandbox):
    token = login(sandbox).json()["token"]  # a fresh key: other tests are unaffected
    with web(sandbox) as c:
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [c.get("/api/campaigns", headers=headers).status_code for _ in range(600)]
        assert statuses == [200] * 600
        limited = c.get("/api/campaigns", headers=headers)
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert limited.headers["strict-transport-security"]
        other = login(sandbox).json()["token"]
        assert c.get("/api/campaigns", headers={"Authorization": f"Bearer {other}"}).status_code == 200


# ---------------------------------------------------------------------------------------------------- prometheus
def test_prometheus_api(sandbox):
    assert prom(sandbox, "/-/healthy").status_code == 200
    config = prom(sandbox, "/api/v1/status/config").json()
    assert config["status"] == "success" and "scrape_interval: 15s" in config["data"]["yaml"]
    targets = prom(sandbox, "/api/v1/targets").json()["data"]["activeTargets"]
    by_job = {}
    for t in targets:
        by_job.setdefault(t["labels"]["job"], []).append(t)
        assert t["health"] == "up" and t["lastError"] == "" and t["scrapeUrl"].endswith("/metrics")
    assert sorted(t["labels"]["instance"] for t in by_job["node"]) == ["backend-1", "backend-2", "frontend-1"]
    assert by_job["postgres"][0]["labels"]["instance"] == f"127.0.0.1:{sandbox.ports['postgres']}"
    assert by_job["redis"][0]["labels"]["instance"] == f"127.0.0.1:{sandbox.ports['redis']}"
    assert by_job["app"][0]["scrapeUrl"] == f"https://127.0.0.1:{sandbox.ports['https']}/metrics"

    def vector(query: str) -> dict[str, float]:
        body = prom(sandbox, "/api/v1/query", query=query).json()
        assert body["status"] == "success" and body["data"]["resultType"] == "vector"
        return {s["metric"].get("instance"): float(s["value"][1]) for s in body["data"]["result"]}

    assert set(vector("up").values()) == {1.0} and len(vector("up")) == 6
    cores = vector('count   by (instance)(node_cpu_seconds_total{mode="idle"})')
    assert cores == {"frontend-1": 4, "backend-1": 8, "backend-2": 8}
    cpu = vector('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))')
    assert all(0 < v < 0.25 for v in cpu.values()) and len(cpu) == 3
    avail = vector("node_memory_MemAvailable_bytes")
    total = vector("node_memory_MemTotal_bytes")
    assert all(avail[i] > 4 * 1024**3 and avail[i] < total[i] for i in total)
    disk = vector('node_filesystem_avail_bytes{mountpoint="/"}')
    assert len(disk) == 3 and all(v > 30 * 1024**3 for v in disk.values())
    assert set(vector('up{job=~"node|app"}')) == {
        "frontend-1",
        "backend-1",
        "backend-2",
        f"127.0.0.1:{sandbox.ports['https']}",
    }
    bad = prom(sandbox, "/api/v1/query", query="sum(rate(whatever[5m]))")
    assert bad.status_code == 400 and bad.json()["status"] == "error" and bad.json()["errorType"] == "bad_data"
    rules = {r["name"]: r for g in prom(sandbox, "/api/v1/rules").json()["data"]["groups"] for r in g["rules"]}
    assert {n: rules[n]["labels"]["severity"] for n in rules} == {
        "APIDown": "critical",
        "DatabaseDown": "critical",
        "HighErrorRate": "critical",
        "HighResponseTime": "warning",
        "HighMemoryUsage": "warning",
        "HighCPUUsage": "warning",
        "BackupFailed": "critical",
    }
    for name, threshold in (
        ("HighErrorRate", "> 0.05"),
        ("HighResponseTime", "> 2"),
        ("HighMemoryUsage", "> 0.85"),
        ("HighCPUUsage", "> 0.8"),
    ):
        assert rules[name]["query"].endswith(threshold) and rules[name]["type"] == "alerting"


# ---------------------------------------------------------------------------------------------------- faults
def _web_answer(sb: Sandbox) -> str:
    try:
        with web(sb, timeout=1.0) as c:
            c.get("/health")
        return "answers"
    except httpx.TimeoutException:
        return "accepts-silently" if procs.port_open(sb.ports["https"]) else "timeout"
    except httpx.ConnectError:
        return "refused"


def _tls(sb: Sandbox) -> str:
    days = cert_days_left(sb)
    return "1 year" if 364 < days <= 365 else "10 days" if 9 < days <= 10 else f"{days:.1f} days"


def _health(sb: Sandbox) -> tuple:
    with web(sb) as c:
        a, b = c.get("/health"), c.get("/api/health")
    return a.status_code, b.status_code, a.json()["status"], b.json()["status"]


def _preflight_origin(sb: Sandbox) -> str | None:
    with web(sb) as c:
        r = c.options("/api/campaigns", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
    return r.headers.get("access-control-allow-origin")


def _http(sb: Sandbox) -> tuple:
    r = httpx.get(sb.urls["web_http"] + "/", timeout=5)
    return r.status_code, r.headers.get("location") == sb.urls["web"] + "/"


def _pg(sb: Sandbox) -> str:
    try:
        with app_db(sb) as conn:
            return "up" if conn.execute("SELECT 1").fetchone() == (1,) else "?"
    except psycopg.OperationalError:
        return "refused"


def _newest_migration(sb: Sandbox) -> str:
    with app_db(sb) as conn:
        return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


def _newest_backup_sse(sb: Sandbox) -> tuple:
    backups = objects(sb, "backups/")
    newest = max(backups, key=lambda o: (o["LastModified"], o["Key"]))
    head = s3(sb).head_object(Bucket="golive-backups", Key=newest["Key"])
    return len(backups), head.get("ServerSideEncryption")


def _smtp(sb: Sandbox) -> str:
    try:
        with smtplib.SMTP("127.0.0.1", sb.ports["smtp"], timeout=3) as smtp:
            return "up" if smtp.ehlo()[0] == 250 else "?"
    except OSError:
        return "refused"


def _smtp_starttls(sb: Sandbox) -> bool:
    with smtplib.SMTP("127.0.0.1", sb.ports["smtp"], timeout=3) as smtp:
        smtp.ehlo()
        return smtp.has_extn("starttls")


def _node_health(sb: Sandbox) -> tuple:
    targets = prom(sb, "/api/v1/targets").json()["data"]["activeTargets"]
    health = next(t["health"] for t in targets if t["labels"]["instance"] == "backend-2")
    up = prom(sb, "/api/v1/query", query='up{instance="backend-2"}').json()["data"]["result"][0]["value"][1]
    return health, up


def _newest_age_h(sb: Sandbox, prefix: str) -> float:
    newest = max(objects(sb, prefix), key=lambda o: o["LastModified"])
    return (time.time() - newest["LastModified"].timestamp()) / 3600


def _newest_backup_body(sb: Sandbox) -> tuple:
    """(database named in the archive header, complete or truncated) of the newest object under backups/."""
    newest = max(objects(sb, "backups/"), key=lambda o: o["LastModified"])
    body = s3(sb).get_object(Bucket="golive-backups", Key=newest["Key"])["Body"].read()
    if not body.startswith(b"PGDMP"):
        return "not PGDMP", "gzip" if body.startswith(b"\x1f\x8b") else "?"
    pg_restore = Path(sb.services["postgres"].argv()[0]).with_name("pg_restore")
    listing = subprocess.run([str(pg_restore), "--list"], input=body, capture_output=True).stdout.decode()
    dbname = re.search(r"dbname: (\S+)", listing).group(1)
    full = subprocess.run([str(pg_restore), "-f", os.devnull], input=body, capture_output=True).returncode == 0
    return dbname, "complete" if full else "truncated"


def _restore_port_cluster(sb: Sandbox) -> str:
    def ident(port: int, user: str, password: str) -> int:
        with psycopg.connect(
            host="127.0.0.1", port=port, dbname="postgres", user=user, password=password, connect_timeout=3
        ) as conn:
            return conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]

    restore = ident(sb.ports["postgres_restore"], "golive_restore", sb.env["GOLIVE_SANDBOX_RESTORE_PASSWORD"])
    source = ident(sb.ports["postgres"], "postgres", sb.superuser_password)
    return "production" if restore == source else "separate"


def _reader_get(sb: Sandbox) -> str:
    import boto3
    from botocore.exceptions import ClientError

    key_id, secret = sb.s3_reader
    reader = boto3.client(
        "s3",
        endpoint_url=sb.urls["s3"],
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    try:
        reader.get_object(Bucket="golive-backups", Key=sb.backup_key)["Body"].read()
        return "readable"
    except ClientError as e:
        return e.response["Error"]["Code"]


def _lifecycle_days(sb: Sandbox) -> int:
    rules = s3(sb).get_bucket_lifecycle_configuration(Bucket="golive-backups")["Rules"]
    return next(r["Expiration"]["Days"] for r in rules if r["Filter"]["Prefix"] == "backups/")


def _rule_names(sb: Sandbox) -> set[str]:
    return {r["name"] for g in prom(sb, "/api/v1/rules").json()["data"]["groups"] for r in g["rules"]}


def _rehearsal_age_days(sb: Sandbox) -> float:
    from datetime import datetime, timezone

    finished = datetime.fromisoformat(json.loads(sb.rehearsal_record.read_text())["finished_at"])
    return (datetime.now(UTC) - finished).total_seconds() / 86400


def _release_tag(sb: Sandbox) -> tuple:
    def tag(where: list[str]) -> str | None:
        out = subprocess.run(["git", "-C", str(sb.repo), *where], capture_output=True, text=True).stdout
        return "v2.4.0" if "refs/tags/v2.4.0" in out or out.strip() == "v2.4.0" else None

    return tag(["tag", "--list", "v2.4.0"]), tag(["ls-remote", "--tags", "origin"])


def _saas(sb: Sandbox, path: str, token_env: str, auth: str) -> httpx.Response:
    base = f"http://127.0.0.1:{sb.ports['saas']}"
    return httpx.get(base + path, headers={"Authorization": auth.format(sb.env[token_env])}, timeout=5)


def _slack_archived(sb: Sandbox) -> bool:
    from golive.sandbox.fakes import team_apis as saas

    chans, cursor = [], ""
    while True:  # the fake pages like Slack does
        page = _saas(
            sb, f"/slack/api/conversations.list?limit=1000&cursor={cursor}", saas.SLACK_TOKEN_ENV, "Bearer {}"
        ).json()
        chans += page["channels"]
        cursor = page.get("response_metadata", {}).get("next_cursor", "")
        if not cursor:
            break
    return any(c["name"] == saas.ARCHIVED_CHANNEL and c["is_archived"] for c in chans)


def _oncall(sb: Sandbox, what: str):
    from golive.sandbox.fakes import team_apis as saas

    if what == "who":
        r = _saas(
            sb,
            f"/pagerduty/oncalls?escalation_policy_ids[]={saas.ESCALATION_POLICY_ID}",
            saas.PAGERDUTY_TOKEN_ENV,
            "Token token={}",
        )
        return r.status_code if r.status_code != 200 else len(r.json()["oncalls"]) > 0
    r = _saas(
        sb, f"/pagerduty/escalation_policies/{saas.ESCALATION_POLICY_ID}", saas.PAGERDUTY_TOKEN_ENV, "Token token={}"
    )
    return max(rule["escalation_delay_in_minutes"] for rule in r.json()["escalation_policy"]["escalation_rules"])


def _firing(sb: Sandbox) -> list[str]:
    return sorted(
        a["labels"]["alertname"] for a in prom(sb, "/api/v1/alerts").json()["data"]["alerts"] if a["state"] == "firing"
    )


# fault -> (probe of the fact it breaks, healthy value, broken value)
PROBES = {
    "alert-data-corruption": (_firing, [], ["DataCorruptionDetected"]),
    "alert-payments-down": (_firing, [], ["PaymentProcessingDown"]),
    "slack-channel-archived": (_slack_archived, False, True),
    "oncall-nobody": (lambda sb: _oncall(sb, "who"), True, False),
    "oncall-escalation-slow": (lambda sb: _oncall(sb, "delay"), 5, 15),
    "saas-bad-token": (lambda sb: _oncall(sb, "who"), True, 401),
    "comms-template-missing": (
        lambda sb: httpx.get(f"http://127.0.0.1:{sb.ports['saas']}/docs/customer-email.txt", timeout=5).status_code,
        200,
        404,
    ),
    "tls-expiry": (_tls, "1 year", "10 days"),
    "hsts-short": (
        lambda sb: get(sb, "/").headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains",
        "max-age=3600",
    ),
    "health-down": (_health, (200, 200, "healthy", "healthy"), (503, 503, "unhealthy", "unhealthy")),
    "auth-off": (lambda sb: get(sb, "/api/campaigns").status_code, 401, 200),
    "cors-wildcard": (_preflight_origin, None, "*"),
    "http-no-redirect": (_http, (301, True), (200, False)),
    "web-hang": (_web_answer, "answers", "accepts-silently"),
    "redis-noeviction": (
        lambda sb: rds(sb).config_get("maxmemory-policy")["maxmemory-policy"],
        "allkeys-lru",
        "noeviction",
    ),
    "redis-aof-off": (lambda sb: rds(sb).info("persistence")["aof_enabled"], 1, 0),
    "redis-replica-down": (lambda sb: rds(sb).info("replication")["connected_slaves"], 1, 0),
    "postgres-down": (_pg, "up", "refused"),
    "schema-version-wrong": (_newest_migration, "20251231080000", "20251205160000"),
    "backup-missing": (lambda sb: len(objects(sb, "backups/")), 11, 0),
    "backup-unencrypted": (_newest_backup_sse, (11, "AES256"), (12, None)),
    "wal-missing": (lambda sb: len(objects(sb, "wal/")), 3, 0),
    "smtp-down": (_smtp, "up", "refused"),
    "smtp-no-starttls": (_smtp_starttls, True, False),
    "node-target-down": (_node_health, ("up", "1"), ("down", "0")),
    "runbook-missing": (lambda sb: get(sb, "/runbooks/rollback").status_code, 200, 404),
    "backup-stale": (lambda sb: round(_newest_age_h(sb, "backups/")), 0, 72),
    "wal-stale": (lambda sb: round(_newest_age_h(sb, "wal/")), 0, 8),
    "backup-truncated": (_newest_backup_body, ("merchants_prod", "complete"), ("merchants_prod", "truncated")),
    "backup-not-a-dump": (_newest_backup_body, ("merchants_prod", "complete"), ("not PGDMP", "gzip")),
    "backup-wrong-db": (_newest_backup_body, ("merchants_prod", "complete"), ("merchants_staging", "complete")),
    "restore-is-source": (_restore_port_cluster, "separate", "production"),
    "s3-forbidden": (_reader_get, "readable", "AccessDenied"),
    "backup-bucket-empty": (lambda sb: len(objects(sb, "")), 17, 0),
    "backup-retention-short": (lambda sb: _lifecycle_days(sb), 35, 7),
    "backup-alert-missing": (lambda sb: "BackupFailed" in _rule_names(sb), True, False),
    "config-backup-missing": (lambda sb: len(objects(sb, "config/")), 3, 2),
    "rollback-rehearsal-stale": (lambda sb: round(_rehearsal_age_days(sb)), 2, 10),
    "release-tag-missing": (_release_tag, ("v2.4.0", "v2.4.0"), (None, None)),
}
PROBES.update(APP_PROBES)  # sections 4 and 5: the app's runtime, frontend, scheduler and security facts
PROBES.update(INFRA_PROBES)  # sections 1 and 6: network edge, load balancer, auto-scaling, load-test results
PROBES.update(DEPENDENCY_PROBES)  # sections 2 and 7: SaaS fakes, containers, PgBouncer, Alertmanager, alert rules


def test_every_fault_has_a_probe():
    assert set(PROBES) == set(FAULTS) and all(FAULTS.values())


@pytest.mark.parametrize("name", debian_faults(list(PROBES)))
def test_fault_breaks_one_fact_and_repair_restores_it(sandbox, name):
    probe, healthy, broken = PROBES[name]
    assert probe(sandbox) == healthy
    with sandbox.fault(name):
        assert name in sandbox.faults
        assert probe(sandbox) == broken
    assert name not in sandbox.faults
    assert probe(sandbox) == healthy


def test_faults_leave_the_rest_of_the_web_alone(sandbox):
    """A request-level web fault changes its own fact only: the other web facts keep their healthy values."""
    web_faults = ["hsts-short", "health-down", "auth-off", "cors-wildcard", "http-no-redirect", "runbook-missing"]
    for name in web_faults:
        with sandbox.fault(name):
            for other in web_faults:
                if other != name:
                    probe, healthy, _ = PROBES[other]
                    assert probe(sandbox) == healthy, (name, other)


def test_children_outlive_the_thread_that_restarted_them(sandbox):
    """PDEATHSIG fires when the forking *thread* exits: a repair from a short-lived thread must not kill the child."""
    sandbox.break_("smtp-down")
    worker = threading.Thread(target=sandbox.repair, args=("smtp-down",))
    worker.start()
    worker.join()
    pid = sandbox.pids()["smtp"][0]
    time.sleep(0.3)
    assert procs.proc_identity(pid) is not None and _smtp(sandbox) == "up"


def test_prefect_database_is_separate_from_the_product_database(sandbox):
    url = sandbox.prefect_database_url()
    assert url == sandbox.prefect_database_url()  # started once
    m = re.fullmatch(r"postgresql\+asyncpg://prefect:([^@]+)@127\.0\.0\.1:(\d+)/prefect", url)
    assert m and int(m.group(2)) != sandbox.ports["postgres"]

    def trgm() -> float:
        with psycopg.connect(
            host="127.0.0.1",
            port=int(m.group(2)),
            dbname="prefect",
            user="prefect",
            password=m.group(1),
            connect_timeout=3,
        ) as conn:
            return conn.execute("SELECT similarity('golive', 'golive-sandbox')").fetchone()[0]

    assert trgm() > 0  # pg_trgm, which Prefect's migrations need
    with sandbox.fault("postgres-down"):
        assert _pg(sandbox) == "refused" and trgm() > 0  # the orchestrator's database stays up
    assert "prefect-db" in sandbox.pids()


def test_unknown_fault_is_rejected(sandbox):
    with pytest.raises(ValueError, match="unknown fault"):
        sandbox.break_("disk-full")


# ---------------------------------------------------------------------------------------------------- lifecycle
@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
@pytest.mark.e2e  # a sandbox of its own
def test_start_with_faults_in_a_given_base_dir_and_stop_cleans_up():
    base = Path("/tmp") / f"golive-sandbox-test-{os.getpid()}"  # pytest's tmp dirs are 0700: not for nobody
    with Sandbox.start(faults=["hsts-short", "smtp-no-starttls", "schema-version-wrong"], base_dir=base) as sb:
        assert sb.base_dir == base and sb.config_path.is_file()
        assert PROBES["hsts-short"][0](sb) == "max-age=3600"
        assert _smtp_starttls(sb) is False
        assert _newest_migration(sb) == "20251205160000"
        assert _pg(sb) == "up" and _web_answer(sb) == "answers"
        identities = [procs.proc_identity(p) for pids in sb.pids().values() for p in pids]
        assert set(sb.pids()) == SERVICES and all(identities)
    assert alive(identities) == []
    assert not base.exists()
    sb.stop()  # idempotent


#: every long-running process of a started sandbox (PgBouncer and Alertmanager from Debian's packages: .ci/run
#: installs them; the prefect-db cluster starts only when asked for)
SERVICES = {
    "postgres",
    "postgres-restore",
    "redis",
    "redis-replica",
    "s3",
    "smtp",
    "web",
    "prometheus",
    "saas",
    "scheduler",
    "advisories",
    "netfakes",
    "saas2",
    "pgbouncer",
    "alertmanager",
}


@pytest.mark.e2e  # a sandbox of its own
def test_without_the_debian_packages_the_sandbox_runs_neither_and_says_so(monkeypatch):
    """The quick start needs pip only: without pgbouncer / prometheus-alertmanager the sandbox starts neither, its
    config has no section for them (NOT_APPLICABLE, with the reason) and the critical alerts do not pretend that an
    Alertmanager is there; everything else of sections 2 and 7 still passes."""
    from golive.flows.config import load_config
    from golive.sandbox import dependencies as depstack
    from golive.tasks.core import Status
    from tests.support.checks import run_dag

    monkeypatch.setattr(depstack, "have_pgbouncer", lambda: False)
    monkeypatch.setattr(depstack, "have_alertmanager", lambda: False)
    sb = Sandbox.start()
    try:
        assert "pgbouncer" not in sb.services and "alertmanager" not in sb.services
        text = sb.config_path.read_text()
        assert "# pgbouncer: not installed on this machine (apt-get install pgbouncer)" in text
        cfg = load_config(sb.config_path, env=sb.env)
        assert cfg.pgbouncer is None and cfg.observability.alertmanager is None
        assert cfg.monitoring.alert_rules.require_alertmanager is False
        pgb_ids = ["dependencies.pgbouncer.admin", "dependencies.pgbouncer.pools"]
        ids = [
            *pgb_ids,
            "dependencies.postgres.indexes",
            "dependencies.twilio.api",
            "dependencies.twilio.account",
            "dependencies.stripe.api_key",
            "dependencies.stripe.webhooks",
            "dependencies.sentry.events",
            "dependencies.analytics.tracking",
            "dependencies.docker.containers",
            "dependencies.kubernetes.nodes",
            "dependencies.kubernetes.components",
            "monitoring.alerts.critical",
            "monitoring.alerts.warning",
            "monitoring.alertmanager.routing",
        ]
        res = run_dag(ids, cfg)
        na = {i for i, r in res.items() if r.status == Status.NOT_APPLICABLE}
        assert na == {*pgb_ids, "monitoring.alertmanager.reachable", "monitoring.alertmanager.routing"}
        assert res["dependencies.pgbouncer.admin"].cause == "no `pgbouncer` section in the environment config"
        assert res["monitoring.alertmanager.routing"].cause.endswith("no `observability.alertmanager` configured")
        assert all(r.status == Status.PASS for i, r in res.items() if i not in na), {
            i: r.summary for i, r in res.items() if i not in na and r.status != Status.PASS
        }
        assert "alertmanagers" not in res["monitoring.alerts.critical"].observed
        with pytest.raises(RuntimeError, match="apt-get install pgbouncer"):
            sb.break_("pgbouncer-down")
        assert "pgbouncer-down" not in sb.faults
    finally:
        sb.stop()


CHILD = """
import json, sys, time
from golive.sandbox import Sandbox
sb = Sandbox.start()
print(json.dumps({"pids": sb.pids(), "base": str(sb.base_dir)}), flush=True)
time.sleep(600)
"""


@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
@pytest.mark.e2e  # a sandbox of its own
def test_sigkilled_parent_leaks_no_process():
    child = procs.spawn(
        [sys.executable, "-c", CHILD], cwd=REPO, capture=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read().decode()
        started = json.loads(line)
        pids = [p for ps in started["pids"].values() for p in ps]
        identities = [procs.proc_identity(p) for p in pids]
        assert set(started["pids"]) == SERVICES
        assert len(pids) > 7 and all(identities)  # postgres has helper processes too
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while alive(identities) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(identities) == []
    base = Path(started["base"])
    assert base.exists() and base.parent == ROOT  # a SIGKILL leaves the directory ...
    _reap_stale(ROOT)
    assert not base.exists()  # ... which the next start reaps


@pytest.mark.e2e  # a sandbox of its own
def test_cli_up_prints_the_config_and_env_and_stops_on_sigterm():
    cli = procs.spawn(
        [sys.executable, "-m", "golive.sandbox", "up", "--fault", "runbook-missing"],
        cwd=REPO,
        capture=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = []
    try:
        for raw in cli.stdout:
            lines.append(raw.decode().rstrip())
            if "Ctrl-C" in lines[-1]:
                break
        out = "\n".join(lines)
        config = Path(re.search(r"^# config: (\S+)$", out, re.M).group(1))
        env = dict(re.findall(r"^export (\w+)=(\S+)$", out, re.M))
        assert config.is_file() and "GOLIVE_SANDBOX_DB_PASSWORD" in env and "runbook-missing" in out
        from golive.flows.config import load_config

        cfg = load_config(config, env=env)
        ca = ssl.create_default_context(cafile=str(cfg.web.ca_file))
        r = httpx.get(str(cfg.team.runbooks["rollback"]), verify=ca, timeout=5)
        assert r.status_code == 404
    finally:
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=20) == 0
    assert not config.parent.exists()
