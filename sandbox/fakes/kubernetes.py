"""A fake of the Kubernetes API server where golive looks (`Authorization: Bearer <token>`; HTTPS, on a port of its
own):

    GET /readyz, /api/v1/nodes, /api/v1/namespaces/kube-system/pods

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .auth import bearer, matches

NODES = ["control-plane-1", "worker-1", "worker-2"]
NOT_READY_NODE = "worker-2"
SYSTEM_PODS = [
    "kube-apiserver-control-plane-1",
    "kube-controller-manager-control-plane-1",
    "kube-scheduler-control-plane-1",
    "etcd-control-plane-1",
    "coredns-7db6d8ff4d-2xk9p",
    "kube-proxy-8kq2n",
]
FAULTS = {"k8s-node-notready": "Kubernetes: node worker-2 is NotReady (kubelet stopped posting status)"}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def routes(token: str, on: Callable[[str], bool]) -> list[Route]:
    """A cluster of NODES, readable with `token`; `on(fault)` tells whether a fault switch is on."""

    def denied(request: Request) -> Response | None:
        if not matches(bearer(request), token):
            return JSONResponse(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                },
                status_code=401,
            )
        return None

    async def readyz(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        checks = [
            "ping",
            "log",
            "etcd",
            "etcd-readiness",
            "informer-sync",
            "poststarthook/start-apiserver-admission-initializer",
            "poststarthook/generic-apiserver-start-informers",
            "shutdown",
        ]
        if "verbose" in request.query_params:
            return PlainTextResponse("".join(f"[+]{c} ok\n" for c in checks) + "readyz check passed\n")
        return PlainTextResponse("ok")

    async def nodes(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        now = datetime.now(UTC)
        items = []
        for name in NODES:
            down = name == NOT_READY_NODE and on("k8s-node-notready")
            ready = (
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastHeartbeatTime": _iso(now - timedelta(minutes=6)),
                }
                if down
                else {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": _iso(now - timedelta(seconds=9)),
                }
            )
            conds = [
                {"type": t, "status": "False", "reason": f"KubeletHasNo{t}", "message": "ok"}
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ] + [ready]
            items.append(
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "spec": {"podCIDR": "10.244.0.0/24"},
                    "status": {"conditions": conds, "nodeInfo": {"kubeletVersion": "v1.30.2"}},
                }
            )
        return JSONResponse(
            {"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"}, "items": items}
        )

    async def pods(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        ns = request.path_params["ns"]
        items = []
        if ns == "kube-system":
            for name in SYSTEM_PODS:
                items.append(
                    {
                        "metadata": {"name": name, "namespace": ns},
                        "status": {
                            "phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True"}],
                            "containerStatuses": [
                                {"name": name.split("-")[0], "ready": True, "restartCount": 0, "started": True}
                            ],
                        },
                    }
                )
        return JSONResponse(
            {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "48213"}, "items": items}
        )

    return [Route("/readyz", readyz), Route("/api/v1/nodes", nodes), Route("/api/v1/namespaces/{ns}/pods", pods)]
