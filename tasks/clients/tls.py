"""TLS probing: a handshake verifying chain and host name, the leaf certificate read with `cryptography` even when
the chain does not verify (the web endpoint's checks, `golive init`). The trust store is clients/http.py's."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import RunContext
from .http import trust_context


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


def is_ip(host: str) -> bool:
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


def probe_tls(
    host: str, port: int, *, ca_file: Path | str | None, ctx: RunContext, server_name: str | None = None
) -> TlsProbe:
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
        return TlsProbe(
            host=host,
            port=port,
            server_name=name,
            verified=verified,
            verify_error=error,
            protocol=s.version(),
            cipher=cipher[0] if cipher else None,
            leaf_der=der,
        )
    finally:
        s.close()
