"""A fake of the Docker Engine API where golive looks, under /docker over HTTP and at / (its unix socket's paths):

    GET /docker/_ping, /docker[/v1.43]/containers/json

Served by sandbox/fakes/service_apis.py (also on a unix socket, as the Docker daemon is).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

CONTAINERS = [
    ("api", "swipesavvy/api:1.4.0", "healthy"),
    ("worker", "swipesavvy/worker:1.4.0", "healthy"),
    ("scheduler", "swipesavvy/scheduler:1.4.0", "healthy"),
    ("nginx", "nginx:1.27", None),
]
FAULTS = {"container-unhealthy": "Docker: the worker container is (unhealthy)"}


def routes(on: Callable[[str], bool]) -> list[Route]:
    """The CONTAINERS (and an exited one with `all`); `on(fault)` tells whether a fault switch is on."""

    def headers() -> dict[str, str]:
        return {
            "api-version": "1.43",
            "docker-experimental": "false",
            "ostype": "linux",
            "server": "Docker/24.0.7 (linux)",
        }

    async def ping(request: Request) -> Response:
        return PlainTextResponse("OK", headers=headers())

    async def containers(request: Request) -> Response:
        include_all = request.query_params.get("all") in ("1", "true", "True")
        now = int(time.time())
        out = []
        for i, (name, image, health) in enumerate(CONTAINERS):
            if name == "worker" and on("container-unhealthy"):
                health = "unhealthy"
            status = "Up 3 hours" + (f" ({health})" if health else "")
            out.append(
                {
                    "Id": f"{i + 1:02d}" * 32,
                    "Names": [f"/{name}"],
                    "Image": image,
                    "ImageID": "sha256:" + "ab" * 32,
                    "Command": "/entrypoint.sh",
                    "Created": now - 3 * 3600,
                    "Ports": [],
                    "Labels": {"com.docker.compose.project": "swipesavvy"},
                    "State": "running",
                    "Status": status,
                    "HostConfig": {"NetworkMode": "swipesavvy_default"},
                    "Mounts": [],
                }
            )
        if include_all:
            out.append(
                {
                    "Id": "ff" * 32,
                    "Names": ["/migrate-20251231"],
                    "Image": "swipesavvy/api:1.4.0",
                    "ImageID": "sha256:" + "ab" * 32,
                    "Command": "alembic upgrade head",
                    "Created": now - 4 * 3600,
                    "Ports": [],
                    "Labels": {},
                    "State": "exited",
                    "Status": "Exited (0) 4 hours ago",
                    "HostConfig": {"NetworkMode": "default"},
                    "Mounts": [],
                }
            )
        return JSONResponse(out, headers=headers())

    return [
        Route("/docker/_ping", ping),
        Route("/docker/containers/json", containers),
        Route("/docker/{version}/containers/json", containers),
        Route("/_ping", ping),
        Route("/containers/json", containers),
        Route("/{version}/containers/json", containers),
    ]
