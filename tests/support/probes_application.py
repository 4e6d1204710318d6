"""Probes of the sandbox facts that the sections 4 and 5 faults break (application, security: sandbox/application.py),
for tests/test_sandbox.py's fault table: fault -> (probe, healthy value, broken value). Each probe reads the real
process (HTTPS app, PostgreSQL, git, the advisory mirror), not golive's checks. No tests in here."""

from __future__ import annotations

import ssl
import subprocess
from typing import Any

import httpx

from golive.sandbox import application as appsetup
from golive.sandbox import configfile, procs
from golive.sandbox.parts.web_app import USERNAME


def _client(sb: Any) -> httpx.Client:
    return httpx.Client(base_url=sb.urls["web"], verify=ssl.create_default_context(cafile=str(sb.ca_file)), timeout=10)


def _login(sb: Any) -> httpx.Response:
    with _client(sb) as c:
        return c.post("/api/auth/login", json={"username": USERNAME, "password": sb.env[configfile.ENV_WEB]})


def _runtime_has_secret_key(sb: Any) -> bool:
    token = _login(sb).json()["token"]
    with _client(sb) as c:
        return "SECRET_KEY" in c.get("/api/ops/runtime", headers={"Authorization": f"Bearer {token}"}).json()["env"]


def _get(sb: Any, path: str) -> httpx.Response:
    with _client(sb) as c:
        return c.get(path)


def _db(sb: Any, query: str) -> Any:
    with sb.admin_db() as conn:
        return conn.execute(query).fetchone()[0]


def _tracked(sb: Any) -> bool:
    out = subprocess.run(["git", "-C", str(sb.repo), "ls-files"], capture_output=True, text=True, check=True).stdout
    return appsetup.SECRET_FILE in out.split()


def _osv_vulns(sb: Any) -> int:
    pins = {ln.split("==")[0].lower(): ln.split("==")[1] for ln in sb.app_lock.read_text().splitlines() if "==" in ln}
    r = httpx.post(
        f"http://127.0.0.1:{sb.ports['advisories']}/v1/query",
        timeout=5,
        json={"package": {"name": "starlette", "ecosystem": "PyPI"}, "version": pins["starlette"]},
    )
    return len(r.json().get("vulns", []))


def _index_releases(sb: Any) -> int:
    return _get_plain(sb, "/simple/sqlalchemy/").count("<a ")


def _get_plain(sb: Any, path: str) -> str:
    return httpx.get(f"http://127.0.0.1:{sb.ports['advisories']}{path}", timeout=5).text


SANDBOX_PROBES = {
    "env-missing": (_runtime_has_secret_key, True, False),
    "bundle-too-big": (lambda sb: "vendor.js" in _get(sb, "/").text, False, True),
    "bundle-unminified": (lambda sb: "\n  " in _get(sb, "/static/app.js").text, False, True),  # indented source
    "asset-missing": (lambda sb: _get(sb, "/static/logo.png").status_code, 200, 404),
    "cookie-insecure": (lambda sb: "HttpOnly" in _login(sb).headers["set-cookie"], True, False),
    "admin-open": (lambda sb: _get(sb, "/admin").status_code, 401, 200),
    "password-plaintext": (
        lambda sb: _db(sb, f"SELECT password_hash LIKE '$2b$%' FROM users WHERE id = {appsetup.PLAINTEXT_USER_ID}"),
        True,
        False,
    ),
    "admin-no-2fa": (lambda sb: _db(sb, "SELECT totp_enabled FROM users WHERE id = 2"), True, False),
    "audit-log-short": (
        lambda sb: _db(sb, "SELECT min(occurred_at) < now() - interval '90 days' FROM audit_log"),
        True,
        False,
    ),
    "job-missing": (lambda sb: _db(sb, "SELECT count(*) FROM apscheduler_jobs"), 5, 4),
    "scheduler-down": (
        lambda sb: (sb.services["scheduler"].running, appsetup.heartbeat_age(sb) < 60),
        (True, True),
        (False, False),
    ),
    "db-exposed": (lambda sb: procs.port_open(sb.ports["postgres"], "127.0.0.2"), False, True),
    "secrets-committed": (_tracked, False, True),
    "vuln-published": (_osv_vulns, 0, 1),
    "package-outdated": (_index_releases, 3, 4),
}
