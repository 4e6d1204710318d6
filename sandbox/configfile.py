"""The golive environment config (YAML) that points at a running sandbox. Secrets stay `${VAR}` references."""
from __future__ import annotations

import json
from pathlib import Path

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


def _q(value: object) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def render(*, ports: dict[str, int], ca_file: Path, schema_version: str, approved_origins: list[str],
           web_username: str, smtp_username: str, s3_endpoint: str, bucket: str, backup_prefix: str,
           wal_prefix: str, config_prefix: str, access_key_id: str, dbname: str, db_user: str, restore_user: str,
           pg_restore: Path, repo: Path, release_tag: str, rollback_script: Path, rehearsal_record: Path,
           saas_urls: dict[str, str], extra: str = "", monitoring_extra: str = "") -> str:
    web = f"https://127.0.0.1:{ports['https']}"
    contacts = "\n".join(
        f"    - {{role: {_q(role)}, name: {_q(name)}, phone: {_q(phone)}, slack: {_q(slack)}, email: {_q(email)}}}"
        for role, name, phone, slack, email in CONTACTS)
    return f"""\
# golive environment config for a local sandbox (written by `sandbox`; ports and secrets change on every start).
# Secrets are ${{VAR}} references: export the variables printed by `python -m golive.sandbox up`.
environment: sandbox
description: golive local sandbox (real PostgreSQL, Redis, S3, SMTP, HTTPS app, Prometheus API)
web:
  base_url: {web}
  http_url: http://127.0.0.1:{ports['http']}
  ca_file: {_q(ca_file)}
  expected_title: SwipeSavvy
  approved_origins: [{", ".join(approved_origins)}]
  auth: {{login_path: /api/auth/login, username: {_q(web_username)}, password: "${{{ENV_WEB}}}"}}
postgres:
  host: 127.0.0.1
  port: {ports['postgres']}
  dbname: {dbname}
  user: {db_user}
  password: "${{{ENV_DB}}}"
  sslmode: disable        # the PyPI PostgreSQL build has no server-side TLS
  schema_version: {_q(schema_version)}
redis:
  url: "redis://127.0.0.1:{ports['redis']}/0"
  password: "${{{ENV_REDIS}}}"
  replica_urls: ["redis://127.0.0.1:{ports['redis_replica']}/0"]
smtp:
  host: 127.0.0.1
  port: {ports['smtp']}
  username: {_q(smtp_username)}
  password: "${{{ENV_SMTP}}}"
  starttls: true
  ca_file: {_q(ca_file)}
  hourly_capacity: 2000
backups:
  endpoint_url: {s3_endpoint}   # its own loopback address: the backup store is not the database server
  bucket: {bucket}
  prefix: {backup_prefix}
  wal_prefix: {wal_prefix}
  config_prefix: {config_prefix}
  access_key_id: {access_key_id}
  secret_access_key: "${{{ENV_S3}}}"
  min_size_bytes: 10000   # the sandbox database is small (~350 KB dump); production keeps the seed's 50 MB
restore:
  host: 127.0.0.1
  port: {ports['postgres_restore']}
  user: {restore_user}
  password: "${{{ENV_RESTORE}}}"
  sslmode: disable
  pg_restore: {_q(pg_restore)}
  rto_minutes: 30
  rpo_minutes: 60
  rollback_minutes: 15
  git_repo: {_q(repo)}
  git_remote: origin
  release_tag: {_q(release_tag)}
  rollback_script: {_q(rollback_script)}
  rehearsal_record: {_q(rehearsal_record)}
monitoring:
  prometheus_url: "http://127.0.0.1:{ports['prometheus']}"
{monitoring_extra}team:
  ca_file: {_q(ca_file)}   # the runbooks are served over HTTPS by the sandbox's own CA
  runbooks:
    deployment: "{web}/runbooks/deployment"
    rollback: "{web}/runbooks/rollback"
  contacts:
{contacts}
  comms:
    release_notes: {_q(saas_urls["release_notes"])}
    status_page_template: {_q(saas_urls["status_page_template"])}
    customer_email_template: {_q(saas_urls["customer_email_template"])}
  slack:
    api_url: {_q(saas_urls["slack_api_url"])}
    bot_token: "${{{team_apis.SLACK_TOKEN_ENV}}}"
  oncall:
    api_url: {_q(saas_urls["pagerduty_api_url"])}
    api_token: "${{{team_apis.PAGERDUTY_TOKEN_ENV}}}"
    escalation_policy_id: {_q(saas_urls["escalation_policy_id"])}
""" + extra
