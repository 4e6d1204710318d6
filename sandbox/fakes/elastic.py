"""A fake of the logging stack's APIs where golive looks: Elasticsearch's cluster health and a search for the newest
log document, and Kibana's status.

    GET /es/_cluster/health, GET|POST /es/{index}/_search;  GET /kibana/api/status

Served by sandbox/fakes/service_apis.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULTS = {
    "es-yellow": "Elasticsearch cluster health yellow (unassigned replica shards)",
    "es-red": "Elasticsearch cluster health red (a primary shard unassigned)",
    "logs-stale": "the newest log document is 2 hours old (the shipper stopped)",
    "kibana-degraded": "Kibana status degraded",
}


def routes(on: Callable[[str], bool]) -> list[Route]:
    """`on(fault)` tells whether a fault switch is on."""

    async def health(request: Request) -> Response:
        status = "red" if on("es-red") else "yellow" if on("es-yellow") else "green"
        unassigned = {"red": 4, "yellow": 2, "green": 0}[status]
        return JSONResponse(
            {
                "cluster_name": "swipesavvy-logs",
                "status": status,
                "timed_out": False,
                "number_of_nodes": 3,
                "number_of_data_nodes": 3,
                "active_primary_shards": 12,
                "active_shards": 24 - unassigned,
                "relocating_shards": 0,
                "initializing_shards": 0,
                "unassigned_shards": unassigned,
                "delayed_unassigned_shards": 0,
                "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": round(100 * (24 - unassigned) / 24, 1),
            }
        )

    async def search(request: Request) -> Response:
        index = request.path_params["index"]
        if not index.startswith(("filebeat", "logs")):
            return JSONResponse(
                {
                    "error": {
                        "root_cause": [{"type": "index_not_found_exception", "reason": f"no such index [{index}]"}],
                        "type": "index_not_found_exception",
                    },
                    "status": 404,
                },
                status_code=404,
            )
        age = timedelta(hours=2) if on("logs-stale") else timedelta(seconds=20)
        ts = datetime.now(UTC) - age
        doc = {
            "_index": f".ds-filebeat-8.13.4-{ts:%Y.%m.%d}-000001",
            "_id": "golive1",
            "_score": None,
            "_source": {"@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"},
            "sort": [int(ts.timestamp() * 1000)],
        }
        return JSONResponse(
            {
                "took": 3,
                "timed_out": False,
                "_shards": {"total": 6, "successful": 6, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": 10000, "relation": "gte"}, "max_score": None, "hits": [doc]},
            }
        )

    async def kibana_status(request: Request) -> Response:
        level = "degraded" if on("kibana-degraded") else "available"
        summary = "1 service is degraded: savedObjects" if level == "degraded" else "All services are available"
        return JSONResponse(
            {
                "name": "kibana-1",
                "uuid": "5b2de169-2785-441b-ae8c-186a1936b17d",
                "version": {"number": "8.13.4", "build_snapshot": False},
                "status": {
                    "overall": {"level": level, "summary": summary},
                    "core": {"elasticsearch": {"level": "available"}, "savedObjects": {"level": level}},
                },
            }
        )

    return [
        Route("/es/_cluster/health", health),
        Route("/es/{index}/_search", search, methods=["GET", "POST"]),
        Route("/kibana/api/status", kibana_status),
    ]
