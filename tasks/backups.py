"""Backups in S3 (any S3-compatible endpoint): newest full backup, encryption, location, WAL freshness, retention
and lifecycle, the backup schedule and its failure alert, configuration backups (sections 3.3, 8)."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator

from .clients.aws import new_client
from .clients.prometheus import api_get, api_url
from .core import (
    Observation,
    RunContext,
    check,
    compare,
    failed,
    not_applicable,
    passed,
    passed_if,
    register_service,
    url_address,
    warned,
)
from .models import CaFile, Target
from .monitoring.prometheus import MonitoringTarget
from .postgres import PostgresTarget


class BackupTarget(Target):
    bucket: str
    prefix: str = "backups/"
    wal_prefix: str | None = "wal/"
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when empty")
    ca_file: CaFile | None = Field(
        None,
        description="the CA bundle (PEM) an https endpoint_url is verified against "
        "(a private CA), instead of botocore's default bundle",
    )
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    max_age_hours: float = Field(24.0, gt=0, description="seed 3.3: full backup from the last 24 h")
    min_size_bytes: int = Field(50 * 1024 * 1024, ge=0, description="seed 3.3: > 50 MB")
    wal_max_age_hours: float = Field(6.0, gt=0, description="seed 3.3: incremental every 6 h or more often")
    require_bucket_encryption: bool = Field(
        True,
        description="the bucket must enforce encryption too (default "
        "encryption, or a policy denying unencrypted uploads)",
    )
    retention_days: float = Field(30.0, gt=0, description="seed 3.3: 30 days of backup history available")
    schedule_window_days: float = Field(7.0, gt=0, description="how far back the backup cadence is examined")
    max_backup_gap_hours: float = Field(
        26.0, gt=0, description="seed 3.3: daily backups (24 h + slack for the job's own duration)"
    )
    backup_window_utc: str | None = Field(
        None,
        pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="off-peak window the job should run in, e.g. 01:00-05:00 (UTC); backups outside it WARN",
    )
    failure_alert_pattern: str = Field(
        "(?i)backup",
        description="regex matching the Prometheus alerting rule(s) "
        "that fire when the backup job fails (name or expression)",
    )
    config_prefix: str | None = Field(
        None, description="where configuration backups live in the bucket (seed 8.1); unset: not checked"
    )
    config_files: list[str] = Field(
        default_factory=lambda: [".env.production", "nginx.conf", "database.yml"],
        description="configuration files that must have a backup under config_prefix",
    )
    config_max_age_hours: float = Field(
        168.0, gt=0, description="newest copy of each configuration file younger than this"
    )

    @field_validator("failure_alert_pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return v


# --------------------------------------------------------------------------- probes

REACHABLE = "backup.s3.reachable"
MAX_KEYS_LISTED = 100_000  # a bound on the listing of one prefix (paged 1000 at a time)


def s3_client(t: BackupTarget, ctx: RunContext, read_timeout: float | None = None):
    """boto3 S3 client: endpoint/credentials from the model, connect and read timeouts = remaining budget (or
    `read_timeout`, per socket read, for long streams), exactly one attempt (no retries: a hung endpoint must end
    within the check's timeout)."""
    from botocore.config import Config

    remaining = ctx.remaining
    return new_client(
        "s3",
        endpoint_url=t.endpoint_url or None,
        region_name=t.region,
        verify=str(t.ca_file) if t.ca_file else None,
        aws_access_key_id=t.access_key_id or None,
        aws_secret_access_key=t.secret_access_key.get_secret_value() if t.secret_access_key else None,
        config=Config(
            connect_timeout=remaining,
            read_timeout=read_timeout or remaining,
            retries={"total_max_attempts": 1, "mode": "standard"},
        ),
    )


def _cli(t: BackupTarget, *args: str) -> str:
    ep = f" --endpoint-url {t.endpoint_url}" if t.endpoint_url else ""
    return "aws s3api " + " ".join(args) + ep + f" --region {t.region}"


def listing(t: BackupTarget, prefix: str, ctx: RunContext, client: Any = None) -> list[dict[str, Any]]:
    """Every object under `prefix` (Key, Size, LastModified), once per run and prefix (on `client` when given: the
    caller's connection, which it closes)."""

    def fetch() -> list[dict[str, Any]]:
        c = client or s3_client(t, ctx)
        try:
            out: list[dict[str, Any]] = []
            kw: dict[str, Any] = {"Bucket": t.bucket, "Prefix": prefix}
            while True:
                page = c.list_objects_v2(**kw)
                out += [
                    {"Key": o["Key"], "Size": o["Size"], "LastModified": o["LastModified"]}
                    for o in page.get("Contents", [])
                ]
                if not page.get("IsTruncated") or len(out) >= MAX_KEYS_LISTED:
                    return out
                kw["ContinuationToken"] = page["NextContinuationToken"]
        finally:
            if client is None:
                c.close()

    return ctx.memo(("s3-list", t.endpoint_url, t.bucket, prefix), fetch)


def head(t: BackupTarget, key: str, ctx: RunContext, client: Any) -> dict[str, Any]:
    """HeadObject of one key, once per run (the reachability check's read probe of the newest backup is the
    encryption check's HEAD)."""
    return ctx.memo(("s3-head", t.endpoint_url, t.bucket, key), lambda: client.head_object(Bucket=t.bucket, Key=key))


def files(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if not o["Key"].endswith("/")]  # "folder" markers are not backups


def newest(objs: list[dict[str, Any]]) -> dict[str, Any] | None:
    objs = files(objs)
    return max(objs, key=lambda o: (o["LastModified"], o["Key"])) if objs else None


def age_hours(o: dict[str, Any]) -> float:
    return (datetime.now(UTC) - o["LastModified"]).total_seconds() / 3600


def _describe(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": o["Key"],
        "size_bytes": o["Size"],
        "last_modified": o["LastModified"].isoformat(),
        "age_hours": round(age_hours(o), 4),
    }


def list_evidence(t: BackupTarget, prefix: str) -> str:
    return (
        f"ListObjectsV2 s3://{t.bucket}/{prefix}, newest by LastModified; re-run: "
        f"`{_cli(t, 'list-objects-v2', '--bucket', t.bucket, '--prefix', prefix or chr(39) * 2)}`"
    )


# --------------------------------------------------------------------------- checks


@check(
    REACHABLE,
    title="Backup bucket is listable and its backups readable",
    seed=["8.1 Database Backups"],
    timeout=15,
    target="backups",
)
def s3_reachable(t: BackupTarget, ctx: RunContext) -> Observation:
    """ListObjectsV2 of bucket/prefix succeeds with the configured credentials, and so does HeadObject of the newest
    backup (s3:GetObject, which the other backup checks and the restore test need): a key that may list but not
    read is one failure here, its readers are SKIPPED naming it."""
    from botocore.exceptions import ClientError

    expected = "bucket listable and the newest backup readable (HeadObject) with the configured credentials"
    evidence = list_evidence(t, t.prefix)
    c = s3_client(t, ctx)  # one client for both requests
    try:
        objs = listing(t, t.prefix, ctx, c)
        observed = f"listable: {len(objs)} object(s) under s3://{t.bucket}/{t.prefix}"
        if (o := newest(objs)) is None:  # nothing to read: backup.s3.latest_full reports the missing backup
            return passed(observed, expected, evidence)
        evidence += f"; then `{_cli(t, 'head-object', '--bucket', t.bucket, '--key', o['Key'])}`"
        try:
            head(t, o["Key"], ctx, c)
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status not in (401, 403):
                raise
            code = e.response.get("Error", {}).get("Code") or "Forbidden"
            key = f" with access key {t.access_key_id}" if t.access_key_id else ""
            return failed(
                f"{observed}, but HeadObject of the newest ({o['Key']}) answered {status} {code}{key}: "
                "the backups cannot be read",
                expected,
                evidence,
            )
    finally:
        c.close()
    return passed(f"{observed}, the newest readable", expected, evidence)


register_service(
    REACHABLE, lambda c: [url_address(b.endpoint_url)] if (b := getattr(c, "backups", None)) and b.endpoint_url else []
)


@check(
    "backup.s3.latest_full",
    title="Latest full backup is recent",
    seed=["3.3 Full Database Backup", "8.1 Database Backups", "2.1 PostgreSQL Database: Backup Status"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
)
def s3_latest_full(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under `prefix` is younger than max_age_hours."""
    o = newest(listing(t, t.prefix, ctx))
    expected = f"newest backup age < {t.max_age_hours:g} h"
    if o is None:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", expected, list_evidence(t, t.prefix))
    ok = age_hours(o) < t.max_age_hours
    return passed_if(ok, _describe(o), expected, list_evidence(t, t.prefix))


@check(
    "backup.s3.size",
    title="Latest full backup is big enough to hold the data",
    seed=["3.3 Full Database Backup", "2.1 PostgreSQL Database: Backup Status"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
)
def s3_size(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under `prefix` is at least min_size_bytes."""
    o = newest(listing(t, t.prefix, ctx))
    if o is None:
        return failed(
            f"no backup found under s3://{t.bucket}/{t.prefix}",
            f">= {t.min_size_bytes:,} bytes",
            list_evidence(t, t.prefix),
        )
    obs = compare(o["Size"], ">=", t.min_size_bytes, unit="bytes", evidence=list_evidence(t, t.prefix), key=o["Key"])
    obs.observed = f"{o['Size']:,} bytes ({o['Key']})"
    obs.expected = f">= {t.min_size_bytes:,} bytes"
    return obs


@check(
    "backup.s3.encrypted",
    title="Latest full backup is encrypted at rest",
    seed=["3.3 Full Database Backup", "5.2 Encryption at Rest"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
)
def s3_encrypted(t: BackupTarget, ctx: RunContext) -> Observation:
    """HEAD of the newest backup shows ServerSideEncryption; the bucket's default encryption is reported too."""
    from botocore.exceptions import ClientError

    o = newest(listing(t, t.prefix, ctx))
    expected = "ServerSideEncryption set on the newest backup (AES256 or aws:kms)" + (
        " and enforced by the bucket" if t.require_bucket_encryption else ""
    )
    if o is None:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", expected, list_evidence(t, t.prefix))
    c = s3_client(t, ctx)
    try:
        meta = head(t, o["Key"], ctx, c)
        try:
            rules = c.get_bucket_encryption(Bucket=t.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            default = (
                ", ".join(
                    r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
                    for r in rules
                    if "ApplyServerSideEncryptionByDefault" in r
                )
                or "none"
            )
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            default = "none"
        policy_denies = _policy_denies_unencrypted(c, t.bucket) if default == "none" else False
    finally:
        c.close()
    sse = meta.get("ServerSideEncryption")
    observed = {"key": o["Key"], "ServerSideEncryption": sse or "none", "bucket_default_encryption": default}
    if meta.get("SSEKMSKeyId"):
        observed["SSEKMSKeyId"] = meta["SSEKMSKeyId"]
    enforced = default != "none" or policy_denies
    if default == "none":
        observed["bucket_policy_denies_unencrypted_puts"] = policy_denies
    evidence = (
        f"HeadObject s3://{t.bucket}/{o['Key']}, GetBucketEncryption {t.bucket} (and GetBucketPolicy when "
        f"no default encryption); re-run: `{_cli(t, 'head-object', '--bucket', t.bucket, '--key', o['Key'])}`"
    )
    ok = bool(sse) and (enforced or not t.require_bucket_encryption)
    return passed_if(ok, observed, expected, evidence)


def _policy_denies_unencrypted(c: Any, bucket: str) -> bool:
    """The bucket policy has a Deny on PutObject conditioned on the SSE header (the classic enforcement)."""
    import json

    from botocore.exceptions import ClientError

    try:
        doc = json.loads(c.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        return False
    statements = doc.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if (
            st.get("Effect") == "Deny"
            and any(a in ("s3:PutObject", "s3:*", "*") for a in actions)
            and "x-amz-server-side-encryption" in json.dumps(st.get("Condition", {})).lower()
        ):
            return True
    return False


@check(
    "backup.s3.wal_fresh",
    title="Incremental / WAL backups are fresh",
    seed=["3.3 Incremental/WAL Backups"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
    needs={"backups.wal_prefix": "no incremental/WAL backups declared"},
)
def s3_wal_fresh(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under wal_prefix is younger than wal_max_age_hours."""
    o = newest(listing(t, t.wal_prefix, ctx))
    expected = f"newest WAL/incremental age < {t.wal_max_age_hours:g} h"
    if o is None:
        return failed(
            f"no WAL/incremental backup found under s3://{t.bucket}/{t.wal_prefix}",
            expected,
            list_evidence(t, t.wal_prefix),
        )
    ok = age_hours(o) < t.wal_max_age_hours
    return passed_if(ok, _describe(o), expected, list_evidence(t, t.wal_prefix))


# --------------------------------------------------------------------------- location, retention, automation


def _addresses(host: str, port: int | None) -> set[str]:
    try:
        return {ai[4][0] for ai in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as e:
        raise RuntimeError(f"cannot resolve {host}: {e.strerror or e}") from None


@check(
    "backup.s3.off_server",
    title="Backups are stored off the database server",
    seed=["3.3 Full Database Backup", "8.1 Database Backups"],
    depends_on=[REACHABLE],
    timeout=10,
    target="backups",
    uses=["postgres"],
)
def s3_off_server(t: BackupTarget, ctx: RunContext, *, postgres: PostgresTarget | None) -> Observation:
    """The S3 endpoint (AWS when unset) does not resolve to an address of the database server (`postgres.host`):
    a backup stored on the machine it protects dies with it."""
    expected = "the backup store is not on the database server"
    if not t.endpoint_url:
        return passed(
            {"endpoint": f"AWS S3 ({t.region})", "transport": "https"},
            expected,
            f"no endpoint_url: AWS S3 in {t.region}, a separate service by construction",
        )
    pg = postgres
    if pg is None:
        return not_applicable("no `postgres` section: the database server to compare the backup store with is unknown")
    url = urlparse(t.endpoint_url)
    host = url.hostname or ""
    s3_addrs = _addresses(host, url.port)
    db_addrs = _addresses(pg.host, pg.port)
    shared = sorted(s3_addrs & db_addrs)
    observed = {
        "endpoint": t.endpoint_url,
        "endpoint_addresses": sorted(s3_addrs),
        "database_host": pg.host,
        "database_addresses": sorted(db_addrs),
        "transport": url.scheme,
    }
    evidence = (
        f"getaddrinfo({host!r}) vs getaddrinfo({pg.host!r}) (postgres.host); re-run: "
        f"`getent ahosts {host}; getent ahosts {pg.host}`"
    )
    if shared:
        observed["shared_addresses"] = shared
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


def _rule_prefix(rule: dict[str, Any]) -> str:
    f = rule.get("Filter")
    if f is None:
        return rule.get("Prefix", "")  # the legacy top-level Prefix
    return f.get("Prefix", f.get("And", {}).get("Prefix", ""))


def _overlaps(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def lifecycle_rules(t: BackupTarget, ctx: RunContext) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    c = s3_client(t, ctx)
    try:
        return c.get_bucket_lifecycle_configuration(Bucket=t.bucket).get("Rules", [])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code", "") == "NoSuchLifecycleConfiguration":
            return []
        raise
    finally:
        c.close()


@check(
    "backup.s3.retention",
    title="30 days of backup history are kept (oldest backup, lifecycle rules)",
    seed=["3.3 Incremental/WAL Backups", "8.1 Database Backups"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
)
def s3_retention(t: BackupTarget, ctx: RunContext) -> Observation:
    """The full backups under `prefix` span retention_days of history, and no enabled lifecycle rule covering the
    backup or WAL prefix expires objects sooner than retention_days.

    History is counted in restore points, the way backup tools and lifecycle rules keep it: the oldest backup's age
    plus one backup interval (the median gap between consecutive backups, at most `max_backup_gap_hours`), so 30
    daily backups kept (`retention=30`, or a rule expiring at 30 days: the oldest is 29.x days old) are 30 days of
    history and do not flap at the boundary, while 29 daily backups are not. A lone backup counts its age only.
    A lifecycle rule expiring at exactly retention_days passes."""
    objs = files(listing(t, t.prefix, ctx))
    expected = (
        f"oldest backup + one backup interval >= {t.retention_days:g} days; no lifecycle rule expiring "
        "backups/WAL sooner"
    )
    rules = lifecycle_rules(t, ctx)
    evidence = (
        f"ListObjectsV2 s3://{t.bucket}/{t.prefix} (oldest by LastModified) and "
        f"GetBucketLifecycleConfiguration {t.bucket}; re-run: "
        f"`{_cli(t, 'get-bucket-lifecycle-configuration', '--bucket', t.bucket)}`"
    )
    if not objs:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", expected, evidence)
    oldest = min(objs, key=lambda o: (o["LastModified"], o["Key"]))
    age_days = age_hours(oldest) / 24
    interval_h = min(_median_gap_hours(objs), t.max_backup_gap_hours)
    history_days = age_days + interval_h / 24
    prefixes = [p for p in (t.prefix, t.wal_prefix) if p is not None]
    summary, short = [], []
    for r in rules:
        if r.get("Status") != "Enabled":
            continue
        prefix = _rule_prefix(r)
        days = (r.get("Expiration") or {}).get("Days")
        line = f"{r.get('ID') or '(no id)'}: prefix {prefix!r}"
        line += f", expires after {days} days" if days is not None else ", no expiration"
        transitions = [f"{x.get('StorageClass')} after {x.get('Days')} days" for x in r.get("Transitions", [])]
        if transitions:
            line += ", moves to " + ", ".join(transitions)
        summary.append(line)
        covered = [p for p in prefixes if _overlaps(prefix, p)]
        if covered and days is not None and days < t.retention_days:
            short.append(f"{line} (covers {', '.join(covered)})")
    rule = (
        f"oldest {age_days:.2f} days + one backup interval {interval_h:.1f} h = {history_days:.2f} days of "
        f"history ({len(objs)} restore points)"
    )
    observed = {
        "oldest": {"key": oldest["Key"], "age_days": round(age_days, 2)},
        "backups": len(objs),
        "interval_hours": round(interval_h, 2),
        "history_days": round(history_days, 2),
        "rule": rule,
        "lifecycle": summary or "no lifecycle rule (nothing expires)",
    }
    problems = []
    if history_days < t.retention_days:
        problems.append(
            f"{len(objs)} restore points cover {history_days:.1f} days: the oldest backup is "
            f"{age_days:.1f} days old, backups every {interval_h:.1f} h"
        )
    if short:
        problems.append("lifecycle expires backups too early: " + "; ".join(short))
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


def _median_gap_hours(objs: list[dict[str, Any]]) -> float:
    """The median time between consecutive backups (0 for a single backup): the backup interval."""
    times = sorted(o["LastModified"] for o in objs)
    gaps = sorted((b - a).total_seconds() / 3600 for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2] if gaps else 0.0


def _window(spec: str) -> tuple[int, int]:
    a, b = spec.split("-")
    return tuple(int(x[:2]) * 60 + int(x[3:]) for x in (a, b))  # type: ignore[return-value]


def _in_window(when: datetime, win: tuple[int, int]) -> bool:
    m = when.hour * 60 + when.minute
    start, end = win
    return start <= m < end if start <= end else (m >= start or m < end)


@check(
    "backup.automation.schedule",
    title="The backup job runs on schedule (at least daily)",
    seed=["3.3 Backup Automation"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
)
def backup_schedule(t: BackupTarget, ctx: RunContext) -> Observation:
    """Over the last schedule_window_days, the largest gap between consecutive full backups (and from the newest one
    to now) is at most max_backup_gap_hours: the job is scheduled and running. With backup_window_utc, backups taken
    outside the off-peak window WARN."""
    objs = sorted(files(listing(t, t.prefix, ctx)), key=lambda o: o["LastModified"])
    now = datetime.now(UTC)
    since = now - timedelta(days=t.schedule_window_days)
    expected = (
        f"a full backup at least every {t.max_backup_gap_hours:g} h over the last {t.schedule_window_days:g} days"
    )
    evidence = (
        f"LastModified of the full backups under s3://{t.bucket}/{t.prefix} since {since:%Y-%m-%d %H:%M} UTC "
        f"(the job's output is the proof it runs); {list_evidence(t, t.prefix)}"
    )
    recent = [o for o in objs if o["LastModified"] >= since]
    if not recent:
        return failed(f"no backup in the last {t.schedule_window_days:g} days ({len(objs)} older)", expected, evidence)
    before = [o for o in objs if o["LastModified"] < since]
    points = ([before[-1]["LastModified"]] if before else []) + [o["LastModified"] for o in recent] + [now]
    gaps = [(b - a).total_seconds() / 3600 for a, b in zip(points, points[1:])]
    largest = max(gaps)
    observed = {
        "backups_in_window": len(recent),
        "largest_gap_hours": round(largest, 2),
        "times_utc": [f"{o['LastModified']:%m-%d %H:%M}" for o in recent],
    }
    if largest > t.max_backup_gap_hours:
        return failed(observed, expected, evidence)
    if t.backup_window_utc:
        win = _window(t.backup_window_utc)
        outside = [f"{o['LastModified']:%m-%d %H:%M}" for o in recent if not _in_window(o["LastModified"], win)]
        if outside:
            observed["outside_window"] = outside
            return warned(observed, expected + f", inside {t.backup_window_utc} UTC", evidence)
    return passed(observed, expected, evidence)


@check(
    "backup.automation.failure_alert",
    title="A backup-failure alert is configured (and not firing)",
    seed=["3.3 Backup Automation"],
    depends_on=["monitoring.prometheus.reachable"],
    timeout=10,
    target="backups",
    needs={"monitoring": "the backup-failure alert cannot be looked up"},
)
def backup_failure_alert(t: BackupTarget, ctx: RunContext, *, monitoring: MonitoringTarget) -> Observation:
    """Prometheus' loaded alerting rules (/api/v1/rules) include one matching failure_alert_pattern (name or
    expression), evaluating without error and not firing now."""
    data = api_get(monitoring, ctx, "/api/v1/rules", type="alert")
    rules = [r for g in data.get("groups", []) for r in g.get("rules", []) if r.get("type") == "alerting"]
    pattern = re.compile(t.failure_alert_pattern)
    found = [r for r in rules if pattern.search(r.get("name", "")) or pattern.search(r.get("query", ""))]
    url = api_url(monitoring, "/api/v1/rules?type=alert")
    evidence = (
        f"GET {url}, alerting rules matching /{t.failure_alert_pattern}/ in name or expression; re-run: "
        f"`curl -sS '{url}' | jq '.data.groups[].rules[] | {{name, query, state, health}}'`"
    )
    expected = f"an alerting rule matching /{t.failure_alert_pattern}/, healthy, not firing"
    if not found:
        return failed(
            f"no alerting rule matches /{t.failure_alert_pattern}/ (among {len(rules)} alerting rules)",
            expected,
            evidence,
        )
    observed = {r["name"]: {"query": r.get("query"), "state": r.get("state"), "health": r.get("health")} for r in found}
    broken = [r["name"] for r in found if r.get("health") not in (None, "ok")]
    firing = [r["name"] for r in found if r.get("state") == "firing"]
    if broken or firing:
        return failed({"rules": observed, "evaluation_errors": broken, "firing": firing}, expected, evidence)
    return passed(observed, expected, evidence)


def _config_matches(key: str, prefix: str, name: str) -> bool:
    rel = key[len(prefix) :]
    parts = rel.split("/")
    base = parts[-1]
    return name in parts[:-1] or base == name or any(base.startswith(name + sep) for sep in ".-_@")


@check(
    "backup.s3.config_files",
    title="Configuration files are backed up, recent and encrypted (never read)",
    seed=["8.1 Configuration Backups"],
    depends_on=[REACHABLE],
    timeout=15,
    target="backups",
    needs={"backups.config_prefix": "where configuration backups live is unknown"},
)
def s3_config_files(t: BackupTarget, ctx: RunContext) -> Observation:
    """For each of config_files, the newest object under config_prefix named like it (`name`, `name.<stamp>`,
    `<name>/...`) is younger than config_max_age_hours and server-side encrypted. Only ListObjectsV2 and HeadObject:
    the contents (secrets) are never downloaded."""
    objs = files(listing(t, t.config_prefix, ctx))
    expected = (
        f"each of {', '.join(t.config_files)} backed up under s3://{t.bucket}/{t.config_prefix}, younger "
        f"than {t.config_max_age_hours:g} h, server-side encrypted"
    )
    observed: dict[str, Any] = {}
    problems: list[str] = []
    c = s3_client(t, ctx)
    try:
        for name in t.config_files:
            o = newest([x for x in objs if _config_matches(x["Key"], t.config_prefix, name)])
            if o is None:
                observed[name] = "missing"
                problems.append(f"{name}: no backup")
                continue
            head = c.head_object(Bucket=t.bucket, Key=o["Key"])
            age = age_hours(o)
            sse = head.get("ServerSideEncryption") or "none"
            observed[name] = {"key": o["Key"], "age_hours": round(age, 2), "size_bytes": o["Size"], "sse": sse}
            if age >= t.config_max_age_hours:
                problems.append(f"{name}: newest copy is {age:.0f} h old")
            if sse == "none":
                problems.append(f"{name}: not encrypted at rest")
    finally:
        c.close()
    evidence = (
        f"ListObjectsV2 s3://{t.bucket}/{t.config_prefix} and HeadObject of the newest copy of each file "
        "(metadata only: the contents are never downloaded); re-run: "
        f"`{_cli(t, 'list-objects-v2', '--bucket', t.bucket, '--prefix', t.config_prefix)}`"
    )
    if problems:
        return failed({"files": observed, "problems": problems}, expected, evidence)
    return passed(observed, expected, evidence)
