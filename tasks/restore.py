"""The restore test (seed 3.3 Backup Recovery Test): the newest backup restores, and what it restores is right.

The newest object under the backup prefix is streamed from S3 straight into `pg_restore` (custom format on stdin,
never the whole object in memory) into a uniquely named scratch database on a configured restore server, which golive
uses only once proven not to be the production cluster (`prove_not_production`, on the connection that creates the
scratch database: fail closed). The restore is timed against the RTO, the row counts of the key tables are compared with
the source (read-only), registered integrity suites run on the restored copy, and the scratch database is dropped
on success, failure, timeout and interpreter exit. Nothing is ever written to the source database.

Bounded everywhere: the runner abandons a timed-out body's thread, so the body bounds `pg_restore` itself (a
watchdog kills it and closes the S3 stream at the deadline) and drops the scratch database in `finally` with a
budget of its own.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator

from .core import Observation, RunContext, Status, check, failed, passed
from .models import SSLMODE, CaFile, Host, Name, Target, libpq_tls, libpq_tls_text
from .postgres import REACHABLE as PG_REACHABLE
from .postgres import TABLES, PostgresTarget, dsn_for_evidence, table_access, table_status
from .postgres import connect as source_connect
from .s3backup import BackupTarget, listing, newest, s3_client

RESTORE_CHECK_TIMEOUT = 4 * 3600.0   # the runner's bound; the body's own bound is the restore timeout (the RTO)
CLEANUP_BUDGET_S = 20.0              # dropping the scratch database has a budget of its own
CHUNK = 1 << 20                      # bytes per S3 read / pipe write: memory stays flat whatever the dump size
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
    sslrootcert: CaFile | None = Field(None, description="the CA (PEM) that signed the restore server's certificate, "
                                       "for sslmode verify-ca / verify-full (libpq's sslrootcert)")
    pg_restore: str = Field("pg_restore", description="pg_restore binary (a path, or a name on PATH), at least as "
                                                      "new as the pg_dump that made the backups")
    scratch_prefix: str = Field("golive_restore_", pattern=r"^[a-z_][a-z0-9_]{0,29}$",
                                description="scratch databases are named <prefix><UTC stamp>_<random>, "
                                                            "lowercase (no quoting needed in psql)")
    jobs: int = Field(1, ge=1, le=64, description="> 1: parallel restore (pg_restore -j), which needs a file: the "
                                                  "dump is then spooled to spool_dir first")
    spool_dir: Path | None = Field(None, description="where a parallel restore spools the dump (default: TMPDIR)")
    rto_minutes: float = Field(30.0, gt=0, description="seed 8.2: RTO < 30 minutes")
    rpo_minutes: float = Field(60.0, gt=0, description="seed 8.2: RPO < 1 hour of data loss")
    rollback_minutes: float = Field(15.0, ge=0, description="seed 8.2: the deploy rollback completes in < 15 min")
    restore_timeout_minutes: float | None = Field(None, gt=0, description="bound of one restore test; default: "
                                                                          "rto_minutes (slower is a FAIL anyway)")
    key_tables: list[str] | None = Field(None, description="tables whose row counts must match the source; "
                                                           "default: postgres.required_tables")
    row_tolerance_pct: float = Field(1.0, ge=0, le=100, description="rows written since the backup: allowed "
                                                                    "difference, % of the source's count")
    row_tolerance_rows: int = Field(0, ge=0, description="allowed difference in rows, on top of the percentage")
    check_dump_dbname: bool = Field(True, description="refuse a dump whose header names another database")
    dump_dbname: Name | None = Field(None, description="the database the dumps are of; default: postgres.dbname")
    verify_etag: bool = Field(True, description="MD5 of the streamed bytes == the object's ETag (single-part "
                                                "uploads without KMS)")
    run_integrity_suites: bool = Field(True, description="run the registered integrity suites on the restored copy")
    git_repo: Path | None = Field(None, description="the application's git repository (seed 8.1)")
    git_remote: str | None = Field(None, description="remote that must hold the release tag too (the off-machine "
                                                     "copy of the code)")
    release_tag: str | None = Field(None, description="the production tag of this release")
    rollback_script: Path | None = Field(None, description="seed 8.2: e.g. /scripts/rollback_production.sh")
    rehearsal_record: Path | None = Field(None, description="JSON (or JSON lines, the last wins) written by the "
                                                            "last rollback rehearsal: finished_at, status, "
                                                            "duration_seconds, script_sha256")
    rehearsal_max_age_days: float = Field(7.0, gt=0, description="seed 8.2: recovery tested within the last week")

    @model_validator(mode="after")
    def _fits_the_runner(self) -> RestoreTarget:
        limit = (RESTORE_CHECK_TIMEOUT - 60) / 60
        if self.restore_limit_s / 60 > limit:
            raise ValueError(f"restore_timeout_minutes (or rto_minutes) must be <= {limit:g}: the restore check's "
                             f"own timeout is {RESTORE_CHECK_TIMEOUT / 3600:g} h")
        return self

    @property
    def restore_limit_s(self) -> float:
        return 60 * (self.restore_timeout_minutes or self.rto_minutes)


# --------------------------------------------------------------------------- integrity suites (extension point)

@dataclass(frozen=True)
class RestoredDatabase:
    """The scratch database while it exists (suites run before it is dropped). `password` is the restore user's."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None
    sslmode: str
    source_dbname: str
    backup_key: str
    source: PostgresTarget | None = None  # the production target the backup is of (its suites_dir, ...)
    sslrootcert: Path | None = None

    def as_target(self) -> PostgresTarget:
        """The scratch database as a PostgresTarget (the restore user's credentials), for suites that take one."""
        extra = {} if self.source is None else {"suites_dir": self.source.suites_dir,
                                                 "sensitive_columns": self.source.sensitive_columns}
        return PostgresTarget(host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                              password=self.password, **libpq_tls(self), **extra)

    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, dbname=self.dbname, user=self.user,
                             password=self.password, **libpq_tls(self))

    def sqlalchemy_url(self) -> str:
        from urllib.parse import quote

        pw = f":{quote(self.password, safe='')}" if self.password else ""
        return (f"postgresql+psycopg://{quote(self.user, safe='')}{pw}@{self.host}:{self.port}/"
                f"{quote(self.dbname, safe='')}?" + "&".join(f"{k}={quote(v)}" for k, v in libpq_tls(self).items()))


@dataclass
class SuiteOutcome:
    status: Status   # PASS / WARN / FAIL / ERROR
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


RestoredSuite = Callable[[RestoredDatabase, RunContext], SuiteOutcome]
_SUITES: dict[str, RestoredSuite] = {}


def register_restored_db_suite(name: str, suite: RestoredSuite) -> None:
    """Run `suite` on every restored copy (before it is dropped) of every restore test of this process.

    This is how the data-integrity suites (GX, in `expectations/`) plug in without `tasks/` importing them: e.g.
    `register_restored_db_suite("gx", lambda db, ctx: run_gx_suites(db.sqlalchemy_url(), deadline=ctx.remaining))`
    from the flow that loads them. A suite returning FAIL/ERROR (or raising) makes the restore test FAIL.
    """
    _SUITES[name] = suite


def unregister_restored_db_suite(name: str) -> None:
    _SUITES.pop(name, None)


# --------------------------------------------------------------------------- the dump's header

class NotADump(ValueError):
    """The object is not a pg_dump custom-format archive (the message says what it looks like instead)."""


@dataclass(frozen=True)
class DumpHeader:
    archive_version: str
    format: str
    compression: str
    created: str | None
    dbname: str | None
    server_version: str | None
    pg_dump_version: str | None


_FORMATS = {1: "custom", 3: "tar", 4: "null", 5: "directory"}
_COMPRESSION = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


def sniff(buf: bytes) -> str:
    """What a non-dump object looks like (for the FAIL message)."""
    if not buf:
        return "an empty object (0 bytes)"
    magic = {b"\x1f\x8b": "gzip-compressed data (a gzipped plain-SQL dump?)", b"BZh": "bzip2-compressed data",
             b"\x28\xb5\x2f\xfd": "zstd-compressed data", b"\xfd7zXZ\x00": "xz-compressed data",
             b"PK\x03\x04": "a zip archive"}
    for m, what in magic.items():
        if buf.startswith(m):
            return what
    if len(buf) >= 262 and buf[257:262] == b"ustar":
        return "a tar archive (pg_dump -Ft? golive streams custom-format -Fc archives)"
    head = buf[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        stripped = text.lstrip()
        if stripped.startswith("<"):
            return "an HTML/XML document (an error page stored as the backup?)"
        if stripped.startswith("--") or re.search(r"\b(CREATE|SET|COPY|INSERT)\b", text):
            return "a plain-text SQL dump (psql restores those; pg_restore needs pg_dump -Fc)"
        return "a text file, not a pg_dump archive"
    return f"unknown binary data (first bytes {buf[:8].hex()})"


def parse_header(buf: bytes) -> DumpHeader:
    """The archive header of a pg_dump custom-format dump (pg_backup_archiver.c ReadHead), from its first bytes."""
    if not buf.startswith(b"PGDMP"):
        raise NotADump(sniff(buf))
    pos = 5

    def byte() -> int:
        nonlocal pos
        if pos >= len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        pos += 1
        return buf[pos - 1]

    vmaj, vmin = byte(), byte()
    vrev = byte() if (vmaj, vmin) > (1, 0) else 0
    version = (vmaj, vmin, vrev)
    if version < (1, 10, 0):
        raise NotADump(f"a pg_dump archive of version {vmaj}.{vmin}: too old to read the header (< 1.10)")
    int_size = byte()
    byte()  # offset size
    fmt = byte()

    def read_int() -> int:
        nonlocal pos
        sign = byte()
        if pos + int_size > len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        val = int.from_bytes(buf[pos:pos + int_size], "little")
        pos += int_size
        return -val if sign else val

    def read_str() -> str | None:
        nonlocal pos
        n = read_int()
        if n < 0:
            return None
        if pos + n > len(buf):
            raise NotADump("a pg_dump archive cut inside its header")
        pos += n
        return buf[pos - n:pos].decode("utf-8", errors="replace")

    if version >= (1, 15, 0):
        comp = _COMPRESSION.get(byte(), "unknown")
    else:
        level = read_int()
        comp = "none" if level == 0 else f"gzip (level {level})"
    sec, minute, hour, mday, mon, year, _dst = (read_int() for _ in range(7))
    dbname = read_str()
    server, dumper = read_str(), read_str()
    created = f"{year + 1900:04d}-{mon + 1:02d}-{mday:02d} {hour:02d}:{minute:02d}:{sec:02d}"
    return DumpHeader(archive_version=f"{vmaj}.{vmin}-{vrev}", format=_FORMATS.get(fmt, f"unknown ({fmt})"),
                      compression=comp, created=created, dbname=dbname, server_version=server,
                      pg_dump_version=dumper)


# --------------------------------------------------------------------------- connections

# a dead network under a connection is noticed in seconds, not at the kernel's default of ~2 hours
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
             "tcp_user_timeout": 30000}


def _restore_connect(t: RestoreTarget, dbname: str, timeout: float, autocommit: bool = True):
    import psycopg

    conn = psycopg.connect(host=t.host, port=t.port, dbname=dbname, user=t.user,
                           password=t.password.get_secret_value() if t.password is not None else None,
                           **libpq_tls(t), connect_timeout=max(2, math.ceil(timeout)),
                           application_name="golive-restore", autocommit=autocommit, **KEEPALIVE)
    conn.execute("SELECT set_config('statement_timeout', %s, false)", [f"{max(1, int(timeout * 1000))}ms"])
    return conn


def restore_dsn(t: RestoreTarget, dbname: str) -> str:
    return f"host={t.host} port={t.port} dbname={dbname} user={t.user} {libpq_tls_text(t)}"


def guard_evidence(t: RestoreTarget, src: PostgresTarget) -> str:
    return (f"restore server {restore_dsn(t, t.maintenance_dbname)} vs source {dsn_for_evidence(src)}: `SELECT "
            "system_identifier FROM pg_control_system()` on both, else the restore server's pg_stat_activity "
            "searched for the application_name of golive's open READ ONLY session on the source")


# The restore server is accepted only when it is PROVEN not to be the production cluster, by a proof that does not
# depend on the address golive used (a second address of one server, its Unix socket, a DNS alias all look new):
# 1. `system_identifier` (pg_control_system()) on both: different clusters, unless equal (the primary, an alias of
#    it, or one of its physical replicas). Hardened and managed servers revoke it from PUBLIC (pg_monitor does not
#    give it back), so when either side cannot read it:
# 2. the source session carries a random application_name inside a READ ONLY transaction that stays open while the
#    restore server's pg_catalog.pg_stat_activity is read: every backend of a cluster is listed there, with its
#    application_name, to every role (the columns hidden from other roles are query, state, client...), so a
#    restore server that does not list it, while the source still shows it before and after, is another postmaster.
#    A standby on either side is refused (its primary does not list a standby's sessions, and a physical replica has
#    its own pg_stat_activity), read in the same statement so that a load balancer cannot answer one and not the other.
# Nothing proves it: refused, with what to grant. Nothing is ever written to either server by the proof.
_PROBE_SQL = ("SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity "
              "WHERE application_name = %s)")
_SYSID_SQL = "SELECT system_identifier::text FROM pg_catalog.pg_control_system()"
GRANT_SYSID = "GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO {}"


def _may_read(conn: Any, query: str, params: list[Any] | None = None) -> tuple[Any, str | None]:
    """The first row, or (None, why not) when a privilege is missing: that only removes a proof (a savepoint keeps
    the surrounding transaction, and with it the source's probe, alive)."""
    from psycopg import errors

    try:
        with conn.transaction():
            return conn.execute(query, params).fetchone(), None
    except errors.InsufficientPrivilege as e:
        return None, " ".join(str(e).split())


def _identity(conn: Any, probe: str) -> dict[str, Any]:
    version, num, standby = conn.execute("SELECT current_setting('server_version'), "
                                         "current_setting('server_version_num')::int, pg_is_in_recovery()").fetchone()
    sysid, sysid_error = _may_read(conn, _SYSID_SQL)
    seen, seen_error = _may_read(conn, _PROBE_SQL, [probe])
    return {"system_identifier": sysid and sysid[0], "sysid_error": sysid_error, "version": version,
            "version_num": num, "in_recovery": seen[0] if seen else standby, "sees_probe": seen and seen[1],
            "probe_error": seen_error}


@contextlib.contextmanager
def _source_probe(src: PostgresTarget, ctx: RunContext) -> Iterator[dict[str, Any]]:
    """The source's identity, its session marked with a random application_name (SET LOCAL: gone at the rollback)
    in a READ ONLY transaction that stays open while the caller reads the restore server; on leaving, the source
    must still show the mark (a session killed meanwhile would make the restore server's "not listed" mean nothing)."""
    probe = f"golive-identity-{secrets.token_hex(16)}"
    with source_connect(src, ctx, read_only=True) as conn:
        conn.execute("SELECT set_config('application_name', %s, true)", [probe])
        facts = {**_identity(conn, probe), "probe": probe}
        yield facts
        again = _may_read(conn, _PROBE_SQL, [probe])[0]
        facts["sees_probe"] = bool(facts["sees_probe"] and again and again[1])


def prove_not_production(t: RestoreTarget, src: PostgresTarget, ctx: RunContext,
                         conn: Any) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(restore server facts, source facts, refusal or None), read on `conn`: the restore server connection that
    then creates the scratch database, so what was proven is where the database is created."""
    with _source_probe(src, ctx) as sf:
        rf = _identity(conn, sf["probe"])
    return rf, sf, identity_refusal(rf, sf, t.user, src.user)


def _addresses(host: str, port: int) -> set[str]:
    try:
        return {ai[4][0] for ai in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        return set()


def address_refusal(t: RestoreTarget, src: PostgresTarget) -> str | None:
    """Why the restore server is the source by address (before any connection), or None. Only an early refusal:
    a different address proves nothing (prove_not_production decides)."""
    if t.port != src.port:
        return None
    if t.host == src.host:
        return f"the restore server {t.host}:{t.port} is the production database server (same host and port)"
    shared = sorted(_addresses(t.host, t.port) & _addresses(src.host, src.port))
    if shared:
        return (f"the restore server {t.host}:{t.port} is the production database server {src.host}:{src.port} "
                f"(both resolve to {', '.join(shared)})")
    return None


def identity_refusal(rf: dict[str, Any], sf: dict[str, Any], restore_role: str, source_role: str) -> str | None:
    """Why the restore server is, or cannot be proven not to be, the production cluster (fail closed), or None."""
    rid, sid = rf.get("system_identifier"), sf.get("system_identifier")
    if rid and rid == sid:
        return (f"the restore server is the production cluster: same system_identifier {rid} (the primary itself, "
                "an alias of it, or one of its physical replicas)")
    if rf.get("sees_probe"):  # whatever else was read: this is production
        return ("the restore server is the production server: its pg_stat_activity lists golive's own session on "
                "the source (the same postmaster reached by another address)")
    if rid and sid:
        return None
    unread = "; ".join(f"{side} ({err})" for side, err in (("restore server", rf.get("sysid_error")),
                                                           ("source", sf.get("sysid_error"))) if err)
    grant = " and ".join(f"`{GRANT_SYSID.format(role)}` on the {side}" for side, role, f in
                         (("restore server", restore_role, rf), ("source", source_role, sf))
                         if not f.get("system_identifier"))
    why = [w for w, bad in (
        (f"pg_stat_activity not readable on the restore server ({rf.get('probe_error')})", rf.get("probe_error")),
        (f"pg_stat_activity not readable on the source ({sf.get('probe_error')})", sf.get("probe_error")),
        ("the source does not show golive's own session in its pg_stat_activity (a pooler?)",
         not sf.get("probe_error") and sf.get("sees_probe") is not True),
        ("the source is a standby (its primary does not list its sessions)", sf.get("in_recovery")),
        ("the restore server is a standby (it may replicate production)", rf.get("in_recovery"))) if bad]
    if why:
        return (f"cannot prove the restore server is not the production cluster: system_identifier not readable on "
                f"the {unread}, and {'; '.join(why)}. Grant {grant} (pg_monitor does not include it)")
    return None


def _pg_restore_version(t: RestoreTarget, timeout: float) -> str:
    exe = shutil.which(t.pg_restore) or t.pg_restore
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=max(1.0, timeout))
    except FileNotFoundError:
        raise FileNotFoundError(f"pg_restore not found: {t.pg_restore!r} (restore.pg_restore)") from None
    return (out.stdout or out.stderr).strip()


# --------------------------------------------------------------------------- checks

@check(SERVER, title="The restore server is reachable, not production, and may create databases",
       seed=["3.3 Backup Recovery Test"], depends_on=[PG_REACHABLE], timeout=15, target="restore")
def restore_server(t: RestoreTarget, ctx: RunContext) -> Observation:
    """Proves the restore server is not the production cluster (`system_identifier` from pg_control_system(), or,
    where that is revoked, golive's marked source session absent from its pg_stat_activity; see _PROBE_SQL):
    otherwise refused, with what to grant; the restore user must be able to CREATE DATABASE; `pg_restore --version`
    must run."""
    src = ctx.config.postgres
    expected = ("a cluster proven other than production (different system_identifier, or it does not list golive's "
                "source session), CREATEDB for the restore user, pg_restore available")
    evidence = (f"{guard_evidence(t, src)}; `SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user`, "
                f"`{t.pg_restore} --version`")
    refusal = address_refusal(t, src)
    if refusal:
        return failed(f"REFUSED: {refusal}", expected, evidence)
    with _restore_connect(t, t.maintenance_dbname, ctx.remaining) as conn:
        rf, sf, refusal = prove_not_production(t, src, ctx, conn)
        su, createdb = conn.execute("SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
                                    ).fetchone()
    observed = {"restore_server": f"PostgreSQL {rf['version']} at {t.host}:{t.port}",
                "system_identifier": {"restore": rf["system_identifier"], "source": sf["system_identifier"]},
                "proof": "system_identifier" if rf["system_identifier"] and sf["system_identifier"] else
                "pg_stat_activity", "can_create_databases": bool(su or createdb)}
    if refusal:
        return failed({**observed, "refused": refusal}, expected, evidence)
    observed["pg_restore"] = _pg_restore_version(t, ctx.remaining)
    problems = []
    if not observed["can_create_databases"]:
        problems.append(f"{t.user} may not create databases (needs CREATEDB)")
    if rf["version_num"] // 10000 < sf["version_num"] // 10000:
        problems.append(f"the restore server ({rf['version']}) is older than the source ({sf['version']})")
    if problems:
        return failed({**observed, "problems": problems}, expected, evidence)
    return passed(observed, expected, evidence)


class RestoreProbeError(RuntimeError):
    """The restore test could not run (S3 refused, the budget ran out): an ERROR, with what was cleaned up."""


@dataclass
class StreamResult:
    returncode: int | None = None
    stderr: str = ""
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    download_seconds: float | None = None
    md5: str | None = None
    killed: str | None = None        # "restore-timeout" | "check-budget"
    stream_error: str | None = None  # the S3 side failed mid-stream


# --------------------------------------------------------------------------- cleanup registry

_LIVE: dict[str, Callable[[], str | None]] = {}
_LIVE_LOCK = threading.Lock()


def _cleanup_at_exit() -> None:
    """Drop the scratch databases of restores still running when the interpreter exits; say on stderr what could
    not be dropped (the next restore test drops it once stale)."""
    with _LIVE_LOCK:
        pending = dict(_LIVE)
        _LIVE.clear()
    for name, fn in pending.items():
        with contextlib.suppress(Exception):
            why = fn()
            if why:
                print(f"golive: the scratch database {name} could not be dropped at exit: {why}", file=sys.stderr)


atexit.register(_cleanup_at_exit)


def _die_with_parent() -> Callable[[], None] | None:
    """preexec_fn: pg_restore gets SIGKILL when the thread that started it dies (Linux); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def scratch_name(t: RestoreTarget) -> str:
    return f"{t.scratch_prefix}{datetime.now(UTC):%Y%m%dt%H%M%Sz}_{secrets.token_hex(3)}"


_STAMP = re.compile(r"(\d{8}t\d{6}z)_[0-9a-f]{6}$")


def drop_scratch(t: RestoreTarget, name: str, budget: float = CLEANUP_BUDGET_S) -> str | None:
    """Drop the scratch database; None when it is gone, else why not (the last error seen).

    `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13+) refuses as a whole when any session in the database belongs to a
    role the restore user may not signal: an autovacuum worker analysing the freshly restored tables is one (it has
    no role, and only pg_signal_backend may terminate it). Then, and until the budget is spent: end the restore
    user's own sessions there and retry a plain DROP DATABASE, which asks autovacuum workers to leave and waits for
    them (a session of another role stays an honest error)."""
    from psycopg import errors, sql

    deadline = time.monotonic() + budget
    drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    why: str | None = None
    first: str | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            with _restore_connect(t, t.maintenance_dbname, max(1.0, deadline - time.monotonic())) as conn:
                num = int(conn.execute("SHOW server_version_num").fetchone()[0])
                try:
                    if num >= 130000 and attempt == 1:
                        conn.execute(force)
                    else:
                        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                                     "AND pid <> pg_backend_pid() AND usename = current_user", [name])
                        conn.execute(drop)
                except (errors.InsufficientPrivilege, errors.ObjectInUse) as e:
                    why = " ".join(f"{type(e).__name__}: {e}".split())
                    first = first or why  # the telling one (which session); later ones may be a timeout
                else:
                    left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0]
                    if left == 0:
                        return None
                    why = "still listed in pg_database after DROP DATABASE"
        except Exception as e:  # noqa: BLE001 - reported, never raised from cleanup
            why = " ".join(f"{type(e).__name__}: {e}".split())
        if time.monotonic() + 1.0 >= deadline:
            told = why if first is None or first == why else f"{first}; last: {why}"
            return f"{told} ({attempt} attempt{'s' if attempt > 1 else ''} in {budget:g}s)"
        time.sleep(min(0.5 * attempt, 2.0, max(0.0, deadline - time.monotonic() - 1.0)))


def drop_stale_scratch(t: RestoreTarget, conn: Any) -> list[str]:
    """Scratch databases of runs killed before their cleanup (older than twice the restore timeout, idle), on the
    restore server connection `conn` (proven not production first)."""
    from psycopg import sql

    cutoff = time.time() - max(2 * t.restore_limit_s, 3600)
    dropped = []
    names = [r[0] for r in conn.execute(
        "SELECT datname FROM pg_database d WHERE datname LIKE %s AND NOT EXISTS "
        "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        [t.scratch_prefix.replace("_", r"\_") + "%"]).fetchall()]
    for name in names:
        m = _STAMP.search(name)
        if not m:
            continue
        born = datetime.strptime(m.group(1), "%Y%m%dt%H%M%Sz").replace(tzinfo=UTC).timestamp()
        if born < cutoff:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped


# --------------------------------------------------------------------------- streaming

def _stderr_reader(stream: Any, keep: deque, counts: dict[str, int]) -> threading.Thread:
    def run() -> None:
        size = 0
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            if "error:" in line or line.startswith("pg_restore: error"):
                counts["errors"] += 1
            keep.append(line)
            size += len(line)
            while size > STDERR_KEEP and len(keep) > 1:
                size -= len(keep.popleft())
        stream.close()
    th = threading.Thread(target=run, name="pg_restore-stderr", daemon=True)
    th.start()
    return th


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(Exception):
        import fcntl

        fcntl.fcntl(fd, 1031, CHUNK)  # F_SETPIPE_SZ: fewer wake-ups per MB


def run_pg_restore(argv: list[str], env: dict[str, str], chunks: Iterator[bytes] | None, deadline: float,
                   limit_reason: str, on_abort: Callable[[], None] = lambda: None,
                   verify_md5: bool = True) -> StreamResult:
    """Run pg_restore; feed it `chunks` on stdin (None: it reads a file named in argv). The watchdog kills it (and
    calls on_abort, which closes the S3 stream) at `deadline`, recording `limit_reason`."""
    res = StreamResult()
    keep: deque = deque()
    counts = {"errors": 0}
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if chunks is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, close_fds=True,
                            preexec_fn=_die_with_parent())  # noqa: PLW1509 - prctl only, async-signal-safe
    reader = _stderr_reader(proc.stderr, keep, counts)

    def abort() -> None:
        if proc.poll() is None:
            res.killed = res.killed or limit_reason
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(Exception):
            on_abort()

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), abort)
    watchdog.daemon = True
    watchdog.start()
    md5 = hashlib.md5(usedforsecurity=False) if verify_md5 else None
    try:
        if chunks is not None:
            _grow_pipe(proc.stdin.fileno())
            try:
                for chunk in chunks:
                    if md5 is not None:
                        md5.update(chunk)
                    res.bytes += len(chunk)
                    proc.stdin.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # pg_restore stopped reading: its exit status and stderr say why
            except Exception as e:  # noqa: BLE001 - the S3 side broke mid-stream (or the watchdog closed it)
                if not res.killed:
                    res.stream_error = " ".join(f"{type(e).__name__}: {e}".split())
                    with contextlib.suppress(OSError):
                        proc.kill()
            finally:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
        try:
            res.returncode = proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            abort()
            res.returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    res.seconds = time.monotonic() - t0
    res.stderr = "\n".join(keep)
    res.errors = counts["errors"]
    res.md5 = md5.hexdigest() if md5 is not None and res.bytes else None
    return res


def _abort_stream(body: Any) -> None:
    """Unblock a read stuck on the S3 socket (closing the body alone does not interrupt a recv in another thread):
    shut the socket down, then close."""
    raw = getattr(body, "_raw_stream", None)
    for path in (("connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj = raw
        for attr in path:
            obj = getattr(obj, attr, None)
        if isinstance(obj, socket.socket):
            with contextlib.suppress(OSError):
                obj.shutdown(socket.SHUT_RDWR)
            break
    with contextlib.suppress(Exception):
        body.close()


def _chunks(body: Any, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        chunk = body.read(CHUNK)
        if not chunk:
            return
        yield chunk


def _read_first(body: Any, want: int = 64 * 1024) -> bytes:
    """At least `want` bytes (or the whole object if smaller): enough for the archive header."""
    parts, size = [], 0
    while size < want:
        chunk = body.read(min(CHUNK, want - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


# --------------------------------------------------------------------------- row counts

def _ident(name: str) -> Any:
    from psycopg import sql

    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def restored_counts(t: RestoreTarget, dbname: str, tables: list[str], timeout: float) -> dict[str, int | str]:
    from psycopg import sql

    out: dict[str, int | str] = {}
    with _restore_connect(t, dbname, timeout) as conn:
        for name in tables:
            qualified = _ident(name)
            if conn.execute("SELECT to_regclass(%s)", [qualified.as_string(conn)]).fetchone()[0] is None:
                out[name] = "missing"
                continue
            out[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified)).fetchone()[0]
    return out


def source_counts(src: PostgresTarget, tables: list[str], ctx: RunContext) -> tuple[dict[str, int | str],
                                                                                   dict[str, str]]:
    """Row counts on the source in one READ ONLY transaction: count(*) below src.exact_count_limit estimated rows,
    the pg_class estimate above (never a write)."""
    from psycopg import sql

    counts: dict[str, int | str] = {}
    method: dict[str, str] = {}
    with source_connect(src, ctx) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        access = table_access(conn, tables)
        for name in tables:
            if access[name] != "ok":
                counts[name] = access[name]
                continue
            est = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                               [_ident(name).as_string(conn)]).fetchone()[0]
            if est is not None and est >= src.exact_count_limit:
                counts[name], method[name] = int(est), "estimate"
            else:
                counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()[0]
                method[name] = "count(*)"
    return counts, method


def compare_counts(t: RestoreTarget, source: dict[str, int | str], restored: dict[str, int | str]
                   ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, s in source.items():
        r = restored.get(name, "missing")
        if isinstance(s, str) or isinstance(r, str):
            rows[name] = {"source": s, "restored": r}
            problems.append(f"{name}: {'source ' + s if isinstance(s, str) else 'restored copy ' + r}")
            continue
        diff = s - r
        allowed = t.row_tolerance_rows + math.ceil(s * t.row_tolerance_pct / 100)
        rows[name] = {"source": s, "restored": r, "diff": diff}
        if abs(diff) > allowed or (s > 0 and r == 0):
            problems.append(f"{name}: {r:,} restored vs {s:,} in the source (allowed difference {allowed:,})")
    return rows, problems


# --------------------------------------------------------------------------- the restore test

def _client_error(e: Exception) -> tuple[str, int | None]:
    resp = getattr(e, "response", None) or {}
    return resp.get("Error", {}).get("Code", type(e).__name__), resp.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _evidence(t: RestoreTarget, b: BackupTarget, key: str, src: PostgresTarget, scratch: str, flags: list[str]) -> str:
    ep = f" --endpoint-url {b.endpoint_url}" if b.endpoint_url else ""
    return (f"streamed s3://{b.bucket}/{key} into `{t.pg_restore} {' '.join(flags)} -d <scratch>` on "
            f"{t.host}:{t.port} (scratch database {scratch}, dropped afterwards); row counts: count(*) on the restored "
            f"copy vs {dsn_for_evidence(src)} in a READ ONLY transaction; re-run: `aws s3 cp s3://{b.bucket}/{key} -"
            f"{ep} | {t.pg_restore} {' '.join(flags)} -d {shlex.quote(restore_dsn(t, '<scratch>'))}`")


@check(TEST, title="The newest backup restores, in time, and matches the source",
       seed=["3.3 Backup Recovery Test", "3.3 Full Database Backup"],
       depends_on=["backup.s3.latest_full", PG_REACHABLE, SERVER], timeout=RESTORE_CHECK_TIMEOUT, target="restore",
       heavy=True)
def restore_test(t: RestoreTarget, ctx: RunContext) -> Observation:
    """Streams the newest backup from S3 into `pg_restore --no-owner --no-acl --exit-on-error` (stdin; a spooled
    file only for -j) into a fresh scratch database on the restore server; FAIL unless it exits 0 within the
    restore timeout (the RTO), the dump is of the right database, its bytes match the ETag, and the key tables'
    row counts match the source within the tolerance. Records restore time, size, throughput; always drops the
    scratch database."""
    b: BackupTarget = ctx.config.backups
    src: PostgresTarget = ctx.config.postgres
    started = time.monotonic()
    limit = t.restore_limit_s
    margin = min(10.0, max(0.3, 0.15 * ctx.timeout))
    own_deadline = started + limit
    budget_deadline = ctx.deadline - margin
    deadline, reason = (own_deadline, "restore-timeout") if own_deadline <= budget_deadline else \
        (budget_deadline, "check-budget")
    flags = ["--no-owner", "--no-acl", "--exit-on-error"] + ([f"--jobs={t.jobs}"] if t.jobs > 1 else [])
    expected = (f"pg_restore exits 0 within {limit / 60:g} min (RTO {t.rto_minutes:g} min); dump of "
                f"{t.dump_dbname or src.dbname}; row counts of the key tables within {t.row_tolerance_pct:g}% "
                f"(+{t.row_tolerance_rows}) of the source; scratch database dropped")

    refusal = address_refusal(t, src)  # early; the proof runs on the connection that creates the scratch database
    if refusal:
        return failed(f"REFUSED, nothing restored: {refusal}", expected, guard_evidence(t, src))

    o = newest(listing(b, b.prefix, ctx))
    if o is None:
        return failed(f"no backup found under s3://{b.bucket}/{b.prefix}: nothing to restore", expected,
                      f"ListObjectsV2 s3://{b.bucket}/{b.prefix}")
    key = o["Key"]
    client = s3_client(b, ctx, read_timeout=min(120.0, max(5.0, ctx.remaining)))
    try:
        return _fetch_and_restore(t, b, src, ctx, client, key, o, deadline, reason, margin, flags, expected)
    finally:
        client.close()


def _fetch_and_restore(t: RestoreTarget, b: BackupTarget, src: PostgresTarget, ctx: RunContext, client: Any, key: str,
                       o: dict[str, Any], deadline: float, reason: str, margin: float, flags: list[str],
                       expected: str) -> Observation:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_object(Bucket=b.bucket, Key=key)
    except ClientError as e:
        code, status = _client_error(e)
        raise RestoreProbeError(f"GetObject s3://{b.bucket}/{key} answered {status or '?'} {code} with access key "
                                f"{b.access_key_id or '(default credentials)'}: the backup cannot be read, so it "
                                "cannot be restored; no scratch database was created") from None
    body = resp["Body"]
    size = int(resp.get("ContentLength") or o["Size"])
    etag = (resp.get("ETag") or "").strip('"')
    dump: dict[str, Any] = {"key": key, "bytes": size, "last_modified": o["LastModified"].isoformat(),
                            "sse": resp.get("ServerSideEncryption") or "none"}
    scratch = scratch_name(t)
    evidence = _evidence(t, b, key, src, scratch, flags)
    try:
        first = _read_first(body)
        try:
            header = parse_header(first)
        except NotADump as e:
            return failed({"dump": dump, "problem": f"not a pg_dump custom-format archive: {e}"}, expected,
                          f"read the first {len(first):,} bytes of s3://{b.bucket}/{key}; nothing was restored")
        dump.update({"dbname": header.dbname, "created": header.created, "format": header.format,
                     "compression": header.compression, "server_version": header.server_version,
                     "pg_dump_version": header.pg_dump_version, "archive_version": header.archive_version})
        if header.format != "custom":
            return failed({"dump": dump, "problem": f"a pg_dump {header.format}-format archive (golive streams "
                                                    "custom-format -Fc dumps)"}, expected, evidence)
        want_db = t.dump_dbname or src.dbname
        if t.check_dump_dbname and header.dbname != want_db:
            return failed({"dump": dump, "problem": f"a dump of database {header.dbname!r}, not {want_db!r}: "
                                                    "nothing was restored"}, expected,
                          f"archive header of s3://{b.bucket}/{key} (`pg_restore --list` shows it as dbname); "
                          "nothing was restored")
        return _restore_into_scratch(t, src, ctx, body, first, size, etag, dump, scratch, flags, deadline, reason,
                                     margin, expected, evidence)
    except (BotoCoreError, ClientError) as e:
        raise RestoreProbeError(f"reading s3://{b.bucket}/{key} failed: {' '.join(str(e).split())}") from None
    finally:
        with contextlib.suppress(Exception):
            body.close()


def _restore_into_scratch(t: RestoreTarget, src: PostgresTarget, ctx: RunContext, body: Any, first: bytes, size: int,
                          etag: str, dump: dict[str, Any], scratch: str, flags: list[str], deadline: float,
                          reason: str, margin: float, expected: str, evidence: str) -> Observation:
    from psycopg import sql

    with _restore_connect(t, t.maintenance_dbname, min(ctx.remaining, 30)) as conn:
        refusal = prove_not_production(t, src, ctx, conn)[2]  # on this connection: nothing written before it
        if refusal:
            return failed(f"REFUSED, nothing restored: {refusal}", expected, guard_evidence(t, src))
        stale = drop_stale_scratch(t, conn)
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
    with _LIVE_LOCK:
        _LIVE[scratch] = lambda: drop_scratch(t, scratch)
    spool: Path | None = None
    outcome: Observation | None = None
    error: BaseException | None = None
    try:
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "golive-restore"}
        env.pop("PGPASSWORD", None)
        if t.password is not None:
            env["PGPASSWORD"] = t.password.get_secret_value()
        from psycopg.conninfo import make_conninfo

        target = make_conninfo(host=t.host, port=t.port, dbname=scratch, user=t.user, **libpq_tls(t), **KEEPALIVE)
        exe = shutil.which(t.pg_restore) or t.pg_restore
        argv = [exe, *flags, "-d", target]
        if t.jobs == 1:
            stream = run_pg_restore(argv, env, _chunks(body, first), deadline, reason,
                                    on_abort=lambda: _abort_stream(body), verify_md5=_etag_is_md5(etag, dump) and
                                    t.verify_etag)
        else:
            fd, name = tempfile.mkstemp(prefix="golive-restore-", suffix=".dump", dir=t.spool_dir)
            spool = Path(name)
            stream = _spool_then_restore(fd, spool, argv, env, body, first, deadline, reason)
        outcome = _judge(t, src, ctx, stream, size, etag, dump, scratch, expected, evidence, margin)
    except BaseException as e:  # noqa: BLE001 - re-raised below, after the cleanup
        error = e
    finally:
        if spool is not None:
            with contextlib.suppress(OSError):
                spool.unlink()
        cleanup_error = drop_scratch(t, scratch)
        with _LIVE_LOCK:
            _LIVE.pop(scratch, None)
    if error is not None:
        if cleanup_error and isinstance(error, RestoreProbeError):
            raise RestoreProbeError(f"{error}; BUT the scratch database {scratch} could not be dropped: "
                                    f"{cleanup_error}") from None
        raise error
    assert outcome is not None
    if stale:
        outcome.details["stale_scratch_dropped"] = stale
    if cleanup_error:
        outcome.observed["problems"] = outcome.observed.get("problems", []) + \
            [f"the scratch database {scratch} could not be dropped: {cleanup_error}"]
        outcome.status = Status.FAIL
    outcome.observed["scratch_dropped"] = cleanup_error is None
    return outcome


def _spool_then_restore(fd: int, path: Path, argv: list[str], env: dict[str, str], body: Any, first: bytes,
                        deadline: float, reason: str) -> StreamResult:
    """Parallel restore needs a seekable file: stream the object to disk (never to memory), then pg_restore -j."""
    t0 = time.monotonic()
    md5 = hashlib.md5(usedforsecurity=False)
    total = 0
    killer = threading.Timer(max(0.0, deadline - time.monotonic()), _abort_stream, args=(body,))
    killer.daemon = True
    killer.start()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in _chunks(body, first):
                md5.update(chunk)
                f.write(chunk)
                total += len(chunk)
    except Exception as e:  # noqa: BLE001
        late = time.monotonic() >= deadline
        return StreamResult(bytes=total, seconds=time.monotonic() - t0, killed=reason if late else None,
                            stream_error=None if late else " ".join(f"{type(e).__name__}: {e}".split()))
    finally:
        killer.cancel()
    download = time.monotonic() - t0
    res = run_pg_restore(argv + [str(path)], env, None, deadline, reason)
    res.bytes, res.md5, res.download_seconds = total, md5.hexdigest(), download
    res.seconds += download
    return res


def _etag_is_md5(etag: str, dump: dict[str, Any]) -> bool:
    """A single-part upload without KMS has the MD5 of its bytes as ETag (multipart: `<md5 of md5s>-<parts>`)."""
    return bool(re.fullmatch(r"[0-9a-f]{32}", etag)) and dump.get("sse") != "aws:kms"


def _judge(t: RestoreTarget, src: PostgresTarget, ctx: RunContext, s: StreamResult, size: int, etag: str,
           dump: dict[str, Any], scratch: str, expected: str, evidence: str, margin: float) -> Observation:
    mib_s = s.bytes / 1048576 / s.seconds if s.seconds > 0 else None
    observed: dict[str, Any] = {"restore_seconds": round(s.seconds, 3), "dump_bytes": s.bytes,
                                "throughput_mib_s": round(mib_s, 2) if mib_s else None, "dump": dump,
                                "scratch_database": scratch}
    if s.download_seconds is not None:
        observed["download_seconds"] = round(s.download_seconds, 3)
    details: dict[str, Any] = {"pg_restore_exit": s.returncode, "pg_restore_errors": s.errors,
                               "pg_restore_stderr": ctx.redact.clip(s.stderr, 4000, tail=True, one_line=False)}
    if s.killed == "check-budget":
        raise RestoreProbeError(f"the restore of {dump['key']} was still running when the check's time budget ran "
                                f"out ({s.seconds:.1f} s, {s.bytes:,} of {size:,} bytes streamed): pg_restore "
                                f"killed, scratch database {scratch} dropped")
    if s.killed == "restore-timeout":
        observed["problem"] = (f"the restore did not finish within {t.restore_limit_s / 60:g} min (RTO "
                               f"{t.rto_minutes:g} min): pg_restore killed after {s.seconds:.1f} s, "
                               f"{s.bytes:,} of {size:,} bytes streamed")
        return failed(observed, expected, evidence, **details)
    if s.stream_error:
        raise RestoreProbeError(f"streaming the backup failed after {s.bytes:,} of {size:,} bytes: {s.stream_error}; "
                                f"pg_restore killed, scratch database {scratch} dropped")
    if s.returncode != 0:
        tail = [ln for ln in s.stderr.splitlines() if ln.strip()][-3:]
        observed["problem"] = (f"pg_restore exited {s.returncode} after {s.seconds:.1f} s ({s.bytes:,} of {size:,} "
                               f"bytes read): {' | '.join(tail) or 'no message'}")
        return failed(observed, expected, evidence, **details)
    problems: list[str] = []
    comparable = bool(s.md5) and _etag_is_md5(etag, dump)
    details["integrity"] = {"bytes_read": s.bytes, "content_length": size, "md5": s.md5, "etag": etag,
                            "etag_match": (s.md5 == etag) if comparable else None}  # None: multipart / KMS ETag
    if s.bytes != size:
        problems.append(f"streamed {s.bytes:,} bytes, the object has {size:,}")
    if comparable and s.md5 != etag:
        problems.append(f"MD5 of the streamed bytes {s.md5} != ETag {etag} (corrupted in storage or transit)")
    if s.seconds >= t.rto_minutes * 60:
        problems.append(f"restore took {s.seconds / 60:.1f} min >= RTO {t.rto_minutes:g} min")
    status = table_status(src, ctx)  # a table missing on the source is dependencies.postgres.tables' failure
    tables = [x for x in t.key_tables or src.required_tables if status.get(x, "ok") == "ok"]
    skipped_tables = {x: f"{status[x]} on the source ({TABLES})" for x in t.key_tables or src.required_tables
                      if status.get(x, "ok") != "ok"}
    if skipped_tables:
        observed["not_compared"] = skipped_tables
    restored = restored_counts(t, scratch, tables, max(1.0, ctx.remaining - margin))
    source, method = source_counts(src, tables, ctx)
    rows, row_problems = compare_counts(t, source, restored)
    observed["rows"] = rows
    details["source_count_method"] = method
    problems += row_problems
    suites = _run_suites(t, src, ctx, scratch, dump["key"]) if t.run_integrity_suites and _SUITES else {}
    if suites:
        observed["integrity_suites"] = {n: f"{o.status.value}: {o.summary}" for n, o in suites.items()}
        problems += [f"integrity suite {n}: {o.status.value} {o.summary}" for n, o in suites.items()
                     if o.status not in (Status.PASS, Status.WARN)]
    ctx.memo(MEASUREMENT, lambda: {"restore_seconds": s.seconds, "bytes": s.bytes, "key": dump["key"]})
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence, **details)
    return passed(observed, expected, evidence, **details)


def _run_suites(t: RestoreTarget, src: PostgresTarget, ctx: RunContext, scratch: str,
                key: str) -> dict[str, SuiteOutcome]:
    db = RestoredDatabase(host=t.host, port=t.port, dbname=scratch, user=t.user,
                          password=t.password.get_secret_value() if t.password is not None else None,
                          sslmode=t.sslmode, sslrootcert=t.sslrootcert, source_dbname=src.dbname, backup_key=key,
                          source=src)
    out: dict[str, SuiteOutcome] = {}
    for name, suite in list(_SUITES.items()):
        try:
            res = suite(db, ctx)
            out[name] = res if isinstance(res, SuiteOutcome) else \
                SuiteOutcome(Status.ERROR, f"returned {type(res).__name__}, not a SuiteOutcome")
        except Exception as e:  # noqa: BLE001 - a broken suite fails the restore test, with its message
            out[name] = SuiteOutcome(Status.ERROR, " ".join(f"{type(e).__name__}: {e}".split()))
    return out
