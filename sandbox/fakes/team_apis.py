"""Small local fakes of the SaaS the team checks read: Slack's Web API, PagerDuty's REST API, and a document host
for the communication templates, served together. They answer like the real APIs where golive looks: status codes,
JSON shapes, auth headers, Slack's cursor pagination and PagerDuty's offset pagination.

    GET|POST /slack/api/conversations.list    Authorization: Bearer <slack token>   (api_url: <base>/slack/api)
    GET      /pagerduty/oncalls               Authorization: Token token=<pd token>  (api_url: <base>/pagerduty)
    GET      /pagerduty/escalation_policies/{id}
    GET      /docs/{name}                     release-notes.md, status-page-update.md, customer-email.txt

Each is a module of this package with its routes and fault switches (slack.py, pagerduty.py, documents.py); this one
serves them with the tokens and the fault switches of `Saas`, and is the stack's `saas` part (sandbox/part.py).

Run as `python -m golive.sandbox.fakes.team_apis --port P [--faults FILE]`; the tokens come from
GOLIVE_SANDBOX_SLACK_TOKEN and GOLIVE_SANDBOX_PAGERDUTY_TOKEN (never argv: a process list is readable by everyone). In
tests, `running(...)` serves the app in a thread and its `faults` set can be changed between requests.

Fault switches (names in the runtime fault file, or in the `faults` set):
- `slack-channel-archived`  #alerts-production is archived
- `oncall-nobody`           nobody is on call now (every schedule has a gap)
- `oncall-escalation-slow`  the escalation policy escalates after 15 minutes instead of 5
- `saas-bad-token`          Slack and PagerDuty reject every token (invalid_auth / HTTP 401)
- `comms-template-missing`  /docs/customer-email.txt answers 404

Never imported by `tasks/` or `flows/`.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from starlette.applications import Starlette

from ..part import Service, Stack, child_env, python
from . import documents, pagerduty, slack
from .pagerduty import ESCALATION_POLICY_ID, SCHEDULE_IDS
from .slack import ARCHIVED_CHANNEL, SLACK_PAGE_CAP

__all__ = [
    "ARCHIVED_CHANNEL",
    "ESCALATION_POLICY_ID",
    "FAULTS",
    "PAGERDUTY_TOKEN_ENV",
    "PORTS",
    "SCHEDULE_IDS",
    "SLACK_PAGE_CAP",
    "SLACK_TOKEN_ENV",
    "Saas",
    "create_app",
    "main",
    "running",
    "services",
    "urls",
]

SLACK_TOKEN_ENV = "GOLIVE_SANDBOX_SLACK_TOKEN"
PAGERDUTY_TOKEN_ENV = "GOLIVE_SANDBOX_PAGERDUTY_TOKEN"
FAULTS = {
    **slack.FAULTS,
    **pagerduty.FAULTS,
    "saas-bad-token": "Slack and PagerDuty reject every token",
    **documents.FAULTS,
}
PORTS = ("saas",)


def services(stack: Stack) -> list[Service]:
    """The `saas` service, with the stack's Slack and PagerDuty tokens."""
    port = stack.ports["saas"]
    return [
        Service(
            "saas",
            lambda: python("golive.sandbox.fakes.team_apis", "--port", str(port), "--faults", str(stack.fault_file)),
            (port,),
            env={**child_env(), **{k: stack.env[k] for k in (SLACK_TOKEN_ENV, PAGERDUTY_TOKEN_ENV)}},
        )
    ]


@dataclass
class Saas:
    """The fakes' state: the accepted tokens and the active fault switches (a callable, re-read per request)."""

    slack_token: str
    pagerduty_token: str
    faults: Callable[[], Collection[str]] = field(default=lambda: ())
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) log, for tests

    def on(self, name: str) -> bool:
        return name in self.faults()


def create_app(saas: Saas) -> Starlette:
    def token_ok(given: str, want: str) -> bool:
        return bool(given) and not saas.on("saas-bad-token") and hmac.compare_digest(given.encode(), want.encode())

    return Starlette(
        routes=[
            *slack.routes(lambda token: token_ok(token, saas.slack_token), saas.on, saas.requests),
            *pagerduty.routes(lambda token: token_ok(token, saas.pagerduty_token), saas.on, saas.requests),
            *documents.routes(saas.on, saas.requests),
        ]
    )


def urls(base: str) -> dict[str, str]:
    """The config values that point golive at the fakes served at `base` (http://127.0.0.1:PORT)."""
    return {
        "slack_api_url": f"{base}/slack/api",
        "pagerduty_api_url": f"{base}/pagerduty",
        "escalation_policy_id": ESCALATION_POLICY_ID,
        "release_notes": f"{base}/docs/release-notes.md",
        "status_page_template": f"{base}/docs/status-page-update.md",
        "customer_email_template": f"{base}/docs/customer-email.txt",
    }


@contextlib.contextmanager
def running(saas: Saas, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the fakes with uvicorn in a daemon thread on a free port; yields the base URL; stops on exit."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(saas), log_level="warning", access_log=False, lifespan="off", server_header=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="saas-fakes", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the SaaS fakes did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m golive.sandbox.fakes.team_apis", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--faults", help="the runtime fault file (sandbox/runtime.py); re-read on change")
    a = p.parse_args(argv)
    missing = [v for v in (SLACK_TOKEN_ENV, PAGERDUTY_TOKEN_ENV) if not os.environ.get(v)]
    if missing:
        p.error(f"set {', '.join(missing)}")
    faults: Callable[[], Collection[str]] = lambda: ()  # noqa: E731
    if a.faults:
        from ..runtime import FaultFile

        faults = FaultFile(a.faults).current
    app = create_app(Saas(os.environ[SLACK_TOKEN_ENV], os.environ[PAGERDUTY_TOKEN_ENV], faults))
    uvicorn.run(
        app, host=a.host, port=a.port, log_level="warning", access_log=False, lifespan="off", server_header=False
    )


if __name__ == "__main__":
    main()
