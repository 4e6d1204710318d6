"""Section 1, infrastructure: servers (PromQL), network (DNS, firewall, bastion, CDN), the load balancer's pool and
health check (AWS API through moto's server, and direct probes of the instances). The web edge's checks are in
tests/test_checks_web.py; the load balancer's distribution and auto-scaling, with section 6: test_checks_performance.py.

PASS runs against the shared sandbox (a real dnslib DNS server, a banner server, a CDN edge, backend instances, moto's
elbv2/autoscaling), its faults against their checks in tests/test_faults.py, and here what follows a fault (the
checks it skips, the port it names); the failure modes it has no switch for run against small dedicated servers
started here (a Prometheus API serving overloaded hosts, an app reporting an old Python, a hung instance).
"""

from __future__ import annotations

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
    run_one,
    sandbox_config,
    with_,
)
from tests.support.servers import ServerThread, hung_server, refused_port

OWN = ("hosts", "network", "loadbalancer")
ROLE_FACTS = ("status", "cores", "cpu", "memory", "disk", "link")
IDS = sorted(
    {i for i, s in CATALOG.items() if s.target_section in OWN and s.section == "infrastructure"}
    | {f"infrastructure.{role}.{fact}" for role in ("frontend", "backend") for fact in ROLE_FACTS}
)


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


# --------------------------------------------------------------------------- the healthy sandbox


def test_sandbox_passes_every_infrastructure_check(cfg):
    assert len(IDS) == 24
    res = run_dag(IDS, cfg)
    assert_all_passed_with_evidence(res, IDS)
    pool = res["infrastructure.lb.backend_pool"].observed
    assert pool["target_group"]["healthy"] == 3 and pool["instances"] == {
        **pool["instances"],
        "healthy": 3,
        "failing": {},
    }
    assert res["infrastructure.dns.records"].observed["ttl_s"] == 300
    assert res["infrastructure.bastion.ssh"].observed.startswith("SSH-2.0-OpenSSH")
    assert "dig @127.0.0.1 -p" in res["infrastructure.dns.records"].evidence
    assert_no_secrets(res, cfg)  # the AWS secret of loadbalancer.aws is in the config


def test_firewall_fault_names_the_port_that_must_be_closed(sandbox, cfg):
    with sandbox.fault("firewall-port-open"):
        r = run_one("infrastructure.firewall.ports", cfg)
    assert r.details["failing"] == [sandbox.ports["forbidden"]]


def test_a_down_backend_node_skips_its_resource_checks_with_the_cause(sandbox, cfg):
    ids = [f"infrastructure.backend.{f}" for f in ROLE_FACTS]
    with sandbox.fault("node-target-down"):
        res = run_dag(ids, cfg)
    assert res["infrastructure.backend.status"].status == Status.FAIL
    assert res["infrastructure.backend.status"].details["down"] == ["backend-2"]
    for f in ROLE_FACTS[1:]:
        r = res[f"infrastructure.backend.{f}"]
        assert r.status == Status.SKIPPED and "infrastructure.backend.status is FAIL" in r.cause, r.cause


def test_the_unhealthy_dns_answer_skips_the_frontend_pool(sandbox, cfg):
    with sandbox.fault("dns-cname-chain"):
        res = run_dag(["infrastructure.dns.frontend_pool"], cfg)
    assert res["infrastructure.dns.records"].details["problems"] == ["2 CNAME hops"]
    assert res["infrastructure.dns.frontend_pool"].status == Status.SKIPPED


def test_tight_thresholds_fail_on_the_healthy_sandbox(cfg):
    r = run_one("infrastructure.frontend.lb_latency", with_(cfg, "hosts", max_lb_latency_ms=0.0001))
    assert r.status == Status.FAIL and r.expected == "< 0.0001 ms" and len(r.details["samples_ms"]) == 5
    r = run_one("infrastructure.frontend.link", with_(cfg, "hosts", min_link_speed_mbps=10000))
    assert r.status == Status.FAIL and r.observed == {"frontend-1 eth0": "up, 1000 Mb/s"}
    r = run_one("infrastructure.lb.backend_pool", with_(cfg, "loadbalancer", min_healthy=4))
    assert r.status == Status.FAIL and r.details["problems"] == ["3 healthy targets", "3 healthy instances"]
    r = run_one("infrastructure.lb.health_check", with_(cfg, "loadbalancer", max_health_check_interval_s=10))
    assert r.status == Status.FAIL and r.observed["interval_s"] == 30


def test_the_local_machine_against_impossible_thresholds(cfg):
    r = run_one("infrastructure.local.resources", cfg)
    assert r.status == Status.PASS and r.expected["cpu"] == "reported (no threshold)"
    assert r.observed["cores"] == len(os.sched_getaffinity(0))
    local = {"min_cores": 4096, "min_free_disk_bytes": 2**60, "cpu_sample_s": 0.1}
    r = run_one("infrastructure.local.resources", with_(cfg, "hosts", local=local))
    assert r.status == Status.FAIL and r.details["failing"] == ["cores", "disk"], r.details
    assert "nproc" in r.evidence and "free -h" in r.evidence
    r = run_one("infrastructure.local.resources", with_(cfg, "hosts", local={"role": "database", "cpu_sample_s": 0.1}))
    assert r.status == Status.FAIL and "role 'database' unknown" in r.observed


def test_unreachable_targets_are_errors_within_the_timeout(cfg):
    port = refused_port()
    r = run_one("infrastructure.backend.db_latency", with_(cfg, "hosts", database=f"127.0.0.1:{port}"))
    assert r.status == Status.ERROR and "refused" in r.cause.lower()
    t0 = time.monotonic()
    r = run_one(
        "infrastructure.dns.records",
        with_(cfg, "network", dns={"name": "app.swipesavvy.test", "nameserver": f"127.0.0.1:{port}"}),
        timeout=2,
    )
    assert r.status == Status.ERROR and time.monotonic() - t0 < 3, r.cause
    with hung_server() as hung:
        r = run_one(
            "infrastructure.bastion.ssh", with_(cfg, "network", bastion={"host": "127.0.0.1", "port": hung}), timeout=2
        )
    assert r.status in (Status.FAIL, Status.ERROR) and r.duration_s < 3, r.summary


# --------------------------------------------------------------------------- direct probes of the instances


def test_instance_probes_are_bounded_concurrent_and_each_timed_out_alone(sandbox, cfg):
    """Two hung instances fail on their own probe timeout (1 s each) while the others answer; the two timeouts
    overlap (one after the other would take 2 s)."""
    healthy = [f"http://127.0.0.1:{sandbox.ports[b]}" for b in infra.BACKENDS]
    with hung_server() as hung1, hung_server() as hung2:
        hung = [f"http://127.0.0.1:{hung1}", f"http://127.0.0.1:{hung2}"]
        lb = {"instances": [*healthy, *hung, *healthy], "probe_timeout_s": 1.0, "probe_concurrency": 3}
        c = parse_config({"environment": "t", "loadbalancer": lb}, env={})
        t0 = time.monotonic()
        r = run_one("infrastructure.lb.backend_pool", c)
        wall = time.monotonic() - t0
    assert r.status == Status.FAIL and r.observed["instances"]["healthy"] == 6
    failing = r.observed["instances"]["failing"]
    assert sorted(failing) == sorted(u + "/api/health" for u in hung)
    assert all("Timeout" in e for e in failing.values()), failing
    assert wall < 1.9, wall


# --------------------------------------------------------------------------- hosts from a Prometheus API


@pytest.fixture(scope="module")
def busy_prometheus(tmp_path_factory):
    """The sandbox's own Prometheus-API app, serving one overloaded frontend and one healthy backend."""
    import golive.sandbox.parts.prometheus_api as prom

    GiB = prom.GiB
    nodes = {
        "frontend-1": prom.Node(2, 0.55, 16 * GiB, 1 * GiB, 200 * GiB, 12 * GiB),
        "backend-1": prom.Node(8, 0.09, 32 * GiB, 23 * GiB, 250 * GiB, 171 * GiB),
    }
    faults = tmp_path_factory.mktemp("prom") / "faults.json"
    mp = pytest.MonkeyPatch()
    mp.setattr(prom, "NODES", nodes)
    try:
        with ServerThread(prom.create_app(prom.Monitoring([], prom.FaultFile(faults)))) as srv:
            yield srv.port
    finally:
        mp.undo()


def test_role_thresholds_fail_the_overloaded_role_only(busy_prometheus):
    c = parse_config(
        {"environment": "t", "monitoring": {"prometheus_url": f"http://127.0.0.1:{busy_prometheus}"}}, env={}
    )
    res = run_dag([f"infrastructure.{role}.{f}" for role in ("frontend", "backend") for f in ROLE_FACTS], c)
    for f in ("cores", "cpu", "memory", "disk"):
        assert res[f"infrastructure.frontend.{f}"].status == Status.FAIL, f
        assert res[f"infrastructure.backend.{f}"].status == Status.PASS, f
    assert res["infrastructure.frontend.cores"].observed == {"frontend-1": "2"}
    assert res["infrastructure.frontend.cpu"].expected == "CPU busy over 5 min < 30.0 % on every frontend instance"
    assert res["infrastructure.frontend.memory"].observed == {"frontend-1": "1.0 GiB"}
    assert res["infrastructure.frontend.disk"].observed == {"frontend-1": "12.0 GiB"}
    assert "count by (instance)" in res["infrastructure.frontend.cores"].evidence
    # a role with no instance at all is a failure, not a silent pass
    c = parse_config(
        {
            "environment": "t",
            "monitoring": {
                "prometheus_url": f"http://127.0.0.1:{busy_prometheus}",
                "roles": {
                    "frontend": {
                        "instance_regex": "web-.*",
                        "min_cores": 4,
                        "max_cpu_ratio": 0.3,
                        "min_free_memory_bytes": 1,
                        "min_free_disk_bytes": 1,
                    }
                },
            },
        },
        env={},
    )
    r = run_one("infrastructure.frontend.status", c)
    assert r.status == Status.FAIL and "no instance matches" in r.observed
    assert run_one("infrastructure.backend.status", c).status == Status.NOT_APPLICABLE


# --------------------------------------------------------------------------- the backend's Python


@pytest.fixture(scope="module")
def python_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(req):
        return JSONResponse({"status": "healthy", "python": req.path_params["v"]})

    with ServerThread(Starlette(routes=[Route("/{v}/health", health)])) as srv:
        yield srv.port


@pytest.mark.parametrize(
    "version, status",
    [("3.9.18", Status.FAIL), ("3.12.1", Status.WARN), ("3.11.9", Status.PASS), ("unknown", Status.FAIL)],
)
def test_backend_python_version(python_app, version, status):
    c = parse_config(
        {"environment": "t", "hosts": {"backend_health_urls": [f"http://127.0.0.1:{python_app}/{version}/health"]}},
        env={},
    )
    r = run_one("infrastructure.backend.python", c)
    assert r.status == status, r.summary
    assert version in str(r.observed)


# --------------------------------------------------------------------------- uplinks as node_exporter reports them

NIC_METRICS = """\
node_network_up{device="eth0"} 1
node_network_speed_bytes{device="eth0"} 1.25e+08
node_network_up{device="ens5"} 1
node_network_up{device="eth1"} 1
node_network_speed_bytes{device="eth1"} -125000
node_network_up{device="eth2"} 1
node_network_speed_bytes{device="eth2"} 1.25e+07
"""  # eth0: 1 Gb/s; ens5: AWS ENA (no speed series); eth1: virtio / veth (ethtool's -1); eth2: 100 Mb/s


@pytest.fixture(scope="module")
def nic_prometheus(tmp_path_factory):
    """Debian's Prometheus scraping a node_exporter-format endpoint with the NICs above."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tests.support.servers_debian import real_prometheus

    async def metrics(_):
        return PlainTextResponse(NIC_METRICS)

    with (
        ServerThread(Starlette(routes=[Route("/metrics", metrics)])) as exporter,
        real_prometheus(
            tmp_path_factory.mktemp("nic-prom"),
            rules_text="groups: []\n",
            targets={"node": [f"127.0.0.1:{exporter.port}"]},
        ) as prom,
    ):
        prom.wait_targets({"node": "up"})
        yield prom.url


@pytest.mark.parametrize(
    "devices, declared, status, shown",
    [
        ("eth0", None, Status.PASS, "up, 1000 Mb/s"),  # a NIC that reports its speed
        ("ens5|eth1", 10000, Status.PASS, "speed not reported by the NIC, declared 10000 Mb/s"),  # virtual NICs
        ("ens5|eth1", None, Status.FAIL, "set hosts.link_speed_mbps"),  # ... nothing declared
        ("eth2", 10000, Status.FAIL, "up, 100 Mb/s"),  # a declaration never overrides
    ],
)
@pytest.mark.debian("prometheus")
def test_link_speed_of_nics_that_report_none(nic_prometheus, devices, declared, status, shown):
    hosts = {"link_device_regex": devices, **({"link_speed_mbps": declared} if declared else {})}
    c = parse_config(
        {
            "environment": "t",
            "hosts": hosts,
            "monitoring": {
                "prometheus_url": nic_prometheus,
                "roles": {
                    "backend": {
                        "instance_regex": r"127\.0\.0\.1:\d+",
                        "min_cores": 1,
                        "max_cpu_ratio": 1,
                        "min_free_memory_bytes": 0,
                        "min_free_disk_bytes": 0,
                    }
                },
            },
        },
        env={},
    )
    r = run_dag(["infrastructure.backend.link"], c)["infrastructure.backend.link"]
    assert r.status == status, r.observed
    assert len(r.observed) == len(devices.split("|")) and all(shown in v for v in r.observed.values()), r.observed
