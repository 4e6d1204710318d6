"""Section 7, monitoring: alert rules read from a real Prometheus (rules file loaded, thresholds parsed), routing read
from a real Alertmanager, scrape targets down for real; the sandbox's Prometheus and a stub of its API (targets,
scrape intervals); Grafana and the logging stack through the sandbox's fakes. The sandbox's monitoring faults against
their checks: tests/test_faults.py."""

from __future__ import annotations

import time

import pytest

from golive.flows.config import parse_config
from golive.sandbox.parts import alertmanager
from golive.tasks.core import Status
from golive.tasks.monitoring.alerts import CRITICAL, WARNING, meets, parse_threshold
from golive.tasks.monitoring.prometheus import parse_duration
from tests.support.checks import as_json, assert_no_secrets, run_ids, run_one, sandbox_config, with_
from tests.support.servers import PROM_TARGETS, PROM_YAML, ServerThread, hung_server, prometheus_app, refused_port
from tests.support.servers_debian import real_alertmanager, real_prometheus, rules

PROMETHEUS_IDS = [
    "monitoring.prometheus.reachable",
    "monitoring.prometheus.targets",
    "monitoring.prometheus.scrape_interval",
]
PROM_IDS = [*PROMETHEUS_IDS, "monitoring.alerts.critical", "monitoring.alerts.warning"]
AM_IDS = ["monitoring.alertmanager.reachable", "monitoring.alertmanager.routing"]
OBS_IDS = [
    "monitoring.grafana.health",
    "monitoring.grafana.dashboards",
    "monitoring.elasticsearch.health",
    "monitoring.kibana.status",
    "monitoring.logging.freshness",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A real Alertmanager and a real Prometheus (scraping itself and the Alertmanager, the checklist's rules loaded,
    sending to the Alertmanager): (prometheus, alertmanager_url)."""
    base = tmp_path_factory.mktemp("monitoring")
    with real_alertmanager(base / "am") as (am_url, _):
        targets = {"alertmanager": [am_url.split("://")[1]]}
        with real_prometheus(base / "prom", rules_text=rules(), targets=targets, alertmanager_url=am_url) as prom:
            targets["prometheus"] = [f"127.0.0.1:{prom.port}"]
            prom.reconfigure(rules_text=rules(), targets=targets, alertmanager_url=am_url)
            prom.wait_targets({"alertmanager": "up", "prometheus": "up"})
            prom.wait_alertmanagers(1)
            prom.targets = targets
            yield prom, am_url


def cfg_for(prom_url: str, am_url: str | None = None, **monitoring):
    data = {"environment": "test", "monitoring": {"prometheus_url": prom_url, **monitoring}}
    if am_url:
        data["observability"] = {"alertmanager": {"url": am_url}}
    return parse_config(data, env={})


# --------------------------------------------------------------------------- real Prometheus: rules and targets


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_real_prometheus_with_the_checklist_rules_passes(stack):
    prom, am_url = stack
    res = run_ids(PROM_IDS, cfg_for(prom.url))
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in PROM_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    crit = res["monitoring.alerts.critical"].observed
    assert crit["rules"]["error rate > 5%"].startswith("HighErrorRate: > 5%")
    assert crit["rules"]["API down"].startswith("APIDown: == 0")
    assert crit["alertmanagers"] == f"{am_url}/api/v2/alerts"  # the real Alertmanager, discovered by Prometheus
    warn = res["monitoring.alerts.warning"].observed["rules"]
    assert warn["memory > 85%"].startswith("HighMemoryUsage: > 85%")  # written `(...) * 100 > 85`
    assert warn["response time > 2 s"].startswith("HighResponseTime: > 2 s")
    assert "/api/v1/rules" in res["monitoring.alerts.critical"].evidence


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_error_rate_at_10_percent_and_a_down_target_fail(stack):
    prom, am_url = stack
    targets = {**prom.targets, "api": [f"127.0.0.1:{refused_port()}"]}
    prom.reconfigure(rules_text=rules(error_rate="0.10"), targets=targets, alertmanager_url=am_url, wait_for="0.1")
    try:
        prom.wait_targets({"api": "down"})
        res = run_ids(PROM_IDS, cfg_for(prom.url))
    finally:
        prom.reconfigure(rules_text=rules(), targets=prom.targets, alertmanager_url=am_url, wait_for="0.05")
    crit = res["monitoring.alerts.critical"]
    assert crit.status == Status.FAIL
    assert crit.observed["problems"] == ["error rate > 5% (HighErrorRate): threshold > 10%, expected > 5%"]
    assert res["monitoring.alerts.warning"].status == Status.PASS
    targets_r = res["monitoring.prometheus.targets"]
    assert targets_r.status == Status.FAIL
    (down,) = targets_r.observed["down"]
    assert down["job"] == "api" and down["health"] == "down" and "refused" in down["lastError"]


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_missing_and_mislabelled_warning_rules_fail(stack):
    prom, am_url = stack
    prom.reconfigure(
        rules_text=rules(warning_severity="info", drop=("HighResponseTime",)),
        targets=prom.targets,
        alertmanager_url=am_url,
        wait_for="info",
    )
    try:
        r = run_one("monitoring.alerts.warning", cfg_for(prom.url))
    finally:
        prom.reconfigure(rules_text=rules(), targets=prom.targets, alertmanager_url=am_url, wait_for="HighResponseTime")
    assert r.status == Status.FAIL
    problems = r.observed["problems"]
    assert any(p.startswith("response time > 2 s: no alerting rule") for p in problems)
    assert "CPU > 80% (HighCPUUsage): severity 'info', expected 'warning'" in problems
    assert r.observed["rules"]["memory > 85%"].startswith("HighMemoryUsage")


MEM_USED = "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100 > 85"


@pytest.mark.parametrize(
    "n, expr, status, seen",
    [
        (
            1,
            "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 15",
            Status.PASS,
            "> 85%",
        ),  # share left
        (2, "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.15", Status.PASS, "> 85%"),
        (3, "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 10", Status.FAIL, "> 90%"),  # too late
        (
            4,
            "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.15",
            Status.FAIL,
            "< 15%",
        ),  # used < 15%
    ],
)
@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_memory_alert_written_on_the_share_left(stack, n, expr, status, seen):
    prom, am_url = stack
    text = rules().replace(MEM_USED, expr).replace("alert: HighMemoryUsage", f"alert: HostMemoryLow{n}")
    prom.reconfigure(rules_text=text, targets=prom.targets, alertmanager_url=am_url, wait_for=f"HostMemoryLow{n}")
    try:
        r = run_one("monitoring.alerts.warning", cfg_for(prom.url))
    finally:
        prom.reconfigure(rules_text=rules(), targets=prom.targets, alertmanager_url=am_url, wait_for="HighMemoryUsage")
    assert r.status == status, r.observed
    assert r.observed["rules"]["memory > 85%"].startswith(f"HostMemoryLow{n}: {seen}"), r.observed


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_stricter_thresholds_pass_and_custom_expectations_apply(stack):
    prom, _ = stack
    strict = {
        "critical": {
            "error rate > 2%": {
                "name_pattern": "error.?rate",
                "op": ">",
                "threshold": 0.02,
                "unit": "ratio",
                "severity": "critical",
            }
        },
        "require_alertmanager": False,
    }
    r = run_one("monitoring.alerts.critical", cfg_for(prom.url, alert_rules=strict))
    assert r.status == Status.FAIL and "threshold > 5%, expected > 2%" in r.observed["problems"][0]


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_alertmanager_down_errors_and_skips_routing(stack, tmp_path):
    prom, _ = stack
    with real_alertmanager(tmp_path / "am2") as (url, proc):
        assert run_ids(AM_IDS, cfg_for(prom.url, url))["monitoring.alertmanager.routing"].status == Status.PASS
        proc.terminate()
        proc.wait(5)
        res = run_ids(AM_IDS, cfg_for(prom.url, url))
    assert res["monitoring.alertmanager.reachable"].status == Status.ERROR
    assert "refused" in res["monitoring.alertmanager.reachable"].cause.lower()
    routing = res["monitoring.alertmanager.routing"]
    assert routing.status == Status.SKIPPED and "monitoring.alertmanager.reachable is ERROR" in routing.cause


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_prometheus_without_an_alertmanager_cannot_notify(stack):
    """Last of the tests that read the module's Prometheus: it is left without its Alertmanager."""
    prom, _ = stack
    prom.reconfigure(rules_text=rules(), targets=prom.targets, alertmanager_url=None)
    prom.wait_alertmanagers(0)
    r = run_one("monitoring.alerts.critical", cfg_for(prom.url))
    assert r.status == Status.FAIL and r.observed["alertmanagers"] == "none active"
    assert r.observed["problems"] == ["Prometheus has no active Alertmanager: the alerts cannot notify"]
    assert (
        run_one("monitoring.alerts.critical", cfg_for(prom.url, alert_rules={"require_alertmanager": False})).status
        == Status.PASS
    )


# --------------------------------------------------------------------------- real Alertmanager: routing


@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_real_alertmanager_routes_to_slack_and_email(stack):
    prom, am_url = stack
    res = run_ids(AM_IDS, cfg_for(prom.url, am_url))
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in AM_IDS}, {
        i: r.summary for i, r in res.items()
    }
    obs = res["monitoring.alertmanager.routing"].observed
    assert obs["slack_channels"] == {alertmanager.SLACK_CHANNEL: ["slack-critical"]}
    assert obs["email_recipients"] == {"email-oncall": [alertmanager.EMAIL_TO]}
    assert obs["version"]  # the real one says which


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"email_to": None}, "no receiver with email recipients"),
        ({"slack_channel": "#alerts-staging"}, "no receiver posts to Slack #alerts-production"),
    ],
)
@pytest.mark.debian("prometheus", "prometheus-alertmanager")
def test_alertmanager_without_a_channel_fails(tmp_path, config, problem):
    with real_alertmanager(tmp_path, **config) as (url, _):
        cfg = parse_config({"environment": "t", "observability": {"alertmanager": {"url": url}}}, env={})
        r = run_one("monitoring.alertmanager.routing", cfg)
    assert r.status == Status.FAIL and problem in r.observed["problems"]


def test_hung_and_refused_alertmanager_and_prometheus_are_errors():
    with hung_server() as port:
        cfg = cfg_for(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
        t0 = time.monotonic()
        res = run_ids(PROM_IDS[:1] + PROM_IDS[3:] + AM_IDS, cfg, timeouts={i: 1.5 for i in PROM_IDS + AM_IDS})
        assert time.monotonic() - t0 < 1.5 + 2
    assert res["monitoring.alertmanager.reachable"].status == Status.ERROR
    assert "timed out" in res["monitoring.alertmanager.reachable"].cause
    assert res["monitoring.alertmanager.routing"].status == Status.SKIPPED
    assert res["monitoring.alerts.critical"].status == Status.SKIPPED
    assert res["monitoring.alerts.warning"].status == Status.SKIPPED


# --------------------------------------------------------------------------- the sandbox: Grafana, logs


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


def test_sandbox_monitoring_passes(cfg):
    res = run_ids(
        OBS_IDS + ["monitoring.prometheus.reachable", "monitoring.alerts.critical", "monitoring.alerts.warning"], cfg
    )
    assert {r.status for r in res.values()} == {Status.PASS}, {i: r.summary for i, r in res.items()}
    assert res["monitoring.grafana.dashboards"].observed["found"] == "4/4"
    assert res["monitoring.elasticsearch.health"].observed["status"] == "green"
    assert_no_secrets(res, cfg)
    assert cfg.observability.grafana.api_token.get_secret_value() not in as_json(res)


def test_stale_logs_fail_and_a_red_cluster_skips_freshness(sandbox, cfg):
    with sandbox.fault("logs-stale"):
        r = run_one("monitoring.logging.freshness", cfg)
    assert r.status == Status.FAIL and r.expected == "<= 5 min" and 119 < float(r.observed.split()[0]) < 122
    with sandbox.fault("es-red"):
        res = run_ids(["monitoring.elasticsearch.health", "monitoring.logging.freshness"], cfg)
    assert res["monitoring.logging.freshness"].status == Status.SKIPPED
    assert "monitoring.elasticsearch.health is FAIL" in res["monitoring.logging.freshness"].cause
    # a yellow cluster is accepted where the environment says so
    yellow_ok = with_(cfg, "observability", logging={**_plain(cfg.observability.logging), "min_health": "yellow"})
    with sandbox.fault("es-yellow"):
        assert run_one("monitoring.elasticsearch.health", yellow_ok).status == Status.PASS


def test_grafana_refusing_the_token_fails(cfg):
    g = {**_plain(cfg.observability.grafana), "api_token": "glsa_Wr0ngT0ken"}
    bad = with_(cfg, "observability", grafana=g)
    r = run_one("monitoring.grafana.dashboards", bad)
    assert r.status == Status.FAIL and r.observed == "HTTP 401: authentication refused"
    assert "glsa_Wr0ngT0ken" not in as_json(r)


def test_observability_unreachable_errors_and_skips():
    port = refused_port()
    base = f"http://127.0.0.1:{port}"
    cfg = parse_config(
        {
            "environment": "t",
            "observability": {
                "grafana": {"url": base, "api_token": "glsa-token-123", "dashboards": ["API"]},
                "alertmanager": {"url": base},
                "logging": {
                    "elasticsearch_url": base,
                    "kibana_url": base,
                    "username": "u",
                    "password": "es-password-123",
                },
            },
        },
        env={},
    )
    res = run_ids(OBS_IDS + AM_IDS, cfg)
    roots = {
        "monitoring.grafana.health",
        "monitoring.elasticsearch.health",
        "monitoring.kibana.status",
        "monitoring.alertmanager.reachable",
    }
    for i, r in res.items():
        assert r.status == (Status.ERROR if i in roots else Status.SKIPPED), (i, r.status, r.summary)
    assert_no_secrets(res, cfg)


def _plain(model) -> dict:
    from pydantic import SecretStr

    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in model}


# --------------------------------------------------------------------------- Prometheus: the sandbox's, a stub of its API


def test_sandbox_prometheus_passes(cfg):
    res = run_ids(PROMETHEUS_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in PROMETHEUS_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    assert res["monitoring.prometheus.targets"].observed.startswith("all ")
    assert res["monitoring.prometheus.scrape_interval"].observed == "15 s"


def test_down_target_is_listed_with_its_error(sandbox, cfg):
    with sandbox.fault("node-target-down"):
        r = run_one("monitoring.prometheus.targets", cfg)
    assert r.status == Status.FAIL
    (down,) = r.observed["down"]
    assert down["instance"].startswith("backend-2") and down["health"] == "down" and down["lastError"]


def test_postgres_down_is_not_a_second_failure_as_a_scrape_target(sandbox, cfg):
    """The target scrapes the database's own address: dependencies.postgres.reachable reports it (issue #11)."""
    with sandbox.fault("postgres-down"):
        r = run_one("monitoring.prometheus.targets", cfg)
    assert r.status == Status.SKIPPED and r.details["blocked_by"] == "dependencies.postgres.reachable", r.summary
    assert r.observed["down"] == [] and list(r.observed["not_judged"].values()) == ["dependencies.postgres.reachable"]


def test_scrape_interval_longer_than_allowed_fails(cfg):
    r = run_one("monitoring.prometheus.scrape_interval", with_(cfg, "monitoring", max_scrape_interval_s=10))
    assert r.status == Status.FAIL and r.observed == "15 s" and r.expected == "<= 10 s"


def test_prometheus_stub_intervals_health_and_targets():
    state = {"targets": PROM_TARGETS, "yaml": PROM_YAML}
    with ServerThread(prometheus_app(state)) as prom:
        cfg = parse_config(
            {"environment": "test", "monitoring": {"prometheus_url": f"http://127.0.0.1:{prom.port}"}}, env={}
        )
        assert run_one("monitoring.prometheus.scrape_interval", cfg).status == Status.PASS
        state["yaml"] = PROM_YAML.replace("scrape_interval: 10s", "scrape_interval: 2m")
        r = run_one("monitoring.prometheus.scrape_interval", cfg)
        assert r.status == Status.WARN and r.details["slow_jobs"] == {"api": "2m"}
        state["yaml"] = PROM_YAML.replace("scrape_interval: 15s", "scrape_interval: 1m")
        r = run_one("monitoring.prometheus.scrape_interval", cfg)
        assert r.status == Status.FAIL and r.observed == "60 s"
        state["yaml"] = "scrape_configs: []\n"  # no global interval: Prometheus' default 1m applies
        assert run_one("monitoring.prometheus.scrape_interval", cfg).observed == "60 s"
        state["targets"] = []
        r = run_one("monitoring.prometheus.targets", cfg)
        assert r.status == Status.FAIL and r.observed == "no active targets"
        state["healthy"] = False
        res = run_ids(PROMETHEUS_IDS, cfg)
    assert res["monitoring.prometheus.reachable"].status == Status.FAIL
    assert res["monitoring.prometheus.reachable"].observed.startswith("503")
    assert res["monitoring.prometheus.targets"].status == Status.SKIPPED


def test_prometheus_refused_is_an_error():
    cfg = parse_config(
        {"environment": "test", "monitoring": {"prometheus_url": f"http://127.0.0.1:{refused_port()}"}}, env={}
    )
    res = run_ids(PROMETHEUS_IDS, cfg)
    assert res["monitoring.prometheus.reachable"].status == Status.ERROR
    assert all(res[i].status == Status.SKIPPED for i in PROMETHEUS_IDS[1:])


@pytest.mark.parametrize(
    "text, seconds", [("15s", 15), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800)]
)
def test_prometheus_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5m", "m", "15 s", "1x"])
def test_bad_prometheus_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# --------------------------------------------------------------------------- threshold parsing


@pytest.mark.parametrize(
    "expr, unit, parsed",
    [
        ('sum(rate(x{status=~"5.."}[5m])) / sum(rate(x[5m])) > 0.05', "ratio", (">", 0.05)),
        ("(1 - a / b) * 100 > 85", "ratio", (">", 0.85)),
        ("100 * (1 - a / b) >= 85", "ratio", (">=", 0.85)),
        ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m]))) > 2", "seconds", (">", 2.0)),
        ("histogram_quantile(0.95, rate(h_milliseconds_bucket[5m])) > 2000", "seconds", (">", 2.0)),
        ('up{job="api"} == 0', "value", ("==", 0.0)),
        ('(up{job="api"} < 1)', "value", ("<", 1.0)),
        ("x > bool 0.8", "ratio", (">", 0.8)),
        ("rate(x[5m])", "ratio", None),
    ],
)
def test_parse_threshold(expr, unit, parsed):
    assert parse_threshold(expr, unit) == parsed


def test_meets_compares_in_the_alerting_direction():
    er, down = CRITICAL["error rate > 5%"], CRITICAL["API down"]
    assert meets(">", 0.05, er) and meets(">", 0.03, er) and not meets(">", 0.10, er) and not meets("<", 0.05, er)
    assert meets("==", 0, down) and meets("<", 1, down) and not meets("==", 1, down)
    assert meets(">", 0.8, WARNING["CPU > 80%"]) and not meets(">", 0.9, WARNING["CPU > 80%"])
