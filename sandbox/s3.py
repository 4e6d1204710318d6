"""S3 from moto's server mode (a subprocess): the backup bucket with a real pg_dump and WAL-style objects.

moto accepts any credentials (its request signing checks are off unless IAM auth is switched on), so the sandbox's
access key and secret are carried through the config but not verified by the server.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import time

BUCKET = "golive-backups"
BACKUP_PREFIX = "backups/"
WAL_PREFIX = "wal/"
ACCESS_KEY_ID = "golive-sandbox"
WAL_SEGMENTS = ("000000010000000000000001", "000000010000000000000002", "000000010000000000000003")


def server_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def client(endpoint: str, secret: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY_ID,
                        aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=30))


def backup_key(when: dt.datetime) -> str:
    return f"{BACKUP_PREFIX}merchants_prod-{when.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}.dump"


def create_bucket(s3) -> None:
    s3.create_bucket(Bucket=BUCKET)
    set_default_encryption(s3)


def set_default_encryption(s3) -> None:
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})


def upload_backup(s3, key: str, dump: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=dump, ServerSideEncryption="AES256",
                  ContentType="application/octet-stream",
                  Metadata={"source": "pg_dump -Fc", "database": "merchants_prod"})


def upload_wal(s3) -> None:
    """Three WAL-style segments, oldest first (so the newest is also the last uploaded)."""
    for name in WAL_SEGMENTS:
        s3.put_object(Bucket=BUCKET, Key=WAL_PREFIX + name, Body=os.urandom(8192), ServerSideEncryption="AES256")


def upload_unencrypted_backup(s3, after: dt.datetime, dump: bytes) -> str:
    """A newer dump without SSE. The bucket's default encryption would encrypt it, so it is lifted for the upload."""
    while dt.datetime.now(dt.timezone.utc) < after + dt.timedelta(seconds=1):  # strictly newer LastModified
        time.sleep(0.05)
    key = backup_key(dt.datetime.now(dt.timezone.utc))
    s3.delete_bucket_encryption(Bucket=BUCKET)
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=dump, ContentType="application/octet-stream")
    finally:
        set_default_encryption(s3)
    return key


def delete_prefix(s3, prefix: str) -> None:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    if keys:
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
