"""Shared pieces of the target models (each target model lives beside the checks that read it), and the server
roles' thresholds two sections read (`monitoring.roles`, `hosts.local.role`)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Target(BaseModel):
    """Base of every config section: unknown keys are errors (a typo must not silently disable a check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HostRole(Target):
    """Thresholds of one server role (seed 1.1), read from node_exporter metrics (`monitoring.roles`) or measured on
    the machine golive runs on (`hosts.local.role`)."""

    instance_regex: str = Field(description="PromQL regex matching the role's `instance` label")
    min_cores: int = Field(ge=1)
    max_cpu_ratio: float = Field(gt=0, le=1)
    min_free_memory_bytes: int = Field(ge=0)
    min_free_disk_bytes: int = Field(ge=0)


def default_roles() -> dict[str, HostRole]:
    """The seed's numbers (1.1): frontend 4 cores, < 30 % CPU, 2 GiB free memory, 20 GiB free disk; backend 8 cores,
    < 25 % CPU, 4 GiB, 30 GiB."""
    return {
        "frontend": HostRole(
            instance_regex="frontend.*",
            min_cores=4,
            max_cpu_ratio=0.30,
            min_free_memory_bytes=2 * 1024**3,
            min_free_disk_bytes=20 * 1024**3,
        ),
        "backend": HostRole(
            instance_regex="backend.*",
            min_cores=8,
            max_cpu_ratio=0.25,
            min_free_memory_bytes=4 * 1024**3,
            min_free_disk_bytes=30 * 1024**3,
        ),
    }


def _pem_bundle(v: Path) -> Path:
    """A trust anchor file: it exists and holds at least one PEM certificate OpenSSL can load."""
    if not v.is_file():
        raise ValueError(f"file not found: {v}")
    if v.stat().st_size > 16 * 1024 * 1024:
        raise ValueError(f"{v} is larger than 16 MiB: not a CA bundle")
    if b"-----BEGIN CERTIFICATE-----" not in v.read_bytes():
        raise ValueError(f"{v} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cafile=str(v))
    except (ssl.SSLError, OSError, ValueError) as e:
        raise ValueError(f"{v} does not load as a PEM CA bundle: {e}") from None
    return v


#: `ca_file` of every TLS target (web, SMTP, observability, Redis, PostgreSQL's `sslrootcert`, ...): an extra trust
#: anchor besides the system store, e.g. a private CA; validated when the config loads.
CaFile = Annotated[Path, AfterValidator(_pem_bundle)]


def _host(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty (libpq and the socket APIs read an empty host as the local machine)")
    if any(c.isspace() for c in v):
        raise ValueError("a host name or address has no spaces")
    return v


def _name(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty (libpq reads an empty database or user name as a default)")
    return v


def _http_url(v: str) -> str:
    u = urlsplit(v)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError("must be an http(s):// URL")
    return v.rstrip("/")


#: an http(s) base URL of an API golive reads (Grafana, Twilio, the Kubernetes API server, ...), without its trailing
#: slash (paths are appended as `f"{url}/api/..."`); validated when the config loads
HttpUrl = Annotated[str, AfterValidator(_http_url)]

#: where a check connects (never "", which means "this machine"), and a database / role name (never "").
Host = Annotated[str, AfterValidator(_host)]
Name = Annotated[str, AfterValidator(_name)]

SSLMODE = "^(disable|allow|prefer|require|verify-ca|verify-full)$"


def libpq_tls(t: Any) -> dict[str, str]:
    """A libpq target's TLS parameters (`sslmode`, and `sslrootcert` when the target names its CA) for psycopg,
    make_conninfo or a SQLAlchemy URL's query: per target, never the process-wide PGSSLROOTCERT."""
    root = getattr(t, "sslrootcert", None)
    return {"sslmode": t.sslmode, **({"sslrootcert": str(root)} if root else {})}


def libpq_tls_text(t: Any) -> str:
    """The same as `key=value` words of a conninfo string (evidence, psql command lines)."""
    return " ".join(f"{k}={v}" for k, v in libpq_tls(t).items())
