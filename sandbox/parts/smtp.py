"""The sandbox's mail relay: aiosmtpd with STARTTLS and AUTH PLAIN/LOGIN (run as `python -m golive.sandbox.parts.smtp`).

The password comes from the environment (GOLIVE_SANDBOX_SMTP_PASSWORD), never from argv. Accepted mail is counted and
discarded. `--no-starttls` is the `smtp-no-starttls` fault: no TLS offered, and AUTH allowed in the clear.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import signal
import ssl
import sys

from ..part import Service, Stack, child_env, python

USERNAME = "alerts@swipesavvy.test"
PASSWORD_ENV = "GOLIVE_SANDBOX_SMTP_PASSWORD"
PORTS = ("smtp",)


def services(stack: Stack) -> list[Service]:
    """The relay with STARTTLS (the stack's certificate), or without under the `smtp-no-starttls` fault."""
    from ..configfile import ENV_SMTP

    port = stack.ports["smtp"]

    def argv() -> list[str]:
        assert stack.certs is not None
        no_tls = ["--no-starttls"] if "smtp-no-starttls" in stack.faults else []
        return python(
            "golive.sandbox.parts.smtp",
            "--port",
            str(port),
            "--cert",
            str(stack.certs.cert),
            "--key",
            str(stack.certs.key),
            "--mailbox",
            str(stack.mailbox),
            *no_tls,
        )

    return [Service("smtp", argv, (port,), env={**child_env(), PASSWORD_ENV: stack.env[ENV_SMTP]})]


class CountingHandler:
    """Counts accepted mail; with `mailbox`, also keeps each message there (one `<time_ns>.eml` file, the first 1 MiB),
    so tests can read what golive sent (the approvers' notifications)."""

    def __init__(self, mailbox: str | None = None) -> None:
        self.accepted = 0
        self.mailbox = mailbox

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.accepted += 1
        print(
            f"accepted message #{self.accepted} from {envelope.mail_from} to {len(envelope.rcpt_tos)} recipient(s)",
            flush=True,
        )
        if self.mailbox:
            import os

            os.makedirs(self.mailbox, mode=0o700, exist_ok=True)
            import time

            name = str(time.time_ns())  # unique across restarts of the relay (a fault restarts it)
            tmp = os.path.join(self.mailbox, f".{name}.tmp")
            with open(tmp, "wb") as f:
                f.write(b"X-Rcpt-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
                f.write(bytes(envelope.original_content or envelope.content or b"")[: 1 << 20])
            os.replace(tmp, os.path.join(self.mailbox, f"{name}.eml"))
        return "250 Message accepted for delivery"


def authenticator(username: str, password: str):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, username.encode())
            and hmac.compare_digest(auth_data.password, password.encode())
        )
        return AuthResult(success=ok, handled=False)

    return check


async def serve(port: int, cert: str | None, key: str | None, password: str, mailbox: str | None = None) -> None:
    from aiosmtpd.smtp import SMTP

    tls = None
    if cert and key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    handler = CountingHandler(mailbox)

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="mail.swipesavvy.test",
            ident="SwipeSavvy Mail (golive sandbox)",
            tls_context=tls,
            require_starttls=tls is not None,
            authenticator=authenticator(USERNAME, password),
            auth_required=True,
            auth_require_tls=tls is not None,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    import os

    p = argparse.ArgumentParser(prog="python -m golive.sandbox.parts.smtp")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--no-starttls", action="store_true")
    p.add_argument("--mailbox", help="a directory to keep each accepted message in")
    a = p.parse_args(argv)
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        sys.exit(f"{PASSWORD_ENV} is not set")
    asyncio.run(serve(a.port, None if a.no_starttls else a.cert, None if a.no_starttls else a.key, password, a.mailbox))


if __name__ == "__main__":
    main()
