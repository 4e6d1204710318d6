"""The restore test (seed 3.3 Backup Recovery Test): the newest backup restores, and what it restores is right.

The newest object under the backup prefix is streamed from S3 straight into `pg_restore` (custom format on stdin,
never the whole object in memory) into a uniquely named scratch database on a configured restore server, which golive
uses only once proven not to be the production cluster (`prove_not_production`, on the connection that creates the
scratch database: fail closed). The restore is timed against the RTO, the row counts of the key tables are compared with
the source (read-only), registered integrity suites run on the restored copy, and the scratch database is dropped
on success, failure, timeout and interpreter exit. Nothing is ever written to the source database.

Bounded everywhere: the runner abandons a timed-out body's thread, so the body bounds `pg_restore` itself (a
watchdog kills it and closes the S3 stream at the deadline) and drops the scratch database in `finally` with a
budget of its own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..backups import BackupTarget, listing, newest, s3_client
from ..core import Observation, RunContext, Status, check, failed, passed
from ..models import libpq_tls
from ..postgres import REACHABLE as PG_REACHABLE
from ..postgres import TABLES, PostgresTarget, dsn_for_evidence, table_status
from .counts import compare_counts, restored_counts, source_counts
from .dump import NotADump, parse_header
from .guard import address_refusal, guard_evidence, prove_not_production
from .pipe import (
    RestoreProbeError,
    StreamResult,
    abort_stream,
    body_chunks,
    pg_restore_version,
    read_first,
    run_pg_restore,
)
from .scratch import LIVE, LIVE_LOCK, drop_scratch, drop_stale_scratch, scratch_name
from .suites import SUITES, RestoredDatabase, SuiteOutcome
from .target import (
    KEEPALIVE,
    MEASUREMENT,
    RESTORE_CHECK_TIMEOUT,
    SERVER,
    TEST,
    RestoreTarget,
    restore_connect,
    restore_dsn,
)

# --------------------------------------------------------------------------- checks


@check(
    SERVER,
    title="The restore server is reachable, not production, and may create databases",
    seed=["3.3 Backup Recovery Test"],
    depends_on=[PG_REACHABLE],
    timeout=15,
    target="restore",
    needs=["postgres"],
)
def restore_server(t: RestoreTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """Proves the restore server is not the production cluster (`system_identifier` from pg_control_system(), or,
    where that is revoked, golive's marked source session absent from its pg_stat_activity; see _PROBE_SQL):
    otherwise refused, with what to grant; the restore user must be able to CREATE DATABASE; `pg_restore --version`
    must run."""
    src = postgres
    expected = (
        "a cluster proven other than production (different system_identifier, or it does not list golive's "
        "source session), CREATEDB for the restore user, pg_restore available"
    )
    evidence = (
        f"{guard_evidence(t, src)}; `SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user`, "
        f"`{t.pg_restore} --version`"
    )
    refusal = address_refusal(t, src)
    if refusal:
        return failed(f"REFUSED: {refusal}", expected, evidence)
    with restore_connect(t, t.maintenance_dbname, ctx.remaining) as conn:
        rf, sf, refusal = prove_not_production(t, src, ctx, conn)
        su, createdb = conn.execute(
            "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    observed = {
        "restore_server": f"PostgreSQL {rf['version']} at {t.host}:{t.port}",
        "system_identifier": {"restore": rf["system_identifier"], "source": sf["system_identifier"]},
        "proof": "system_identifier" if rf["system_identifier"] and sf["system_identifier"] else "pg_stat_activity",
        "can_create_databases": bool(su or createdb),
    }
    if refusal:
        return failed({**observed, "refused": refusal}, expected, evidence)
    observed["pg_restore"] = pg_restore_version(t, ctx.remaining, ctx.child_env())
    problems = []
    if not observed["can_create_databases"]:
        problems.append(f"{t.user} may not create databases (needs CREATEDB)")
    if rf["version_num"] // 10000 < sf["version_num"] // 10000:
        problems.append(f"the restore server ({rf['version']}) is older than the source ({sf['version']})")
    if problems:
        return failed({**observed, "problems": problems}, expected, evidence)
    return passed(observed, expected, evidence)


# --------------------------------------------------------------------------- the restore test


def _client_error(e: Exception) -> tuple[str, int | None]:
    resp = getattr(e, "response", None) or {}
    return resp.get("Error", {}).get("Code", type(e).__name__), resp.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _evidence(t: RestoreTarget, b: BackupTarget, key: str, src: PostgresTarget, scratch: str, flags: list[str]) -> str:
    ep = f" --endpoint-url {b.endpoint_url}" if b.endpoint_url else ""
    return (
        f"streamed s3://{b.bucket}/{key} into `{t.pg_restore} {' '.join(flags)} -d <scratch>` on "
        f"{t.host}:{t.port} (scratch database {scratch}, dropped afterwards); row counts: count(*) on the restored "
        f"copy vs {dsn_for_evidence(src)} in a READ ONLY transaction; re-run: `aws s3 cp s3://{b.bucket}/{key} -"
        f"{ep} | {t.pg_restore} {' '.join(flags)} -d {shlex.quote(restore_dsn(t, '<scratch>'))}`"
    )


@check(
    TEST,
    title="The newest backup restores, in time, and matches the source",
    seed=["3.3 Backup Recovery Test", "3.3 Full Database Backup"],
    depends_on=["backup.s3.latest_full", PG_REACHABLE, SERVER],
    timeout=RESTORE_CHECK_TIMEOUT,
    target="restore",
    heavy=True,
    slow=True,  # a download, a pg_restore and the suites on the copy: the longest check of a run
    needs=["backups", "postgres"],
)
def restore_test(t: RestoreTarget, ctx: RunContext, *, backups: BackupTarget, postgres: PostgresTarget) -> Observation:
    """Streams the newest backup from S3 into `pg_restore --no-owner --no-acl --exit-on-error` (stdin; a spooled
    file only for -j) into a fresh scratch database on the restore server; FAIL unless it exits 0 within the
    restore timeout (the RTO), the dump is of the right database, its bytes match the ETag, and the key tables'
    row counts match the source within the tolerance. Records restore time, size, throughput; always drops the
    scratch database."""
    b, src = backups, postgres
    started = time.monotonic()
    limit = t.restore_limit_s
    margin = min(10.0, max(0.3, 0.15 * ctx.timeout))
    own_deadline = started + limit
    budget_deadline = ctx.deadline - margin
    deadline, reason = (
        (own_deadline, "restore-timeout") if own_deadline <= budget_deadline else (budget_deadline, "check-budget")
    )
    flags = ["--no-owner", "--no-acl", "--exit-on-error"] + ([f"--jobs={t.jobs}"] if t.jobs > 1 else [])
    expected = (
        f"pg_restore exits 0 within {limit / 60:g} min (RTO {t.rto_minutes:g} min); dump of "
        f"{t.dump_dbname or src.dbname}; row counts of the key tables within {t.row_tolerance_pct:g}% "
        f"(+{t.row_tolerance_rows}) of the source; scratch database dropped"
    )

    refusal = address_refusal(t, src)  # early; the proof runs on the connection that creates the scratch database
    if refusal:
        return failed(f"REFUSED, nothing restored: {refusal}", expected, guard_evidence(t, src))

    o = newest(listing(b, b.prefix, ctx))
    if o is None:
        return failed(
            f"no backup found under s3://{b.bucket}/{b.prefix}: nothing to restore",
            expected,
            f"ListObjectsV2 s3://{b.bucket}/{b.prefix}",
        )
    key = o["Key"]
    client = s3_client(b, ctx, read_timeout=min(120.0, max(5.0, ctx.remaining)))
    try:
        return _fetch_and_restore(t, b, src, ctx, client, key, o, deadline, reason, margin, flags, expected)
    finally:
        client.close()


def _fetch_and_restore(
    t: RestoreTarget,
    b: BackupTarget,
    src: PostgresTarget,
    ctx: RunContext,
    client: Any,
    key: str,
    o: dict[str, Any],
    deadline: float,
    reason: str,
    margin: float,
    flags: list[str],
    expected: str,
) -> Observation:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_object(Bucket=b.bucket, Key=key)
    except ClientError as e:
        code, status = _client_error(e)
        raise RestoreProbeError(
            f"GetObject s3://{b.bucket}/{key} answered {status or '?'} {code} with access key "
            f"{b.access_key_id or '(default credentials)'}: the backup cannot be read, so it "
            "cannot be restored; no scratch database was created"
        ) from None
    body = resp["Body"]
    size = int(resp.get("ContentLength") or o["Size"])
    etag = (resp.get("ETag") or "").strip('"')
    dump: dict[str, Any] = {
        "key": key,
        "bytes": size,
        "last_modified": o["LastModified"].isoformat(),
        "sse": resp.get("ServerSideEncryption") or "none",
    }
    scratch = scratch_name(t)
    evidence = _evidence(t, b, key, src, scratch, flags)
    try:
        first = read_first(body)
        try:
            header = parse_header(first)
        except NotADump as e:
            return failed(
                {"dump": dump, "problem": f"not a pg_dump custom-format archive: {e}"},
                expected,
                f"read the first {len(first):,} bytes of s3://{b.bucket}/{key}; nothing was restored",
            )
        dump.update(
            {
                "dbname": header.dbname,
                "created": header.created,
                "format": header.format,
                "compression": header.compression,
                "server_version": header.server_version,
                "pg_dump_version": header.pg_dump_version,
                "archive_version": header.archive_version,
            }
        )
        if header.format != "custom":
            return failed(
                {
                    "dump": dump,
                    "problem": f"a pg_dump {header.format}-format archive (golive streams custom-format -Fc dumps)",
                },
                expected,
                evidence,
            )
        want_db = t.dump_dbname or src.dbname
        if t.check_dump_dbname and header.dbname != want_db:
            return failed(
                {
                    "dump": dump,
                    "problem": f"a dump of database {header.dbname!r}, not {want_db!r}: nothing was restored",
                },
                expected,
                f"archive header of s3://{b.bucket}/{key} (`pg_restore --list` shows it as dbname); "
                "nothing was restored",
            )
        return _restore_into_scratch(
            t, src, ctx, body, first, size, etag, dump, scratch, flags, deadline, reason, margin, expected, evidence
        )
    except (BotoCoreError, ClientError) as e:
        raise RestoreProbeError(f"reading s3://{b.bucket}/{key} failed: {' '.join(str(e).split())}") from None
    finally:
        with contextlib.suppress(Exception):
            body.close()


def _restore_into_scratch(
    t: RestoreTarget,
    src: PostgresTarget,
    ctx: RunContext,
    body: Any,
    first: bytes,
    size: int,
    etag: str,
    dump: dict[str, Any],
    scratch: str,
    flags: list[str],
    deadline: float,
    reason: str,
    margin: float,
    expected: str,
    evidence: str,
) -> Observation:
    from psycopg import sql

    with restore_connect(t, t.maintenance_dbname, min(ctx.remaining, 30)) as conn:
        refusal = prove_not_production(t, src, ctx, conn)[2]  # on this connection: nothing written before it
        if refusal:
            return failed(f"REFUSED, nothing restored: {refusal}", expected, guard_evidence(t, src))
        stale = drop_stale_scratch(t, conn)
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch)))
    with LIVE_LOCK:
        LIVE[scratch] = lambda: drop_scratch(t, scratch)
    spool: Path | None = None
    outcome: Observation | None = None
    error: BaseException | None = None
    try:
        env = ctx.child_env(PGCONNECT_TIMEOUT="10", PGAPPNAME="golive-restore")
        env.pop("PGPASSWORD", None)
        if t.password is not None:
            env["PGPASSWORD"] = t.password.get_secret_value()
        from psycopg.conninfo import make_conninfo

        target = make_conninfo(host=t.host, port=t.port, dbname=scratch, user=t.user, **libpq_tls(t), **KEEPALIVE)
        exe = shutil.which(t.pg_restore) or t.pg_restore
        argv = [exe, *flags, "-d", target]
        if t.jobs == 1:
            stream = run_pg_restore(
                argv,
                env,
                body_chunks(body, first),
                deadline,
                reason,
                on_abort=lambda: abort_stream(body),
                verify_md5=_etag_is_md5(etag, dump) and t.verify_etag,
            )
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
        with LIVE_LOCK:
            LIVE.pop(scratch, None)
    if error is not None:
        if cleanup_error and isinstance(error, RestoreProbeError):
            raise RestoreProbeError(
                f"{error}; BUT the scratch database {scratch} could not be dropped: {cleanup_error}"
            ) from None
        raise error
    assert outcome is not None
    if stale:
        outcome.details["stale_scratch_dropped"] = stale
    if cleanup_error:
        outcome.observed["problems"] = outcome.observed.get("problems", []) + [
            f"the scratch database {scratch} could not be dropped: {cleanup_error}"
        ]
        outcome.status = Status.FAIL
    outcome.observed["scratch_dropped"] = cleanup_error is None
    return outcome


def _spool_then_restore(
    fd: int, path: Path, argv: list[str], env: dict[str, str], body: Any, first: bytes, deadline: float, reason: str
) -> StreamResult:
    """Parallel restore needs a seekable file: stream the object to disk (never to memory), then pg_restore -j."""
    t0 = time.monotonic()
    md5 = hashlib.md5(usedforsecurity=False)
    total = 0
    killer = threading.Timer(max(0.0, deadline - time.monotonic()), abort_stream, args=(body,))
    killer.daemon = True
    killer.start()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in body_chunks(body, first):
                md5.update(chunk)
                f.write(chunk)
                total += len(chunk)
    except Exception as e:  # noqa: BLE001
        late = time.monotonic() >= deadline
        return StreamResult(
            bytes=total,
            seconds=time.monotonic() - t0,
            killed=reason if late else None,
            stream_error=None if late else " ".join(f"{type(e).__name__}: {e}".split()),
        )
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


def _judge(
    t: RestoreTarget,
    src: PostgresTarget,
    ctx: RunContext,
    s: StreamResult,
    size: int,
    etag: str,
    dump: dict[str, Any],
    scratch: str,
    expected: str,
    evidence: str,
    margin: float,
) -> Observation:
    mib_s = s.bytes / 1048576 / s.seconds if s.seconds > 0 else None
    observed: dict[str, Any] = {
        "restore_seconds": round(s.seconds, 3),
        "dump_bytes": s.bytes,
        "throughput_mib_s": round(mib_s, 2) if mib_s else None,
        "dump": dump,
        "scratch_database": scratch,
    }
    if s.download_seconds is not None:
        observed["download_seconds"] = round(s.download_seconds, 3)
    details: dict[str, Any] = {
        "pg_restore_exit": s.returncode,
        "pg_restore_errors": s.errors,
        "pg_restore_stderr": ctx.redact.clip(s.stderr, 4000, tail=True, one_line=False),
    }
    if s.killed == "check-budget":
        raise RestoreProbeError(
            f"the restore of {dump['key']} was still running when the check's time budget ran "
            f"out ({s.seconds:.1f} s, {s.bytes:,} of {size:,} bytes streamed): pg_restore "
            f"killed, scratch database {scratch} dropped"
        )
    if s.killed == "restore-timeout":
        observed["problem"] = (
            f"the restore did not finish within {t.restore_limit_s / 60:g} min (RTO "
            f"{t.rto_minutes:g} min): pg_restore killed after {s.seconds:.1f} s, "
            f"{s.bytes:,} of {size:,} bytes streamed"
        )
        return failed(observed, expected, evidence, **details)
    if s.stream_error:
        raise RestoreProbeError(
            f"streaming the backup failed after {s.bytes:,} of {size:,} bytes: {s.stream_error}; "
            f"pg_restore killed, scratch database {scratch} dropped"
        )
    if s.returncode != 0:
        tail = [ln for ln in s.stderr.splitlines() if ln.strip()][-3:]
        observed["problem"] = (
            f"pg_restore exited {s.returncode} after {s.seconds:.1f} s ({s.bytes:,} of {size:,} "
            f"bytes read): {' | '.join(tail) or 'no message'}"
        )
        return failed(observed, expected, evidence, **details)
    problems: list[str] = []
    comparable = bool(s.md5) and _etag_is_md5(etag, dump)
    details["integrity"] = {
        "bytes_read": s.bytes,
        "content_length": size,
        "md5": s.md5,
        "etag": etag,
        "etag_match": (s.md5 == etag) if comparable else None,
    }  # None: multipart / KMS ETag
    if s.bytes != size:
        problems.append(f"streamed {s.bytes:,} bytes, the object has {size:,}")
    if comparable and s.md5 != etag:
        problems.append(f"MD5 of the streamed bytes {s.md5} != ETag {etag} (corrupted in storage or transit)")
    if s.seconds >= t.rto_minutes * 60:
        problems.append(f"restore took {s.seconds / 60:.1f} min >= RTO {t.rto_minutes:g} min")
    status = table_status(src, ctx)  # a table missing on the source is dependencies.postgres.tables' failure
    tables = [x for x in t.key_tables or src.required_tables if status.get(x, "ok") == "ok"]
    skipped_tables = {
        x: f"{status[x]} on the source ({TABLES})"
        for x in t.key_tables or src.required_tables
        if status.get(x, "ok") != "ok"
    }
    if skipped_tables:
        observed["not_compared"] = skipped_tables
    restored = restored_counts(t, scratch, tables, max(1.0, ctx.remaining - margin))
    source, method = source_counts(src, tables, ctx)
    rows, row_problems = compare_counts(t, source, restored)
    observed["rows"] = rows
    details["source_count_method"] = method
    problems += row_problems
    suites = _run_suites(t, src, ctx, scratch, dump["key"]) if t.run_integrity_suites and SUITES else {}
    if suites:
        observed["integrity_suites"] = {n: f"{o.status.value}: {o.summary}" for n, o in suites.items()}
        problems += [
            f"integrity suite {n}: {o.status.value} {o.summary}"
            for n, o in suites.items()
            if o.status not in (Status.PASS, Status.WARN)
        ]
    ctx.memo(MEASUREMENT, lambda: {"restore_seconds": s.seconds, "bytes": s.bytes, "key": dump["key"]})
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence, **details)
    return passed(observed, expected, evidence, **details)


def _run_suites(
    t: RestoreTarget, src: PostgresTarget, ctx: RunContext, scratch: str, key: str
) -> dict[str, SuiteOutcome]:
    db = RestoredDatabase(
        host=t.host,
        port=t.port,
        dbname=scratch,
        user=t.user,
        password=t.password.get_secret_value() if t.password is not None else None,
        sslmode=t.sslmode,
        sslrootcert=t.sslrootcert,
        source_dbname=src.dbname,
        backup_key=key,
        source=src,
    )
    out: dict[str, SuiteOutcome] = {}
    for name, suite in list(SUITES.items()):
        try:
            res = suite(db, ctx)
            out[name] = (
                res
                if isinstance(res, SuiteOutcome)
                else SuiteOutcome(Status.ERROR, f"returned {type(res).__name__}, not a SuiteOutcome")
            )
        except Exception as e:  # noqa: BLE001 - a broken suite fails the restore test, with its message
            out[name] = SuiteOutcome(Status.ERROR, " ".join(f"{type(e).__name__}: {e}".split()))
    return out
