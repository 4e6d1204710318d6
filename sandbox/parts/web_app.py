"""The SwipeSavvy web product: frontend + API over HTTPS, and a plain-HTTP listener that redirects to it.

Run as `python -m golive.sandbox.parts.web_app --https-port P --http-port Q --cert C --key K --faults FILE [--hang]`;
both uvicorn servers share one asyncio loop. The ops password comes from GOLIVE_SANDBOX_WEB_PASSWORD and the per-client
rate limit (requests/minute on /api/, keyed by bearer token or client address) from GOLIVE_SANDBOX_RATE_LIMIT (default
600).
Request-level faults are read from the fault file on every request; `--hang` (the `web-hang` fault) replaces the
HTTPS server with a socket that accepts connections and never answers.

Besides the product API it has what a platform team probes before a go-live (sections 4 and 5): `/api/ops/runtime`
(authenticated: the names of the process's environment variables, never their values, and its installed
distributions), an admin panel (`/admin`, `/api/admin/users`) for the admin role only, and session cookies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import importlib.metadata
import os
import platform
import secrets
import signal
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..part import Service, Stack, child_env, python
from ..release import ReleaseFile
from ..runtime import FaultFile

USERNAME = "ops@swipesavvy.test"
PASSWORD_ENV = "GOLIVE_SANDBOX_WEB_PASSWORD"
RATE_LIMIT_ENV = "GOLIVE_SANDBOX_RATE_LIMIT"
APPROVED_ORIGINS = ("https://app.swipesavvy.test", "https://admin.swipesavvy.test")
SESSION_SECONDS = 86400
HSTS = "max-age=31536000; includeSubDomains"
HSTS_SHORT = "max-age=3600"
STATIC = Path(__file__).parents[1] / "static"  # package data of golive.sandbox
ASSETS = {"app.css": "text/css", "app.js": "text/javascript", "logo.png": "image/png"}
BLOATED_BYTES = 6 * 1024 * 1024  # the `bundle-too-big` fault: a 6 MB vendor bundle
MISSING_ASSET = "logo.png"  # the `asset-missing` fault answers 404 for it
ADMIN_ROLE = "admin"
USER_ROLE = "ops"  # the role of USERNAME: not an admin
MISSING_ENV = "SECRET_KEY"  # the `env-missing` fault starts the process without it
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
#: what the deploy sets in the API process's environment (web_env); the app's settings read each of them
REQUIRED_ENV = ["APP_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SMTP_URL"]
PORTS = ("https", "http")


def services(stack: Stack) -> list[Service]:
    """The web process: its certificate (10 days left under `tls-expiry`), `--hang` under `web-hang`, the ops
    password, the rate limit and the deploy's environment (web_env)."""
    from ..configfile import ENV_WEB

    p = stack.ports

    def argv() -> list[str]:
        assert stack.certs is not None
        short = "tls-expiry" in stack.faults
        cert, key = (stack.certs.short_cert, stack.certs.short_key) if short else (stack.certs.cert, stack.certs.key)
        hang = ["--hang"] if "web-hang" in stack.faults else []
        return python(
            "golive.sandbox.parts.web_app",
            "--https-port",
            str(p["https"]),
            "--http-port",
            str(p["http"]),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--faults",
            str(stack.fault_file),
            *hang,
        )

    return [
        Service(
            "web",
            argv,
            (p["https"], p["http"]),
            env={
                **child_env(),
                PASSWORD_ENV: stack.env[ENV_WEB],
                RATE_LIMIT_ENV: str(stack.rate_limit),
                **web_env(stack),
            },
        )
    ]


def web_env(stack: Stack) -> dict[str, str]:
    """What the deploy sets in the API process's environment (values are secrets: the app reports names only)."""
    from urllib.parse import quote

    from ..configfile import ENV_DB, ENV_REDIS
    from .postgres import APP_USER, DBNAME

    p, env = stack.ports, stack.env
    return {
        "APP_ENV": "production",
        "DATABASE_URL": f"postgresql://{APP_USER}:{quote(env[ENV_DB], safe='')}@127.0.0.1:{p['postgres']}/{DBNAME}",
        "REDIS_URL": f"redis://:{quote(env[ENV_REDIS], safe='')}@127.0.0.1:{p['redis']}/0",
        "SECRET_KEY": stack.app_secret_key,
        "SMTP_URL": f"smtp://127.0.0.1:{p['smtp']}",
    }


CAMPAIGNS = [
    {"id": 1, "merchant_id": 2, "name": "Loyalty Boost #1", "status": "active", "channel": "sms"},
    {"id": 2, "merchant_id": 3, "name": "Weekend Flash #2", "status": "active", "channel": "push"},
    {"id": 5, "merchant_id": 6, "name": "Win-back #5", "status": "completed", "channel": "sms"},
]
USERS = [
    {"id": 1, "email": "liam.nguyen1@example.org", "role": "admin"},
    {"id": 4, "email": "noah.nguyen4@example.com", "role": "ops"},
    {"id": 11, "email": "zoe.nguyen11@example.net", "role": "customer"},
]
MERCHANTS = [
    {"id": 1, "name": "Golden Market", "category": "apparel", "website_url": "https://www.golden-market-1.example.com"},
    {
        "id": 2,
        "name": "Urban Circuit",
        "category": "electronics",
        "website_url": "https://www.urban-circuit-2.example.com",
    },
    {"id": 3, "name": "Little Table", "category": "dining", "website_url": "https://www.little-table-3.example.com"},
]
PORTFOLIO = {
    "campaigns_active": 72,
    "impressions_30d": 8_412_000,
    "clicks_30d": 341_200,
    "conversions_30d": 33_900,
    "revenue_cents_30d": 91_245_500,
    "ctr": 0.0406,
    "conversion_rate": 0.0994,
}
PHASE4_JOBS = [
    "daily_analytics_aggregation",
    "weekly_model_retraining",
    "merchant_affinity_update",
    "optimal_send_time_calculation",
    "campaign_optimization_generation",
]


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


class RateLimiter:
    """Fixed one-minute windows per client key."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> int | None:
        """None when allowed, else the seconds until the window resets."""
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= 60:
            start, count = now, 0
        if count >= self.per_minute:
            return max(1, int(start + 60 - now + 0.999))
        self._windows[key] = (start, count + 1)
        if len(self._windows) > 10_000:  # forget idle clients
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 60}
        return None


def create_app(
    password: str, faults: FaultFile, rate_limit: int = 600, release: ReleaseFile | None = None
) -> Starlette:
    sessions: dict[str, float] = {}  # token -> expiry (monotonic)
    roles: dict[str, str] = {}  # token -> role
    release = release or ReleaseFile(Path("/nonexistent/release.json"))
    limiter = RateLimiter(rate_limit)

    def bearer(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def session_of(request: Request) -> str | None:
        """The valid session token of the request (bearer header, else the session cookie), or None."""
        token = bearer(request) or request.cookies.get("session")
        expiry = sessions.get(token) if token else None
        return token if expiry is not None and expiry >= time.monotonic() else None

    def unauthorized() -> Response:
        return _error(
            401, "unauthorized", "a valid bearer token is required", {"WWW-Authenticate": 'Bearer realm="swipesavvy"'}
        )

    def protected(payload):
        async def endpoint(request: Request) -> Response:
            if "auth-off" not in faults and session_of(request) is None:
                return unauthorized()
            return JSONResponse(payload() if callable(payload) else payload)

        return endpoint

    def admin_only(payload):
        """The admin panel: anonymous -> 401, a non-admin session -> 403 (`admin-open`: anyone gets it)."""

        async def endpoint(request: Request) -> Response:
            if "admin-open" not in faults:
                token = session_of(request)
                if token is None:
                    return unauthorized()
                if roles.get(token) != ADMIN_ROLE:
                    return _error(403, "forbidden", "the admin panel is for administrators only")
            return payload() if callable(payload) else JSONResponse(payload)

        return endpoint

    def admin_page() -> Response:
        return HTMLResponse("<!doctype html><title>SwipeSavvy admin</title><h1>Administration</h1>")

    def runtime() -> dict:
        """Names only (never values) of the environment, and the installed distributions."""
        dists = {}
        for d in importlib.metadata.distributions():
            name = d.metadata["Name"]
            if name:
                dists[name] = d.version
        return {
            "environment": os.environ.get("APP_ENV"),
            "env": sorted(os.environ),
            "packages": dict(sorted(dists.items(), key=lambda kv: kv[0].lower())),
        }

    async def index(request: Request) -> Response:
        html = (STATIC / "index.html").read_text()
        if "bundle-too-big" in faults:
            html = html.replace("</head>", '  <script src="/static/vendor.js" defer></script>\n</head>')
        return HTMLResponse(html)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        cache = {"Cache-Control": "public, max-age=300"}
        if name == "vendor.js" and "bundle-too-big" in faults:
            line = "var v=[" + ",".join(str(i % 997) for i in range(400)) + "];"
            body = (line * (BLOATED_BYTES // len(line) + 1))[:BLOATED_BYTES]
            return Response(body, media_type="text/javascript", headers=cache)
        if name not in ASSETS or (name == MISSING_ASSET and "asset-missing" in faults):
            raise HTTPException(404)
        path = STATIC / name
        if name in ("app.js", "app.css") and "bundle-unminified" in faults:
            path = STATIC / "src" / name  # the readable sources shipped instead of the build
        return FileResponse(path, media_type=ASSETS[name], headers=cache)

    async def health(request: Request) -> Response:
        if "health-down" in faults or release.broken:
            return JSONResponse({"status": "unhealthy", "version": release.version}, status_code=503)
        return JSONResponse(
            {
                "status": "healthy",
                "version": release.version,
                "python": platform.python_version(),
                "database": "ok",
                "redis": "ok",
            }
        )

    async def login(request: Request) -> Response:
        try:
            body = await request.json()
            username, given = str(body["username"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "bad_request", 'expected JSON {"username": ..., "password": ...}')
        if not (
            hmac.compare_digest(username.encode(), USERNAME.encode())
            and hmac.compare_digest(given.encode(), password.encode())
        ):
            return _error(401, "invalid_credentials", "invalid username or password")
        now = time.monotonic()
        for t in [t for t, exp in sessions.items() if exp < now]:
            del sessions[t]
            roles.pop(t, None)
        token = secrets.token_urlsafe(32)  # a new token on every login
        sessions[token] = now + SESSION_SECONDS
        roles[token] = USER_ROLE
        response = JSONResponse(
            {
                "token": token,
                "token_type": "Bearer",
                "expires_in": SESSION_SECONDS,
                "user": {"email": USERNAME, "role": USER_ROLE},
            }
        )
        flags = "SameSite=Lax" if "cookie-insecure" in faults else "Secure; HttpOnly; SameSite=Lax"
        response.headers.append("set-cookie", f"session={token}; Path=/; Max-Age={SESSION_SECONDS}; {flags}")
        return response

    async def runbook(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("deployment", "rollback") or (name == "rollback" and "runbook-missing" in faults):
            raise HTTPException(404)
        return PlainTextResponse((STATIC / f"runbook-{name}.md").read_text(), media_type="text/markdown")

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "not_found", f"no such resource: {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    def phase4() -> dict:
        return {
            "status": "healthy",
            "scheduler": "running",
            "jobs": [{"name": j, "last_status": "success"} for j in PHASE4_JOBS],
        }

    routes = [
        Route("/", index),
        Route("/static/{name}", asset),
        Route("/health", health),
        Route("/api/health", health),
        Route("/api/auth/login", login, methods=["POST"]),
        Route("/api/campaigns", protected({"campaigns": CAMPAIGNS, "total": 100})),
        Route("/api/users", protected({"users": USERS, "total": 500})),
        Route("/api/merchants", protected({"merchants": MERCHANTS, "total": 50})),
        Route("/api/analytics/portfolio", protected({"portfolio": PORTFOLIO, "period_days": 30})),
        Route("/api/phase4/health", protected(phase4)),
        Route("/runbooks/{name}", runbook),
        Route("/api/ops/runtime", protected(runtime)),
        Route("/admin", admin_only(admin_page)),
        Route("/api/admin/users", admin_only({"users": USERS, "total": 500})),
    ]

    def cors_origin(origin: str | None) -> str | None:
        if not origin:
            return None
        if "cors-wildcard" in faults:
            return "*"
        return origin if origin in APPROVED_ORIGINS else None

    async def edge(request: Request, call_next) -> Response:
        origin = request.headers.get("origin")
        allowed = cors_origin(origin)
        if request.url.path.startswith("/api/"):
            key = bearer(request) or (request.client.host if request.client else "-")
            retry = limiter.hit(key)
            if retry is not None:
                response = _error(
                    429,
                    "rate_limited",
                    f"more than {limiter.per_minute} requests per minute",
                    {"Retry-After": str(retry)},
                )
                return decorate(response, allowed)
        if request.method == "OPTIONS" and origin and "access-control-request-method" in request.headers:
            if allowed is None:
                return decorate(_error(400, "cors_rejected", f"origin {origin} is not allowed"), None)
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
            return decorate(response, allowed)
        return decorate(await call_next(request), allowed)

    def decorate(response: Response, allowed_origin: str | None) -> Response:
        h = response.headers
        h["Strict-Transport-Security"] = HSTS_SHORT if "hsts-short" in faults else HSTS
        for k, v in SECURITY_HEADERS.items():
            h[k] = v
        if allowed_origin:
            h["Access-Control-Allow-Origin"] = allowed_origin
            if allowed_origin != "*":
                h["Access-Control-Allow-Credentials"] = "true"
                h["Vary"] = "Origin"
        return response

    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed},
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=edge)],
    )


def create_redirect_app(https_base: str, faults: FaultFile):
    """The plain-HTTP listener: 301 to the same path over HTTPS (or 200 in the clear: `http-no-redirect`)."""

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if "http-no-redirect" in faults:
            response: Response = Response(
                "<!doctype html><title>SwipeSavvy</title><p>SwipeSavvy</p>", media_type="text/html"
            )
        else:
            query = scope.get("query_string", b"").decode()
            response = RedirectResponse(https_base + scope["path"] + (f"?{query}" if query else ""), status_code=301)
        await response(scope, receive, send)

    return app


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read and discard whatever comes, never answer (not even the TLS handshake)."""
    try:
        while await reader.read(65536):
            pass
    finally:
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # one handler for both servers, installed below
            yield

    faults = FaultFile(args.faults)
    if "env-missing" in faults:  # a deploy that forgot one variable: the process really starts without it
        os.environ.pop(MISSING_ENV, None)
    password = os.environ.get(PASSWORD_ENV) or ""
    rate_limit = int(os.environ.get(RATE_LIMIT_ENV) or 600)
    common = dict(
        host="127.0.0.1",
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    http = Server(
        uvicorn.Config(
            create_redirect_app(f"https://127.0.0.1:{args.https_port}", faults), port=args.http_port, **common
        )
    )
    servers = [http]
    tasks = [http.serve()]
    hang_server = None
    if args.hang:
        hang_server = await asyncio.start_server(_hang, "127.0.0.1", args.https_port)
    else:
        release = ReleaseFile(Path(args.faults).with_name("release.json"))
        https = Server(
            uvicorn.Config(
                create_app(password, faults, rate_limit, release),
                port=args.https_port,
                ssl_certfile=args.cert,
                ssl_keyfile=args.key,
                **common,
            )
        )
        servers.append(https)
        tasks.append(https.serve())

    def stop() -> None:
        for s in servers:
            s.should_exit = True
        if hang_server is not None:
            hang_server.close()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.parts.web_app")
    p.add_argument("--https-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--faults", required=True, help="the runtime fault file")
    p.add_argument("--hang", action="store_true", help="the web-hang fault")
    asyncio.run(serve(p.parse_args(argv)))


if __name__ == "__main__":
    main()
