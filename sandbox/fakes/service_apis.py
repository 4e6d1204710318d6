"""Small local fakes of the service dependencies and monitoring APIs of checklist sections 2 and 7, served together,
answering like the real APIs where golive looks (paths, auth, status codes, JSON shapes):

    Twilio        GET  /twilio/2010-04-01/Accounts/{sid}.json | /Balance.json | /IncomingPhoneNumbers.json  (basic auth)
    Stripe        GET  /stripe/v1/balance, /stripe/v1/webhook_endpoints                (Bearer sk_... or basic key:)
    Sentry        POST /sentry/api/{project}/envelope/                              (X-Sentry-Auth sentry_key=...)
    Analytics     GET  /site/ (a frontend page with the gtag.js snippet), /gtm/gtag/js?id=..., /ga/g/collect
    Grafana       GET  /grafana/api/health, /grafana/api/search                     (Bearer <service account token>)
    Elasticsearch GET  /es/_cluster/health, POST /es/{index}/_search;  Kibana GET /kibana/api/status
    Docker Engine GET  /docker/_ping, /docker[/v1.43]/containers/json               (also on a unix socket, at /)
    Kubernetes    GET  /readyz, /api/v1/nodes, /api/v1/namespaces/kube-system/pods  (HTTPS port of its own, Bearer)

Each API is a module of this package with its routes and fault switches (twilio.py, stripe.py, sentry.py,
analytics.py, grafana.py, elastic.py, docker.py, kubernetes.py); this one serves them, with the credentials and the
fault switches of `Fakes`, and is the stack's `saas2` part (sandbox/part.py).

Run as `python -m golive.sandbox.fakes.service_apis --port P --k8s-port Q --cert C --key K [--docker-socket PATH]
[--faults FILE]`; the credentials come from the environment (TOKENS, never argv). In tests, `running(...)` serves it
in threads and the `faults` callable can change between requests.

Never imported by `tasks/` or `flows/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..part import Service, Stack, child_env, python
from . import analytics, docker, elastic, grafana, kubernetes, sentry, stripe, twilio
from .analytics import MEASUREMENT_ID
from .grafana import DASHBOARDS
from .kubernetes import NOT_READY_NODE
from .sentry import SENTRY_PROJECT
from .twilio import SENDER, TWILIO_SID

__all__ = [
    "DASHBOARDS",
    "FAULTS",
    "MEASUREMENT_ID",
    "NOT_READY_NODE",
    "PORTS",
    "SENDER",
    "SENTRY_PROJECT",
    "TOKENS",
    "TWILIO_SID",
    "Fakes",
    "create_app",
    "docker_socket_path",
    "main",
    "new_credentials",
    "running",
    "services",
    "urls",
]

TWILIO_TOKEN_ENV = "GOLIVE_SANDBOX_TWILIO_TOKEN"
STRIPE_KEY_ENV = "GOLIVE_SANDBOX_STRIPE_KEY"
STRIPE_WHSEC_ENV = "GOLIVE_SANDBOX_STRIPE_WHSEC"
SENTRY_KEY_ENV = "GOLIVE_SANDBOX_SENTRY_KEY"
GRAFANA_TOKEN_ENV = "GOLIVE_SANDBOX_GRAFANA_TOKEN"
K8S_TOKEN_ENV = "GOLIVE_SANDBOX_K8S_TOKEN"
TOKENS = (TWILIO_TOKEN_ENV, STRIPE_KEY_ENV, SENTRY_KEY_ENV, GRAFANA_TOKEN_ENV, K8S_TOKEN_ENV)
FAULTS = {
    **twilio.FAULTS,
    **stripe.FAULTS,
    **sentry.FAULTS,
    **analytics.FAULTS,
    **grafana.FAULTS,
    **elastic.FAULTS,
    **docker.FAULTS,
    **kubernetes.FAULTS,
}
PORTS = ("saas2", "saas2_k8s")


def services(stack: Stack) -> list[Service]:
    """The `saas2` service: HTTP on `saas2`, the Kubernetes API over HTTPS on `saas2_k8s`, Docker also on a unix
    socket in the base directory (docker_socket_path)."""
    p = stack.ports

    def argv() -> list[str]:
        assert stack.certs is not None
        return python(
            "golive.sandbox.fakes.service_apis",
            "--port",
            str(p["saas2"]),
            "--k8s-port",
            str(p["saas2_k8s"]),
            "--cert",
            str(stack.certs.cert),
            "--key",
            str(stack.certs.key),
            "--docker-socket",
            str(docker_socket_path(stack)),
            "--faults",
            str(stack.fault_file),
        )

    return [
        Service("saas2", argv, (p["saas2"], p["saas2_k8s"]), env={**child_env(), **{k: stack.env[k] for k in TOKENS}})
    ]


def docker_socket_path(stack: Stack) -> Path:
    """Where the Docker Engine fake listens in a running stack."""
    return stack.base_dir / "docker.sock"


@dataclass
class Fakes:
    """Credentials the fakes accept, and the active fault switches (a callable re-read per request)."""

    twilio_sid: str
    twilio_token: str
    stripe_key: str
    sentry_key: str
    grafana_token: str
    k8s_token: str
    faults: Callable[[], Collection[str]] = field(default=lambda: ())
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted Sentry events / GA hits, for tests

    def on(self, name: str) -> bool:
        return name in self.faults()

    @classmethod
    def from_env(cls, env: dict[str, str], faults: Callable[[], Collection[str]] = lambda: ()) -> Fakes:
        return cls(
            TWILIO_SID,
            env[TWILIO_TOKEN_ENV],
            env[STRIPE_KEY_ENV],
            env[SENTRY_KEY_ENV],
            env[GRAFANA_TOKEN_ENV],
            env[K8S_TOKEN_ENV],
            faults,
        )


def new_credentials(token: Callable[[], str]) -> dict[str, str]:
    """Fresh credentials for a sandbox: {env name: value} (a test-mode Stripe key: the sandbox is not production)."""
    import secrets

    return {
        TWILIO_TOKEN_ENV: secrets.token_hex(16),
        STRIPE_KEY_ENV: "sk_test_" + token(),
        STRIPE_WHSEC_ENV: "whsec_" + token(),
        SENTRY_KEY_ENV: secrets.token_hex(16),
        GRAFANA_TOKEN_ENV: "glsa_" + token(),
        K8S_TOKEN_ENV: token(),
    }


def create_app(f: Fakes) -> Starlette:
    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"message": "not found", "path": request.url.path}, status_code=404)

    return Starlette(
        routes=[
            *twilio.routes(f.twilio_sid, f.twilio_token, f.on),
            *stripe.routes(f.stripe_key, f.on),
            *sentry.routes(f.sentry_key, f.on, f.events),
            *analytics.routes(f.on, f.events),
            *grafana.routes(f.grafana_token, f.on),
            *elastic.routes(f.on),
            *docker.routes(f.on),
            *kubernetes.routes(f.k8s_token, f.on),
        ],
        exception_handlers={404: not_found},
    )


def urls(base: str, k8s_base: str, docker_socket: str | None = None) -> dict[str, str]:
    """The config values that point golive at the fakes (http base, https Kubernetes base)."""
    return {
        "twilio": f"{base}/twilio",
        "stripe": f"{base}/stripe",
        "sentry_dsn_host": base.split("://", 1)[1] + "/sentry",
        "sentry_project": SENTRY_PROJECT,
        "site": f"{base}/site/",
        "collector": f"{base}/ga",
        "grafana": f"{base}/grafana",
        "elasticsearch": f"{base}/es",
        "kibana": f"{base}/kibana",
        "docker": f"unix://{docker_socket}" if docker_socket else f"{base}/docker",
        "kubernetes": k8s_base,
    }


def _servers(f: Fakes, tcp: socket.socket, tls: socket.socket, cert: str, key: str, unix: socket.socket | None):
    import uvicorn

    app = create_app(f)
    plain = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    )
    secure = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
    )
    return plain, secure, [tcp] + ([unix] if unix is not None else []), [tls]


def _bind(host: str, port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    return s


def _bind_unix(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o660)
    return s


@contextlib.contextmanager
def running(f: Fakes, cert: str, key: str, docker_socket: str | None = None) -> Iterator[dict[str, str]]:
    """Serve the fakes in a daemon thread (HTTP on a free port, the Kubernetes API over HTTPS on another, Docker also
    on `docker_socket`); yields `urls(...)`; stops on exit."""
    tcp, tls = _bind("127.0.0.1"), _bind("127.0.0.1")
    unix = _bind_unix(docker_socket) if docker_socket else None
    plain, secure, socks, tls_socks = _servers(f, tcp, tls, cert, key, unix)

    async def both() -> None:
        await asyncio.gather(plain.serve(sockets=socks), secure.serve(sockets=tls_socks))

    thread = threading.Thread(target=lambda: asyncio.run(both()), name="saas2-fakes", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (plain.started and secure.started):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the saas2 fakes did not start")
        time.sleep(0.01)
    try:
        yield urls(
            f"http://127.0.0.1:{tcp.getsockname()[1]}", f"https://127.0.0.1:{tls.getsockname()[1]}", docker_socket
        )
    finally:
        plain.should_exit = secure.should_exit = True
        thread.join(5)
        for s in (tcp, tls, unix):
            if s is not None:
                s.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m golive.sandbox.fakes.service_apis", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--k8s-port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--docker-socket")
    p.add_argument("--faults", help="the runtime fault file (sandbox/runtime.py); re-read on change")
    a = p.parse_args(argv)
    missing = [v for v in TOKENS if not os.environ.get(v)]
    if missing:
        p.error(f"set {', '.join(missing)}")
    faults: Callable[[], Collection[str]] = lambda: ()  # noqa: E731
    if a.faults:
        from ..runtime import FaultFile

        faults = FaultFile(a.faults).current
    f = Fakes.from_env(dict(os.environ), faults)
    unix = _bind_unix(a.docker_socket) if a.docker_socket else None
    plain, secure, socks, tls_socks = _servers(
        f, _bind("127.0.0.1", a.port), _bind("127.0.0.1", a.k8s_port), a.cert, a.key, unix
    )

    import signal

    def stop(signum: int, frame: Any) -> None:  # one handler for both servers (each would take the signal alone)
        plain.should_exit = secure.should_exit = True

    for srv in (plain, secure):
        srv.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    async def both() -> None:
        await asyncio.gather(plain.serve(sockets=socks), secure.serve(sockets=tls_socks))

    asyncio.run(both())


if __name__ == "__main__":
    main()
