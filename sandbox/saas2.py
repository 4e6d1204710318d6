"""Small local fakes of the service dependencies and monitoring APIs of checklist sections 2 and 7, answering like
the real APIs where golive looks (paths, auth, status codes, JSON shapes):

    Twilio        GET  /twilio/2010-04-01/Accounts/{sid}.json | /Balance.json | /IncomingPhoneNumbers.json  (basic auth)
    Stripe        GET  /stripe/v1/balance, /stripe/v1/webhook_endpoints                (Bearer sk_... or basic key:)
    Sentry        POST /sentry/api/{project}/envelope/                              (X-Sentry-Auth sentry_key=...)
    Analytics     GET  /site/ (a frontend page with the gtag.js snippet), /gtm/gtag/js?id=..., /ga/g/collect
    Grafana       GET  /grafana/api/health, /grafana/api/search                     (Bearer <service account token>)
    Elasticsearch GET  /es/_cluster/health, POST /es/{index}/_search;  Kibana GET /kibana/api/status
    Docker Engine GET  /docker/_ping, /docker[/v1.43]/containers/json               (also on a unix socket, at /)
    Kubernetes    GET  /readyz, /api/v1/nodes, /api/v1/namespaces/kube-system/pods  (HTTPS port of its own, Bearer)

Run as `python -m golive.sandbox.saas2 --port P --k8s-port Q --cert C --key K [--docker-socket PATH] [--faults FILE]`;
the credentials come from the environment (TOKENS, never argv). In tests, `running(...)` serves it in threads and
the `faults` callable can change between requests.

Never imported by `tasks/` or `flows/`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

TWILIO_SID = "AC5a1dbb0c0ffee0000000000000000a11"  # an account id, not a secret: written in the config as is
TWILIO_TOKEN_ENV = "GOLIVE_SANDBOX_TWILIO_TOKEN"
STRIPE_KEY_ENV = "GOLIVE_SANDBOX_STRIPE_KEY"
STRIPE_WHSEC_ENV = "GOLIVE_SANDBOX_STRIPE_WHSEC"
SENTRY_KEY_ENV = "GOLIVE_SANDBOX_SENTRY_KEY"
GRAFANA_TOKEN_ENV = "GOLIVE_SANDBOX_GRAFANA_TOKEN"
K8S_TOKEN_ENV = "GOLIVE_SANDBOX_K8S_TOKEN"
TOKENS = (TWILIO_TOKEN_ENV, STRIPE_KEY_ENV, SENTRY_KEY_ENV, GRAFANA_TOKEN_ENV, K8S_TOKEN_ENV)

FAULTS = {
    "twilio-suspended": "Twilio: the account is suspended",
    "stripe-webhook-event-missing": "Stripe: the webhook endpoint no longer subscribes to charge.refunded",
    "sentry-rejects": "Sentry rejects every event (403 ProjectDisabled)",
    "analytics-snippet-missing": "the frontend page carries no analytics snippet",
    "grafana-dashboard-missing": "Grafana: the 'API Overview' dashboard is gone",
    "es-yellow": "Elasticsearch cluster health yellow (unassigned replica shards)",
    "es-red": "Elasticsearch cluster health red (a primary shard unassigned)",
    "logs-stale": "the newest log document is 2 hours old (the shipper stopped)",
    "kibana-degraded": "Kibana status degraded",
    "container-unhealthy": "Docker: the worker container is (unhealthy)",
    "k8s-node-notready": "Kubernetes: node worker-2 is NotReady (kubelet stopped posting status)",
}

SENTRY_PROJECT = "4501"
MEASUREMENT_ID = "G-GOLIVE2026"
DASHBOARDS = [("api-overview", "API Overview"), ("postgres", "PostgreSQL"), ("redis", "Redis"),
              ("business-kpis", "Business KPIs")]
MISSING_DASHBOARD = "api-overview"
STRIPE_EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed", "charge.succeeded", "charge.failed",
                 "charge.refunded", "charge.dispute.created", "customer.subscription.updated"]
CONTAINERS = [("api", "swipesavvy/api:1.4.0", "healthy"), ("worker", "swipesavvy/worker:1.4.0", "healthy"),
              ("scheduler", "swipesavvy/scheduler:1.4.0", "healthy"), ("nginx", "nginx:1.27", None)]
NODES = ["control-plane-1", "worker-1", "worker-2"]
NOT_READY_NODE = "worker-2"
SYSTEM_PODS = ["kube-apiserver-control-plane-1", "kube-controller-manager-control-plane-1",
               "kube-scheduler-control-plane-1", "etcd-control-plane-1", "coredns-7db6d8ff4d-2xk9p",
               "kube-proxy-8kq2n"]
SENDER = "+14155550199"


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
        return cls(TWILIO_SID, env[TWILIO_TOKEN_ENV], env[STRIPE_KEY_ENV], env[SENTRY_KEY_ENV],
                   env[GRAFANA_TOKEN_ENV], env[K8S_TOKEN_ENV], faults)


def new_credentials(token: Callable[[], str]) -> dict[str, str]:
    """Fresh credentials for a sandbox: {env name: value} (a test-mode Stripe key: the sandbox is not production)."""
    import secrets

    return {TWILIO_TOKEN_ENV: secrets.token_hex(16),
            STRIPE_KEY_ENV: "sk_test_" + token(), STRIPE_WHSEC_ENV: "whsec_" + token(),
            SENTRY_KEY_ENV: secrets.token_hex(16), GRAFANA_TOKEN_ENV: "glsa_" + token(), K8S_TOKEN_ENV: token()}


def _eq(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _basic(request: Request) -> tuple[str, str]:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return "", ""
    try:
        user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, pw


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def create_app(f: Fakes) -> Starlette:
    # ----------------------------------------------------------------- Twilio
    def twilio_denied(request: Request) -> Response | None:
        user, pw = _basic(request)
        if not (_eq(user, f.twilio_sid) and _eq(pw, f.twilio_token)) or request.path_params["sid"] != f.twilio_sid:
            return JSONResponse({"code": 20003, "message": "Authenticate", "more_info":
                                 "https://www.twilio.com/docs/errors/20003", "status": 401}, status_code=401)
        return None

    async def twilio_account(request: Request) -> Response:
        if (d := twilio_denied(request)) is not None:
            return d
        sid = f.twilio_sid
        base = f"/2010-04-01/Accounts/{sid}"
        return JSONResponse({
            "sid": sid, "owner_account_sid": sid, "friendly_name": "SwipeSavvy Production", "type": "Full",
            "status": "suspended" if f.on("twilio-suspended") else "active", "auth_token": "[redacted]",
            "date_created": "Tue, 02 Jan 2024 10:00:00 +0000", "date_updated": "Mon, 01 Dec 2025 09:00:00 +0000",
            "uri": f"{base}.json", "subresource_uris": {"balance": f"{base}/Balance.json",
                                                        "incoming_phone_numbers": f"{base}/IncomingPhoneNumbers.json"}})

    async def twilio_balance(request: Request) -> Response:
        if (d := twilio_denied(request)) is not None:
            return d
        return JSONResponse({"account_sid": f.twilio_sid, "balance": "184.27", "currency": "USD"})

    async def twilio_numbers(request: Request) -> Response:
        if (d := twilio_denied(request)) is not None:
            return d
        return JSONResponse({"incoming_phone_numbers": [{"sid": "PN" + "0" * 32, "phone_number": SENDER,
                                                         "friendly_name": "SwipeSavvy alerts", "status": "in-use",
                                                         "capabilities": {"sms": True, "voice": False}}],
                             "page": 0, "page_size": 1000, "next_page_uri": None})

    # ----------------------------------------------------------------- Stripe
    def stripe_denied(request: Request) -> Response | None:
        key = _bearer(request) or _basic(request)[0]
        if not _eq(key, f.stripe_key):
            shown = (key[:8] + "*" * 12 + key[-4:]) if len(key) > 12 else "***"
            return JSONResponse({"error": {"message": f"Invalid API Key provided: {shown}",
                                           "type": "invalid_request_error"}}, status_code=401)
        return None

    def livemode() -> bool:
        return f.stripe_key.startswith(("sk_live_", "rk_live_"))

    async def stripe_balance(request: Request) -> Response:
        if (d := stripe_denied(request)) is not None:
            return d
        return JSONResponse({"object": "balance", "livemode": livemode(),
                             "available": [{"amount": 1250075, "currency": "usd", "source_types": {"card": 1250075}}],
                             "pending": [{"amount": 88000, "currency": "usd", "source_types": {"card": 88000}}]})

    async def stripe_webhooks(request: Request) -> Response:
        if (d := stripe_denied(request)) is not None:
            return d
        events = [e for e in STRIPE_EVENTS if not (e == "charge.refunded" and f.on("stripe-webhook-event-missing"))]
        eps = [{"id": "we_1GoLiveProd", "object": "webhook_endpoint", "api_version": "2024-06-20",
                "application": None, "created": 1704189600, "description": "SwipeSavvy payments",
                "enabled_events": events, "livemode": livemode(), "metadata": {}, "status": "enabled",
                "url": "https://api.swipesavvy.test/webhooks/stripe"},
               {"id": "we_1GoLiveOld", "object": "webhook_endpoint", "api_version": "2022-11-15",
                "application": None, "created": 1672567200, "description": "legacy", "enabled_events": ["*"],
                "livemode": livemode(), "metadata": {}, "status": "disabled",
                "url": "https://old.swipesavvy.test/stripe"}]
        return JSONResponse({"object": "list", "url": "/v1/webhook_endpoints", "has_more": False, "data": eps})

    # ----------------------------------------------------------------- Sentry
    async def sentry_envelope(request: Request) -> Response:
        auth = request.headers.get("x-sentry-auth", "")
        parts = dict(p.strip().split("=", 1) for p in auth.removeprefix("Sentry ").split(",") if "=" in p)
        key = parts.get("sentry_key") or request.query_params.get("sentry_key", "")
        if request.path_params["project"] != SENTRY_PROJECT:
            return JSONResponse({"detail": "project not found"}, status_code=404)
        if not _eq(key, f.sentry_key):
            return JSONResponse({"detail": "event submission rejected with_reason: ProjectKey"}, status_code=401)
        if f.on("sentry-rejects"):
            return JSONResponse({"detail": "event submission rejected with_reason: ProjectDisabled"},
                                status_code=403)
        lines = (await request.body()).decode("utf-8", "replace").splitlines()
        try:
            header = json.loads(lines[0])
            item = json.loads(lines[1])
            event = json.loads(lines[2])
        except (IndexError, ValueError):
            return JSONResponse({"detail": "invalid envelope"}, status_code=400)
        if item.get("type") != "event" or event.get("event_id") != header.get("event_id"):
            return JSONResponse({"detail": "invalid event envelope"}, status_code=400)
        f.events.append({"sentry": event.get("event_id")})
        return JSONResponse({"id": header["event_id"]})

    # ----------------------------------------------------------------- Google Analytics
    async def site(request: Request) -> Response:
        snippet = "" if f.on("analytics-snippet-missing") else f"""
  <script async src="/gtm/gtag/js?id={MEASUREMENT_ID}"></script>
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag(){{dataLayer.push(arguments);}}
    gtag('js', new Date());
    gtag('config', '{MEASUREMENT_ID}');
  </script>"""
        return HTMLResponse(f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>SwipeSavvy</title>{snippet}
</head>
<body><h1>SwipeSavvy</h1></body>
</html>
""")

    async def gtag_js(request: Request) -> Response:
        if request.query_params.get("id") != MEASUREMENT_ID:
            return PlainTextResponse("", status_code=404)
        return Response("/* gtag.js (golive sandbox) */\n(function(){var d=window.dataLayer=window.dataLayer||[];"
                        "d.push({'gtm.start':Date.now()});})();\n", media_type="application/javascript")

    async def ga_collect(request: Request) -> Response:
        if request.query_params.get("tid", "").startswith(("G-", "UA-")):
            f.events.append({"ga": request.query_params.get("en")})
        return Response(status_code=204, headers={"access-control-allow-origin": "*"})

    # ----------------------------------------------------------------- Grafana
    async def grafana_health(request: Request) -> Response:
        return JSONResponse({"commit": "golive-sandbox", "database": "ok", "version": "11.1.0"})

    async def grafana_search(request: Request) -> Response:
        if not _eq(_bearer(request), f.grafana_token):
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        out = [{"id": i, "uid": uid, "title": title, "uri": f"db/{uid}", "url": f"/d/{uid}/{uid}",
                "slug": "", "type": "dash-db", "tags": ["production"], "isStarred": False, "sortMeta": 0}
               for i, (uid, title) in enumerate(DASHBOARDS, 1)
               if not (uid == MISSING_DASHBOARD and f.on("grafana-dashboard-missing"))]
        q = request.query_params.get("query")
        if q:
            out = [d for d in out if q.lower() in d["title"].lower()]
        return JSONResponse(out)

    # ----------------------------------------------------------------- Elasticsearch / Kibana
    async def es_health(request: Request) -> Response:
        status = "red" if f.on("es-red") else "yellow" if f.on("es-yellow") else "green"
        unassigned = {"red": 4, "yellow": 2, "green": 0}[status]
        return JSONResponse({"cluster_name": "swipesavvy-logs", "status": status, "timed_out": False,
                             "number_of_nodes": 3, "number_of_data_nodes": 3, "active_primary_shards": 12,
                             "active_shards": 24 - unassigned, "relocating_shards": 0, "initializing_shards": 0,
                             "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
                             "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                             "task_max_waiting_in_queue_millis": 0,
                             "active_shards_percent_as_number": round(100 * (24 - unassigned) / 24, 1)})

    async def es_search(request: Request) -> Response:
        index = request.path_params["index"]
        if not index.startswith(("filebeat", "logs")):
            return JSONResponse({"error": {"root_cause": [{"type": "index_not_found_exception",
                                                           "reason": f"no such index [{index}]"}],
                                           "type": "index_not_found_exception"}, "status": 404}, status_code=404)
        age = timedelta(hours=2) if f.on("logs-stale") else timedelta(seconds=20)
        ts = datetime.now(UTC) - age
        doc = {"_index": f".ds-filebeat-8.13.4-{ts:%Y.%m.%d}-000001", "_id": "golive1", "_score": None,
               "_source": {"@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
               "sort": [int(ts.timestamp() * 1000)]}
        return JSONResponse({"took": 3, "timed_out": False, "_shards": {"total": 6, "successful": 6, "skipped": 0,
                                                                       "failed": 0},
                             "hits": {"total": {"value": 10000, "relation": "gte"}, "max_score": None,
                                      "hits": [doc]}})

    async def kibana_status(request: Request) -> Response:
        level = "degraded" if f.on("kibana-degraded") else "available"
        summary = "1 service is degraded: savedObjects" if level == "degraded" else "All services are available"
        return JSONResponse({"name": "kibana-1", "uuid": "5b2de169-2785-441b-ae8c-186a1936b17d",
                             "version": {"number": "8.13.4", "build_snapshot": False},
                             "status": {"overall": {"level": level, "summary": summary},
                                        "core": {"elasticsearch": {"level": "available"},
                                                 "savedObjects": {"level": level}}}})

    # ----------------------------------------------------------------- Docker Engine API
    def docker_headers() -> dict[str, str]:
        return {"api-version": "1.43", "docker-experimental": "false", "ostype": "linux",
                "server": "Docker/24.0.7 (linux)"}

    async def docker_ping(request: Request) -> Response:
        return PlainTextResponse("OK", headers=docker_headers())

    async def docker_containers(request: Request) -> Response:
        include_all = request.query_params.get("all") in ("1", "true", "True")
        now = int(time.time())
        out = []
        for i, (name, image, health) in enumerate(CONTAINERS):
            if name == "worker" and f.on("container-unhealthy"):
                health = "unhealthy"
            status = "Up 3 hours" + (f" ({health})" if health else "")
            out.append({"Id": f"{i + 1:02d}" * 32, "Names": [f"/{name}"], "Image": image,
                        "ImageID": "sha256:" + "ab" * 32,
                        "Command": "/entrypoint.sh", "Created": now - 3 * 3600, "Ports": [], "Labels":
                        {"com.docker.compose.project": "swipesavvy"}, "State": "running", "Status": status,
                        "HostConfig": {"NetworkMode": "swipesavvy_default"}, "Mounts": []})
        if include_all:
            out.append({"Id": "ff" * 32, "Names": ["/migrate-20251231"], "Image": "swipesavvy/api:1.4.0",
                        "ImageID": "sha256:" + "ab" * 32, "Command": "alembic upgrade head",
                        "Created": now - 4 * 3600, "Ports": [], "Labels": {}, "State": "exited",
                        "Status": "Exited (0) 4 hours ago", "HostConfig": {"NetworkMode": "default"}, "Mounts": []})
        return JSONResponse(out, headers=docker_headers())

    # ----------------------------------------------------------------- Kubernetes API
    def k8s_denied(request: Request) -> Response | None:
        if not _eq(_bearer(request), f.k8s_token):
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                 "message": "Unauthorized", "reason": "Unauthorized", "code": 401}, status_code=401)
        return None

    async def readyz(request: Request) -> Response:
        if (d := k8s_denied(request)) is not None:
            return d
        checks = ["ping", "log", "etcd", "etcd-readiness", "informer-sync", "poststarthook/start-apiserver-admission-"
                  "initializer", "poststarthook/generic-apiserver-start-informers", "shutdown"]
        if "verbose" in request.query_params:
            return PlainTextResponse("".join(f"[+]{c} ok\n" for c in checks) + "readyz check passed\n")
        return PlainTextResponse("ok")

    async def nodes(request: Request) -> Response:
        if (d := k8s_denied(request)) is not None:
            return d
        now = datetime.now(UTC)
        items = []
        for name in NODES:
            down = name == NOT_READY_NODE and f.on("k8s-node-notready")
            ready = ({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                      "message": "Kubelet stopped posting node status.",
                      "lastHeartbeatTime": _iso(now - timedelta(minutes=6))}
                     if down else
                     {"type": "Ready", "status": "True", "reason": "KubeletReady",
                      "message": "kubelet is posting ready status",
                      "lastHeartbeatTime": _iso(now - timedelta(seconds=9))})
            conds = [{"type": t, "status": "False", "reason": f"KubeletHasNo{t}", "message": "ok"}
                     for t in ("MemoryPressure", "DiskPressure", "PIDPressure")] + [ready]
            items.append({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                          "spec": {"podCIDR": "10.244.0.0/24"},
                          "status": {"conditions": conds, "nodeInfo": {"kubeletVersion": "v1.30.2"}}})
        return JSONResponse({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"},
                             "items": items})

    async def pods(request: Request) -> Response:
        if (d := k8s_denied(request)) is not None:
            return d
        ns = request.path_params["ns"]
        items = []
        if ns == "kube-system":
            for name in SYSTEM_PODS:
                items.append({"metadata": {"name": name, "namespace": ns},
                              "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                                         "containerStatuses": [{"name": name.split("-")[0], "ready": True,
                                                                "restartCount": 0, "started": True}]}})
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"},
                             "items": items})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"message": "not found", "path": request.url.path}, status_code=404)

    return Starlette(routes=[
        Route("/twilio/2010-04-01/Accounts/{sid}.json", twilio_account),
        Route("/twilio/2010-04-01/Accounts/{sid}/Balance.json", twilio_balance),
        Route("/twilio/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json", twilio_numbers),
        Route("/stripe/v1/balance", stripe_balance),
        Route("/stripe/v1/webhook_endpoints", stripe_webhooks),
        Route("/sentry/api/{project}/envelope/", sentry_envelope, methods=["POST"]),
        Route("/site/", site), Route("/gtm/gtag/js", gtag_js),
        Route("/ga/g/collect", ga_collect, methods=["GET", "POST"]),
        Route("/grafana/api/health", grafana_health), Route("/grafana/api/search", grafana_search),
        Route("/es/_cluster/health", es_health), Route("/es/{index}/_search", es_search, methods=["GET", "POST"]),
        Route("/kibana/api/status", kibana_status),
        Route("/docker/_ping", docker_ping), Route("/docker/containers/json", docker_containers),
        Route("/docker/{version}/containers/json", docker_containers),
        Route("/_ping", docker_ping), Route("/containers/json", docker_containers),
        Route("/{version}/containers/json", docker_containers),
        Route("/readyz", readyz), Route("/api/v1/nodes", nodes), Route("/api/v1/namespaces/{ns}/pods", pods),
    ], exception_handlers={404: not_found})


def urls(base: str, k8s_base: str, docker_socket: str | None = None) -> dict[str, str]:
    """The config values that point golive at the fakes (http base, https Kubernetes base)."""
    return {"twilio": f"{base}/twilio", "stripe": f"{base}/stripe",
            "sentry_dsn_host": base.split("://", 1)[1] + "/sentry", "sentry_project": SENTRY_PROJECT,
            "site": f"{base}/site/", "collector": f"{base}/ga", "grafana": f"{base}/grafana",
            "elasticsearch": f"{base}/es", "kibana": f"{base}/kibana",
            "docker": f"unix://{docker_socket}" if docker_socket else f"{base}/docker", "kubernetes": k8s_base}


def _servers(f: Fakes, tcp: socket.socket, tls: socket.socket, cert: str, key: str,
             unix: socket.socket | None):
    import uvicorn

    app = create_app(f)
    plain = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                          server_header=False))
    secure = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           server_header=False, ssl_certfile=cert, ssl_keyfile=key))
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
        yield urls(f"http://127.0.0.1:{tcp.getsockname()[1]}", f"https://127.0.0.1:{tls.getsockname()[1]}",
                   docker_socket)
    finally:
        plain.should_exit = secure.should_exit = True
        thread.join(5)
        for s in (tcp, tls, unix):
            if s is not None:
                s.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.saas2", description=__doc__.split("\n\n")[0])
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
        from .runtime import FaultFile

        faults = FaultFile(a.faults).current
    f = Fakes.from_env(dict(os.environ), faults)
    unix = _bind_unix(a.docker_socket) if a.docker_socket else None
    plain, secure, socks, tls_socks = _servers(f, _bind("127.0.0.1", a.port), _bind("127.0.0.1", a.k8s_port),
                                               a.cert, a.key, unix)

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
