"""Backups in S3 (any S3-compatible endpoint): newest full backup, encryption, WAL freshness (sections 3.3, 8)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import Field, SecretStr

from .core import Observation, RunContext, check, compare, failed, not_applicable, passed
from .models import Target


class BackupTarget(Target):
    bucket: str
    prefix: str = "backups/"
    wal_prefix: str | None = "wal/"
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; AWS when empty")
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    max_age_hours: float = Field(24.0, gt=0, description="seed 3.3: full backup from the last 24 h")
    min_size_bytes: int = Field(50 * 1024 * 1024, ge=0, description="seed 3.3: > 50 MB")
    wal_max_age_hours: float = Field(6.0, gt=0, description="seed 3.3: incremental every 6 h or more often")


# --------------------------------------------------------------------------- probes

REACHABLE = "backup.s3.reachable"
MAX_KEYS_LISTED = 100_000  # a bound on the listing of one prefix (paged 1000 at a time)


def s3_client(t: BackupTarget, ctx: RunContext):
    """boto3 S3 client: endpoint/credentials from the model, connect and read timeouts = remaining budget,
    exactly one attempt (no retries: a hung endpoint must end within the check's timeout)."""
    import boto3
    from botocore.config import Config

    remaining = ctx.remaining
    return boto3.session.Session().client(
        "s3", endpoint_url=t.endpoint_url or None, region_name=t.region,
        aws_access_key_id=t.access_key_id or None,
        aws_secret_access_key=t.secret_access_key.get_secret_value() if t.secret_access_key else None,
        config=Config(connect_timeout=remaining, read_timeout=remaining,
                      retries={"total_max_attempts": 1, "mode": "standard"}))


def _cli(t: BackupTarget, *args: str) -> str:
    ep = f" --endpoint-url {t.endpoint_url}" if t.endpoint_url else ""
    return "aws s3api " + " ".join(args) + ep + f" --region {t.region}"


def listing(t: BackupTarget, prefix: str, ctx: RunContext) -> list[dict[str, Any]]:
    """Every object under `prefix` (Key, Size, LastModified), once per run and prefix."""

    def fetch() -> list[dict[str, Any]]:
        c = s3_client(t, ctx)
        try:
            out: list[dict[str, Any]] = []
            kw: dict[str, Any] = {"Bucket": t.bucket, "Prefix": prefix}
            while True:
                page = c.list_objects_v2(**kw)
                out += [{"Key": o["Key"], "Size": o["Size"], "LastModified": o["LastModified"]}
                        for o in page.get("Contents", [])]
                if not page.get("IsTruncated") or len(out) >= MAX_KEYS_LISTED:
                    return out
                kw["ContinuationToken"] = page["NextContinuationToken"]
        finally:
            c.close()

    return ctx.memo(("s3-list", t.endpoint_url, t.bucket, prefix), fetch)


def newest(objs: list[dict[str, Any]]) -> dict[str, Any] | None:
    objs = [o for o in objs if not o["Key"].endswith("/")]  # "folder" markers are not backups
    return max(objs, key=lambda o: (o["LastModified"], o["Key"])) if objs else None


def _age_hours(o: dict[str, Any]) -> float:
    return (datetime.now(timezone.utc) - o["LastModified"]).total_seconds() / 3600


def _describe(o: dict[str, Any]) -> dict[str, Any]:
    return {"key": o["Key"], "size_bytes": o["Size"], "last_modified": o["LastModified"].isoformat(),
            "age_hours": round(_age_hours(o), 4)}


def _list_evidence(t: BackupTarget, prefix: str) -> str:
    return (f"ListObjectsV2 s3://{t.bucket}/{prefix}, newest by LastModified; re-run: "
            f"`{_cli(t, 'list-objects-v2', '--bucket', t.bucket, '--prefix', prefix or chr(39) * 2)}`")


# --------------------------------------------------------------------------- checks

@check(REACHABLE, title="Backup bucket is listable", seed=["8.1 Database Backups"], timeout=15, target="backups")
def s3_reachable(t: BackupTarget, ctx: RunContext) -> Observation:
    """ListObjectsV2 of bucket/prefix succeeds with the configured credentials."""
    objs = listing(t, t.prefix, ctx)
    return passed(f"listable: {len(objs)} object(s) under s3://{t.bucket}/{t.prefix}",
                  "bucket listable with the configured credentials", _list_evidence(t, t.prefix))


@check("backup.s3.latest_full", title="Latest full backup is recent",
       seed=["3.3 Full Database Backup", "8.1 Database Backups", "2.1 PostgreSQL Database: Backup Status"],
       depends_on=[REACHABLE], timeout=15, target="backups")
def s3_latest_full(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under `prefix` is younger than max_age_hours."""
    o = newest(listing(t, t.prefix, ctx))
    expected = f"newest backup age < {t.max_age_hours:g} h"
    if o is None:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", expected, _list_evidence(t, t.prefix))
    ok = _age_hours(o) < t.max_age_hours
    return (passed if ok else failed)(_describe(o), expected, _list_evidence(t, t.prefix))


@check("backup.s3.size", title="Latest full backup is big enough to hold the data",
       seed=["3.3 Full Database Backup", "2.1 PostgreSQL Database: Backup Status"],
       depends_on=[REACHABLE], timeout=15, target="backups")
def s3_size(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under `prefix` is at least min_size_bytes."""
    o = newest(listing(t, t.prefix, ctx))
    if o is None:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", f">= {t.min_size_bytes:,} bytes",
                      _list_evidence(t, t.prefix))
    obs = compare(o["Size"], ">=", t.min_size_bytes, unit="bytes", evidence=_list_evidence(t, t.prefix),
                  key=o["Key"])
    obs.observed = f"{o['Size']:,} bytes ({o['Key']})"
    obs.expected = f">= {t.min_size_bytes:,} bytes"
    return obs


@check("backup.s3.encrypted", title="Latest full backup is encrypted at rest",
       seed=["3.3 Full Database Backup", "5.2 Encryption at Rest"], depends_on=[REACHABLE], timeout=15,
       target="backups")
def s3_encrypted(t: BackupTarget, ctx: RunContext) -> Observation:
    """HEAD of the newest backup shows ServerSideEncryption; the bucket's default encryption is reported too."""
    from botocore.exceptions import ClientError

    o = newest(listing(t, t.prefix, ctx))
    expected = "ServerSideEncryption set on the newest backup (AES256 or aws:kms)"
    if o is None:
        return failed(f"no backup found under s3://{t.bucket}/{t.prefix}", expected, _list_evidence(t, t.prefix))
    c = s3_client(t, ctx)
    try:
        head = c.head_object(Bucket=t.bucket, Key=o["Key"])
        try:
            rules = c.get_bucket_encryption(Bucket=t.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            default = ", ".join(r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules
                                if "ApplyServerSideEncryptionByDefault" in r) or "none"
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            default = "none"
    finally:
        c.close()
    sse = head.get("ServerSideEncryption")
    observed = {"key": o["Key"], "ServerSideEncryption": sse or "none", "bucket_default_encryption": default}
    if head.get("SSEKMSKeyId"):
        observed["SSEKMSKeyId"] = head["SSEKMSKeyId"]
    evidence = (f"HeadObject s3://{t.bucket}/{o['Key']} and GetBucketEncryption {t.bucket}; re-run: "
                f"`{_cli(t, 'head-object', '--bucket', t.bucket, '--key', o['Key'])}`")
    return (passed if sse else failed)(observed, expected, evidence)


@check("backup.s3.wal_fresh", title="Incremental / WAL backups are fresh",
       seed=["3.3 Incremental/WAL Backups"], depends_on=[REACHABLE], timeout=15, target="backups")
def s3_wal_fresh(t: BackupTarget, ctx: RunContext) -> Observation:
    """The newest object under wal_prefix is younger than wal_max_age_hours."""
    if not t.wal_prefix:
        return not_applicable("no `backups.wal_prefix` configured (no incremental/WAL backups declared)")
    o = newest(listing(t, t.wal_prefix, ctx))
    expected = f"newest WAL/incremental age < {t.wal_max_age_hours:g} h"
    if o is None:
        return failed(f"no WAL/incremental backup found under s3://{t.bucket}/{t.wal_prefix}", expected,
                      _list_evidence(t, t.wal_prefix))
    ok = _age_hours(o) < t.wal_max_age_hours
    return (passed if ok else failed)(_describe(o), expected, _list_evidence(t, t.wal_prefix))
