"""Fault switches: each turns ONE fact of the sandbox wrong, and its repair turns it back.

Three kinds, often combined:
- runtime faults, listed in the fault file that the web app and the monitoring server re-read on change;
- restart faults: the web or SMTP process is restarted, and starts in the mode the current faults ask for;
- actions on the real services (CONFIG SET, stopping a process, deleting objects, deleting a migration row).
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from dataclasses import dataclass

from . import application, configfile, dependencies, dr, infrastructure
from .fakes import service_apis, team_apis
from .part import Stack
from .parts import postgres, s3

Action = Callable[[Stack], None]


@dataclass(frozen=True)
class Fault:
    description: str
    restart: str | None = None  # the service restarted to pick the fault up ("web", "smtp")
    apply: Action | None = None
    undo: Action | None = None


def _redis_config(key: str, broken: str, healthy: str) -> tuple[Action, Action]:
    def setter(value: str) -> Action:
        def act(sb: Stack) -> None:
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


def _drop_newest_migration(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = %s", (sb.schema_version,))


def _restore_newest_migration(sb: Stack) -> None:
    with sb.admin_db() as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at, success) VALUES (%s, now(), true) "
            "ON CONFLICT (version) DO NOTHING",
            (sb.schema_version,),
        )


def _delete_backups(sb: Stack) -> None:
    s3.delete_prefix(sb.s3_client(), s3.BACKUP_PREFIX)


def _restore_backups(sb: Stack) -> None:
    sb.upload_all_backups()


def _add_unencrypted_backup(sb: Stack) -> None:
    sb.unencrypted_key = s3.upload_unencrypted_backup(sb.s3_client(), sb.backup_uploaded_at, sb.dump)


def _remove_unencrypted_backup(sb: Stack) -> None:
    if sb.unencrypted_key:
        sb.s3_client().delete_object(Bucket=s3.BUCKET, Key=sb.unencrypted_key)
        sb.unencrypted_key = None


def _delete_wal(sb: Stack) -> None:
    s3.delete_prefix(sb.s3_client(), s3.WAL_PREFIX)


def _restore_wal(sb: Stack) -> None:
    s3.upload_wal(sb.s3_client())


# --------------------------------------------------------------------------- backups, restore, disaster recovery

STALE_DAYS = 3  # `backup-stale`: the newest full backup is 3 days old
WAL_STALE = dt.timedelta(hours=8)


def _make_stale(sb: Stack) -> None:
    """Delete the backups of the last 3 days: the newest left is the real 3-day-old one."""
    keys = [sb.backup_key] + [k for d, k in sb.history_keys().items() if d < STALE_DAYS]
    sb.s3_client().delete_objects(Bucket=s3.BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})


def _unstale(sb: Stack) -> None:
    sb.upload_history(range(1, STALE_DAYS))
    sb.upload_backup()


def _wal_stale(sb: Stack) -> None:
    s3.delete_prefix(sb.s3_client(), s3.WAL_PREFIX)
    with sb.s3_clock(WAL_STALE):
        s3.upload_wal(sb.s3_client())


def _wal_fresh(sb: Stack) -> None:
    s3.delete_prefix(sb.s3_client(), s3.WAL_PREFIX)
    s3.upload_wal(sb.s3_client())


def _not_a_dump() -> bytes:
    """A gzipped plain-SQL dump: what `pg_dump | gzip` leaves, which pg_restore cannot read."""
    return gzip.compress(
        b"--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n"
        b"CREATE TABLE public.users (id integer NOT NULL);\n" * 50
    )


def _newer_object(name: str, body: Callable[[Stack], bytes]) -> tuple[Action, Action]:
    """A newer (encrypted) object under backups/ whose content is `body`: it becomes the newest backup."""

    def apply(sb: Stack) -> None:
        sb.fault_keys[name] = s3.upload_newer(sb.s3_client(), sb.backup_uploaded_at, body(sb))

    def undo(sb: Stack) -> None:
        key = sb.fault_keys.pop(name, None)
        if key:
            sb.s3_client().delete_object(Bucket=s3.BUCKET, Key=key)

    return apply, undo


_truncated = _newer_object("backup-truncated", lambda sb: sb.dump[: len(sb.dump) * 6 // 10])
_not_dump = _newer_object("backup-not-a-dump", lambda sb: _not_a_dump())
_wrong_db = _newer_object("backup-wrong-db", lambda sb: sb.wrong_database_dump())


def _restore_is_source(sb: Stack) -> None:
    """The restore server's address now reaches the production primary, and the restore credentials work there."""
    sb.stop_service("postgres-restore")
    postgres.create_login_role(
        sb.base_dir / "pgsock", sb.ports["postgres"], postgres.RESTORE_USER, sb.env[configfile.ENV_RESTORE]
    )
    sb.start_service("restore-alias", wait=True)


def _restore_is_separate(sb: Stack) -> None:
    sb.stop_service("restore-alias")
    postgres.drop_role(sb.base_dir / "pgsock", sb.ports["postgres"], postgres.RESTORE_USER)
    sb.start_service("postgres-restore", wait=True)


def _empty_bucket(sb: Stack) -> None:
    s3.delete_prefix(sb.s3_client(), "")


def _refill_bucket(sb: Stack) -> None:
    sb.upload_all_backups()
    s3.upload_wal(sb.s3_client())
    s3.upload_config(sb.s3_client())


def _forbid(on: bool) -> Action:
    return lambda sb: s3.forbid_get(sb.urls["s3"], on)


def _retention(days: int) -> Action:
    return lambda sb: s3.set_lifecycle(sb.s3_client(), backup_days=days)


MISSING_CONFIG = "nginx.conf"  # `config-backup-missing`


def _delete_config(sb: Stack) -> None:
    sb.s3_client().delete_object(Bucket=s3.BUCKET, Key=s3.CONFIG_PREFIX + MISSING_CONFIG)


def _restore_config(sb: Stack) -> None:
    s3.upload_config(sb.s3_client(), [MISSING_CONFIG])


def _rehearsal(age: dt.timedelta) -> Action:
    return lambda sb: dr.write_rehearsal(sb.rehearsal_record, sb.rollback_script, age)


_noeviction, _lru = _redis_config("maxmemory-policy", "noeviction", "allkeys-lru")
_aof_off, _aof_on = _redis_config("appendonly", "no", "yes")

REGISTRY: dict[str, Fault] = {
    "tls-expiry": Fault("the HTTPS certificate has 10 days left (web process restarted)", restart="web"),
    "hsts-short": Fault("Strict-Transport-Security max-age=3600"),
    "health-down": Fault('/health and /api/health answer 503 {"status": "unhealthy"}'),
    "auth-off": Fault("protected API endpoints answer 200 without authentication"),
    "cors-wildcard": Fault("CORS allows any origin (Access-Control-Allow-Origin: *)"),
    "http-no-redirect": Fault("the plain-HTTP listener answers 200 instead of 301 to HTTPS"),
    "web-hang": Fault("the HTTPS port accepts TCP connections and never answers", restart="web"),
    "redis-noeviction": Fault("Redis maxmemory-policy noeviction (CONFIG SET)", apply=_noeviction, undo=_lru),
    "redis-aof-off": Fault("Redis appendonly no (CONFIG SET)", apply=_aof_off, undo=_aof_on),
    "redis-replica-down": Fault(
        "the Redis replica is stopped", apply=_stop("redis-replica"), undo=_start("redis-replica")
    ),
    "postgres-down": Fault(
        "the product PostgreSQL is stopped (the Prefect database stays up)",
        apply=_stop("postgres"),
        undo=_start("postgres"),
    ),
    "schema-version-wrong": Fault(
        "the newest schema_migrations row is missing (the DB is behind the release)",
        apply=_drop_newest_migration,
        undo=_restore_newest_migration,
    ),
    "backup-missing": Fault(
        "no objects under backups/ in the backup bucket", apply=_delete_backups, undo=_restore_backups
    ),
    "backup-unencrypted": Fault(
        "a newer dump object without server-side encryption",
        apply=_add_unencrypted_backup,
        undo=_remove_unencrypted_backup,
    ),
    "wal-missing": Fault("no WAL objects under wal/", apply=_delete_wal, undo=_restore_wal),
    "smtp-down": Fault("the SMTP server is stopped", apply=_stop("smtp"), undo=_start("smtp")),
    "smtp-no-starttls": Fault("the SMTP server offers no STARTTLS (AUTH in the clear; restarted)", restart="smtp"),
    "node-target-down": Fault("Prometheus node target backend-2 is down"),
    "alert-data-corruption": Fault("Prometheus alert DataCorruptionDetected is firing (a CRITICAL rollback criterion)"),
    "alert-payments-down": Fault("Prometheus alert PaymentProcessingDown is firing (a HIGH rollback criterion)"),
    "runbook-missing": Fault("/runbooks/rollback answers 404"),
    **{name: Fault(desc) for name, desc in team_apis.FAULTS.items()},  # runtime faults of the Slack/PagerDuty fakes
    # sections 1 and 6: network edge, load balancer, auto-scaling, load-test results (sandbox/infrastructure.py)
    **{name: Fault(desc, apply=apply, undo=undo) for name, (desc, apply, undo) in infrastructure.FAULTS.items()},
    "backup-stale": Fault(
        "the newest full backup is 3 days old (the last 3 days of backups are gone)", apply=_make_stale, undo=_unstale
    ),
    "wal-stale": Fault("the newest WAL object is 8 hours old", apply=_wal_stale, undo=_wal_fresh),
    "backup-truncated": Fault(
        "the newest backup is a dump cut at 60% of its length", apply=_truncated[0], undo=_truncated[1]
    ),
    "backup-not-a-dump": Fault(
        "the newest backup is a gzipped plain-SQL file, not a pg_dump archive", apply=_not_dump[0], undo=_not_dump[1]
    ),
    "backup-wrong-db": Fault(
        "the newest backup is a pg_dump -Fc of another database (merchants_staging)",
        apply=_wrong_db[0],
        undo=_wrong_db[1],
    ),
    "restore-is-source": Fault(
        "the restore server's address forwards to the production primary",
        apply=_restore_is_source,
        undo=_restore_is_separate,
    ),
    "s3-forbidden": Fault(
        "S3 auth on; golive's IAM key may list the bucket but not read objects (403)",
        apply=_forbid(True),
        undo=_forbid(False),
    ),
    "backup-bucket-empty": Fault("the backup bucket holds no object at all", apply=_empty_bucket, undo=_refill_bucket),
    "backup-retention-short": Fault(
        "the bucket's lifecycle expires backups after 7 days", apply=_retention(7), undo=_retention(s3.LIFECYCLE_DAYS)
    ),
    "backup-alert-missing": Fault("Prometheus has no backup-failure alerting rule"),
    "config-backup-missing": Fault(
        f"config/{MISSING_CONFIG} is missing from the backup bucket", apply=_delete_config, undo=_restore_config
    ),
    "rollback-rehearsal-stale": Fault(
        "the last recorded rollback rehearsal is 10 days old",
        apply=_rehearsal(dr.STALE_REHEARSAL_AGE),
        undo=_rehearsal(dr.REHEARSAL_AGE),
    ),
    "release-tag-missing": Fault(
        f"the release tag {dr.RELEASE_TAG} is deleted (locally and on origin)",
        apply=lambda sb: dr.delete_tag(sb.repo),
        undo=lambda sb: dr.restore_tag(sb.repo),
    ),
    # sections 4 and 5: the application, its workers and its security (sandbox/application.py)
    "env-missing": Fault("the API process starts without SECRET_KEY (web process restarted)", restart="web"),
    "bundle-too-big": Fault("index.html also loads a 6 MB /static/vendor.js"),
    "bundle-unminified": Fault("app.js and app.css are served as their readable sources"),
    "asset-missing": Fault("/static/logo.png (referenced by index.html) answers 404"),
    "cookie-insecure": Fault("the session cookie is set without Secure and HttpOnly"),
    "admin-open": Fault("the admin panel answers 200 to anyone"),
    "password-plaintext": Fault(
        f"user {application.PLAINTEXT_USER_ID}'s password_hash holds a plaintext password",
        apply=application.plaintext_password,
        undo=application.hashed_password,
    ),
    "admin-no-2fa": Fault(
        "admin user 2 has 2FA disabled",
        apply=application.admin_without_2fa(True),
        undo=application.admin_without_2fa(False),
    ),
    "audit-log-short": Fault(
        "the audit log keeps only 30 days", apply=application.audit_short, undo=application.audit_full
    ),
    "job-missing": Fault(
        f"the scheduler's job {application.MISSING_JOB} is deleted from the job store",
        apply=application.delete_job,
        undo=application.restore_job,
    ),
    "scheduler-down": Fault(
        "the scheduler process died an hour ago (stopped; its last heartbeat is 1 h old)",
        apply=application.stop_scheduler,
        undo=application.start_scheduler,
    ),
    "db-exposed": Fault(
        "the database port also answers on 127.0.0.2 (another interface)",
        apply=application.expose_db,
        undo=application.unexpose_db,
    ),
    "secrets-committed": Fault(
        f"{application.SECRET_FILE} with an AWS key is committed to the app's repository",
        apply=application.commit_secrets,
        undo=application.uncommit_secrets,
    ),
    "vuln-published": Fault("the advisory mirror publishes a HIGH advisory against the pinned starlette"),
    "package-outdated": Fault("the package index has a newer stable SQLAlchemy than the pinned one"),
    # sections 2 and 7 (sandbox/dependencies.py, sandbox/fakes/service_apis.py)
    **{name: Fault(desc) for name, desc in service_apis.FAULTS.items()},  # runtime faults of the service-API fakes
    "index-missing": Fault(
        f"the index {dependencies.INDEX_FAULT[0]} is dropped (the events-of-a-campaign query seq-scans)",
        apply=dependencies.drop_index,
        undo=dependencies.create_index,
    ),
    "pgbouncer-down": Fault(
        "PgBouncer is stopped (only where it is installed)",
        apply=dependencies.stop_pgbouncer,
        undo=dependencies.start_pgbouncer,
    ),
    "alertmanager-down": Fault(
        "Alertmanager is stopped (only where it is installed)",
        apply=dependencies.stop_alertmanager,
        undo=dependencies.start_alertmanager,
    ),
    "alert-threshold-wrong": Fault("the error-rate alert rule fires at 10% instead of 5%"),
}

FAULTS: dict[str, str] = {name: f.description for name, f in REGISTRY.items()}


def lookup(name: str) -> Fault:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(REGISTRY)}") from None
