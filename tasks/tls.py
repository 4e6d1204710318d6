"""TLS probing: one handshake per endpoint and run, the leaf certificate read with `cryptography` (section 1.1, 5.1).

Also the trust store every HTTPS-speaking check uses (system store + an optional extra CA file) and a small
httpx client factory whose timeouts follow the check's remaining budget and whose every exchange (connect, TLS,
request, headers, body) ends at the check's deadline: httpx's own timeouts are per operation, so a server trickling
one byte per read would keep the check's thread (abandoned by the runner at its timeout) and its socket forever.
"""
from __future__ import annotations

import ipaddress
import shlex
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .core import RunContext, check, compare, failed, passed

if TYPE_CHECKING:  # web.py imports this module's helpers
    from .web import WebTarget


def trust_context(ca_file: Path | str | None = None) -> ssl.SSLContext:
    """The system trust store plus `ca_file` (PEM), hostname checking on."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


#: the most one HTTP connection of a check may read: a body that size is not an answer but an attack on memory
MAX_HTTP_BYTES = 64 << 20


class _DeadlineBackend:
    """An httpcore network backend whose every operation gets min(its own timeout, what is left until `deadline`)
    and fails once the deadline has passed (a TLS handshake is one operation: CPython bounds it as a whole)."""

    def __init__(self, deadline: float, inner: Any) -> None:
        self.deadline, self.inner = deadline, inner

    def left(self, timeout: float | None, exc: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise exc("the check's deadline passed before the server finished answering")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(self, self.inner.connect_tcp(host, port, self.left(timeout, httpcore.ConnectTimeout),
                                                            local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(self, self.inner.connect_unix_socket(
            path, self.left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _DeadlineStream:
    """A connection of _DeadlineBackend: each operation bounded by the deadline, the bytes read counted."""

    def __init__(self, backend: _DeadlineBackend, inner: Any) -> None:
        self.backend, self.inner, self.read_bytes = backend, inner, 0

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        data = self.inner.read(max_bytes, self.backend.left(timeout, httpcore.ReadTimeout))
        self.read_bytes += len(data)
        if self.read_bytes > MAX_HTTP_BYTES:
            raise httpcore.ReadError(f"the server sent more than {MAX_HTTP_BYTES >> 20} MiB: not read further")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        self.inner.write(buffer, self.backend.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> _DeadlineStream:
        import httpcore

        return _DeadlineStream(self.backend, self.inner.start_tls(
            ssl_context, server_hostname, self.backend.left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def bounded(client: Any, deadline: float) -> Any:
    """`client` (an httpx.Client) with every exchange ending at `deadline` (time.monotonic()), however slowly the
    server answers, and at most MAX_HTTP_BYTES read per connection. Fails closed: a transport it cannot bound (an
    httpx that changed its internals) raises instead of running unbounded."""
    for transport in (client._transport, *client._mounts.values()):
        if transport is None:  # a NO_PROXY mount: requests go through client._transport
            continue
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise RuntimeError(f"cannot bound the time of {type(transport).__name__} requests: refused")
        pool._network_backend = _DeadlineBackend(deadline, pool._network_backend)
    return client


def http_client(ctx: RunContext, ca_file: Path | str | None = None, **kw: Any):
    """An httpx client: verify against system store + `ca_file`, never follows redirects unless asked,
    timeouts (connect and read) = what is left of the check's budget, and the whole of every exchange bounded by the
    check's deadline (`bounded`)."""
    import httpx

    kw.setdefault("follow_redirects", False)
    return bounded(httpx.Client(verify=trust_context(ca_file), timeout=httpx.Timeout(ctx.remaining), **kw),
                   ctx.deadline)


def req_timeout(ctx: RunContext):
    """Per-request timeout: what is left of the budget at the time of the call."""
    import httpx

    return httpx.Timeout(ctx.remaining)


def curl(url: str, *, ca_file: Path | str | None = None, method: str = "GET", extra: str = "") -> str:
    """A curl command an SRE can re-run to see the same thing."""
    parts = ["curl", "-sS", "-o", "/dev/null", "-w", "'%{http_code} %{time_starttransfer}s\\n'"]
    if method == "HEAD":
        parts.append("-I")
    elif method != "GET":
        parts += ["-X", method]
    if ca_file:
        parts += ["--cacert", shlex.quote(str(ca_file))]
    if extra:
        parts.append(extra)
    parts.append(shlex.quote(url))
    return " ".join(parts)


@dataclass
class TlsProbe:
    host: str
    port: int
    server_name: str
    verified: bool
    verify_error: str | None
    protocol: str | None
    cipher: str | None
    leaf_der: bytes = field(repr=False)

    @property
    def cert(self):
        from cryptography import x509

        return x509.load_der_x509_certificate(self.leaf_der)

    def describe(self) -> dict[str, Any]:
        from cryptography import x509

        c = self.cert
        try:
            ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = [f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
            sans += [f"IP:{n}" for n in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            sans = []
        return {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "sans": sans,
            "not_before": c.not_valid_before_utc.isoformat(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "serial": format(c.serial_number, "x"),
        }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _handshake(host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def probe_tls(host: str, port: int, *, ca_file: Path | str | None, ctx: RunContext,
              server_name: str | None = None) -> TlsProbe:
    """Handshake verifying chain + hostname; if verification fails, a second handshake without
    verification reads the leaf anyway (so expiry is known even for a broken chain)."""
    name = server_name or host
    try:
        s = _handshake(host, port, name, trust_context(ca_file), ctx.remaining)
        verified, error = True, None
    except ssl.SSLCertVerificationError as e:
        verified, error = False, (e.verify_message or str(e))
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        s = _handshake(host, port, name, loose, ctx.remaining)
    try:
        der = s.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLError(f"{host}:{port} presented no certificate")
        cipher = s.cipher()
        return TlsProbe(host=host, port=port, server_name=name, verified=verified, verify_error=error,
                        protocol=s.version(), cipher=cipher[0] if cipher else None, leaf_der=der)
    finally:
        s.close()


def web_endpoint(target: WebTarget) -> tuple[str, int]:
    u = urlsplit(str(target.base_url))
    return u.hostname or "", u.port or 443


def web_tls(target: WebTarget, ctx: RunContext) -> TlsProbe:
    """The one TLS handshake of the web endpoint for this run (memoized)."""
    host, port = web_endpoint(target)
    return ctx.memo(("tls", host, port, str(target.ca_file or "")),
                    lambda: probe_tls(host, port, ca_file=target.ca_file, ctx=ctx))


def _openssl(target: WebTarget) -> str:
    host, port = web_endpoint(target)
    cmd = f"openssl s_client -connect {host}:{port}"
    if not _is_ip(host):
        cmd += f" -servername {host}"
    cmd += " -verify_return_error"
    if target.ca_file:
        cmd += f" -CAfile {shlex.quote(str(target.ca_file))}"
    return cmd + " </dev/null"


@check("infrastructure.tls.chain", title="TLS certificate chain and hostname verify",
       seed=["1.1 Frontend Server(s): SSL/TLS Certificate", "5.1 SSL/TLS Configuration"],
       timeout=10, target="web")
def tls_chain(target: WebTarget, ctx: RunContext):
    """The HTTPS endpoint's chain verifies against the system store + `ca_file` and matches the host name."""
    p = web_tls(target, ctx)
    info = p.describe()
    observed = {"subject": info["subject"], "issuer": info["issuer"], "sans": info["sans"],
                "protocol": p.protocol, "verified": p.verified}
    expected = "chain verifies against the system store" + (" + ca_file" if target.ca_file else "") + \
               f"; certificate matches {p.server_name}"
    evidence = f"TLS handshake to {p.host}:{p.port} (SNI {p.server_name}), like `{_openssl(target)}`"
    if not p.verified:
        observed["verify_error"] = p.verify_error
        return failed(observed, expected, evidence, cipher=p.cipher, not_after=info["not_after"])
    return passed(observed, expected, evidence, cipher=p.cipher, not_after=info["not_after"])


@check("infrastructure.tls.expiry", title="TLS certificate has enough days left",
       seed=["1.1 Frontend Server(s): SSL/TLS Certificate", "5.1 SSL/TLS Configuration"],
       timeout=10, target="web")
def tls_expiry(target: WebTarget, ctx: RunContext):
    """Days until the leaf certificate's notAfter >= `min_cert_days` (read even when the chain does not verify)."""
    p = web_tls(target, ctx)
    c = p.cert
    not_after = c.not_valid_after_utc
    days = (not_after - datetime.now(UTC)).total_seconds() / 86400
    evidence = (f"leaf certificate of {p.host}:{p.port} parsed with cryptography: notAfter {not_after.isoformat()}; "
                f"re-run: `{_openssl(target)} | openssl x509 -noout -enddate`")
    obs = compare(round(days, 1), ">=", target.min_cert_days, unit="days", evidence=evidence,
                  not_after=not_after.isoformat(), subject=c.subject.rfc4514_string(), chain_verified=p.verified)
    return obs
