"""The `restore` section's model (where golive restores backups, and the disaster-recovery facts of sections 3.3
and 8), its bounds, and the one way golive connects to the restore server."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from ..models import SSLMODE, CaFile, Host, Name, Target, libpq_tls, libpq_tls_text

RESTORE_CHECK_TIMEOUT = 4 * 3600.0  # the runner's bound; the body's own bound is the restore timeout (the RTO)
CLEANUP_BUDGET_S = 20.0  # dropping the scratch database has a budget of its own
CHUNK = 1 << 20  # bytes per S3 read / pipe write: memory stays flat whatever the dump size
STDERR_KEEP = 64 * 1024
SERVER = "backup.restore.server"
TEST = "backup.restore.test"
MEASUREMENT = ("backup.restore.test", "measurement")  # memo key: what the RTO check reads


class RestoreTarget(Target):
    """Where golive restores backups, and the disaster-recovery facts of sections 3.3 and 8."""

    host: Host = Field(description="restore server (never the production cluster: golive refuses it)")
    port: int = Field(5432, ge=1, le=65535)
    user: Name = Field(description="a role that may create databases (CREATEDB); superuser is not needed")
    password: SecretStr | None = None
    maintenance_dbname: Name = Field("postgres", description="database golive connects to to create/drop scratch DBs")
    sslmode: str = Field("prefer", pattern=SSLMODE)
    sslrootcert: CaFile | None = Field(
        None,
        description="the CA (PEM) that signed the restore server's certificate, "
        "for sslmode verify-ca / verify-full (libpq's sslrootcert)",
    )
    pg_restore: str = Field(
        "pg_restore",
        description="pg_restore binary (a path, or a name on PATH), at least as "
        "new as the pg_dump that made the backups",
    )
    scratch_prefix: str = Field(
        "golive_restore_",
        pattern=r"^[a-z_][a-z0-9_]{0,29}$",
        description="scratch databases are named <prefix><UTC stamp>_<random>, lowercase (no quoting needed in psql)",
    )
    jobs: int = Field(
        1,
        ge=1,
        le=64,
        description="> 1: parallel restore (pg_restore -j), which needs a file: the "
        "dump is then spooled to spool_dir first",
    )
    spool_dir: Path | None = Field(None, description="where a parallel restore spools the dump (default: TMPDIR)")
    rto_minutes: float = Field(30.0, gt=0, description="seed 8.2: RTO < 30 minutes")
    rpo_minutes: float = Field(60.0, gt=0, description="seed 8.2: RPO < 1 hour of data loss")
    rollback_minutes: float = Field(15.0, ge=0, description="seed 8.2: the deploy rollback completes in < 15 min")
    restore_timeout_minutes: float | None = Field(
        None, gt=0, description="bound of one restore test; default: rto_minutes (slower is a FAIL anyway)"
    )
    key_tables: list[str] | None = Field(
        None, description="tables whose row counts must match the source; default: postgres.required_tables"
    )
    row_tolerance_pct: float = Field(
        1.0, ge=0, le=100, description="rows written since the backup: allowed difference, % of the source's count"
    )
    row_tolerance_rows: int = Field(0, ge=0, description="allowed difference in rows, on top of the percentage")
    check_dump_dbname: bool = Field(True, description="refuse a dump whose header names another database")
    dump_dbname: Name | None = Field(None, description="the database the dumps are of; default: postgres.dbname")
    verify_etag: bool = Field(
        True, description="MD5 of the streamed bytes == the object's ETag (single-part uploads without KMS)"
    )
    run_integrity_suites: bool = Field(True, description="run the registered integrity suites on the restored copy")
    git_repo: Path | None = Field(None, description="the application's git repository (seed 8.1)")
    git_remote: str | None = Field(
        None, description="remote that must hold the release tag too (the off-machine copy of the code)"
    )
    release_tag: str | None = Field(None, description="the production tag of this release")
    rollback_script: Path | None = Field(None, description="seed 8.2: e.g. /scripts/rollback_production.sh")
    rehearsal_record: Path | None = Field(
        None,
        description="JSON (or JSON lines, the last wins) written by the "
        "last rollback rehearsal: finished_at, status, "
        "duration_seconds, script_sha256",
    )
    rehearsal_max_age_days: float = Field(7.0, gt=0, description="seed 8.2: recovery tested within the last week")

    @model_validator(mode="after")
    def _fits_the_runner(self) -> RestoreTarget:
        limit = (RESTORE_CHECK_TIMEOUT - 60) / 60
        if self.restore_limit_s / 60 > limit:
            raise ValueError(
                f"restore_timeout_minutes (or rto_minutes) must be <= {limit:g}: the restore check's "
                f"own timeout is {RESTORE_CHECK_TIMEOUT / 3600:g} h"
            )
        return self

    @property
    def restore_limit_s(self) -> float:
        return 60 * (self.restore_timeout_minutes or self.rto_minutes)


# --------------------------------------------------------------------------- connections

# a dead network under a connection is noticed in seconds, not at the kernel's default of ~2 hours
KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}


def restore_connect(t: RestoreTarget, dbname: str, timeout: float, autocommit: bool = True):
    import psycopg

    conn = psycopg.connect(
        host=t.host,
        port=t.port,
        dbname=dbname,
        user=t.user,
        password=t.password.get_secret_value() if t.password is not None else None,
        **libpq_tls(t),
        connect_timeout=max(2, math.ceil(timeout)),
        application_name="golive-restore",
        autocommit=autocommit,
        **KEEPALIVE,
    )
    conn.execute("SELECT set_config('statement_timeout', %s, false)", [f"{max(1, int(timeout * 1000))}ms"])
    return conn


def restore_dsn(t: RestoreTarget, dbname: str) -> str:
    return f"host={t.host} port={t.port} dbname={dbname} user={t.user} {libpq_tls_text(t)}"
