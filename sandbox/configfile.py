"""The golive environment config (YAML) that points at a running sandbox. Secrets stay `${VAR}` references."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .fakes import team_apis

ENV_WEB = "GOLIVE_SANDBOX_WEB_PASSWORD"
ENV_DB = "GOLIVE_SANDBOX_DB_PASSWORD"
ENV_REDIS = "GOLIVE_SANDBOX_REDIS_PASSWORD"
ENV_SMTP = "GOLIVE_SANDBOX_SMTP_PASSWORD"
ENV_S3 = "GOLIVE_SANDBOX_S3_SECRET"
ENV_RESTORE = "GOLIVE_SANDBOX_RESTORE_PASSWORD"

CONTACTS = [  # (role, name, phone, slack, email): one per role tasks/team.py requires
    ("Deployment Lead", "Dana Whitfield", "+14155550101", "@dana.w", "dana.whitfield@swipesavvy.test"),
    ("Infrastructure Lead", "Marcus Oyelaran", "+14155550102", "@marcus.o", "marcus.oyelaran@swipesavvy.test"),
    ("Backend Lead", "Priya Raman", "+14155550103", "@priya.r", "priya.raman@swipesavvy.test"),
    ("Frontend Lead", "Tomas Ferreira", "+14155550104", "@tomas.f", "tomas.ferreira@swipesavvy.test"),
    ("Database Admin", "Helen Zhao", "+14155550105", "@helen.z", "helen.zhao@swipesavvy.test"),
    ("Security Lead", "Omar Haddad", "+14155550106", "@omar.h", "omar.haddad@swipesavvy.test"),
    ("VP Engineering", "Grace Liu", "+14155550107", "@grace.l", "grace.liu@swipesavvy.test"),
    ("CTO", "Samuel Adeyemi", "+14155550108", "@samuel.a", "samuel.adeyemi@swipesavvy.test"),
]


HEADER = """\
# golive environment config for a local sandbox (written by `sandbox`; ports and secrets change on every start).
# Secrets are ${VAR} references: export the variables printed by `python -m golive.sandbox up`.
# Sandbox-sized values: postgres.sslmode disable (the PyPI PostgreSQL build has no server-side TLS); backups
# min_size_bytes 10000 (the sandbox database dumps to ~350 KB; production keeps the seed's 50 MB); backups.endpoint_url
# on its own loopback address (the backup store is not the database server); team.ca_file: the runbooks are served
# over HTTPS by the sandbox's own CA.
"""


def config(
    *,
    ports: dict[str, int],
    ca_file: Path,
    schema_version: str,
    approved_origins: list[str],
    web_username: str,
    smtp_username: str,
    s3_endpoint: str,
    bucket: str,
    backup_prefix: str,
    wal_prefix: str,
    config_prefix: str,
    access_key_id: str,
    dbname: str,
    db_user: str,
    restore_user: str,
    pg_restore: Path,
    repo: Path,
    release_tag: str,
    rollback_script: Path,
    rehearsal_record: Path,
    saas_urls: dict[str, str],
) -> dict[str, Any]:
    """The sections every sandbox has (the checklist sections' modules add theirs: application, infrastructure,
    dependencies), as data: `dump` writes it with yaml.safe_dump, so no value needs quoting by hand."""
    web = f"https://127.0.0.1:{ports['https']}"
    return {
        "environment": "sandbox",
        "description": "golive local sandbox (real PostgreSQL, Redis, S3, SMTP, HTTPS app, Prometheus API)",
        "web": {
            "base_url": web,
            "http_url": f"http://127.0.0.1:{ports['http']}",
            "ca_file": str(ca_file),
            "expected_title": "SwipeSavvy",
            "approved_origins": list(approved_origins),
            "auth": {"login_path": "/api/auth/login", "username": web_username, "password": f"${{{ENV_WEB}}}"},
        },
        "postgres": {
            "host": "127.0.0.1",
            "port": ports["postgres"],
            "dbname": dbname,
            "user": db_user,
            "password": f"${{{ENV_DB}}}",
            "sslmode": "disable",
            "schema_version": schema_version,
        },
        "redis": {
            "url": f"redis://127.0.0.1:{ports['redis']}/0",
            "password": f"${{{ENV_REDIS}}}",
            "replica_urls": [f"redis://127.0.0.1:{ports['redis_replica']}/0"],
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": ports["smtp"],
            "username": smtp_username,
            "password": f"${{{ENV_SMTP}}}",
            "starttls": True,
            "ca_file": str(ca_file),
            "hourly_capacity": 2000,
        },
        "backups": {
            "endpoint_url": s3_endpoint,
            "bucket": bucket,
            "prefix": backup_prefix,
            "wal_prefix": wal_prefix,
            "config_prefix": config_prefix,
            "access_key_id": access_key_id,
            "secret_access_key": f"${{{ENV_S3}}}",
            "min_size_bytes": 10000,
        },
        "restore": {
            "host": "127.0.0.1",
            "port": ports["postgres_restore"],
            "user": restore_user,
            "password": f"${{{ENV_RESTORE}}}",
            "sslmode": "disable",
            "pg_restore": str(pg_restore),
            "rto_minutes": 30,
            "rpo_minutes": 60,
            "rollback_minutes": 15,
            "git_repo": str(repo),
            "git_remote": "origin",
            "release_tag": release_tag,
            "rollback_script": str(rollback_script),
            "rehearsal_record": str(rehearsal_record),
        },
        "monitoring": {"prometheus_url": f"http://127.0.0.1:{ports['prometheus']}"},
        "team": {
            "ca_file": str(ca_file),
            "runbooks": {"deployment": f"{web}/runbooks/deployment", "rollback": f"{web}/runbooks/rollback"},
            "contacts": [
                {"role": role, "name": name, "phone": phone, "slack": slack, "email": email}
                for role, name, phone, slack, email in CONTACTS
            ],
            "comms": {k: saas_urls[k] for k in ("release_notes", "status_page_template", "customer_email_template")},
            "slack": {"api_url": saas_urls["slack_api_url"], "bot_token": f"${{{team_apis.SLACK_TOKEN_ENV}}}"},
            "oncall": {
                "api_url": saas_urls["pagerduty_api_url"],
                "api_token": f"${{{team_apis.PAGERDUTY_TOKEN_ENV}}}",
                "escalation_policy_id": saas_urls["escalation_policy_id"],
            },
        },
    }


def dump(config: dict[str, Any], notes: Sequence[str] = ()) -> str:
    """The config file: the header, the notes (what this machine leaves out, as comments), then the data."""
    comments = "".join(f"# {line}\n" for line in notes)
    return HEADER + comments + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120)
