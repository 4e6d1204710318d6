"""Checklist sections 2 (dependencies) and 7 (monitoring) of the sandbox beyond the databases: the real PgBouncer and
Alertmanager when their Debian packages are installed (a part, sandbox/part.py: their config files and argv come from
sandbox/parts/pgbouncer.py and sandbox/parts/alertmanager.py), and the config and the fault switches of these and of
the service-API fakes (sandbox/fakes/service_apis.py).

The quick start needs pip only: without `pgbouncer` / `prometheus-alertmanager` on this machine the sandbox starts
neither, and its config has no `pgbouncer` section and no `observability.alertmanager` (those checks are then
NOT_APPLICABLE, saying the section is absent; the YAML says why in a comment). It never pretends: the Prometheus
API fake reports an Alertmanager only when a real one is running, and `monitoring.alert_rules.require_alertmanager`
is off when none is.

Used by sandbox/stack.py (PORTS, services(), credentials(), config(), monitoring_config(), notes()) and sandbox/faults.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .fakes import service_apis
from .part import Service, Stack, child_env
from .parts import alertmanager, pgbouncer, postgres

PORTS = ("pgbouncer", "alertmanager")
PGB_ADMIN_ENV = "GOLIVE_SANDBOX_PGBOUNCER_ADMIN_PASSWORD"
INDEX_FAULT = ("campaign_events_campaign_id_idx", "campaign_events", "campaign_id")


def have_pgbouncer() -> bool:
    return pgbouncer.executable() is not None


def have_alertmanager() -> bool:
    return alertmanager.executable() is not None


def credentials(token: Any) -> dict[str, str]:
    """The fakes' credentials and PgBouncer's admin password, {env name: value}."""
    return {**service_apis.new_credentials(token), PGB_ADMIN_ENV: token()}


def docker_socket(sb: Stack) -> Path:
    """Where the Docker Engine fake listens."""
    return service_apis.docker_socket_path(sb)


def services(sb: Stack) -> list[Service]:
    """PgBouncer (in front of the product database) and Alertmanager (its Slack webhook the sandbox's Slack fake, its
    SMTP smarthost the sandbox's relay), each only when installed."""
    from .configfile import ENV_DB

    p, base = sb.ports, sb.base_dir
    out = []
    if have_pgbouncer():

        def pgb_argv() -> list[str]:
            ini = pgbouncer.write_config(
                base / "pgbouncer",
                listen_port=p["pgbouncer"],
                pg_port=p["postgres"],
                dbname=postgres.DBNAME,
                users={postgres.APP_USER: sb.env[ENV_DB], pgbouncer.ADMIN_USER: sb.env[PGB_ADMIN_ENV]},
            )
            return pgbouncer.argv(ini)

        out.append(Service("pgbouncer", pgb_argv, (p["pgbouncer"],), user=pgbouncer.run_as()))
    if have_alertmanager():

        def am_argv() -> list[str]:
            cfg = alertmanager.write_config(
                base / "alertmanager",
                slack_webhook=f"http://127.0.0.1:{p['saas']}/slack/hooks/T0GOLIVE/B0ALERTS",
                smarthost=f"127.0.0.1:{p['smtp']}",
            )
            return alertmanager.argv(cfg, p["alertmanager"], base / "alertmanager" / "data")

        out.append(Service("alertmanager", am_argv, (p["alertmanager"],), env=child_env()))
    return out


def config(sb: Stack) -> dict[str, Any]:
    """The sections this module serves, as data (configfile dumps them; `notes` says what is left out and why)."""
    p = sb.ports
    u = service_apis.urls(
        f"http://127.0.0.1:{p['saas2']}", f"https://127.0.0.1:{p['saas2_k8s']}", str(docker_socket(sb))
    )
    dsn = f"http://${{{service_apis.SENTRY_KEY_ENV}}}@{u['sentry_dsn_host']}/{u['sentry_project']}"
    out: dict[str, Any] = {
        # the sandbox's tables are small (6,000 campaign events); production keeps 10,000
        "indexes": {"large_table_rows": 1000}
    }
    if have_pgbouncer():
        out["pgbouncer"] = {
            "host": "127.0.0.1",
            "port": p["pgbouncer"],
            "admin_user": pgbouncer.ADMIN_USER,
            "admin_password": f"${{{PGB_ADMIN_ENV}}}",
            "sslmode": "disable",
        }
    observability: dict[str, Any] = {
        "grafana": {
            "url": u["grafana"],
            "api_token": f"${{{service_apis.GRAFANA_TOKEN_ENV}}}",
            "dashboards": [t for _, t in service_apis.DASHBOARDS],
        }
    }
    if have_alertmanager():
        observability["alertmanager"] = {"url": f"http://127.0.0.1:{p['alertmanager']}"}
    observability["logging"] = {
        "elasticsearch_url": u["elasticsearch"],
        "kibana_url": u["kibana"],
        "index": "filebeat-*",
    }
    out |= {
        "saas": {
            "twilio": {
                "api_url": u["twilio"],
                "account_sid": service_apis.TWILIO_SID,
                "auth_token": f"${{{service_apis.TWILIO_TOKEN_ENV}}}",
                "sender_numbers": [service_apis.SENDER],
            },
            # a test-mode key: the sandbox is not production
            "stripe": {
                "api_url": u["stripe"],
                "secret_key": f"${{{service_apis.STRIPE_KEY_ENV}}}",
                "webhook_url": "https://api.swipesavvy.test/webhooks/stripe",
                "webhook_signing_secret": f"${{{service_apis.STRIPE_WHSEC_ENV}}}",
            },
            "sentry": {"dsn": dsn, "environment": "sandbox"},
            # the sandbox web app carries no snippet: a page of the fakes does
            "analytics": {
                "measurement_id": service_apis.MEASUREMENT_ID,
                "page_url": u["site"],
                "collector_url": u["collector"],
            },
        },
        "containers": {
            "ca_file": str(sb.ca_file),
            "docker": {"url": u["docker"], "expected_containers": ["api", "worker", "scheduler", "nginx"]},
            "kubernetes": {
                "api_url": u["kubernetes"],
                "token": f"${{{service_apis.K8S_TOKEN_ENV}}}",
                "min_ready_nodes": 3,
            },
        },
        "observability": observability,
    }
    return out


def monitoring_config(sb: Stack) -> dict[str, Any]:
    """Keys for the `monitoring` section: without an Alertmanager the critical alerts cannot notify, and the sandbox
    says so (`notes`) instead of faking one."""
    return {} if have_alertmanager() else {"alert_rules": {"require_alertmanager": False}}


def notes(sb: Stack) -> list[str]:
    """What this module leaves out of the config on this machine, and why (comment lines of the config file)."""
    out = []
    if not have_pgbouncer():
        out.append("pgbouncer: not installed on this machine (apt-get install pgbouncer): the pool checks are N/A")
    if not have_alertmanager():
        out.append(
            "alertmanager: not installed on this machine (apt-get install prometheus-alertmanager): N/A, "
            "and monitoring.alert_rules.require_alertmanager is false"
        )
    return out


def drop_index(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {INDEX_FAULT[0]}")


def create_index(sb: Stack) -> None:
    name, table, column = INDEX_FAULT
    with sb.admin_db() as conn:
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")
        conn.execute(f"ANALYZE {table}")


def _need(service: str, have: bool, package: str) -> None:
    if not have:
        raise RuntimeError(
            f"{service} is not installed on this machine (apt-get install {package}): the sandbox "
            f"runs none, so this fault cannot be applied"
        )


def stop_pgbouncer(sb: Stack) -> None:
    _need("PgBouncer", have_pgbouncer(), "pgbouncer")
    sb.stop_service("pgbouncer")


def start_pgbouncer(sb: Stack) -> None:
    if have_pgbouncer():
        sb.start_service("pgbouncer", wait=True)


def stop_alertmanager(sb: Stack) -> None:
    _need("Alertmanager", have_alertmanager(), "prometheus-alertmanager")
    sb.stop_service("alertmanager")


def start_alertmanager(sb: Stack) -> None:
    if have_alertmanager():
        sb.start_service("alertmanager", wait=True)
