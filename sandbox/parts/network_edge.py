"""The sandbox's network edge, in one process: a DNS server, a bastion's SSH banner, a CDN edge in front of the HTTPS
app, and the backend instances behind the load balancer; and, as a part of its own, the port the firewall must block.

`python -m golive.sandbox.parts.network_edge --faults F [--dns-port P] [--ssh-port P] [--cdn-port P --cdn-origin URL
--cert C --key K --ca CA] [--backend-port P ...] [--backend-delay-ms N]`

- DNS: dnslib's server (UDP and TCP on the same port) answering for `app.swipesavvy.test` with two A records,
  TTL 300; runtime faults `dns-ttl-long` (TTL 3600), `dns-cname-chain` (two CNAMEs before the A records),
  `dns-single-a` (one A record);
- bastion: sends an OpenSSH identification line and closes; `bastion-no-banner` closes without a word;
- CDN: HTTPS, fetches each path from the origin (verifying its certificate), answers with the origin's body and
  `Via`/`X-Cache`, `Cache-Control: public, max-age=600` unless the origin said otherwise; `cdn-ttl-long` makes it
  `max-age=86400`, `cdn-wrong-origin` serves a placeholder page instead of the origin's content;
- backends: plain-HTTP instances answering `GET /api/health` with `{"status": "healthy", ...}` after
  `--backend-delay-ms`; `backend-instance-500` makes the second one answer 500.
Every request-level fault is read from the fault file on each request. The `firewall-port-open` fault starts the
`forbidden-port` service: a forwarder (sandbox/tcpproxy.py) from the port the firewall must block to PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import ssl
from typing import Any

from ..part import Service, Stack, child_env, python
from ..runtime import FaultFile

DNS_NAME = "app.swipesavvy.test."
DNS_ADDRESSES = ("10.20.1.11", "10.20.2.12")
DNS_TTL, DNS_TTL_LONG = 300, 3600
CNAME_CHAIN = ("app.edge.swipesavvy-cdn.test.", "lb-1.edge.swipesavvy-cdn.test.")
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
CDN_TTL_S, CDN_TTL_LONG_S = 600, 86400
BROKEN_BACKEND = 1  # the `backend-instance-500` fault: the second instance
BACKENDS = ("backend1", "backend2", "backend3")
PORTS = ("dns", "bastion", "cdn", *BACKENDS, "forbidden")


def services(stack: Stack) -> list[Service]:
    """`netfakes`, the edge (its CDN in front of the web app's HTTPS port), and `forbidden-port` (not started with the
    stack: the `firewall-port-open` fault starts it)."""
    p = stack.ports

    def argv() -> list[str]:
        assert stack.certs is not None
        return python(
            "golive.sandbox.parts.network_edge",
            "--faults",
            str(stack.fault_file),
            "--dns-port",
            str(p["dns"]),
            "--ssh-port",
            str(p["bastion"]),
            "--cdn-port",
            str(p["cdn"]),
            "--cdn-origin",
            f"https://127.0.0.1:{p['https']}",
            "--cert",
            str(stack.certs.cert),
            "--key",
            str(stack.certs.key),
            "--ca",
            str(stack.ca_file),
            *(arg for b in BACKENDS for arg in ("--backend-port", str(p[b]))),
        )

    return [
        Service("netfakes", argv, (p["dns"], p["bastion"], p["cdn"], *(p[b] for b in BACKENDS)), env=child_env()),
        # the `firewall-port-open` fault: the port the firewall must block answers (it forwards to PostgreSQL)
        Service(
            "forbidden-port",
            lambda: python(
                "golive.sandbox.tcpproxy",
                "--listen",
                f"127.0.0.1:{p['forbidden']}",
                "--to",
                f"127.0.0.1:{p['postgres']}",
            ),
            (p["forbidden"],),
            env=child_env(),
        ),
    ]


# --------------------------------------------------------------------------- DNS (dnslib)


class ZoneResolver:
    """dnslib resolver: the product's name, shaped by the current faults."""

    def __init__(self, faults: FaultFile):
        self.faults = faults

    def resolve(self, request: Any, handler: Any) -> Any:
        from dnslib import CNAME, QTYPE, RCODE, RR, A

        reply = request.reply()
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        f = self.faults.current()
        ttl = DNS_TTL_LONG if "dns-ttl-long" in f else DNS_TTL
        addresses = DNS_ADDRESSES[:1] if "dns-single-a" in f else DNS_ADDRESSES
        chain = [DNS_NAME, *CNAME_CHAIN] if "dns-cname-chain" in f else [DNS_NAME]
        if qname not in chain:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for name, target in zip(chain[chain.index(qname) :], chain[chain.index(qname) + 1 :]):
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=ttl))
        if qtype in ("A", "ANY"):
            for a in addresses:
                reply.add_answer(RR(chain[-1], QTYPE.A, rdata=A(a), ttl=ttl))
        return reply


def start_dns(port: int, faults: FaultFile) -> list[Any]:
    from dnslib.server import DNSLogger, DNSServer

    resolver, quiet = ZoneResolver(faults), DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", False)
    servers = [DNSServer(resolver, port=port, address="127.0.0.1", logger=quiet, tcp=tcp) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    return servers


# --------------------------------------------------------------------------- tiny HTTP/1.1 (Connection: close)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    method, _, rest = head.decode("latin-1").partition(" ")
    return method, rest.split(" ", 1)[0]


def response(
    status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "OK")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


# --------------------------------------------------------------------------- backend instances


def backend_handler(index: int, faults: FaultFile, delay_s: float):
    name = f"backend-{index + 1}"
    healthy = json.dumps({"status": "healthy", "instance": name, "python": platform.python_version()}).encode()
    broken = json.dumps({"status": "error", "instance": name, "error": "database pool exhausted"}).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        if req is None:
            writer.close()
            return
        if delay_s:
            await asyncio.sleep(delay_s)
        if req[1] not in ("/api/health", "/health"):
            await _send(writer, response(404, b'{"error": "not found"}'))
        elif index == BROKEN_BACKEND and "backend-instance-500" in faults:
            await _send(writer, response(500, broken))
        else:
            await _send(writer, response(200, healthy))

    return handle


# --------------------------------------------------------------------------- bastion


def bastion_handler(faults: FaultFile):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _send(writer, b"" if "bastion-no-banner" in faults else SSH_BANNER)

    return handle


# --------------------------------------------------------------------------- CDN edge

PLACEHOLDER = b"<!doctype html><html><head><title>Welcome</title></head><body>Edge default page</body></html>"


def cdn_handler(origin: str, ca_file: str, faults: FaultFile):
    import httpx

    client = httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file), timeout=5)
    cache: dict[str, tuple[int, bytes, str, str | None]] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        if req is None:
            writer.close()
            return
        path = req[1]
        f = faults.current()
        hit = path in cache
        if "cdn-wrong-origin" in f:
            status, body, ctype, cc = 200, PLACEHOLDER, "text/html", None
        elif hit:
            status, body, ctype, cc = cache[path]
        else:
            try:
                r = await client.get(origin.rstrip("/") + path)
                status, body, ctype, cc = (
                    r.status_code,
                    r.content,
                    r.headers.get("content-type", "text/plain"),
                    r.headers.get("cache-control"),
                )
                if status == 200:
                    cache[path] = (status, body, ctype, cc)
            except httpx.HTTPError as e:
                status, body, ctype, cc = 502, f"origin unreachable: {type(e).__name__}".encode(), "text/plain", None
        if "cdn-ttl-long" in f:
            cc = f"public, max-age={CDN_TTL_LONG_S}"
        elif not cc or "max-age" not in cc:
            cc = f"public, max-age={CDN_TTL_S}"
        await _send(
            writer,
            response(
                status,
                body,
                {
                    "Cache-Control": cc,
                    "Via": "1.1 edge-1.swipesavvy-cdn.test (golive-sandbox-cdn)",
                    "X-Cache": ("Hit" if hit else "Miss") + " from golive-sandbox-cdn",
                },
                content_type=ctype,
            ),
        )

    return handle


# --------------------------------------------------------------------------- main


async def serve(a: argparse.Namespace) -> None:
    faults = FaultFile(a.faults)
    servers = []
    if a.dns_port:
        start_dns(a.dns_port, faults)
    if a.ssh_port:
        servers.append(await asyncio.start_server(bastion_handler(faults), "127.0.0.1", a.ssh_port))
    if a.cdn_port:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)
        servers.append(
            await asyncio.start_server(cdn_handler(a.cdn_origin, a.ca, faults), "127.0.0.1", a.cdn_port, ssl=tls)
        )
    for i, port in enumerate(a.backend_port):
        servers.append(
            await asyncio.start_server(
                backend_handler(i, faults, a.backend_delay_ms / 1000), "127.0.0.1", port, backlog=256
            )
        )
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.parts.network_edge")
    p.add_argument("--faults", required=True)
    p.add_argument("--dns-port", type=int)
    p.add_argument("--ssh-port", type=int)
    p.add_argument("--cdn-port", type=int)
    p.add_argument("--cdn-origin")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--backend-port", type=int, action="append", default=[])
    p.add_argument("--backend-delay-ms", type=float, default=0.0)
    asyncio.run(serve(p.parse_args(argv)))


if __name__ == "__main__":
    main()
