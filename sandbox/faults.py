"""Fault switches: each turns ONE fact of the sandbox wrong, and its repair turns it back.

Three kinds, often combined:
- runtime faults, listed in the fault file that the web app and the monitoring server re-read on change;
- restart faults: the web or SMTP process is restarted, and starts in the mode the current faults ask for;
- actions on the real services (CONFIG SET, stopping a process, deleting objects, deleting a migration row).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import s3

if TYPE_CHECKING:
    from .stack import Sandbox

Action = Callable[["Sandbox"], None]


@dataclass(frozen=True)
class Fault:
    description: str
    restart: str | None = None      # the service restarted to pick the fault up ("web", "smtp")
    apply: Action | None = None
    undo: Action | None = None


def _redis_config(key: str, broken: str, healthy: str) -> tuple[Action, Action]:
    def setter(value: str) -> Action:
        def act(sb: Sandbox) -> None:
            r = sb.redis_client()
            r.config_set(key, value)
            if key == "appendonly" and value == "yes":
                sb.wait_aof_rewrite()
        return act
    return setter(broken), setter(healthy)


def _stop(service: str) -> Action:
    return lambda sb: sb.stop_service(service)


def _start(service: str) -> Action:
    return lambda sb: sb.start_service(service, wait=True)


def _drop_newest_migration(sb: Sandbox) -> None:
    with sb.admin_db() as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (sb.schema_version,))


def _restore_newest_migration(sb: Sandbox) -> None:
    with sb.admin_db() as conn:
        conn.execute("INSERT INTO schema_migrations (version, applied_at, success) VALUES (%s, now(), true) "
                     "ON CONFLICT (version) DO NOTHING", (sb.schema_version,))


def _delete_backups(sb: Sandbox) -> None:
    s3.delete_prefix(sb.s3_client(), s3.BACKUP_PREFIX)


def _restore_backups(sb: Sandbox) -> None:
    sb.upload_backup()


def _add_unencrypted_backup(sb: Sandbox) -> None:
    sb.unencrypted_key = s3.upload_unencrypted_backup(sb.s3_client(), sb.backup_uploaded_at, sb.dump)


def _remove_unencrypted_backup(sb: Sandbox) -> None:
    if sb.unencrypted_key:
        sb.s3_client().delete_object(Bucket=s3.BUCKET, Key=sb.unencrypted_key)
        sb.unencrypted_key = None


def _delete_wal(sb: Sandbox) -> None:
    s3.delete_prefix(sb.s3_client(), s3.WAL_PREFIX)


def _restore_wal(sb: Sandbox) -> None:
    s3.upload_wal(sb.s3_client())


_noeviction, _lru = _redis_config("maxmemory-policy", "noeviction", "allkeys-lru")
_aof_off, _aof_on = _redis_config("appendonly", "no", "yes")

REGISTRY: dict[str, Fault] = {
    "tls-expiry": Fault("the HTTPS certificate has 10 days left (web process restarted)", restart="web"),
    "hsts-short": Fault("Strict-Transport-Security max-age=3600"),
    "health-down": Fault("/health and /api/health answer 503 {\"status\": \"unhealthy\"}"),
    "auth-off": Fault("protected API endpoints answer 200 without authentication"),
    "cors-wildcard": Fault("CORS allows any origin (Access-Control-Allow-Origin: *)"),
    "http-no-redirect": Fault("the plain-HTTP listener answers 200 instead of 301 to HTTPS"),
    "web-hang": Fault("the HTTPS port accepts TCP connections and never answers", restart="web"),
    "redis-noeviction": Fault("Redis maxmemory-policy noeviction (CONFIG SET)", apply=_noeviction, undo=_lru),
    "redis-aof-off": Fault("Redis appendonly no (CONFIG SET)", apply=_aof_off, undo=_aof_on),
    "redis-replica-down": Fault("the Redis replica is stopped", apply=_stop("redis-replica"),
                                undo=_start("redis-replica")),
    "postgres-down": Fault("the product PostgreSQL is stopped (the Prefect database stays up)",
                           apply=_stop("postgres"), undo=_start("postgres")),
    "schema-version-wrong": Fault("the newest schema_migrations row is missing (the DB is behind the release)",
                                  apply=_drop_newest_migration, undo=_restore_newest_migration),
    "backup-missing": Fault("no objects under backups/ in the backup bucket",
                            apply=_delete_backups, undo=_restore_backups),
    "backup-unencrypted": Fault("a newer dump object without server-side encryption",
                                apply=_add_unencrypted_backup, undo=_remove_unencrypted_backup),
    "wal-missing": Fault("no WAL objects under wal/", apply=_delete_wal, undo=_restore_wal),
    "smtp-down": Fault("the SMTP server is stopped", apply=_stop("smtp"), undo=_start("smtp")),
    "smtp-no-starttls": Fault("the SMTP server offers no STARTTLS (AUTH in the clear; restarted)", restart="smtp"),
    "node-target-down": Fault("Prometheus node target backend-2 is down"),
    "runbook-missing": Fault("/runbooks/rollback answers 404"),
}

FAULTS: dict[str, str] = {name: f.description for name, f in REGISTRY.items()}


def lookup(name: str) -> Fault:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(REGISTRY)}") from None
