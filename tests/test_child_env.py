"""A check's child processes (git, bash -n, pip-audit, pg_restore) never get the Prefect API's credentials nor a
secret of the run from golive's environment: only the secret they are handed (pg_restore: the restore user's
password). The attack: a hostile `git` / `pg_restore` (first on PATH, or configured) that records its environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from golive.tasks.core import Redactor, RunContext, Status
from tests.support.checks import run_dag, with_
from tests.support.restore import cfg, no_gx_on_restored_copies, nothing_left_behind  # noqa: F401

AUTH = "admin:prefect-basic-auth-7f3a9c"


def spy(tmp_path: Path, name: str, real: str) -> tuple[Path, Path]:
    """An executable `name` that writes its environment (NUL-separated) to a file, then runs the real one."""
    record = tmp_path / f"{name}.env"
    exe = tmp_path / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f'#!/bin/sh\nprintf "\\036" >> "{record}"\n/usr/bin/env -0 >> "{record}"\nexec "{real}" "$@"\n')
    exe.chmod(0o755)
    return exe, record


def recorded(record: Path) -> list[dict[str, str]]:
    """The environment of each run of the spy, in order."""
    runs = record.read_bytes().decode().split("\x1e")[1:]
    return [dict(p.split("=", 1) for p in run.split("\0") if "=" in p) for run in runs]


def test_child_env_drops_prefects_credentials_and_whatever_holds_a_secret(monkeypatch):
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_key")
    monkeypatch.setenv("PREFECT_API_URL", "https://user:pw@prefect.example/api")  # any Prefect setting stays home
    monkeypatch.setenv("COPY_OF_SECRET", "s3cret-db-password")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cret-db-password@db/prod")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxyuser:proxypass@proxy:3128")  # not a secret of the run: kept
    ctx = RunContext(redact=Redactor(["s3cret-db-password", "x"]))  # a 1-character secret matches whole values only
    env = ctx.child_env(PGPASSWORD="handed-to-the-child")
    assert not [k for k in env if k.startswith("PREFECT_")]
    assert "COPY_OF_SECRET" not in env and "DATABASE_URL" not in env
    assert env["PATH"] == os.environ["PATH"] and env["HTTPS_PROXY"].startswith("http://proxyuser")
    assert env["PGPASSWORD"] == "handed-to-the-child"


def test_a_hostile_git_sees_neither_prefects_credentials_nor_a_secret(cfg, tmp_path, monkeypatch):
    secret = max(cfg.secrets(), key=len)
    exe, record = spy(tmp_path, "git", shutil.which("git"))
    monkeypatch.setenv("PATH", f"{exe.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    monkeypatch.setenv("GOLIVE_TEST_COPY", secret)
    r = run_dag(["backup.code.release_tag"], cfg)["backup.code.release_tag"]
    assert r.status == Status.PASS, r.summary  # the spy ran the real git
    runs = recorded(record)
    assert runs and all("PATH" in env for env in runs)
    for env in runs:
        assert "PREFECT_API_AUTH_STRING" not in env and "GOLIVE_TEST_COPY" not in env
        assert not [k for k, v in env.items() if secret in v or AUTH in v]


def test_a_hostile_pg_restore_gets_the_restore_password_only(
    cfg, sandbox, tmp_path, monkeypatch, no_gx_on_restored_copies
):  # noqa: F811
    exe, record = spy(tmp_path, "pg_restore", str(sandbox.pg_bindir / "pg_restore"))
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    for name, value in sandbox.env.items():  # every secret the sandbox hands golive, in golive's environment
        monkeypatch.setenv(name, value)
    conf = with_(cfg, "restore", pg_restore=str(exe))
    res = run_dag(["backup.restore.test"], conf)
    assert res["backup.restore.test"].status == Status.PASS, res["backup.restore.test"].summary
    restore_password = conf.restore.password.get_secret_value()
    others = [s for s in conf.secrets() if s != restore_password and len(s) >= 6]
    runs = recorded(record)  # `pg_restore --version` (backup.restore.server), then the restore itself
    assert len(runs) >= 2 and runs[-1].get("PGPASSWORD") == restore_password  # the one secret it is handed
    for env in runs:
        assert "PREFECT_API_AUTH_STRING" not in env
        assert not [k for k, v in env.items() if any(s in v for s in others)], sorted(env)
