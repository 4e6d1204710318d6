"""A local CA (trustme) and server certificates with an explicit expiry (trustme's default is the year 3000)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path  # valid for a year: the healthy state
    key: Path
    short_cert: Path  # 10 days left: the `tls-expiry` fault
    short_key: Path


def make_certs(base: Path, days: int = 365, short_days: int = 10) -> CertFiles:
    ca = trustme.CA(organization_name="golive sandbox", organization_unit_name="golive sandbox CA")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    files = CertFiles(
        ca=base / "ca.pem",
        cert=base / "server.pem",
        key=base / "server.key",
        short_cert=base / "server-short.pem",
        short_key=base / "server-short.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    for cert_path, key_path, valid in ((files.cert, files.key, days), (files.short_cert, files.short_key, short_days)):
        leaf = ca.issue_cert(
            *HOSTS,
            common_name=HOSTS[0],
            organization_name="SwipeSavvy sandbox",
            not_before=now - dt.timedelta(hours=1),
            not_after=now + dt.timedelta(days=valid),
        )
        leaf.cert_chain_pems[0].write_to_path(str(cert_path))
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
    return files
