"""Network infrastructure (seed 1.2, and the load balancer's frontend pool of 1.1): DNS through dnspython against a
configurable resolver, firewall reachability, the bastion's SSH banner, and the CDN from its response headers."""

from __future__ import annotations

import hashlib
import ipaddress
import shlex
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import AnyHttpUrl, Field, field_validator, model_validator

from .clients.http import http_client, req_timeout
from .core import (
    Observation,
    RunContext,
    check,
    failed_if,
    passed_if,
    service_at,
    service_down,
    skipped,
    tcp_state,
    url_address,
)
from .models import CaFile, Host, Target


class DnsTarget(Target):
    name: str = Field(description="the name users resolve, e.g. app.swipesavvy.com")
    nameserver: str | None = Field(
        None, description="resolver to ask, `ip` or `ip:port` (default: the system's resolv.conf)"
    )
    tcp: bool = Field(False, description="query over TCP instead of UDP")
    min_a_records: int = Field(2, ge=1, description="seed 1.2: multiple A records")
    max_ttl_s: int = Field(300, ge=0, description="seed 1.1/1.2: TTL 300 seconds or less")
    max_cname_hops: int = Field(
        1, ge=0, description="seed 1.2: no CNAME chains (one alias, e.g. to a CDN, is not a chain; 0 forbids any CNAME)"
    )
    expected_addresses: list[str] = Field(
        default_factory=list,
        description="seed 1.1 Frontend Pool: the frontend addresses the name must resolve to (exactly this set)",
    )

    @field_validator("nameserver")
    @classmethod
    def _ns(cls, v: str | None) -> str | None:
        if v is not None:
            parse_nameserver(v)
        return v

    @field_validator("expected_addresses")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        for a in v:
            ipaddress.ip_address(a)
        return v


def parse_nameserver(v: str) -> tuple[str, int]:
    try:
        return str(ipaddress.ip_address(v.strip("[]"))), 53
    except ValueError:
        host, _, port = v.rpartition(":")
        ip = str(ipaddress.ip_address(host.strip("[]")))  # raises ValueError with the reason
        if not port.isdigit():
            raise ValueError(f"expected ip or ip:port, got {v!r}") from None
        return ip, int(port)


class FirewallTarget(Target):
    host: Host = Field(description="the address the rules protect, probed from where golive runs")
    open_ports: list[int] = Field(
        default_factory=lambda: [80, 443], description="seed 1.2: ports that must accept TCP connections"
    )
    closed_ports: list[int] = Field(
        default_factory=list, description="ports that must NOT be reachable from here (e.g. 5432, 6379)"
    )
    connect_timeout_s: float = Field(
        2.0, gt=0, le=10, description="a port that does not answer in this time is filtered (closed)"
    )

    @model_validator(mode="after")
    def _disjoint(self) -> FirewallTarget:
        both = set(self.open_ports) & set(self.closed_ports)
        if both:
            raise ValueError(f"ports both open and closed: {sorted(both)}")
        for p in [*self.open_ports, *self.closed_ports]:
            if not 0 < p < 65536:
                raise ValueError(f"not a port: {p}")
        return self


class BastionTarget(Target):
    host: Host
    port: int = Field(22, gt=0, lt=65536)
    banner_prefix: str = Field("SSH-2.0-", description="what the identification string must start with (RFC 4253)")


class CdnTarget(Target):
    url: AnyHttpUrl = Field(description="the CDN edge URL users hit")
    origin_url: AnyHttpUrl = Field(description="the origin the CDN must pull from (seed 1.2: over HTTPS)")
    paths: list[str] = Field(default_factory=lambda: ["/"], description="paths fetched through the edge and origin")
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for the edge and the origin")
    min_cache_ttl_s: int = Field(60, ge=0, description="seed 1.2: cache TTL 60-3600 seconds")
    max_cache_ttl_s: int = Field(3600, ge=0, description="seed 1.2: cache TTL 60-3600 seconds")
    cdn_headers: list[str] = Field(
        default_factory=lambda: ["via", "x-cache", "cf-ray", "x-amz-cf-id", "x-served-by", "x-cdn"],
        description="a response carrying one of these came through a CDN",
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        if not v or any(not p.startswith("/") for p in v):
            raise ValueError("at least one path, each starting with /")
        return v


class NetworkTarget(Target):
    dns: DnsTarget | None = None
    firewall: FirewallTarget | None = None
    bastion: BastionTarget | None = None
    cdn: CdnTarget | None = None


# --------------------------------------------------------------------------- DNS

DNS_RECORDS = "infrastructure.dns.records"


def resolve_a(d: DnsTarget, ctx: RunContext) -> dict[str, Any]:
    """One A lookup per run: addresses, TTLs, the CNAME hops of the answer."""

    def do() -> dict[str, Any]:
        import dns.rcode
        import dns.rdatatype
        import dns.resolver

        if d.nameserver:
            res = dns.resolver.Resolver(configure=False)
            ip, port = parse_nameserver(d.nameserver)
            res.nameservers, res.port = [ip], port
        else:
            res = dns.resolver.Resolver()
        budget = max(0.2, ctx.remaining - 0.5)
        res.timeout, res.lifetime = min(2.0, budget), min(5.0, budget)  # a refused or silent server: 2 tries
        res.cache = None
        ans = res.resolve(d.name, "A", tcp=d.tcp, raise_on_no_answer=False, search=False)
        cnames, a_ttl, addresses = [], None, []
        for rrset in ans.response.answer:
            if rrset.rdtype == dns.rdatatype.CNAME:
                cnames.append({"name": str(rrset.name), "target": str(rrset[0].target), "ttl": rrset.ttl})
            elif rrset.rdtype == dns.rdatatype.A:
                a_ttl = rrset.ttl if a_ttl is None else min(a_ttl, rrset.ttl)
                addresses += [r.address for r in rrset]
        return {
            "addresses": sorted(set(addresses)),
            "a_ttl": a_ttl,
            "cnames": cnames,
            "rcode": dns.rcode.to_text(ans.response.rcode()),
            "server": f"{res.nameservers[0]}:{res.port}" if d.nameserver else "system resolver",
        }

    return ctx.memo(("dns-a", d.name, d.nameserver, d.tcp), do)


def _dig(d: DnsTarget) -> str:
    if d.nameserver:
        ip, port = parse_nameserver(d.nameserver)
        return f"dig @{ip} -p {port}{' +tcp' if d.tcp else ''} {d.name} A +noall +answer"
    return f"dig {d.name} A +noall +answer"


@check(
    DNS_RECORDS,
    title="DNS answers several A records, short TTL, no CNAME chain",
    seed=["1.2 DNS Resolution"],
    timeout=10,
    target="network.dns",
)
def dns_records(d: DnsTarget, ctx: RunContext) -> Observation:
    """An A query for dns.name to dns.nameserver (dnspython): >= min_a_records addresses, every TTL of the answer
    (A and CNAME) <= max_ttl_s, at most max_cname_hops CNAMEs before the A records."""
    r = resolve_a(d, ctx)
    ttls = [c["ttl"] for c in r["cnames"]] + ([r["a_ttl"]] if r["a_ttl"] is not None else [])
    observed = {
        "addresses": r["addresses"],
        "ttl_s": max(ttls) if ttls else None,
        "cname_chain": [f"{c['name']} -> {c['target']}" for c in r["cnames"]],
        "rcode": r["rcode"],
    }
    expected = f">= {d.min_a_records} A records, TTL <= {d.max_ttl_s} s, <= {d.max_cname_hops} CNAME hop(s)"
    evidence = f"A query for {d.name} to {r['server']} (dnspython); re-run: `{_dig(d)}`"
    problems = []
    if len(r["addresses"]) < d.min_a_records:
        problems.append(f"{len(r['addresses'])} A record(s)")
    if ttls and max(ttls) > d.max_ttl_s:
        problems.append(f"TTL {max(ttls)} s")
    if len(r["cnames"]) > d.max_cname_hops:
        problems.append(f"{len(r['cnames'])} CNAME hops")
    return failed_if(problems, observed, expected, evidence, problems=problems)


@check(
    "infrastructure.dns.frontend_pool",
    title="DNS points at the right frontend servers",
    seed=["1.1 Load Balancer: Frontend Pool"],
    depends_on=[DNS_RECORDS],
    timeout=10,
    target="network.dns",
    needs=["network.dns.expected_addresses"],
)
def dns_frontend_pool(d: DnsTarget, ctx: RunContext) -> Observation:
    """The A records of dns.name are exactly dns.expected_addresses (no missing frontend, no stray address)."""
    r = resolve_a(d, ctx)
    want, got = set(d.expected_addresses), set(r["addresses"])
    evidence = f"A query for {d.name} to {r['server']} (dnspython); re-run: `{_dig(d)}`"
    return passed_if(
        want == got, sorted(got), sorted(want), evidence, missing=sorted(want - got), unexpected=sorted(got - want)
    )


# --------------------------------------------------------------------------- firewall


@check(
    "infrastructure.firewall.ports",
    title="Firewall lets the listed ports in and keeps the others out",
    seed=["1.2 Firewall Rules"],
    timeout=15,
    target="network.firewall",
)
def firewall_ports(f: FirewallTarget, ctx: RunContext) -> Observation:
    """A TCP connect to each port of firewall.host, concurrently: every open_ports port accepts, every
    closed_ports port is refused or filtered (no answer within connect_timeout_s). An open port that refuses
    where a service golive checks itself listens (the database, Redis, the web endpoint, ...) got through the
    firewall to a service that is down: not judged here, that service's check reports it (SKIPPED naming it when
    no other port is wrong)."""
    ports = [*f.open_ports, *f.closed_ports]
    timeout = min(f.connect_timeout_s, max(0.1, ctx.remaining - 1))
    with ThreadPoolExecutor(max_workers=min(20, max(1, len(ports)))) as pool:
        states = dict(zip(ports, pool.map(lambda p: tcp_state(f.host, p, timeout), ports)))
    observed = {str(p): states[p] for p in ports}
    expected = {**{str(p): "open" for p in f.open_ports}, **{str(p): "refused or filtered" for p in f.closed_ports}}
    # an open port refused where a service golive checks listens: that service is down, its own check says so
    down = {
        str(p): owner for p in f.open_ports if states[p] == "refused" and (owner := service_at(ctx.config, f.host, p))
    }
    observed.update({p: f"refused: not judged, the service is down ({owner} reports it)" for p, owner in down.items()})
    bad = [p for p in f.open_ports if states[p] != "open" and str(p) not in down] + [
        p for p in f.closed_ports if states[p] == "open"
    ]
    evidence = (
        f"TCP connect to {f.host} on each port from where golive runs (timeout {timeout:g} s); re-run: "
        f"`nc -zv -w {max(1, round(timeout))} {f.host} {' '.join(map(str, ports))}`"
    )
    if down and not bad:
        owner = next(iter(down.values()))
        why = f"port(s) {', '.join(down)} refused: the service there is down ({owner} reports it)"
        return skipped(why, owner, observed, expected, evidence, not_judged=down)
    return failed_if(bad, observed, expected, evidence, failing=bad, not_judged=down)


# --------------------------------------------------------------------------- bastion


@check(
    "infrastructure.bastion.ssh",
    title="Bastion host answers SSH",
    seed=["1.2 VPN/Bastion Access"],
    timeout=10,
    target="network.bastion",
)
def bastion_ssh(b: BastionTarget, ctx: RunContext) -> Observation:
    """A TCP connect to bastion.host:port reads the server's identification line (RFC 4253), which must start
    with banner_prefix (`SSH-2.0-`). No authentication is attempted: whether every team member's key works is
    an attestation."""
    line = b""
    with socket.create_connection((b.host, b.port), timeout=min(5.0, ctx.remaining)) as s:
        s.settimeout(min(5.0, ctx.remaining))
        try:
            while b"\n" not in line and len(line) < 512:
                chunk = s.recv(256)
                if not chunk:
                    break
                line += chunk
        except TimeoutError:
            pass
    banner = line.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii", "replace")
    evidence = (
        f"TCP connect to {b.host}:{b.port}, first line read; re-run: `nc -w 3 {b.host} {b.port} </dev/null` "
        f"or `ssh -o BatchMode=yes -p {b.port} {b.host} true`"
    )
    observed = banner if banner else "(no banner: connection closed or silent)"
    return passed_if(banner.startswith(b.banner_prefix), observed, f"starts with {b.banner_prefix!r}", evidence)


# --------------------------------------------------------------------------- CDN

CDN_FETCH = "cdn-fetch"


def _max_age(cache_control: str | None) -> int | None:
    """The shared-cache TTL of a Cache-Control value: s-maxage, else max-age; None when absent or not cacheable."""
    if not cache_control:
        return None
    parts = {
        p.split("=", 1)[0].strip().lower(): (p.split("=", 1)[1].strip().strip('"') if "=" in p else "")
        for p in cache_control.split(",")
        if p.strip()
    }
    if "no-store" in parts or "private" in parts:
        return None
    for key in ("s-maxage", "max-age"):
        if parts.get(key, "").isdigit():
            return int(parts[key])
    return None


def _fetch_all(c: CdnTarget, ctx: RunContext) -> dict[str, Any]:
    def do() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with http_client(ctx, c.ca_file) as client:
            for path in c.paths:
                edge = client.get(str(c.url).rstrip("/") + path, timeout=req_timeout(ctx))
                out[path] = {
                    "status": edge.status_code,
                    "headers": dict(edge.headers),
                    "sha256": hashlib.sha256(edge.content).hexdigest(),
                }
        return out

    return ctx.memo((CDN_FETCH, str(c.url), tuple(c.paths), str(c.ca_file or "")), do)


def _curl_cdn(c: CdnTarget, path: str) -> str:
    ca = f" --cacert {shlex.quote(str(c.ca_file))}" if c.ca_file else ""
    return f"curl -sS{ca} -o /dev/null -D - {str(c.url).rstrip('/') + path}"


@check(
    "infrastructure.cdn.cache_ttl",
    title="CDN caches with a TTL between 1 minute and 1 hour",
    seed=["1.2 CDN Configuration"],
    timeout=15,
    target="network.cdn",
)
def cdn_cache_ttl(c: CdnTarget, ctx: RunContext) -> Observation:
    """Each cdn.paths fetched through cdn.url answers 200 through a CDN (one of cdn_headers present) with a shared-cache
    TTL within [min_cache_ttl_s, max_cache_ttl_s]: the header aimed at CDNs when the response has one (RFC 9213
    `CDN-Cache-Control`, else Fastly / Varnish `Surrogate-Control`), else `Cache-Control`; s-maxage, else max-age
    (quoted or not, any order and case); `private` / `no-store` there mean not cached. The edge answering 502-504
    while the origin does not accept connections is SKIPPED naming the check that reports the origin."""
    got = _fetch_all(c, ctx)
    observed, bad = {}, []
    for path, r in got.items():
        h = {k.lower(): v for k, v in r["headers"].items()}
        # a CDN obeys the header targeted at it over Cache-Control, which then speaks to browsers only
        source = next((k for k in ("cdn-cache-control", "surrogate-control") if k in h), "cache-control")
        ttl = _max_age(h.get(source))
        via = [k for k in c.cdn_headers if k.lower() in h]
        observed[path] = {
            "status": r["status"],
            "cache_control": h.get("cache-control"),
            "ttl_s": ttl,
            **({"ttl_from": f"{source}: {h[source]}"} if source != "cache-control" else {}),
            "cdn_headers": {k: h[k.lower()] for k in via},
        }
        if r["status"] != 200 or not via or ttl is None or not c.min_cache_ttl_s <= ttl <= c.max_cache_ttl_s:
            bad.append(path)
    expected = (
        f"200 through a CDN (one of {', '.join(c.cdn_headers)}), Cache-Control s-maxage/max-age in "
        f"{c.min_cache_ttl_s}-{c.max_cache_ttl_s} s"
    )
    evidence = f"GET each path through {c.url}, response headers read; re-run: `{_curl_cdn(c, c.paths[0])}`"
    # the edge answering 502/503/504 because its origin is down is the origin's failure (one root cause)
    if (
        bad
        and all(got[p]["status"] in (502, 503, 504) for p in bad)
        and (down := service_down(ctx, *url_address(c.origin_url))) is not None
    ):
        return down
    return failed_if(bad, observed, expected, evidence, failing=bad)


@check(
    "infrastructure.cdn.origin",
    title="CDN serves the configured HTTPS origin",
    seed=["1.2 CDN Configuration"],
    timeout=15,
    target="network.cdn",
)
def cdn_origin(c: CdnTarget, ctx: RunContext) -> Observation:
    """cdn.origin_url is https:// and answers with a verified certificate, and each path fetched through the edge
    has the same body (sha256) as fetched from the origin directly: the CDN pulls from that origin."""
    edge = _fetch_all(c, ctx)
    origin: dict[str, Any] = {}
    with http_client(ctx, c.ca_file) as client:
        for path in c.paths:
            r = client.get(str(c.origin_url).rstrip("/") + path, timeout=req_timeout(ctx))
            origin[path] = {"status": r.status_code, "sha256": hashlib.sha256(r.content).hexdigest()}
    https = c.origin_url.scheme == "https"
    observed: dict[str, Any] = {"origin": str(c.origin_url), "origin_https_verified": https}
    bad = [] if https else ["origin_url is not https"]
    for path in c.paths:
        same = (
            edge[path]["status"] == 200
            and origin[path]["status"] == 200
            and edge[path]["sha256"] == origin[path]["sha256"]
        )
        observed[path] = f"edge {edge[path]['status']} / origin {origin[path]['status']}, " + (
            "same body" if same else "DIFFERENT body"
        )
        if not same:
            bad.append(path)
    expected = "origin https:// (certificate verified), each path: edge body == origin body, both 200"
    ca = f" --cacert {shlex.quote(str(c.ca_file))}" if c.ca_file else ""
    p = c.paths[0]
    evidence = (
        f"GET each path through {c.url} and from {c.origin_url} directly (TLS verified), sha256 of the bodies "
        f"compared; re-run: `diff <(curl -sS{ca} {str(c.url).rstrip('/') + p}) "
        f"<(curl -sS{ca} {str(c.origin_url).rstrip('/') + p})`"
    )
    return failed_if(bad, observed, expected, evidence, failing=bad)
