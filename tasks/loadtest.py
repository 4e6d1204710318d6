"""Performance from the last load test (seed 6.1: "use previous results"): a k6 JSON summary and / or Locust's CSV
stats, read from a path or from S3, compared with the seed's numbers.

- k6: the `--summary-export` file or a `handleSummary` JSON (`metrics.<name>` with or without `values`):
  `http_req_duration` p(95), `http_reqs` rate, `vus_max`, and two gauges the test script records from the API's own
  process metrics while it runs (names configurable): its memory in bytes and its CPU as a ratio of the cores;
- Locust: `<prefix>_stats.csv` (the `Aggregated` row: `95%`, `Requests/s`) and, when present beside it,
  `<prefix>_stats_history.csv` for the user count.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from .clients.aws import AwsAccess, aws_client, cli
from .core import Observation, RunContext, Status, check, failed, failed_if, not_applicable, passed_if
from .models import Target

GiB = 1024**3


class LoadTestTarget(Target):
    k6_summary: str | None = Field(None, description="k6 JSON summary: a path or s3://bucket/key")
    locust_stats: str | None = Field(
        None,
        description="Locust `*_stats.csv`: a path or s3://bucket/key "
        "(`*_stats_history.csv` beside it is read for the user count)",
    )
    s3: AwsAccess | None = Field(None, description="how to reach S3 for s3:// sources (default: boto3's chain)")
    max_age_days: float = Field(
        30.0, gt=0, description="results older than this are not the 'last' load test (not a seed number)"
    )
    p95_max_ms: float = Field(500.0, gt=0, description="seed 6.1: API endpoints < 500 ms (p95)")
    min_users: int = Field(100, ge=1, description="seed 6.1: 100+ concurrent users supported")
    min_rps: float = Field(50.0, gt=0, description="seed 6.1: > 50 RPS capacity")
    max_api_memory_bytes: int = Field(GiB, gt=0, description="seed 6.1: API under 1 GB with 100 concurrent users")
    max_api_cpu_ratio: float = Field(0.70, gt=0, le=1, description="seed 6.1: API CPU < 70% at 100 concurrent users")
    k6_latency_metric: str = "http_req_duration"
    k6_memory_metric: str = Field("api_memory_bytes", description="k6 gauge/trend: the API's memory (bytes)")
    k6_cpu_metric: str = Field("api_cpu_ratio", description="k6 gauge/trend: the API's CPU (0-1 of its cores)")

    @field_validator("k6_summary", "locust_stats")
    @classmethod
    def _src(cls, v: str | None) -> str | None:
        if v is not None and v.startswith("s3://") and "/" not in v[5:].strip("/"):
            raise ValueError("s3:// sources need a bucket and a key")
        return v


RESULTS = "performance.loadtest.results"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def read_source(
    t: LoadTestTarget, uri: str, ctx: RunContext, *, optional: bool = False
) -> tuple[bytes, dt.datetime] | None:
    """(content, last modified) of a path or an s3:// object; None when `optional` and it does not exist."""
    if uri.startswith("s3://"):
        bucket, key = _split_s3(uri)
        s3 = aws_client(t.s3 or AwsAccess(), "s3", ctx)
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            if optional:
                return None
            raise
        return obj["Body"].read(), obj["LastModified"]
    p = Path(uri)
    if optional and not p.exists():
        return None
    st = os.stat(p)
    return p.read_bytes(), dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)


def _k6_metric(metrics: dict[str, Any], name: str) -> dict[str, Any] | None:
    m = metrics.get(name)
    if not isinstance(m, dict):
        return None
    return m.get("values", m) if isinstance(m.get("values"), dict) else m


def parse_k6(raw: bytes, t: LoadTestTarget) -> dict[str, Any]:
    doc = json.loads(raw)
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError("not a k6 JSON summary: no `metrics` object")
    out: dict[str, Any] = {}
    lat = _k6_metric(metrics, t.k6_latency_metric)
    if lat is not None and "p(95)" in lat:
        out["p95_ms"] = float(lat["p(95)"])
    reqs = _k6_metric(metrics, "http_reqs")
    if reqs is not None and "rate" in reqs:
        out["rps"] = float(reqs["rate"])
        out["requests"] = int(reqs.get("count", 0))
    vus = _k6_metric(metrics, "vus_max")
    if vus is not None:
        out["users"] = int(vus.get("max", vus.get("value", 0)))
    for key, name in (("memory_bytes", t.k6_memory_metric), ("cpu_ratio", t.k6_cpu_metric)):
        m = _k6_metric(metrics, name)
        if m is not None:
            v = m.get("max", m.get("value"))
            if v is not None:
                out[key] = float(v)
    fails = _k6_metric(metrics, "http_req_failed")
    if fails is not None and "rate" in fails:
        out["error_ratio"] = float(fails["rate"])
    elif fails is not None and "value" in fails:
        out["error_ratio"] = float(fails["value"])
    return out


def parse_locust(raw: bytes, history: bytes | None) -> dict[str, Any]:
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    agg = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if agg is None or "95%" not in agg or "Requests/s" not in agg:
        raise ValueError("not a Locust *_stats.csv: no `Aggregated` row with `95%` and `Requests/s`")
    out: dict[str, Any] = {
        "p95_ms": float(agg["95%"]),
        "rps": float(agg["Requests/s"]),
        "requests": int(float(agg.get("Request Count") or 0)),
    }
    if agg.get("Failure Count") not in (None, "") and out["requests"]:
        out["error_ratio"] = round(int(float(agg["Failure Count"])) / out["requests"], 4)
    if history is not None:
        users = [
            int(float(r["User Count"]))
            for r in csv.DictReader(io.StringIO(history.decode("utf-8-sig")))
            if r.get("User Count") not in (None, "")
        ]
        if users:
            out["users"] = max(users)
    return out


def load_results(t: LoadTestTarget, ctx: RunContext) -> dict[str, dict[str, Any]]:
    """source label -> parsed figures + `uri` + `modified` (ISO): one read per source and run."""

    def do() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if t.k6_summary:
            raw, modified = read_source(t, t.k6_summary, ctx)  # type: ignore[misc]
            out["k6"] = {**parse_k6(raw, t), "uri": t.k6_summary, "modified": modified.isoformat()}
        if t.locust_stats:
            raw, modified = read_source(t, t.locust_stats, ctx)  # type: ignore[misc]
            hist_uri = t.locust_stats.replace("_stats.csv", "_stats_history.csv")
            hist = read_source(t, hist_uri, ctx, optional=True) if hist_uri != t.locust_stats else None
            out["locust"] = {
                **parse_locust(raw, hist[0] if hist else None),
                "uri": t.locust_stats,
                "modified": modified.isoformat(),
            }
        return out

    return ctx.memo(("loadtest", t.k6_summary, t.locust_stats), do)


def _how(t: LoadTestTarget) -> str:
    parts = []
    for label, uri in (("k6 summary", t.k6_summary), ("Locust stats", t.locust_stats)):
        if uri:
            if uri.startswith("s3://"):
                parts.append(f"{label} {uri} (re-run: `{cli(t.s3 or AwsAccess(), f's3 cp {uri} -')}`)")
            else:
                parts.append(f"{label} {uri} (re-run: `cat {uri}`)")
    return "read " + "; ".join(parts)


@check(
    RESULTS,
    title="The last load test's results are there and recent",
    seed=["6.1 Response Times", "6.1 Throughput"],
    timeout=20,
    target="loadtest",
)
def loadtest_results(t: LoadTestTarget, ctx: RunContext) -> Observation:
    """Every configured result file (k6 summary, Locust stats; path or S3) is readable, parses, and is younger than
    max_age_days."""
    if not t.k6_summary and not t.locust_stats:
        return not_applicable("neither `loadtest.k6_summary` nor `loadtest.locust_stats` configured")
    res = load_results(t, ctx)
    now = dt.datetime.now(dt.UTC)
    observed, stale = {}, []
    for label, r in res.items():
        age_d = (now - dt.datetime.fromisoformat(r["modified"])).total_seconds() / 86400
        observed[label] = {"uri": r["uri"], "age_days": round(age_d, 2), "requests": r.get("requests")}
        if age_d > t.max_age_days:
            stale.append(label)
    return failed_if(stale, observed, f"each source readable and <= {t.max_age_days:g} days old", _how(t), stale=stale)


def _compare(t: LoadTestTarget, ctx: RunContext, key: str, op: str, limit: float, fmt, what: str) -> Observation:
    res = load_results(t, ctx)
    observed, bad = {}, []
    for label, r in res.items():
        if key not in r:
            continue
        v = r[key]
        observed[label] = fmt(v)
        ok = v < limit if op == "<" else v > limit if op == ">" else v >= limit
        if not ok:
            bad.append(label)
    expected = f"{what} {op} {fmt(limit)} in every source that reports it"
    if not observed:
        return failed(f"no configured source reports {what} ({', '.join(res) or 'none'} read)", expected, _how(t))
    return failed_if(bad, observed, expected, _how(t), failing=bad)


@check(
    "performance.loadtest.p95",
    title="Load test: API p95 < 500 ms",
    seed=["6.1 Response Times"],
    depends_on=[RESULTS],
    timeout=20,
    target="loadtest",
)
def loadtest_p95(t: LoadTestTarget, ctx: RunContext) -> Observation:
    """k6 http_req_duration p(95) and Locust's Aggregated 95% < p95_max_ms."""
    return _compare(t, ctx, "p95_ms", "<", t.p95_max_ms, lambda v: f"{v:g} ms", "p95")


@check(
    "performance.loadtest.throughput",
    title="Load test: >= 100 concurrent users and > 50 RPS",
    seed=["6.1 Throughput"],
    depends_on=[RESULTS],
    timeout=20,
    target="loadtest",
)
def loadtest_throughput(t: LoadTestTarget, ctx: RunContext) -> Observation:
    """Users (k6 vus_max, Locust history's User Count) >= min_users and requests/s (k6 http_reqs rate, Locust
    Requests/s) > min_rps, in every source that reports them."""
    users = _compare(t, ctx, "users", ">=", t.min_users, lambda v: f"{v:g}", "concurrent users")
    rps = _compare(t, ctx, "rps", ">", t.min_rps, lambda v: f"{v:.1f}", "requests/s")
    ok = users.status is Status.PASS and rps.status is Status.PASS
    return passed_if(
        ok, {"users": users.observed, "rps": rps.observed}, {"users": users.expected, "rps": rps.expected}, _how(t)
    )


@check(
    "performance.loadtest.memory",
    title="Load test: API memory < 1 GB",
    seed=["6.1 Memory Usage"],
    depends_on=[RESULTS],
    timeout=20,
    target="loadtest",
)
def loadtest_memory(t: LoadTestTarget, ctx: RunContext) -> Observation:
    """The peak of the k6 gauge k6_memory_metric (the API's memory, recorded by the test script) <
    max_api_memory_bytes."""
    return _compare(
        t, ctx, "memory_bytes", "<", t.max_api_memory_bytes, lambda v: f"{v / 1024**2:,.0f} MiB", "API peak memory"
    )


@check(
    "performance.loadtest.cpu",
    title="Load test: API CPU < 70 %",
    seed=["6.1 CPU Usage"],
    depends_on=[RESULTS],
    timeout=20,
    target="loadtest",
)
def loadtest_cpu(t: LoadTestTarget, ctx: RunContext) -> Observation:
    """The peak of the k6 gauge k6_cpu_metric (the API's CPU as a ratio of its cores) < max_api_cpu_ratio
    (i.e. 30 %+ headroom)."""
    return _compare(t, ctx, "cpu_ratio", "<", t.max_api_cpu_ratio, lambda v: f"{v * 100:.1f} %", "API peak CPU")
