"""S3 from moto's server mode (a subprocess): the backup bucket with 30 days of real pg_dump history, WAL-style
objects, configuration backups and a lifecycle policy, plus an IAM reader for the `s3-forbidden` fault.

moto accepts any credentials until its IAM auth is switched on (`/moto-api/reset-auth`): the config carries the IAM
reader's real key, so that the `s3-forbidden` fault can switch auth on and take `s3:GetObject` away from it.
moto cannot backdate LastModified: its clock is set through sandbox/parts/s3_server.py (see there) while old objects
are put.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import urllib.request

from ..part import Service, Stack, child_env

BUCKET = "golive-backups"
BACKUP_PREFIX = "backups/"
WAL_PREFIX = "wal/"
CONFIG_PREFIX = "config/"
HOST = "127.0.0.2"  # a loopback address of its own: the backup store is "off" the database server (127.0.0.1)
PORTS = ("s3",)
ACCESS_KEY_ID = "golive-sandbox"  # the sandbox's own admin client (auth off: not verified)
WAL_SEGMENTS = ("000000010000000000000001", "000000010000000000000002", "000000010000000000000003")
# Ages (days) of the full backups kept besides the newest: daily for a week, then weekly back to 30 days (seed 3.3:
# 30 days of backup history), a common grandfather-father-son retention.
HISTORY_DAYS = (1, 2, 3, 4, 5, 6, 7, 14, 21, 30)
FRESH_AGE_S = 120  # the newest backup was taken two minutes before the stack came up
LIFECYCLE_DAYS = 35  # the bucket expires backups and WAL after 35 days (> the 30 retained)
READER_USER = "golive-backup-reader"
# Configuration backups: golive checks they exist and are recent, and must never read them. The contents carry a
# marker that a test looks for in every result.
CONFIG_MARKER = "GOLIVE-SANDBOX-CONFIG-CONTENT-NEVER-IN-A-REPORT"
CONFIG_FILES = {
    ".env.production": f"DATABASE_URL=postgresql://app_user:{CONFIG_MARKER}@db.internal/merchants_prod\n"
    f"SECRET_KEY={CONFIG_MARKER}\n",
    "nginx.conf": f"# {CONFIG_MARKER}\nserver {{ listen 443 ssl; server_name app.swipesavvy.test; }}\n",
    "database.yml": f"production:\n  adapter: postgresql\n  password: {CONFIG_MARKER}\n",
}


def server_argv(port: int, clock_file) -> list[str]:
    return [
        sys.executable,
        "-m",
        "golive.sandbox.parts.s3_server",
        "--clock",
        str(clock_file),
        "-H",
        HOST,
        "-p",
        str(port),
    ]


def services(stack: Stack) -> list[Service]:
    """moto's server on HOST, its S3 clock set by `stack.clock_file` (Sandbox.s3_clock)."""
    port = stack.ports["s3"]
    return [Service("s3", lambda: server_argv(port, stack.clock_file), (port,), env=child_env(), host=HOST)]


def client(endpoint: str, secret: str, key_id: str = ACCESS_KEY_ID, service: str = "s3"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30),
    )


def backup_key(when: dt.datetime, dbname: str = "merchants_prod") -> str:
    return f"{BACKUP_PREFIX}{dbname}-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.dump"


def create_bucket(s3) -> None:
    s3.create_bucket(Bucket=BUCKET)
    set_default_encryption(s3)
    set_lifecycle(s3)


def set_default_encryption(s3) -> None:
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def set_lifecycle(s3, backup_days: int = LIFECYCLE_DAYS) -> None:
    rules = [(BACKUP_PREFIX, backup_days), (WAL_PREFIX, LIFECYCLE_DAYS), (CONFIG_PREFIX, 365)]
    s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": f"expire-{prefix.rstrip('/')}",
                    "Filter": {"Prefix": prefix},
                    "Status": "Enabled",
                    "Expiration": {"Days": days},
                }
                for prefix, days in rules
            ]
        },
    )


def backup_lifecycle_days(s3) -> int | None:
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    return next((r["Expiration"]["Days"] for r in rules if r.get("Filter", {}).get("Prefix") == BACKUP_PREFIX), None)


def upload_backup(s3, key: str, dump: bytes, database: str = "merchants_prod") -> None:
    s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=dump,
        ServerSideEncryption="AES256",
        ContentType="application/octet-stream",
        Metadata={"source": "pg_dump -Fc", "database": database},
    )


def upload_wal(s3) -> None:
    """Three WAL-style segments, oldest first (so the newest is also the last uploaded)."""
    for name in WAL_SEGMENTS:
        s3.put_object(Bucket=BUCKET, Key=WAL_PREFIX + name, Body=os.urandom(8192), ServerSideEncryption="AES256")


def upload_config(s3, names=None) -> None:
    for name, text in CONFIG_FILES.items():
        if names is None or name in names:
            s3.put_object(Bucket=BUCKET, Key=CONFIG_PREFIX + name, Body=text.encode(), ServerSideEncryption="AES256")


def upload_unencrypted_backup(s3, after: dt.datetime, dump: bytes) -> str:
    """A newer dump without SSE. The bucket's default encryption would encrypt it, so it is lifted for the upload."""
    while dt.datetime.now(dt.UTC) < after + dt.timedelta(seconds=1):  # strictly newer LastModified
        time.sleep(0.05)
    key = backup_key(dt.datetime.now(dt.UTC))
    s3.delete_bucket_encryption(Bucket=BUCKET)
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=dump, ContentType="application/octet-stream")
    finally:
        set_default_encryption(s3)
    return key


def upload_newer(s3, after: dt.datetime, body: bytes) -> str:
    """An encrypted object under backups/ with a strictly newer LastModified than `after` (the `backup-*` faults
    whose newest backup is broken: truncated, not a dump, a dump of the wrong database)."""
    while dt.datetime.now(dt.UTC) < after + dt.timedelta(seconds=1):
        time.sleep(0.05)
    key = backup_key(dt.datetime.now(dt.UTC))
    upload_backup(s3, key, body)
    return key


def delete_prefix(s3, prefix: str) -> None:
    keys = []
    kw = {"Bucket": BUCKET, "Prefix": prefix}
    while True:
        page = s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        kw["ContinuationToken"] = page["NextContinuationToken"]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


# --------------------------------------------------------------------------- IAM (the `s3-forbidden` fault)


def _policy(deny_get: bool) -> str:
    statements = [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}
    ]
    if deny_get:
        statements.append({"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def create_user(iam, name: str) -> None:
    """CreateUser, tolerating a retry of our own: moto's first IAM call builds its IAM backend (every AWS managed
    policy) and can outlast the read timeout on a loaded machine; botocore then retries a request that succeeded."""
    from botocore.exceptions import ClientError

    try:
        iam.create_user(UserName=name)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "EntityAlreadyExists":
            raise


def create_reader(endpoint: str) -> tuple[str, str]:
    """The IAM user golive reads the bucket as: (access key id, secret)."""
    iam = client(endpoint, "unused", service="iam")
    create_user(iam, READER_USER)
    iam.put_user_policy(UserName=READER_USER, PolicyName="backup-read", PolicyDocument=_policy(deny_get=False))
    key = iam.create_access_key(UserName=READER_USER)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def set_auth(endpoint: str, on: bool) -> None:
    """moto's IAM authentication: on (every request signed by a known key and allowed by its policies) or off."""
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0" if on else b"inf",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def forbid_get(endpoint: str, forbidden: bool) -> None:
    """The reader may list the bucket but not read objects (GetObject / HeadObject answer 403 AccessDenied)."""
    if forbidden:
        iam = client(endpoint, "unused", service="iam")
        iam.put_user_policy(UserName=READER_USER, PolicyName="backup-read", PolicyDocument=_policy(deny_get=True))
        set_auth(endpoint, True)
    else:
        set_auth(endpoint, False)
        iam = client(endpoint, "unused", service="iam")
        iam.put_user_policy(UserName=READER_USER, PolicyName="backup-read", PolicyDocument=_policy(deny_get=False))
