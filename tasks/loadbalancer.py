"""The load balancer's backend pool and health checks (seed 1.1), its distribution and the auto-scaling group
(seed 6.2).

Two ways to see the pool, used together when both are configured:
- on AWS, the target group's registered targets and their health, its health-check settings and attributes, and the
  auto-scaling group with its scaling policies, read through boto3 (read-only Describe* calls);
- anywhere, every backend instance probed directly: GET its health path, concurrently (bounded), each probe with its
  own timeout.
Where the load balancer has no API golive can read, its settings can be declared (`declared`): the checks then say
that what they compared was declared, not observed.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, field_validator

from .clients.aws import AwsAccess, aws_client, cli
from .clients.http import bounded, trust_context
from .core import Observation, RunContext, check, failed_if, not_applicable, passed_if
from .models import CaFile, Target

#: seed 6.2 "Round-robin or least connections", as each load balancer spells it (compared case-insensitively, with
#: `-`, spaces and `_` alike): AWS ELBv2 round_robin / least_outstanding_requests, nginx (round robin is its default)
#: least_conn, HAProxy roundrobin / static-rr / leastconn, Envoy and GCP ROUND_ROBIN / LEAST_REQUEST, IPVS (kube-proxy)
#: rr / wrr / lc / wlc, Traefik wrr / p2c (power of two choices: the less loaded of two), Azure Application Gateway
#: round robin. Weighted variants are the same family: weights only matter when instances differ in size.
ALGORITHM_FAMILIES: dict[str, str] = {
    **dict.fromkeys(
        [
            "round_robin",
            "roundrobin",
            "rr",
            "wrr",
            "weighted_round_robin",
            "weighted_roundrobin",
            "static_rr",
            "weighted_rr",
        ],
        "round_robin",
    ),
    **dict.fromkeys(
        [
            "least_connections",
            "least_connection",
            "least_conn",
            "leastconn",
            "lc",
            "wlc",
            "weighted_least_connections",
            "least_request",
            "least_requests",
            "least_outstanding_requests",
            "leastrequest",
            "p2c",
        ],
        "least_connections",
    ),
}


def algorithm_family(name: str | None) -> str | None:
    """The seed's name for a load-balancing algorithm as any LB spells it (`ROUND_ROBIN`, `leastconn`, ...); a name
    outside the families comes back normalized (lower case, `_`)."""
    if name is None:
        return None
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALGORITHM_FAMILIES.get(key, key)


class LbAws(AwsAccess):
    target_group: str = Field(description="the target group of the backend pool: its name or ARN")
    auto_scaling_group: str | None = Field(None, description="the backend's auto-scaling group name")


class LbDeclared(Target):
    """Settings of a load balancer golive cannot read through an API, as the team declares them (reported as such)."""

    algorithm: str | None = None
    health_check_interval_s: float | None = Field(None, gt=0)
    health_check_path: str | None = None
    stickiness: bool | None = None
    min_instances: int | None = Field(None, ge=0)
    max_instances: int | None = Field(None, ge=0)
    scale_up_cpu_percent: float | None = Field(None, gt=0, le=100)


class LoadBalancerTarget(Target):
    instances: list[AnyHttpUrl] = Field(
        default_factory=list, description="base URLs of the backend instances, probed directly"
    )
    health_path: str = Field("/api/health", description="seed 1.1: the health endpoint, 200 on every instance")
    ca_file: CaFile | None = Field(None, description="extra trust anchor (PEM) for https instances")
    min_healthy: int = Field(2, ge=1, description="seed 1.1: minimum 2 healthy instances")
    probe_concurrency: int = Field(20, ge=1, le=200, description="instances probed at once")
    probe_timeout_s: float = Field(2.0, gt=0, le=30, description="each probe's own timeout")
    max_health_check_interval_s: float = Field(30.0, gt=0, description="seed 1.1/6.2: every 30 seconds or less")
    allowed_algorithms: list[str] = Field(
        default_factory=lambda: ["round_robin", "least_connections"],
        description="seed 6.2: round-robin or least connections; any LB's spelling of either is accepted "
        "(see ALGORITHM_FAMILIES), and a name outside the families is compared as written",
    )
    expect_stickiness: bool | None = Field(None, description="seed 6.2: stickiness 'if needed' (None: reported only)")
    min_instances: int = Field(2, ge=1, description="seed 6.2: min instances 2 (high availability)")
    max_instances: int = Field(10, ge=1, description="seed 6.2: max instances 10 (cost control)")
    max_scale_up_cpu_percent: float = Field(70.0, gt=0, le=100, description="seed 6.2: CPU > 70% triggers scale-up")
    aws: LbAws | None = None
    declared: LbDeclared | None = None

    @field_validator("health_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("must start with /")
        return v


# --------------------------------------------------------------------------- direct probes


def probe_instances(
    urls: list[str],
    path: str,
    *,
    concurrency: int,
    timeout_s: float,
    ctx: RunContext,
    ca_file: Path | str | None = None,
) -> list[dict[str, Any]]:
    """GET `url + path` on every instance, at most `concurrency` at once, each with its own timeout (never more than
    what is left of the check's budget). One result per instance, in order: status, ms, error. Instances not probed
    before the budget ran out say so."""
    import httpx

    verify = trust_context(ca_file, http=True)  # one shared SSL context for every probe
    results: list[dict[str, Any] | None] = [None] * len(urls)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    client = bounded(httpx.Client(verify=verify, limits=limits, follow_redirects=False), ctx.deadline)

    def one(i: int) -> None:
        url = urls[i].rstrip("/") + path
        t0 = time.perf_counter()
        budget = min(timeout_s, max(0.05, ctx.remaining - 0.2))
        try:
            r = client.get(url, headers={"Connection": "close"}, timeout=httpx.Timeout(budget))
            results[i] = {"url": url, "status": r.status_code, "ms": round((time.perf_counter() - t0) * 1000, 1)}
        except Exception as e:  # noqa: BLE001 - a failed probe is that instance's evidence
            results[i] = {
                "url": url,
                "status": None,
                "ms": round((time.perf_counter() - t0) * 1000, 1),
                "error": ctx.redact.clip(f"{type(e).__name__}: {e}", 200),
            }

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(urls))), thread_name_prefix="lb-probe")
    try:
        futs = [pool.submit(one, i) for i in range(len(urls))]
        wait(futs, timeout=max(0.05, ctx.remaining - 0.1))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        threading.Thread(target=client.close, daemon=True).start()
    return [
        r or {"url": urls[i].rstrip("/") + path, "status": None, "error": "not probed: check budget exhausted"}
        for i, r in enumerate(results)
    ]


# --------------------------------------------------------------------------- AWS reads (memoized per run)


def _tg(t: LoadBalancerTarget, ctx: RunContext) -> dict[str, Any]:
    """The target group, its attributes and its targets' health: one set of calls per run."""
    assert t.aws is not None
    a = t.aws

    def do() -> dict[str, Any]:
        elb = aws_client(a, "elbv2", ctx)
        key = (
            {"TargetGroupArns": [a.target_group]} if a.target_group.startswith("arn:") else {"Names": [a.target_group]}
        )
        tg = elb.describe_target_groups(**key)["TargetGroups"][0]
        attrs = {
            x["Key"]: x["Value"]
            for x in elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"]
        }
        health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        return {"group": tg, "attributes": attrs, "health": health}

    return ctx.memo(("elbv2-tg", str(a.endpoint_url), a.region, a.target_group), do)


def _tg_cli(a: LbAws, what: str) -> str:
    ref = (
        f"--target-group-arn {a.target_group}"
        if a.target_group.startswith("arn:")
        else f"--target-group-arn $({cli(a, f'elbv2 describe-target-groups --names {a.target_group}')} "
        f"--query 'TargetGroups[0].TargetGroupArn' --output text)"
    )
    return cli(a, f"elbv2 {what} {ref}")


# --------------------------------------------------------------------------- checks


@check(
    "infrastructure.lb.backend_pool",
    title="Every backend instance is registered and healthy (>= 2)",
    seed=["1.1 Load Balancer: Backend Pool"],
    timeout=20,
    target="loadbalancer",
)
def backend_pool(t: LoadBalancerTarget, ctx: RunContext) -> Observation:
    """On AWS: every target of the target group is `healthy` (describe-target-health) and there are >= min_healthy.
    Directly: every instance answers 200 on health_path (probe_concurrency at once, probe_timeout_s each) and
    >= min_healthy do. Both when both are configured."""
    if t.aws is None and not t.instances:
        return not_applicable("neither `loadbalancer.aws` nor `loadbalancer.instances` configured")
    observed: dict[str, Any] = {}
    evidence: list[str] = []
    problems: list[str] = []
    if t.aws is not None:
        tg = _tg(t, ctx)
        states = {
            f"{d['Target']['Id']}:{d['Target'].get('Port', '')}": d["TargetHealth"]["State"]
            + (f" ({d['TargetHealth'].get('Reason')})" if d["TargetHealth"].get("Reason") else "")
            for d in tg["health"]
        }
        healthy = sum(1 for d in tg["health"] if d["TargetHealth"]["State"] == "healthy")
        observed["target_group"] = {
            "name": tg["group"].get("TargetGroupName"),
            "healthy": healthy,
            "registered": len(states),
            "targets": states,
        }
        if healthy < len(states):
            problems.append(f"{len(states) - healthy} of {len(states)} targets not healthy")
        if healthy < t.min_healthy:
            problems.append(f"{healthy} healthy targets")
        evidence.append(f"elbv2 DescribeTargetHealth; re-run: `{_tg_cli(t.aws, 'describe-target-health')}`")
    if t.instances:
        res = probe_instances(
            [str(u) for u in t.instances],
            t.health_path,
            concurrency=t.probe_concurrency,
            timeout_s=t.probe_timeout_s,
            ctx=ctx,
            ca_file=t.ca_file,
        )
        ok = [r for r in res if r["status"] == 200]
        bad = {r["url"]: r.get("error") or r["status"] for r in res if r["status"] != 200}
        observed["instances"] = {
            "healthy": len(ok),
            "total": len(res),
            "failing": bad,
            "slowest_ms": max((r.get("ms") or 0) for r in res),
        }
        if bad:
            problems.append(f"{len(bad)} of {len(res)} instances not answering 200")
        if len(ok) < t.min_healthy:
            problems.append(f"{len(ok)} healthy instances")
        ca = f" --cacert {shlex.quote(str(t.ca_file))}" if t.ca_file else ""
        evidence.append(
            f"GET {t.health_path} on each of {len(res)} instances, {t.probe_concurrency} at once, "
            f"{t.probe_timeout_s:g} s each; re-run: `curl -sS{ca} -o /dev/null -w '%{{http_code}}\\n' "
            f"{str(t.instances[0]).rstrip('/')}{t.health_path}`"
        )
    expected = f"every target/instance healthy (200 on {t.health_path}), at least {t.min_healthy}"
    return failed_if(problems, observed, expected, "; ".join(evidence), problems=problems)


def _hc_settings(t: LoadBalancerTarget, ctx: RunContext) -> tuple[dict[str, Any], str]:
    """The health-check settings and where they come from (observed through the API, or declared)."""
    if t.aws is not None:
        g = _tg(t, ctx)["group"]
        return (
            {
                "enabled": g.get("HealthCheckEnabled", True),
                "interval_s": g.get("HealthCheckIntervalSeconds"),
                "path": g.get("HealthCheckPath"),
                "matcher": (g.get("Matcher") or {}).get("HttpCode"),
                "source": "observed (elbv2 DescribeTargetGroups)",
            },
            "elbv2 DescribeTargetGroups; re-run: `"
            + cli(
                t.aws,
                "elbv2 describe-target-groups "
                + (
                    f"--target-group-arns {t.aws.target_group}"
                    if t.aws.target_group.startswith("arn:")
                    else f"--names {t.aws.target_group}"
                ),
            )
            + "`",
        )
    d = t.declared
    assert d is not None
    return (
        {
            "enabled": True,
            "interval_s": d.health_check_interval_s,
            "path": d.health_check_path,
            "source": "declared in the environment config (no load-balancer API configured)",
        },
        "loadbalancer.declared in the environment config",
    )


@check(
    "infrastructure.lb.health_check",
    title="Load balancer health checks: enabled, on the health path, <= 30 s",
    seed=["1.1 Load Balancer: Health Check Configuration"],
    timeout=15,
    target="loadbalancer",
)
def lb_health_check(t: LoadBalancerTarget, ctx: RunContext) -> Observation:
    """The target group's health check is enabled, probes health_path, every <= max_health_check_interval_s
    (or the declared values when there is no API to read)."""
    if t.aws is None and (t.declared is None or t.declared.health_check_interval_s is None):
        return not_applicable("no `loadbalancer.aws` and no declared health_check_interval_s")
    hc, evidence = _hc_settings(t, ctx)
    expected = {"enabled": True, "interval_s": f"<= {t.max_health_check_interval_s:g}", "path": t.health_path}
    ok = (
        bool(hc["enabled"])
        and hc["interval_s"] is not None
        and float(hc["interval_s"]) <= t.max_health_check_interval_s
        and hc["path"] in (t.health_path, None)
    )
    if hc["path"] is None:
        evidence += " (no health-check path known: not compared)"
    return passed_if(ok, hc, expected, evidence)


@check(
    "performance.lb.distribution",
    title="Load balancer distributes by round-robin / least connections",
    seed=["6.2 Load Balancer"],
    timeout=15,
    target="loadbalancer",
)
def lb_distribution(t: LoadBalancerTarget, ctx: RunContext) -> Observation:
    """Algorithm in allowed_algorithms, by family (round_robin: `round-robin`, `roundrobin`, `ROUND_ROBIN`, `rr`,
    `wrr`, ...; least_connections: `least_conn`, `leastconn`, `LEAST_REQUEST`, `least_outstanding_requests`, ...)
    (target-group attribute load_balancing.algorithm.type, or declared),
    stickiness as expected (reported when expect_stickiness is unset), health check every
    <= max_health_check_interval_s."""
    if t.aws is None and t.declared is None:
        return not_applicable("no `loadbalancer.aws` and no `loadbalancer.declared`")
    if t.aws is not None:
        attrs = _tg(t, ctx)["attributes"]
        algorithm = attrs.get("load_balancing.algorithm.type")
        sticky_raw = attrs.get("stickiness.enabled")
        sticky = None if sticky_raw is None else str(sticky_raw).lower() == "true"
        source = "observed (elbv2 DescribeTargetGroupAttributes)"
        evidence = (
            f"elbv2 DescribeTargetGroupAttributes; re-run: `{_tg_cli(t.aws, 'describe-target-group-attributes')}`"
        )
    else:
        assert t.declared is not None
        algorithm, sticky = t.declared.algorithm, t.declared.stickiness
        source, evidence = "declared in the environment config", "loadbalancer.declared in the environment config"
    hc, hc_evidence = (
        _hc_settings(t, ctx)
        if (t.aws or (t.declared and t.declared.health_check_interval_s))
        else ({"interval_s": None}, "")
    )
    observed = {
        "algorithm": algorithm,
        "stickiness": sticky,
        "health_check_interval_s": hc["interval_s"],
        "source": source,
    }
    family = algorithm_family(algorithm)
    allowed = {algorithm_family(a) for a in t.allowed_algorithms}
    observed["algorithm_family"] = family
    expected = {
        "algorithm": f"one of {sorted(a for a in allowed if a)} (any LB's spelling)",
        "stickiness": "reported" if t.expect_stickiness is None else t.expect_stickiness,
        "health_check_interval_s": f"<= {t.max_health_check_interval_s:g}",
    }
    problems = []
    if family not in allowed:
        problems.append(f"algorithm {algorithm!r}")
    if t.expect_stickiness is not None and sticky != t.expect_stickiness:
        problems.append(f"stickiness {sticky}")
    if hc["interval_s"] is None or float(hc["interval_s"]) > t.max_health_check_interval_s:
        problems.append(f"health check interval {hc['interval_s']}")
    if hc_evidence and hc_evidence not in evidence:
        evidence += "; " + hc_evidence
    return failed_if(problems, observed, expected, evidence, problems=problems)


def _asg(t: LoadBalancerTarget, ctx: RunContext) -> dict[str, Any]:
    assert t.aws is not None and t.aws.auto_scaling_group
    a = t.aws
    asg = aws_client(a, "autoscaling", ctx)
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[a.auto_scaling_group])["AutoScalingGroups"]
    if not groups:
        raise LookupError(f"auto-scaling group {a.auto_scaling_group!r} not found")
    policies = asg.describe_policies(AutoScalingGroupName=a.auto_scaling_group)["ScalingPolicies"]
    alarms: list[dict[str, Any]] = []
    if any(p.get("PolicyType") in ("StepScaling", "SimpleScaling") for p in policies):
        alarms = aws_client(a, "cloudwatch", ctx).describe_alarms()["MetricAlarms"]
    return {"group": groups[0], "policies": policies, "alarms": alarms}


def _cpu_trigger(policies: list[dict[str, Any]], alarms: list[dict[str, Any]]) -> tuple[float | None, str]:
    """The lowest CPU % that makes the group scale out, and the policy that says so."""
    best: tuple[float | None, str] = (None, "no CPU scaling policy")
    for p in policies:
        value = None
        ttc = p.get("TargetTrackingConfiguration") or {}
        metric = (ttc.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        if p.get("PolicyType") == "TargetTrackingScaling" and metric == "ASGAverageCPUUtilization":
            value = float(ttc["TargetValue"])
        elif p.get("PolicyType") in ("StepScaling", "SimpleScaling"):
            for al in alarms:
                if (
                    p.get("PolicyARN") in (al.get("AlarmActions") or [])
                    and al.get("MetricName") == "CPUUtilization"
                    and al.get("ComparisonOperator", "").startswith("GreaterThan")
                ):
                    value = float(al["Threshold"])
        if value is not None and (best[0] is None or value < best[0]):
            best = (value, f"{p.get('PolicyName')} ({p.get('PolicyType')})")
    return best


@check(
    "performance.autoscaling.config",
    title="Auto-scaling: min >= 2, max <= 10, scale-up at CPU > 70 %",
    seed=["6.2 Auto-scaling"],
    timeout=15,
    target="loadbalancer",
)
def autoscaling_config(t: LoadBalancerTarget, ctx: RunContext) -> Observation:
    """The auto-scaling group's MinSize >= min_instances and MaxSize <= max_instances, and a scaling policy scales
    out on CPU at <= max_scale_up_cpu_percent (target tracking on ASGAverageCPUUtilization, or a step/simple policy
    triggered by a CPUUtilization alarm); or the declared values."""
    if t.aws is not None and t.aws.auto_scaling_group:
        data = _asg(t, ctx)
        g = data["group"]
        mn, mx = g.get("MinSize"), g.get("MaxSize")
        cpu, policy = _cpu_trigger(data["policies"], data["alarms"])
        source = "observed (autoscaling DescribeAutoScalingGroups / DescribePolicies)"
        evidence = (
            f"autoscaling DescribeAutoScalingGroups and DescribePolicies for {t.aws.auto_scaling_group}; "
            f"re-run: `{cli(t.aws, 'autoscaling describe-policies --auto-scaling-group-name ')}"
            f"{t.aws.auto_scaling_group}`"
        )
        extra = {"desired": g.get("DesiredCapacity"), "instances": len(g.get("Instances") or [])}
    elif t.declared is not None and t.declared.min_instances is not None:
        d = t.declared
        mn, mx, cpu, policy = d.min_instances, d.max_instances, d.scale_up_cpu_percent, "declared"
        source, evidence, extra = "declared in the environment config", "loadbalancer.declared", {}
    else:
        return not_applicable("no `loadbalancer.aws.auto_scaling_group` and no declared min_instances")
    observed = {"min": mn, "max": mx, "scale_up_cpu_percent": cpu, "policy": policy, "source": source, **extra}
    expected = {
        "min": f">= {t.min_instances}",
        "max": f"<= {t.max_instances}",
        "scale_up_cpu_percent": f"<= {t.max_scale_up_cpu_percent:g}",
    }
    problems = []
    if mn is None or mn < t.min_instances:
        problems.append(f"min {mn}")
    if mx is None or mx > t.max_instances:
        problems.append(f"max {mx}")
    if cpu is None or cpu > t.max_scale_up_cpu_percent:
        problems.append(f"scale-up at CPU {cpu}")
    return failed_if(problems, observed, expected, evidence, problems=problems)
