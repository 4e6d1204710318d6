"""AWS API access shared by the load-balancer, auto-scaling and load-test checks (boto3; read-only calls only)."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from ..core import RunContext
from ..models import CaFile, Target


class AwsAccess(Target):
    """How golive reaches the AWS APIs. Without keys, boto3's default chain (env, profile, instance role) is used."""

    region: str = Field("us-east-1", description="AWS region")
    endpoint_url: AnyHttpUrl | None = Field(
        None, description="an API endpoint other than AWS's own (a VPC endpoint, a local emulator)"
    )
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    ca_file: CaFile | None = Field(
        None,
        description="the CA bundle (PEM) an https endpoint_url is verified against "
        "(a private CA), instead of botocore's default bundle",
    )

    @model_validator(mode="after")
    def _pair(self) -> AwsAccess:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        return self


_SESSION_LOCK = threading.Lock()
_SESSION: Any = None


def new_client(service: str, **kw: Any) -> Any:
    """A boto3 client made from one process-wide session, under a lock (a boto3 session is not thread-safe; its
    clients are): the session's loaded service models are shared, so a client costs ~25 ms of CPU instead of ~70 ms
    with a session of its own. Credentials are passed per client; without them, the session's default chain."""
    global _SESSION
    import boto3

    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(service, **kw)


def aws_client(a: AwsAccess, service: str, ctx: RunContext) -> Any:
    """A boto3 client whose connect/read timeouts follow the check's remaining budget; one attempt, no retries
    (a retry loop would outlive the check's timeout)."""
    from botocore.config import Config

    budget = max(0.5, ctx.remaining - 0.3)
    kw: dict[str, Any] = {}
    if a.access_key_id and a.secret_access_key:
        kw = {"aws_access_key_id": a.access_key_id, "aws_secret_access_key": a.secret_access_key.get_secret_value()}
    return new_client(
        service,
        region_name=a.region,
        endpoint_url=str(a.endpoint_url).rstrip("/") if a.endpoint_url else None,
        verify=str(a.ca_file) if a.ca_file else None,
        config=Config(
            connect_timeout=min(5.0, budget), read_timeout=budget, retries={"max_attempts": 1, "mode": "standard"}
        ),
        **kw,
    )


def cli(a: AwsAccess, command: str) -> str:
    """The aws CLI command an SRE can re-run."""
    ep = f" --endpoint-url {str(a.endpoint_url).rstrip('/')}" if a.endpoint_url else ""
    return f"aws --region {a.region}{ep} {command}"
