"""Telling the approvers a sign-off waits, was refused, times out soon, timed out, or was decided.

Two channels, both best effort (a notification that cannot be delivered is logged, never changes the decision):
- a Prefect event, `golive.sign-off.<what>` (resource `golive.environment.<env>`), with the link and the summary: any
  Prefect Automation can route it (Slack, email, PagerDuty blocks) without golive knowing the channel;
- golive's own delivery to the approvers the config names (`approval.approvers`): email through the config's
  `smtp` server (STARTTLS and AUTH as the SMTP check uses them) and/or each approver's Slack-compatible webhook.

Every message carries the readiness summary, the blocking failures and a deep link to the form that waits now.
Secrets (the SMTP password, webhook URLs) are only ever sent to their own server; errors are reported redacted.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from golive.tasks.clients.http import trust_context

from .report import plain, slack_escape

WHAT = {
    "opened": "waits for your sign-off",
    "refused": "sign-off refused: the form is open again",
    "reminder": "still waits for your sign-off (half its time is gone)",
    "timed-out": "timed out: NO-GO",
    "decided": "decided",
}


@dataclass
class Notice:
    """One notification: `what` (a key of WHAT), the environment, the link to the form (or the run), the text."""

    what: str
    environment: str
    round_no: int
    link: str
    summary: str
    blocking: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    decision: str | None = None
    roles: list[str] = field(default_factory=list)  # the roles whose sign-off is still needed

    @property
    def subject(self) -> str:
        tail = f" {self.decision}" if self.what == "decided" and self.decision else ""
        return f"[golive] {self.environment}: go-live {WHAT[self.what]}{tail}"

    def text(self) -> str:
        lines = [self.subject, "", f"Sign-off form (round {self.round_no}): {self.link}", "", self.summary]
        if self.roles and self.what in ("opened", "refused", "reminder"):
            lines += ["", "Still needed: " + ", ".join(self.roles)]
        if self.problems:
            lines += ["", "Refused because:"] + [f"- {p}" for p in self.problems]
        if self.blocking:
            lines += ["", "Blocking failures:"] + [f"- {b}" for b in self.blocking[:20]]
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "environment": self.environment,
            "round": self.round_no,
            "link": self.link,
            "summary": self.summary,
            "blocking": self.blocking[:20],
            "problems": self.problems,
            "decision": self.decision,
            "roles_needed": self.roles,
        }


def recipients(approvers: list[Any], notice: Notice) -> list[Any]:
    """Who hears of it: the approvers of the roles still needed while the form is open; everyone after."""
    if notice.what in ("opened", "refused", "reminder") and notice.roles:
        return [a for a in approvers if a.role.value in notice.roles]
    return list(approvers)


def emit_event(notice: Notice) -> bool:
    """The Prefect event, when there is a Prefect API to take it (inside a flow run, or PREFECT_API_URL set): with
    neither, Prefect's client would start an ephemeral server process just for it."""
    from prefect.context import FlowRunContext
    from prefect.events import emit_event as prefect_emit
    from prefect.settings import PREFECT_API_URL

    if FlowRunContext.get() is None and not PREFECT_API_URL.value():
        return False

    prefect_emit(
        event=f"golive.sign-off.{notice.what}",
        resource={
            "prefect.resource.id": f"golive.environment.{notice.environment}",
            "prefect.resource.name": notice.environment,
        },
        payload=notice.payload(),
    )
    return True


def send_mail(smtp: Any, sender: str, to: list[str], notice: Notice, timeout: float) -> None:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = notice.subject, sender, ", ".join(to)
    msg.set_content(notice.text())
    with smtplib.SMTP(timeout=timeout) as s:
        s._host = smtp.host  # type: ignore[attr-defined]  # the name STARTTLS verifies (typeshed omits _host)
        s.connect(smtp.host, smtp.port)
        s.ehlo("golive")
        if smtp.starttls:
            s.starttls(context=trust_context(smtp.ca_file))
            s.ehlo("golive")
        if smtp.username:
            s.login(smtp.username, smtp.password.get_secret_value() if smtp.password else "")
        s.send_message(msg)


def post_webhook(url: str, notice: Notice, timeout: float) -> None:
    import httpx

    # streamed and never read: a hostile or broken receiver's body (however large) is not golive's to hold
    with httpx.stream(
        "POST",
        url,
        json={"text": slack_escape(notice.text()), "golive": notice.payload()},
        timeout=timeout,
        follow_redirects=False,
    ) as r:
        r.raise_for_status()


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if not done.done():
        done.set_exception(error) if error is not None else done.set_result(None)


async def _bounded(fn: Any, *args: Any, timeout: float) -> None:
    """`fn(*args)` in a daemon thread, awaited for at most `timeout` seconds: a server that trickles bytes (each read
    within the socket timeout) can neither hold the run nor keep the interpreter from exiting."""
    import threading

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        error: BaseException | None = None
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting side
            error = e
        try:
            loop.call_soon_threadsafe(_settle, done, error)
        except RuntimeError:  # the run's loop is gone: nobody waits any more
            pass

    threading.Thread(target=run, name="golive-notify", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        raise TimeoutError(f"no answer within {timeout:g}s (left to finish on its own)") from None


def _why(e: BaseException) -> str:
    """One line; an SMTP reply is decoded (its bytes repr would hide a secret it echoes from the redactor)."""
    if isinstance(e, smtplib.SMTPResponseException):
        err = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        return f"{type(e).__name__}: {e.smtp_code} {err}"
    return f"{type(e).__name__}: {e}"


async def notify(cfg: Any, notice: Notice, redact: Any = None, logger: Any = None) -> list[str]:
    """Emit the event and deliver to the configured approvers, every delivery at once and each within
    `approval.notify_timeout_s`; returns one line per delivery problem (redacted, control characters visible)."""
    problems: list[str] = []
    policy = cfg.approval

    def fail(where: str, e: BaseException) -> None:
        line = f"{where}: {_why(e)}"
        line = plain(redact.text(line) if redact else line, 300)
        problems.append(line)
        if logger:
            logger.warning("notification %s not delivered: %s", notice.what, line)

    try:
        emit_event(notice)
    except Exception as e:  # noqa: BLE001 - best effort
        fail("event", e)
    people = recipients(list(policy.approvers), notice)
    emails = [a.email for a in people if a.email]
    jobs: list[tuple[str, Any]] = []
    if emails:
        if cfg.smtp is None:
            fail("email", RuntimeError("approvers have email addresses but the config has no `smtp` section"))
        else:
            jobs.append(
                (
                    "email",
                    _bounded(
                        send_mail,
                        cfg.smtp,
                        policy.mail_from,
                        emails,
                        notice,
                        policy.notify_timeout_s,
                        timeout=policy.notify_timeout_s,
                    ),
                )
            )
    for a in people:
        if a.slack_webhook is not None:
            jobs.append(
                (
                    f"webhook of {a.name}",
                    _bounded(
                        post_webhook,
                        a.slack_webhook.get_secret_value(),
                        notice,
                        policy.notify_timeout_s,
                        timeout=policy.notify_timeout_s,
                    ),
                )
            )
    results = await asyncio.gather(*(j for _, j in jobs), return_exceptions=True)
    for (where, _), res in zip(jobs, results):
        if isinstance(res, BaseException):
            fail(where, res)
    return problems
