"""Probes of the sandbox facts that the sections 1 and 6 faults break (infrastructure, performance:
sandbox/infrastructure.py), for tests/test_sandbox.py's fault table: fault -> (probe, healthy value, broken value).
Each reads the fact straight from the service (DNS, sockets, HTTP, the AWS API, the result files), not through
golive's checks. No tests in here."""

from __future__ import annotations

import csv
import io
import json
import socket
from typing import Any

import httpx

from golive.sandbox import infrastructure as infra
from golive.sandbox.parts import network_edge as netfakes


def _dns(sb: Any) -> tuple[list[int], int, int]:
    """(TTLs, CNAME count, A count) of the answer for the product's name."""
    import dns.message
    import dns.query
    import dns.rdatatype

    ans = dns.query.udp(dns.message.make_query(netfakes.DNS_NAME, "A"), "127.0.0.1", timeout=3, port=sb.ports["dns"])
    ttls = sorted({rr.ttl for rr in ans.answer})
    cnames = sum(1 for rr in ans.answer if rr.rdtype == dns.rdatatype.CNAME)
    a = sum(len(rr) for rr in ans.answer if rr.rdtype == dns.rdatatype.A)
    return ttls, cnames, a


def _banner(sb: Any) -> str:
    with socket.create_connection(("127.0.0.1", sb.ports["bastion"]), timeout=3) as s:
        return s.recv(256).decode().strip()


def _cdn(sb: Any, path: str = "/") -> httpx.Response:
    return httpx.get(f"https://127.0.0.1:{sb.ports['cdn']}{path}", verify=str(sb.ca_file), timeout=5)


def _backends(sb: Any) -> tuple[int, ...]:
    return tuple(httpx.get(f"http://127.0.0.1:{sb.ports[b]}/api/health", timeout=5).status_code for b in infra.BACKENDS)


def _forbidden(sb: Any) -> str:
    with socket.socket() as s:
        s.settimeout(2)
        return "open" if s.connect_ex(("127.0.0.1", sb.ports["forbidden"])) == 0 else "refused"


def _tg_states(sb: Any) -> list[str]:
    elb = infra.admin(sb, "elbv2")
    arn = elb.describe_target_groups(Names=[infra.NAME])["TargetGroups"][0]["TargetGroupArn"]
    return sorted(
        d["TargetHealth"]["State"] for d in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    )


def _algorithm(sb: Any) -> str:
    elb = infra.admin(sb, "elbv2")
    arn = elb.describe_target_groups(Names=[infra.NAME])["TargetGroups"][0]["TargetGroupArn"]
    attrs = elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    return next(a["Value"] for a in attrs if a["Key"] == "load_balancing.algorithm.type")


def _asg_min(sb: Any) -> int:
    return infra.admin(sb, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[infra.NAME])[
        "AutoScalingGroups"
    ][0]["MinSize"]


def _k6(sb: Any, metric: str, key: str) -> float:
    return json.loads((sb.base_dir / infra.K6_FILE).read_text())["metrics"][metric][key]


def _locust_rps(sb: Any) -> str:
    body = (
        infra.admin(sb, "s3")
        .get_object(Bucket=infra.LOADTEST_BUCKET, Key=f"{infra.LOCUST_PREFIX}_stats.csv")["Body"]
        .read()
        .decode()
    )
    return next(r["Requests/s"] for r in csv.DictReader(io.StringIO(body)) if r["Name"] == "Aggregated")


# fault -> (probe, healthy value, broken value)
SANDBOX_PROBES = {
    "dns-ttl-long": (lambda sb: _dns(sb)[0], [300], [3600]),
    "dns-cname-chain": (lambda sb: _dns(sb)[1], 0, 2),
    "dns-single-a": (lambda sb: _dns(sb)[2], 2, 1),
    "bastion-no-banner": (_banner, netfakes.SSH_BANNER.decode().strip(), ""),
    "cdn-ttl-long": (lambda sb: _cdn(sb).headers["cache-control"], "public, max-age=600", "public, max-age=86400"),
    "cdn-wrong-origin": (lambda sb: "Edge default page" in _cdn(sb).text, False, True),
    "backend-instance-500": (_backends, (200, 200, 200), (200, 500, 200)),
    "firewall-port-open": (_forbidden, "refused", "open"),
    "lb-target-unhealthy": (_tg_states, ["healthy"] * 3, ["healthy", "healthy", "unused"]),
    "lb-algorithm-random": (_algorithm, "least_outstanding_requests", "weighted_random"),
    "autoscaling-min-1": (_asg_min, 2, 1),
    "loadtest-p95-slow": (lambda sb: _k6(sb, "http_req_duration", "p(95)"), 312.4, 812.0),
    "loadtest-low-throughput": (_locust_rps, "78.40", "31.50"),
    "loadtest-memory-high": (lambda sb: round(_k6(sb, "api_memory_bytes", "max") / 1024**2), 612, 1434),
    "loadtest-cpu-high": (lambda sb: _k6(sb, "api_cpu_ratio", "max"), 0.58, 0.86),
}
