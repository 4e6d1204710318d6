"""A small Prometheus HTTP API for the sandbox (run as
`python -m golive.sandbox.parts.prometheus_api --port P --faults F --target ... [--alertmanager URL]`).

It answers the parts of the real API that golive reads, in the real JSON formats: targets, config, rules and instant
queries. The `postgres`, `redis` and `app` targets are real: their health is a TCP probe of the sandbox's processes.
The `node` targets (frontend-1, backend-1, backend-2) are simulated hosts with healthy node_exporter values that pass
the checklist's thresholds. Queries are either plain selectors (`metric{label="v", l=~"re"}`) over the known series or
one of a small table of exact expressions (whitespace-insensitive); anything else is a 400 `bad_data`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import time
import urllib.parse
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..part import Service, Stack, child_env, python
from ..runtime import FaultFile

GiB = 1024**3
SCRAPE_INTERVAL = "15s"
PORTS = ("prometheus",)


def services(stack: Stack) -> list[Service]:
    """The API, its real targets the stack's PostgreSQL, Redis and web app; it reports the Alertmanager (TCP-probed,
    like its targets) only when the stack runs one (where installed: sandbox/dependencies.py)."""
    p = stack.ports

    def argv() -> list[str]:
        targets = [
            f"postgres=127.0.0.1:{p['postgres']}",
            f"redis=127.0.0.1:{p['redis']}",
            f"app=https://127.0.0.1:{p['https']}",
        ]
        am = [f"http://127.0.0.1:{p['alertmanager']}"] if "alertmanager" in stack.services else []
        return python(
            "golive.sandbox.parts.prometheus_api",
            "--port",
            str(p["prometheus"]),
            "--faults",
            str(stack.fault_file),
            *(arg for t in targets for arg in ("--target", t)),
            *(arg for url in am for arg in ("--alertmanager", url)),
        )

    return [Service("prometheus", argv, (p["prometheus"],), env=child_env())]


@dataclass(frozen=True)
class Node:
    cores: int
    cpu_ratio: float
    mem_total: int
    mem_available: int
    fs_size: int
    fs_avail: int


NODES = {
    "frontend-1": Node(4, 0.12, 16 * GiB, 11 * GiB + 300 * 1024**2, 200 * GiB, 128 * GiB),
    "backend-1": Node(8, 0.09, 32 * GiB, 23 * GiB + 512 * 1024**2, 250 * GiB, 171 * GiB),
    "backend-2": Node(8, 0.11, 32 * GiB, 21 * GiB + 768 * 1024**2, 250 * GiB, 166 * GiB),
}
DOWN_NODE = "backend-2"  # the `node-target-down` fault

#: fault -> the alert it makes fire (GET /api/v1/alerts): the signals behind the deploy watch's alert criteria
FIRING_ALERTS = {
    "alert-data-corruption": (
        "DataCorruptionDetected",
        "critical",
        "campaign_analytics_daily checksums differ from the event log",
    ),
    "alert-payments-down": ("PaymentProcessingDown", "critical", "Stripe charge success rate below 50%"),
}

RULES = [
    ("APIDown", 'up{job="app"} == 0', 60, "critical", "The SwipeSavvy API is down"),
    ("DatabaseDown", 'up{job="postgres"} == 0', 60, "critical", "PostgreSQL is unreachable"),
    (
        "HighErrorRate",
        'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05',
        300,
        "critical",
        "More than 5% of API requests fail",
    ),
    (
        "HighResponseTime",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 2",
        300,
        "warning",
        "API p95 response time above 2 s",
    ),
    (
        "HighMemoryUsage",
        "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes > 0.85",
        300,
        "warning",
        "Memory usage above 85%",
    ),
    (
        "HighCPUUsage",
        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) > 0.8',
        300,
        "warning",
        "CPU usage above 80%",
    ),
    (
        "BackupFailed",
        'time() - pg_backup_last_success_timestamp_seconds{job="pg-backup"} > 26 * 3600',
        0,
        "critical",
        "No successful database backup in the last 26 hours",
    ),
]
BACKUP_RULE = "BackupFailed"  # dropped by the `backup-alert-missing` fault
#: the `alert-threshold-wrong` fault: the error-rate alert fires at 10 % instead of the checklist's 5 %
WRONG_THRESHOLD = ("HighErrorRate", "> 0.05", "> 0.10")


def _rule_expr(name: str, expr: str, faults) -> str:
    rule, right, wrong = WRONG_THRESHOLD
    return expr.replace(right, wrong) if name == rule and "alert-threshold-wrong" in faults else expr


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    scheme: str
    probe: tuple[str, int] | None  # real targets are TCP-probed


def parse_target(spec: str) -> Target:
    """`job=host:port` or `job=scheme://host:port`."""
    job, _, url = spec.partition("=")
    scheme, _, address = url.rpartition("://")
    host, _, port = address.rpartition(":")
    return Target(job, address, scheme or "http", (host, int(port)))


async def _tcp_up(host: str, port: int, timeout: float = 0.3) -> str:
    """'' when the port accepts a connection, else the error (as Prometheus would show it)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return f"dial tcp {host}:{port}: connect: {e.strerror or e}".lower()
    writer.close()
    return ""


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _normalize(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _matchers(body: str) -> list[tuple[str, str, str]] | None:
    out, pos = [], 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if not m:
            return None
        out.append((m.group(1), m.group(2), m.group(3).encode().decode("unicode_escape")))
        pos = m.end()
    return out


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        have = labels.get(name, "")
        ok = {
            "=": have == value,
            "!=": have != value,
            "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None,
        }[op]
        if not ok:
            return False
    return True


class Monitoring:
    def __init__(self, targets: list[Target], faults: FaultFile, alertmanagers: list[str] | None = None):
        self.targets = targets
        self.faults = faults
        self.alertmanagers = list(alertmanagers or [])  # real ones only (the sandbox passes one when installed)

    def node_up(self, name: str) -> bool:
        return not (name == DOWN_NODE and "node-target-down" in self.faults)

    async def target_states(self) -> list[tuple[Target, str]]:
        """(target, lastError) for every active target; '' means up."""
        refused = 'Get "http://{0}:9100/metrics": dial tcp {0}:9100: connect: connection refused'
        nodes = [(Target("node", n, "http", None), "" if self.node_up(n) else refused.format(n)) for n in NODES]
        probes = await asyncio.gather(*(_tcp_up(*t.probe) for t in self.targets if t.probe))
        return nodes + list(zip(self.targets, probes))

    async def series(self) -> list[tuple[dict[str, str], float]]:
        """Every raw series the sandbox knows (a down target's series are gone, as after a failed scrape)."""
        out: list[tuple[dict[str, str], float]] = []
        for target, error in await self.target_states():
            out.append(({"__name__": "up", "job": target.job, "instance": target.instance}, 0.0 if error else 1.0))
        for name, n in NODES.items():
            if not self.node_up(name):
                continue
            base = {"job": "node", "instance": name}
            out.append(({"__name__": "node_memory_MemTotal_bytes", **base}, n.mem_total))
            out.append(({"__name__": "node_memory_MemAvailable_bytes", **base}, n.mem_available))
            # uptime and the uplink (1 Gb/s; `lo` is up with no speed), for the servers checks of seed 1.1
            out.append(({"__name__": "node_boot_time_seconds", **base}, float(int(time.time()) - 41 * 86400)))
            for device, speed in (("eth0", 125_000_000.0), ("lo", None)):
                out.append(({"__name__": "node_network_up", **base, "device": device}, 1.0))
                if speed is not None:
                    out.append(({"__name__": "node_network_speed_bytes", **base, "device": device}, speed))
            for mountpoint, device, size, avail in (
                ("/", "/dev/nvme0n1p1", n.fs_size, n.fs_avail),
                ("/boot", "/dev/nvme0n1p15", 512 * 1024**2, 400 * 1024**2),
            ):
                fs = {"device": device, "fstype": "ext4" if mountpoint == "/" else "vfat", "mountpoint": mountpoint}
                out.append(({"__name__": "node_filesystem_size_bytes", **base, **fs}, size))
                out.append(({"__name__": "node_filesystem_avail_bytes", **base, **fs}, avail))
            for cpu in range(n.cores):
                for mode, share in (
                    ("idle", 1 - n.cpu_ratio),
                    ("user", n.cpu_ratio * 0.7),
                    ("system", n.cpu_ratio * 0.3),
                ):
                    out.append(
                        (
                            {"__name__": "node_cpu_seconds_total", **base, "cpu": str(cpu), "mode": mode},
                            round(share * 3_600_000 + cpu * 17.5, 2),
                        )
                    )
        return out

    async def query(self, expr: str) -> list[tuple[dict[str, str], float]] | None:
        """An instant vector, or None when the expression is not supported."""
        norm = _normalize(expr)
        if norm in _CORES:
            return [({"instance": name}, float(n.cores)) for name, n in NODES.items() if self.node_up(name)]
        if norm in _CPU:
            return [({"instance": name}, n.cpu_ratio) for name, n in NODES.items() if self.node_up(name)]
        m = _SELECTOR.match(expr.strip())
        matchers = _matchers(m.group(2) or "") if m else None
        if m is None or matchers is None:
            return None
        return [
            (labels, v)
            for labels, v in await self.series()
            if labels["__name__"] == m.group(1) and _matches(labels, matchers)
        ]


_CORES = {
    _normalize(e)
    for e in (
        'count by (instance) (node_cpu_seconds_total{mode="idle"})',
        'count(node_cpu_seconds_total{mode="idle"}) by (instance)',
    )
}
_CPU = {
    _normalize(e)
    for e in (
        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
        '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m])) by (instance)',
    )
}


def _config_yaml(targets: list[Target]) -> str:
    lines = [
        "global:",
        f"  scrape_interval: {SCRAPE_INTERVAL}",
        "  scrape_timeout: 10s",
        "  evaluation_interval: 15s",
        "alerting:",
        "  alertmanagers:",
        "  - static_configs:",
        "    - targets:",
        "      - alertmanager:9093",
        "rule_files:",
        "- /etc/prometheus/rules/golive.yml",
        "scrape_configs:",
        "- job_name: node",
        "  static_configs:",
        "  - targets:",
    ]
    lines += [f"    - {n}" for n in NODES]
    for t in targets:
        lines += [
            f"- job_name: {t.job}",
            f"  scheme: {t.scheme}",
            "  static_configs:",
            "  - targets:",
            f"    - {t.instance}",
        ]
    return "\n".join(lines) + "\n"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def create_app(monitoring: Monitoring) -> Starlette:
    def ok(data) -> JSONResponse:
        return JSONResponse({"status": "success", "data": data})

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"status": "error", "errorType": "bad_data", "error": message}, status_code=status)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Prometheus Server is Healthy.\n")

    async def ready(request: Request) -> Response:
        return PlainTextResponse("Prometheus Server is Ready.\n")

    async def config(request: Request) -> Response:
        return ok({"yaml": _config_yaml(monitoring.targets)})

    async def buildinfo(request: Request) -> Response:
        return ok({"version": "2.53.0", "revision": "golive-sandbox", "branch": "HEAD", "goVersion": "go1.22.5"})

    async def targets(request: Request) -> Response:
        now = time.time()
        active = []
        for t, error in await monitoring.target_states():
            address = t.instance if t.job != "node" else f"{t.instance}:9100"
            active.append(
                {
                    "discoveredLabels": {
                        "__address__": address,
                        "__metrics_path__": "/metrics",
                        "__scheme__": t.scheme,
                        "job": t.job,
                    },
                    "labels": {"instance": t.instance, "job": t.job},
                    "scrapePool": t.job,
                    "scrapeUrl": f"{t.scheme}://{address}/metrics",
                    "globalUrl": f"{t.scheme}://{address}/metrics",
                    "lastError": error,
                    "lastScrape": _iso(now - 3.2),
                    "lastScrapeDuration": 0.0042,
                    "health": "down" if error else "up",
                    "scrapeInterval": SCRAPE_INTERVAL,
                    "scrapeTimeout": "10s",
                }
            )
        return ok({"activeTargets": active, "droppedTargets": [], "droppedTargetCounts": {}})

    async def query(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()})
        expr = params.get("query")
        if not expr:
            return bad('invalid parameter "query": unknown query')
        try:
            at = float(params["time"]) if "time" in params else time.time()
        except ValueError:
            return bad(f'invalid parameter "time": cannot parse "{params["time"]}" to a valid timestamp')
        result = await monitoring.query(expr)
        if result is None:
            return bad(f'invalid parameter "query": unsupported expression in the golive sandbox: {expr}')
        return ok(
            {
                "resultType": "vector",
                "result": [{"metric": labels, "value": [round(at, 3), _fmt(v)]} for labels, v in result],
            }
        )

    async def rules(request: Request) -> Response:
        now = _iso(time.time() - 5)
        return ok(
            {
                "groups": [
                    {
                        "name": "golive-production",
                        "file": "/etc/prometheus/rules/golive.yml",
                        "interval": 15,
                        "limit": 0,
                        "lastEvaluation": now,
                        "evaluationTime": 0.0012,
                        "rules": [
                            {
                                "state": "inactive",
                                "name": name,
                                "query": _rule_expr(name, expr, monitoring.faults),
                                "duration": duration,
                                "keepFiringFor": 0,
                                "labels": {"severity": severity},
                                "annotations": {"summary": summary},
                                "alerts": [],
                                "health": "ok",
                                "evaluationTime": 0.0002,
                                "lastEvaluation": now,
                                "type": "alerting",
                            }
                            for name, expr, duration, severity, summary in RULES
                            if not (name == BACKUP_RULE and "backup-alert-missing" in monitoring.faults)
                        ],
                    }
                ]
            }
        )

    async def alerts(request: Request) -> Response:
        try:
            since = _iso(monitoring.faults.path.stat().st_mtime)  # firing since the fault was switched on
        except OSError:
            since = _iso(time.time())
        return ok(
            {
                "alerts": [
                    {
                        "labels": {"alertname": name, "severity": severity},
                        "annotations": {"summary": summary},
                        "state": "firing",
                        "activeAt": since,
                        "value": "1e+00",
                    }
                    for fault, (name, severity, summary) in FIRING_ALERTS.items()
                    if fault in monitoring.faults
                ]
            }
        )

    async def alertmanagers(request: Request) -> Response:
        # like Prometheus: the configured (discovered) Alertmanagers are active, whether or not they answer
        return ok(
            {
                "activeAlertmanagers": [{"url": f"{u.rstrip('/')}/api/v2/alerts"} for u in monitoring.alertmanagers],
                "droppedAlertmanagers": [],
            }
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("404 page not found\n", status_code=404)

    return Starlette(
        routes=[
            Route("/-/healthy", healthy),
            Route("/-/ready", ready),
            Route("/api/v1/status/config", config),
            Route("/api/v1/status/buildinfo", buildinfo),
            Route("/api/v1/targets", targets),
            Route("/api/v1/rules", rules),
            Route("/api/v1/alerts", alerts),
            Route("/api/v1/query", query, methods=["GET", "POST"]),
            Route("/api/v1/alertmanagers", alertmanagers),
        ],
        exception_handlers={404: not_found},
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m golive.sandbox.parts.prometheus_api")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--faults", required=True, help="the runtime fault file")
    p.add_argument("--target", action="append", default=[], help="job=[scheme://]host:port, TCP-probed")
    p.add_argument("--alertmanager", action="append", default=[], help="the URL of a real Alertmanager")
    a = p.parse_args(argv)
    app = create_app(Monitoring([parse_target(t) for t in a.target], FaultFile(a.faults), a.alertmanager))
    uvicorn.run(
        app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False, lifespan="off", server_header=False
    )


if __name__ == "__main__":
    main()
