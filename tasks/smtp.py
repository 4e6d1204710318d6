"""SMTP: connection, banner, STARTTLS, AUTH (section 2.2)."""

from __future__ import annotations

import smtplib
import ssl
from typing import Any

from pydantic import Field, SecretStr

from .clients.http import trust_context
from .core import Observation, RunContext, check, compare, failed, passed, register_service
from .models import CaFile, Host, Target


class SmtpTarget(Target):
    host: Host
    port: int = Field(587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    ca_file: CaFile | None = None
    hourly_capacity: int | None = Field(None, ge=0, description="the provider's declared emails/hour")
    min_hourly_capacity: int = Field(1000, ge=0, description="seed 2.2: 1000+ emails/hour")


# --------------------------------------------------------------------------- checks


def _evidence(t: SmtpTarget) -> str:
    steps = [f"connect {t.host}:{t.port}", "read banner", "EHLO"]
    if t.starttls:
        steps += ["STARTTLS (verified against the system store" + (" + ca_file)" if t.ca_file else ")"), "EHLO"]
    if t.username:
        steps.append(f"AUTH as {t.username}")
    steps.append("QUIT (no mail sent)")
    rerun = (
        f"openssl s_client -starttls smtp -connect {t.host}:{t.port} -crlf"
        + (f" -CAfile {t.ca_file}" if t.ca_file else "")
        if t.starttls
        else f"nc {t.host} {t.port}"
    )
    return " -> ".join(steps) + f"; re-run: `{rerun}`"


@check(
    "dependencies.smtp.session",
    title="SMTP accepts a session: banner, STARTTLS, AUTH",
    seed=["2.2 Email Service (SMTP): SMTP Server Connectivity", "2.2 Email Service (SMTP): Authentication"],
    timeout=15,
    target="smtp",
)
def smtp_session(t: SmtpTarget, ctx: RunContext) -> Observation:
    """Connect, banner 220, EHLO, STARTTLS offered and negotiated (chain + host verified), EHLO again, AUTH
    with the configured credentials. No mail is sent."""
    observed: dict[str, Any] = {}
    expected: dict[str, Any] = {"banner": "220"}
    if t.starttls:
        expected["starttls"] = "offered and negotiated, certificate verified"
    if t.username:
        expected["auth"] = "235 accepted"
    problems: list[str] = []
    smtp = smtplib.SMTP(timeout=ctx.remaining)
    smtp._host = t.host  # the name STARTTLS verifies (smtplib sets it only when connecting from __init__)
    try:
        code, banner = smtp.connect(t.host, t.port)
        observed["banner"] = f"{code} {banner.decode(errors='replace')}"
        if code != 220:
            problems.append(f"banner {code}")
        smtp.sock.settimeout(ctx.remaining)
        code, _ = smtp.ehlo("golive.check")
        observed["ehlo"] = code
        observed["extensions"] = sorted(smtp.esmtp_features)
        if t.starttls:
            if not smtp.has_extn("starttls"):
                problems.append("STARTTLS not offered")
                observed["starttls"] = "not offered"
            else:
                smtp.sock.settimeout(ctx.remaining)
                try:
                    smtp.starttls(context=trust_context(t.ca_file))
                except ssl.SSLCertVerificationError as e:
                    observed["starttls"] = f"certificate not trusted: {e.verify_message or e}"
                    problems.append("STARTTLS certificate not trusted")
                else:
                    tls = smtp.sock
                    observed["starttls"] = f"negotiated {tls.version()} {tls.cipher()[0]}"  # type: ignore[union-attr]
                    smtp.sock.settimeout(ctx.remaining)
                    smtp.ehlo("golive.check")
        if t.username and not problems:
            if not smtp.has_extn("auth"):
                observed["auth"] = "AUTH not offered"
                problems.append("AUTH not offered")
            else:
                smtp.sock.settimeout(ctx.remaining)
                try:
                    code, _ = smtp.login(t.username, t.password.get_secret_value() if t.password else "")
                    observed["auth"] = f"{code} accepted as {t.username}"
                except smtplib.SMTPAuthenticationError as e:
                    observed["auth"] = f"{e.smtp_code} rejected as {t.username}"
                    problems.append("AUTH rejected")
                except smtplib.SMTPNotSupportedError as e:
                    observed["auth"] = f"not supported: {e}"
                    problems.append("AUTH not supported")
        elif t.username:
            observed["auth"] = "not attempted (an earlier step failed; credentials are never sent in clear)"
    finally:
        try:
            if smtp.sock is not None:
                smtp.sock.settimeout(min(ctx.remaining, 2.0))
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        smtp.close()
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, _evidence(t))
    return passed(observed, expected, _evidence(t))


register_service("dependencies.smtp.session", lambda c: [(m.host, m.port)] if (m := getattr(c, "smtp", None)) else [])


@check(
    "dependencies.smtp.capacity",
    title="Declared email capacity is enough",
    seed=["2.2 Email Service (SMTP): Email Rate Limit"],
    severity="advisory",
    timeout=5,
    target="smtp",
    needs={"smtp.hourly_capacity": "the provider's plan limit is unknown"},
)
def smtp_capacity(t: SmtpTarget, ctx: RunContext) -> Observation:
    """The provider's declared hourly_capacity >= min_hourly_capacity (a declaration: no mail is sent to measure it)."""
    return compare(
        t.hourly_capacity,
        ">=",
        t.min_hourly_capacity,
        unit="emails/hour",
        evidence="declared in the environment config (smtp.hourly_capacity): the provider's plan limit, not measured",
    )
