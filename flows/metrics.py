"""A run's report as Prometheus metrics: pushed to a Pushgateway and/or written for node_exporter's textfile collector.

Series (gauges; every one labelled `environment`):

| metric | labels | value |
|---|---|---|
| `golive_verdict` | `mode` | 0 GO, 1 GO-WITH-WARNINGS, 2 NO-GO (the exit code) |
| `golive_check_status` | `check`, `section`, `severity` | -1 NOT_APPLICABLE, 0 PASS, 1 WARN, 2 SKIPPED, 3 FAIL, 4 ERROR |
| `golive_check_duration_seconds` | `check`, `section` | how long the check ran |
| `golive_run_duration_seconds` | `mode` | the whole run |
| `golive_last_run_timestamp_seconds` | `mode` | when the run finished (Unix time) |

`golive_check_status` is one series per check with the status as its value, not one series per status with a
`status` label: a Grafana state timeline draws one row per series, so a check is one row whose colour changes (value
mappings -1..4), where a `status` label would give every check up to six rows that come and go; and the value is
ordered "higher is worse" (SKIPPED below FAIL: a skip points at another check's failure; ERROR on top: no evidence
at all), so `max by (section) (golive_check_status)` is a section's worst check and `golive_check_status >= 3` an
alert. The exposition is written by `prometheus_client` (label values escaped by it: a quote or newline in a check
id is data, never a new series).

Export (`notify` in the environment config, every mode): `pushgateway_url` gets one PUT of the whole group
`job="golive", environment=<env>` (a PUT replaces the group: a check dropped from the plan does not linger as a
stale FAIL), bounded by `notify.timeout_s` as a whole, one attempt; `metrics_textfile` (a `*.prom` path in
node_exporter's `--collector.textfile.directory`) is written to a temporary name beside it and renamed, so the
collector never reads half a file. Neither ever fails the run: a failure is a warning and a report note, with the
Pushgateway named by scheme, host and port only (its URL may carry credentials) and every text redacted.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from golive.tasks.core import Redactor, Status

from .config import GoliveConfig, NotifyPolicy
from .report import Report

#: `golive_check_status` values: ordered "higher is worse" (see the module's docstring)
STATUS_VALUE: dict[Status, int] = {
    Status.NOT_APPLICABLE: -1,
    Status.PASS: 0,
    Status.WARN: 1,
    Status.SKIPPED: 2,
    Status.FAIL: 3,
    Status.ERROR: 4,
}
#: every metric golive exports (the dashboard's test holds its queries to these)
METRICS = (
    "golive_verdict",
    "golive_check_status",
    "golive_check_duration_seconds",
    "golive_run_duration_seconds",
    "golive_last_run_timestamp_seconds",
)
JOB = "golive"
ANSWER_BYTES = 4096  # of a Pushgateway's answer, read for the note (a push never reads a whole body)


def registry_of(report: Report, redact: Redactor | None = None) -> CollectorRegistry:
    """The report's series in a registry of their own (never the process-wide default one)."""
    clean = redact.text if redact is not None else (lambda s: s)
    env, mode = clean(report.environment), clean(report.mode)
    reg = CollectorRegistry(auto_describe=True)
    run = ("environment", "mode")
    verdict = Gauge("golive_verdict", "go-live verdict: 0 GO, 1 GO-WITH-WARNINGS, 2 NO-GO", run, registry=reg)
    status = Gauge(
        "golive_check_status",
        "check status: -1 NOT_APPLICABLE, 0 PASS, 1 WARN, 2 SKIPPED, 3 FAIL, 4 ERROR (higher is worse)",
        ("environment", "check", "section", "severity"),
        registry=reg,
    )
    duration = Gauge(
        "golive_check_duration_seconds", "how long the check ran", ("environment", "check", "section"), registry=reg
    )
    run_duration = Gauge("golive_run_duration_seconds", "how long the readiness run took", run, registry=reg)
    last = Gauge("golive_last_run_timestamp_seconds", "when the readiness run finished (Unix time)", run, registry=reg)
    verdict.labels(env, mode).set(report.verdict.exit_code)
    run_duration.labels(env, mode).set(report.duration_s)
    last.labels(env, mode).set(report.finished_at.timestamp())
    for r in report.results:
        check, section = clean(r.id), clean(r.section)
        status.labels(env, check, section, r.severity.value).set(STATUS_VALUE[r.status])
        duration.labels(env, check, section).set(r.duration_s)
    return reg


def render(report: Report, redact: Redactor | None = None, *, openmetrics: bool = False) -> str:
    """The exposition: Prometheus' text format 0.0.4 (what the Pushgateway and node_exporter's textfile collector
    parse), or OpenMetrics 1.0 text for a scraper that asks for it."""
    reg = registry_of(report, redact)
    # (prometheus_client's OpenMetrics writer has no annotations)
    text: bytes = generate_openmetrics(reg) if openmetrics else generate_latest(reg)  # type: ignore[no-untyped-call]
    return text.decode("utf-8")


# --------------------------------------------------------------------------- export

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_.:-]+")


def gateway_label(url: str) -> str:
    """Where the Pushgateway is, without credentials or path: `https://push.example:9091`."""
    try:
        u = urlsplit(url)
        port = f":{u.port}" if u.port else ""
    except ValueError:
        return "(an unparsable URL)"
    return f"{u.scheme}://{u.hostname or '?'}{port}"


def group_url(base: str, environment: str) -> str:
    """The group `job="golive", environment=<env>` under `base` (the Pushgateway's URL, maybe with a path prefix);
    a value a path segment cannot hold as is goes base64-encoded (the Pushgateway's `label@base64` form)."""

    def segment(name: str, value: str) -> str:
        if _SAFE_SEGMENT.fullmatch(value):
            return f"{name}/{value}"
        return f"{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode() or '='}"

    return f"{base.rstrip('/')}/metrics/{segment('job', JOB)}/{segment('environment', environment)}"


async def push(url: str, report: Report, redact: Redactor, timeout: float) -> str | None:
    """PUT the report's metrics once, bounded by `timeout` as a whole (connect, send, answer). None on 2xx, else what
    went wrong, without the URL's credentials (redact the answer as well: it is the caller's to log)."""
    body = render(report, redact).encode("utf-8")
    target = group_url(url, report.environment)
    label = gateway_label(url)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
            status, answer = await asyncio.wait_for(_put(client, target, body), timeout)
    except (TimeoutError, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    except Exception as e:  # noqa: BLE001 - refused, DNS, TLS, a bad URL: all a failed export
        return _one_line(f"{type(e).__name__}: {e}".rstrip(": ").replace(target, label).replace(url, label))
    if 200 <= status < 300:
        return None
    text = _one_line(answer).replace(target, label).replace(url, label)
    return f"HTTP {status}" + (f" {text}" if text else "")


async def _put(client: httpx.AsyncClient, target: str, body: bytes) -> tuple[int, str]:
    """(status, the first ANSWER_BYTES of the answer): whatever the Pushgateway sends, the gate reads no more."""
    async with client.stream("PUT", target, content=body, headers={"Content-Type": CONTENT_TYPE_LATEST}) as r:
        head = b""
        async for chunk in r.aiter_raw():
            head += chunk
            if len(head) >= ANSWER_BYTES:
                break
        return r.status_code, head[:ANSWER_BYTES].decode("utf-8", "replace")


def write_textfile(path: Path, report: Report, redact: Redactor) -> None:
    """Write the metrics to `path` for node_exporter's textfile collector: to `<path>.<pid>.<thread>` (a name the
    collector ignores: not `*.prom`), then renamed over `path` (atomic on one filesystem)."""
    write_to_textfile(str(path), registry_of(report, redact))


def _one_line(text: str, limit: int = 200) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run (tests, plain use)
        return logging.getLogger("golive.metrics")


async def export_metrics(report: Report, config: GoliveConfig, redact: Redactor) -> None:
    """Export the run's metrics where `notify` says (nowhere by default). Never raises: a failed export is a warning
    and a note on `report` (published with the next report write, in the run's logs now)."""
    policy: NotifyPolicy = config.notify or NotifyPolicy()
    if policy.metrics_textfile is None and policy.pushgateway_url is None:
        return
    log = _logger()
    if policy.metrics_textfile is not None:
        path = policy.metrics_textfile
        try:
            write_textfile(path, report, redact)
            log.info("metrics written to %s", redact.text(str(path)))
        except Exception as e:  # noqa: BLE001 - a missing directory, a full disk, no permission
            why = redact.text(_one_line(f"{type(e).__name__}: {e}"))
            log.warning("metrics textfile not written (%s); the run goes on", why)
            report.notes.append(f"metrics: the textfile could not be written ({why})")
    if policy.pushgateway_url is not None:
        url = policy.pushgateway_url.get_secret_value()
        label = redact.text(gateway_label(url))
        try:
            err = await push(url, report, redact, policy.timeout_s)
        except Exception as e:  # noqa: BLE001 - rendering or anything else: still never the run's failure
            err = _one_line(f"{type(e).__name__}: {e}").replace(url, label)
        if err:
            err = redact.text(err)
            log.warning("metrics push to the Pushgateway %s failed: %s (the run goes on)", label, err)
            report.notes.append(f"metrics: the push to the Pushgateway {label} failed: {err}")
        else:
            log.info("metrics pushed to the Pushgateway %s", label)
