"""Section 6, performance: the load balancer's distribution and the auto-scaling group (AWS API through moto's server,
or the settings the config declares), and the last load test's results (k6 and Locust files, local or in S3). The
API's response time under load is a web check: tests/test_checks_web.py.

PASS runs against the shared sandbox (its faults against their checks: tests/test_faults.py); the rest against
declared settings and result files written here.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from golive.flows.config import parse_config
from golive.sandbox import infrastructure as infra
from golive.tasks.core import Status
from tests.support.checks import (
    CATALOG,
    assert_all_passed_with_evidence,
    assert_no_secrets,
    run_dag,
    run_ids,
    run_one,
    sandbox_config,
)

IDS = sorted(
    i for i, s in CATALOG.items() if s.target_section in ("loadbalancer", "loadtest") and s.section == "performance"
)


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


# --------------------------------------------------------------------------- the healthy sandbox


def test_sandbox_passes_every_performance_check(cfg):
    assert len(IDS) == 7
    res = run_dag(IDS, cfg)
    assert_all_passed_with_evidence(res, IDS)
    assert set(res["performance.loadtest.p95"].observed) == {"k6", "locust"}  # a file and an S3 object
    assert res["performance.autoscaling.config"].observed["source"].startswith("observed")
    assert_no_secrets(res, cfg)  # the AWS secret of loadbalancer.aws / loadtest.s3 is in the config


# --------------------------------------------------------------------------- the load balancer's declared settings


def test_declared_load_balancer_settings_are_compared_and_said_to_be_declared():
    good = {
        "algorithm": "round_robin",
        "health_check_interval_s": 15,
        "min_instances": 2,
        "max_instances": 8,
        "scale_up_cpu_percent": 65,
    }
    c = parse_config({"environment": "t", "loadbalancer": {"declared": good}}, env={})
    res = run_ids(
        ["performance.lb.distribution", "performance.autoscaling.config", "infrastructure.lb.health_check"], c
    )
    assert {r.status for r in res.values()} == {Status.PASS}, {i: r.summary for i, r in res.items()}
    assert all("declared" in str(r.observed) for r in res.values())
    bad = {
        **good,
        "algorithm": "random",
        "health_check_interval_s": 60,
        "max_instances": 40,
        "scale_up_cpu_percent": 90,
    }
    c = parse_config({"environment": "t", "loadbalancer": {"declared": bad}}, env={})
    res = run_ids(
        ["performance.lb.distribution", "performance.autoscaling.config", "infrastructure.lb.health_check"], c
    )
    assert {r.status for r in res.values()} == {Status.FAIL}
    assert res["performance.autoscaling.config"].details["problems"] == ["max 40", "scale-up at CPU 90.0"]
    assert res["performance.lb.distribution"].details["problems"] == [
        "algorithm 'random'",
        "health check interval 60.0",
    ]


@pytest.mark.parametrize(
    "spelling",
    [
        "round-robin",  # the seed's own words
        "round_robin",
        "ROUND_ROBIN",  # AWS ELBv2; Envoy and GCP backend services
        "roundrobin",
        "static-rr",  # HAProxy
        "least_conn",  # nginx
        "leastconn",  # HAProxy
        "LEAST_REQUEST",  # Envoy, GCP
        "least_outstanding_requests",  # AWS ALB
        "wlc",
        "Least Connections",  # IPVS (kube-proxy); as a person writes it
    ],
)
def test_every_lb_spelling_of_round_robin_or_least_connections_passes(spelling):
    declared = {"algorithm": spelling, "health_check_interval_s": 30}
    c = parse_config({"environment": "t", "loadbalancer": {"declared": declared}}, env={})
    r = run_ids(["performance.lb.distribution"], c)["performance.lb.distribution"]
    assert r.status == Status.PASS, r.summary
    assert r.observed["algorithm"] == spelling and r.observed["algorithm_family"] in (
        "round_robin",
        "least_connections",
    )


@pytest.mark.parametrize("spelling", ["ip_hash", "RING_HASH", "weighted_random", "source", "MAGLEV"])
def test_hashing_and_random_algorithms_fail_as_the_nearest_unhealthy_variants(spelling):
    declared = {"algorithm": spelling, "health_check_interval_s": 30}
    c = parse_config({"environment": "t", "loadbalancer": {"declared": declared}}, env={})
    r = run_ids(["performance.lb.distribution"], c)["performance.lb.distribution"]
    assert r.status == Status.FAIL and r.details["problems"] == [f"algorithm {spelling!r}"]
    # a team that chose hashing on purpose says so, in any spelling
    c = parse_config(
        {"environment": "t", "loadbalancer": {"declared": declared, "allowed_algorithms": [spelling.lower()]}}, env={}
    )
    assert run_ids(["performance.lb.distribution"], c)["performance.lb.distribution"].status == Status.PASS


# --------------------------------------------------------------------------- load-test result files


def _lt(tmp_path, **kw):
    return parse_config({"environment": "t", "loadtest": kw}, env={})


LT_IDS = [
    "performance.loadtest.results",
    "performance.loadtest.p95",
    "performance.loadtest.throughput",
    "performance.loadtest.memory",
    "performance.loadtest.cpu",
]


def test_k6_handle_summary_format_and_local_locust_files(tmp_path):
    k6 = infra.k6_summary(p95_ms=420.0)
    handle = {
        "metrics": {name: {"type": "trend", "contains": "time", "values": v} for name, v in k6["metrics"].items()}
    }
    (tmp_path / "k6.json").write_text(json.dumps(handle))
    (tmp_path / "run_stats.csv").write_text(infra.locust_stats(p95_ms=610))
    (tmp_path / "run_stats_history.csv").write_text(infra.locust_history(users=120))
    res = run_ids(
        LT_IDS, _lt(tmp_path, k6_summary=str(tmp_path / "k6.json"), locust_stats=str(tmp_path / "run_stats.csv"))
    )
    assert res["performance.loadtest.results"].status == Status.PASS
    p95 = res["performance.loadtest.p95"]
    assert p95.status == Status.FAIL and p95.observed == {"k6": "420 ms", "locust": "610 ms"}
    assert p95.details["failing"] == ["locust"]
    assert res["performance.loadtest.throughput"].observed["users"] == {"k6": "150", "locust": "120"}
    assert res["performance.loadtest.throughput"].status == Status.PASS
    assert f"cat {tmp_path / 'run_stats.csv'}" in p95.evidence


def test_locust_alone_cannot_vouch_for_memory_and_cpu(tmp_path):
    (tmp_path / "run_stats.csv").write_text(infra.locust_stats())
    res = run_ids(LT_IDS, _lt(tmp_path, locust_stats=str(tmp_path / "run_stats.csv")))
    assert res["performance.loadtest.p95"].status == Status.PASS
    # no *_stats_history.csv beside it: the user count is unknown, and unknown is not ">= 100"
    assert "no configured source reports concurrent users" in res["performance.loadtest.throughput"].observed["users"]
    assert res["performance.loadtest.throughput"].status == Status.FAIL
    for i in ("performance.loadtest.memory", "performance.loadtest.cpu"):
        assert res[i].status == Status.FAIL and "no configured source reports" in res[i].observed


def test_stale_missing_and_malformed_results(tmp_path):
    old = tmp_path / "k6.json"
    old.write_text(json.dumps(infra.k6_summary()))
    past = time.time() - 45 * 86400
    os.utime(old, (past, past))
    res = run_ids(LT_IDS, _lt(tmp_path, k6_summary=str(old)))
    assert res["performance.loadtest.results"].status == Status.FAIL
    assert res["performance.loadtest.results"].observed["k6"]["age_days"] >= 45
    assert res["performance.loadtest.p95"].status == Status.SKIPPED
    r = run_one("performance.loadtest.results", _lt(tmp_path, k6_summary=str(tmp_path / "nope.json")))
    assert r.status == Status.ERROR and "No such file" in r.cause
    (tmp_path / "bad.json").write_text('{"data": []}')
    r = run_one("performance.loadtest.results", _lt(tmp_path, k6_summary=str(tmp_path / "bad.json")))
    assert r.status == Status.ERROR and "not a k6 JSON summary" in r.cause
