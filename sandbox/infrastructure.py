"""Checklist sections 1 (infrastructure) and 6 (performance) of the sandbox: the config and the fault switches of the
network edge (DNS, bastion, CDN, backend instances, the port the firewall must block: the part
sandbox/parts/network_edge.py), the AWS view of the load balancer and the auto-scaling group (registered in the
sandbox's moto server), and the last load test's results (a k6 summary file, Locust CSV stats in S3).

Used by sandbox/stack.py (setup, config) and sandbox/faults.py (FAULTS).
"""

from __future__ import annotations

import json
from typing import Any

from .part import Stack
from .parts import network_edge, s3
from .parts.network_edge import BACKENDS

ENV_AWS = "GOLIVE_SANDBOX_AWS_SECRET"
INFRA_USER = "golive-infra-reader"
REGION = "us-east-1"
NAME = "swipesavvy-api"  # load balancer, target group, launch template and auto-scaling group
LOADTEST_BUCKET = "golive-loadtests"
LOCUST_PREFIX = "locust/2025-12-30/swipesavvy"
K6_FILE = "loadtests/k6-summary.json"
GiB = 1024**3


# --------------------------------------------------------------------------- AWS (moto): ELB, target group, ASG


def _policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:Describe*",
                        "autoscaling:Describe*",
                        "cloudwatch:DescribeAlarms",
                        "ec2:Describe*",
                    ],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::{LOADTEST_BUCKET}", f"arn:aws:s3:::{LOADTEST_BUCKET}/*"],
                },
            ],
        }
    )


def admin(sb: Stack, service: str):
    """The sandbox's own client (moto's auth is off unless a fault turns it on); a session per client: boto3's default
    session is not thread-safe, and this runs beside the bucket setup."""
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=sb.urls["s3"],
        region_name=REGION,
        aws_access_key_id=s3.ACCESS_KEY_ID,
        aws_secret_access_key="unused",
    )


def setup_aws(sb: Stack) -> None:
    """The load balancer, its target group (health check /api/health every 30 s, least outstanding requests), the
    auto-scaling group (2-10, 3 running, target tracking at 70 % CPU), golive's read-only IAM user, and the load-test
    bucket with the Locust results. Waits for the S3 (moto) service itself."""
    sb.wait_service("s3")
    ec2, elb, asg = admin(sb, "ec2"), admin(sb, "elbv2"), admin(sb, "autoscaling")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    lb = elb.create_load_balancer(Name=NAME, Subnets=subnets, Scheme="internet-facing", Type="application")[
        "LoadBalancers"
    ][0]
    tg = elb.create_target_group(
        Name=NAME,
        Protocol="HTTP",
        Port=8000,
        VpcId=vpc,
        TargetType="instance",
        HealthCheckEnabled=True,
        HealthCheckProtocol="HTTP",
        HealthCheckPath="/api/health",
        HealthCheckIntervalSeconds=30,
        Matcher={"HttpCode": "200"},
    )["TargetGroups"][0]
    set_lb_algorithm(sb, "least_outstanding_requests", tg["TargetGroupArn"])
    elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
    )
    ec2.create_launch_template(
        LaunchTemplateName=NAME, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c6i.2xlarge"}
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=NAME,
        LaunchTemplate={"LaunchTemplateName": NAME},
        MinSize=2,
        MaxSize=10,
        DesiredCapacity=3,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[tg["TargetGroupArn"]],
    )
    asg.put_scaling_policy(
        AutoScalingGroupName=NAME,
        PolicyName="cpu-target-70",
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={
            "TargetValue": 70.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
        },
    )
    iam = admin(sb, "iam")
    s3.create_user(iam, INFRA_USER)
    iam.put_user_policy(UserName=INFRA_USER, PolicyName="golive-infra-read", PolicyDocument=_policy())
    key = iam.create_access_key(UserName=INFRA_USER)["AccessKey"]
    sb.infra_reader = (key["AccessKeyId"], key["SecretAccessKey"])  # type: ignore[attr-defined]
    sb.env[ENV_AWS] = key["SecretAccessKey"]
    admin(sb, "s3").create_bucket(Bucket=LOADTEST_BUCKET)
    write_k6(sb)
    upload_locust(sb)


def set_lb_algorithm(sb: Stack, algorithm: str, arn: str | None = None) -> None:
    elb = admin(sb, "elbv2")
    arn = arn or elb.describe_target_groups(Names=[NAME])["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=arn, Attributes=[{"Key": "load_balancing.algorithm.type", "Value": algorithm}]
    )


def _first_instance(sb: Stack) -> str:
    g = admin(sb, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in g["Instances"])[0]


def _instance(running: bool):
    def act(sb: Stack) -> None:
        ec2 = admin(sb, "ec2")
        (ec2.start_instances if running else ec2.stop_instances)(InstanceIds=[_first_instance(sb)])

    return act


def _asg_min(n: int):
    return lambda sb: admin(sb, "autoscaling").update_auto_scaling_group(AutoScalingGroupName=NAME, MinSize=n)


# --------------------------------------------------------------------------- load-test results


def k6_summary(
    p95_ms: float = 312.4,
    rps: float = 84.2,
    vus: int = 150,
    memory_bytes: float = 612 * 1024**2,
    cpu_ratio: float = 0.58,
) -> dict[str, Any]:
    """A k6 `--summary-export` JSON of a 10-minute run (the API's memory and CPU recorded as gauges by the script)."""
    return {
        "root_group": {
            "name": "",
            "path": "",
            "id": "d41d8cd98f00b204e9800998ecf8427e",
            "groups": {},
            "checks": {"status is 200": {"name": "status is 200", "passes": 50487, "fails": 33}},
        },
        "metrics": {
            "http_req_duration": {
                "avg": 141.7,
                "min": 8.3,
                "med": 118.9,
                "max": 1430.2,
                "p(90)": 241.6,
                "p(95)": p95_ms,
            },
            "http_reqs": {"count": int(rps * 600), "rate": rps},
            "http_req_failed": {"passes": 33, "fails": 50487, "value": 0.00065},
            "vus": {"value": 0, "min": 0, "max": vus},
            "vus_max": {"value": vus, "min": vus, "max": vus},
            "iterations": {"count": int(rps * 600 / 4), "rate": rps / 4},
            "api_memory_bytes": {"value": memory_bytes * 0.9, "min": 402 * 1024**2, "max": memory_bytes},
            "api_cpu_ratio": {"value": cpu_ratio * 0.8, "min": 0.04, "max": cpu_ratio},
        },
    }


LOCUST_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%"
)


def locust_stats(p95_ms: int = 340, rps: float = 78.4) -> str:
    rows = [
        ("GET", "/api/campaigns", 0.45),
        ("GET", "/api/merchants", 0.25),
        ("POST", "/api/auth/login", 0.10),
        ("GET", "/api/analytics/portfolio", 0.20),
    ]
    total = int(rps * 600)
    lines = [LOCUST_HEADER]
    for typ, name, share in rows:
        n = int(total * share)
        lines.append(
            f"{typ},{name},{n},{n // 2000},110,128.4,7,1210,1834.2,{rps * share:.2f},0.01,"
            f"110,140,170,190,260,{p95_ms},420,560,980,1200,1210"
        )
    lines.append(
        f",Aggregated,{total},{total // 2000},110,131.9,7,1210,1712.8,{rps:.2f},0.04,"
        f"110,140,170,190,260,{p95_ms},430,570,990,1200,1210"
    )
    return "\n".join(lines) + "\n"


def locust_history(users: int = 150) -> str:
    lines = [
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,"
        "100%,Total Request Count,Total Failure Count"
    ]
    for i, u in enumerate((10, 50, 100, users, users)):
        lines.append(
            f"{1767088800 + i * 120},{u},,Aggregated,{u / 2:.1f},0.0,110,140,170,190,260,330,420,560,980,"
            f"1200,1210,{i * 9000},{i * 4}"
        )
    return "\n".join(lines) + "\n"


def write_k6(sb: Stack, **kw: Any) -> None:
    path = sb.base_dir / K6_FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(k6_summary(**kw), indent=2))
    tmp.replace(path)


def upload_locust(sb: Stack, p95_ms: int = 340, rps: float = 78.4, users: int = 150) -> None:
    c = admin(sb, "s3")
    c.put_object(Bucket=LOADTEST_BUCKET, Key=f"{LOCUST_PREFIX}_stats.csv", Body=locust_stats(p95_ms, rps).encode())
    c.put_object(Bucket=LOADTEST_BUCKET, Key=f"{LOCUST_PREFIX}_stats_history.csv", Body=locust_history(users).encode())


# --------------------------------------------------------------------------- config


def config(sb: Stack) -> dict[str, Any]:
    """The `hosts`, `network`, `loadbalancer` and `loadtest` sections of the sandbox's golive config (data)."""
    p = sb.ports
    key_id = getattr(sb, "infra_reader", ("", ""))[0]
    aws = {
        "region": REGION,
        "endpoint_url": sb.urls["s3"],
        "access_key_id": key_id,
        "secret_access_key": f"${{{ENV_AWS}}}",
    }
    return {
        "hosts": {
            "load_balancer": f"127.0.0.1:{p['https']}",
            "database": f"127.0.0.1:{p['postgres']}",
            "backend_health_urls": [f"https://127.0.0.1:{p['https']}/health"],
            "ca_file": str(sb.ca_file),
            # the machine golive runs on here is a developer's or CI runner, not a frontend server: what the gate
            # itself needs
            "local": {
                "min_cores": 1,
                "min_free_memory_bytes": 268435456,
                "min_free_disk_bytes": 1073741824,
                "cpu_sample_s": 0.2,
            },
        },
        "network": {
            "dns": {
                "name": network_edge.DNS_NAME.rstrip("."),
                "nameserver": f"127.0.0.1:{p['dns']}",
                "expected_addresses": list(network_edge.DNS_ADDRESSES),
            },
            "firewall": {
                "host": "127.0.0.1",
                "open_ports": [p["https"], p["http"], p["postgres"], p["redis"]],
                "closed_ports": [p["forbidden"]],
            },
            "bastion": {"host": "127.0.0.1", "port": p["bastion"]},
            "cdn": {
                "url": f"https://127.0.0.1:{p['cdn']}",
                "origin_url": f"https://127.0.0.1:{p['https']}",
                "paths": ["/", "/static/app.css"],
                "ca_file": str(sb.ca_file),
            },
        },
        "loadbalancer": {
            "instances": [f"http://127.0.0.1:{p[b]}" for b in BACKENDS],
            "aws": {**aws, "target_group": NAME, "auto_scaling_group": NAME},
        },
        "loadtest": {
            "k6_summary": str(sb.base_dir / K6_FILE),
            "locust_stats": f"s3://{LOADTEST_BUCKET}/{LOCUST_PREFIX}_stats.csv",
            "s3": aws,
        },
    }


# --------------------------------------------------------------------------- faults


def _k6(**kw: Any):
    return lambda sb: write_k6(sb, **kw)


FAULTS: dict[str, tuple[str, Any, Any]] = {  # name -> (description, apply, undo); runtime faults have no actions
    "dns-ttl-long": ("DNS answers the product's A records with TTL 3600", None, None),
    "dns-cname-chain": ("DNS answers through a chain of two CNAMEs", None, None),
    "dns-single-a": ("DNS answers a single A record", None, None),
    "bastion-no-banner": ("the bastion port closes without an SSH banner", None, None),
    "cdn-ttl-long": ("the CDN caches for 24 h (Cache-Control: max-age=86400)", None, None),
    "cdn-wrong-origin": ("the CDN serves its default page instead of the origin's content", None, None),
    "backend-instance-500": ("backend instance 2 answers 500 on /api/health", None, None),
    "firewall-port-open": (
        "a port the firewall must block answers (forwarding to PostgreSQL)",
        lambda sb: sb.start_service("forbidden-port", wait=True),
        lambda sb: sb.stop_service("forbidden-port"),
    ),
    "lb-target-unhealthy": (
        "one EC2 instance of the target group is stopped (target health: unused)",
        _instance(False),
        _instance(True),
    ),
    "lb-algorithm-random": (
        "the target group distributes with weighted_random",
        lambda sb: set_lb_algorithm(sb, "weighted_random"),
        lambda sb: set_lb_algorithm(sb, "least_outstanding_requests"),
    ),
    "autoscaling-min-1": ("the auto-scaling group's MinSize is 1", _asg_min(1), _asg_min(2)),
    "loadtest-p95-slow": ("the last k6 run's p95 is 812 ms", _k6(p95_ms=812.0), _k6()),
    "loadtest-low-throughput": (
        "the last Locust run peaked at 40 users and 31.5 requests/s",
        lambda sb: upload_locust(sb, rps=31.5, users=40),
        lambda sb: upload_locust(sb),
    ),
    "loadtest-memory-high": ("the API peaked at 1.4 GiB during the last k6 run", _k6(memory_bytes=1.4 * GiB), _k6()),
    "loadtest-cpu-high": ("the API's CPU peaked at 86 % during the last k6 run", _k6(cpu_ratio=0.86), _k6()),
}
