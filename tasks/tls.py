"""TLS probing: one handshake per endpoint and run, the leaf certificate read with `cryptography` (section 1.1, 5.1).
The trust store and the HTTP client the checks share are in tasks/clients/http.py."""
from __future__ import annotations

import ipaddress
import shlex
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .clients.http import trust_context
from .core import RunContext, check, compare, failed, passed

if TYPE_CHECKING:  # web.py imports this module's helpers
    from .web import WebTarget


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
