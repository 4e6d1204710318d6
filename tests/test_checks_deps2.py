"""Section 2 beyond PostgreSQL/Redis/SMTP: PgBouncer (a real one), PostgreSQL indexes (the sandbox's database),
Twilio / Stripe / Sentry / Google Analytics and the Docker / Kubernetes APIs (local fakes that answer like the
real APIs: sandbox/saas2.py), each passing and failing for real."""
from __future__ import annotations

import secrets
import time

import pytest

from golive.flows.config import parse_config
from golive.sandbox import dependencies as depstack
from golive.sandbox.fakes import service_apis as saas2
from golive.sandbox.parts import pgbouncer, postgres
from golive.tasks.core import Status
from golive.tasks.saas import key_class, parse_dsn
from tests.conftest import debian_faults
from tests.monitoring_servers import need, real_pgbouncer, wait_gone
from tests.test_checks_servers import (
    CATALOG,
    as_json,
    assert_no_secrets,
    hung_server,
    refused_port,
    run_one,
    run_plain,
    sandbox_config,
    with_,
)

PGB_IDS = ["dependencies.pgbouncer.admin", "dependencies.pgbouncer.pools"]
SAAS_IDS = ["dependencies.twilio.api", "dependencies.twilio.account", "dependencies.stripe.api_key",
            "dependencies.stripe.webhooks", "dependencies.sentry.events", "dependencies.analytics.tracking"]
CONTAINER_IDS = ["dependencies.docker.containers", "dependencies.kubernetes.nodes",
                 "dependencies.kubernetes.components"]
ALL_IDS = PGB_IDS + ["dependencies.postgres.indexes"] + SAAS_IDS + CONTAINER_IDS


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


@pytest.fixture(scope="module")
def own_pgbouncer(sandbox):
    """A real PgBouncer of this module's own in front of the sandbox's PostgreSQL: (port, admin password)."""
    admin_pw = "pgb-" + secrets.token_urlsafe(12)
    with real_pgbouncer(pg_port=sandbox.ports["postgres"],
                        dbname=postgres.DBNAME, app_user=postgres.APP_USER,
                        app_password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"], admin_password=admin_pw) as (port, _):
        yield port, admin_pw


def run_ids(ids: list[str], config, *, timeouts: dict[str, float] | None = None) -> dict:
    """`ids` and the checks they depend on (e.g. dependencies.postgres.reachable), through the real runner."""
    import dataclasses

    from golive.tasks.core import select

    specs = {i: dataclasses.replace(s, timeout=(timeouts or {}).get(i, s.timeout))
             for i, s in select(CATALOG, ids=ids).items()}
    return {r.id: r for r in run_plain(specs, config)}


def pgb(cfg, port: int, admin_pw: str, **extra):
    return with_(cfg, "pgbouncer", host="127.0.0.1", port=port, admin_user=pgbouncer.ADMIN_USER,
                 admin_password=admin_pw, sslmode="disable", **extra)


# --------------------------------------------------------------------------- the healthy sandbox

@pytest.mark.debian("pgbouncer", "prometheus-alertmanager")
def test_every_new_dependency_check_passes_on_the_sandbox(cfg):
    need(pgbouncer.executable(), "pgbouncer")  # the sandbox runs PgBouncer only where it is installed
    res = run_ids(ALL_IDS, cfg)
    bad = {i: f"{r.status.value}: {r.summary}" for i, r in res.items() if i in ALL_IDS and r.status != Status.PASS}
    assert not bad, bad
    assert res["dependencies.pgbouncer.pools"].observed["cl_active"] >= 1
    assert res["dependencies.docker.containers"].evidence.count("--unix-socket") == 1  # the Engine API over a socket
    assert res["dependencies.stripe.api_key"].observed["key"] == "sk_test_…"
    assert res["dependencies.twilio.account"].observed["status"] == "active"
    assert_no_secrets(res, cfg)
    blob = as_json(res)
    for secret in (cfg.saas.stripe.secret_key, cfg.saas.sentry.dsn, cfg.saas.twilio.auth_token,
                   cfg.containers.kubernetes.token, cfg.pgbouncer.admin_password):
        assert secret.get_secret_value() not in blob
    assert "@127.0.0.1" in res["dependencies.sentry.events"].observed["dsn"]
    assert res["dependencies.sentry.events"].observed["dsn"].startswith("http://***@")


# --------------------------------------------------------------------------- PgBouncer

@pytest.mark.debian("pgbouncer")
def test_own_pgbouncer_passes_and_shows_the_pool(cfg, own_pgbouncer):
    port, pw = own_pgbouncer
    res = run_ids(PGB_IDS, pgb(cfg, port, pw))
    assert {i: r.status for i, r in res.items() if i in PGB_IDS} == {i: Status.PASS for i in PGB_IDS}, \
        {i: r.summary for i, r in res.items()}
    admin = res["dependencies.pgbouncer.admin"]
    assert admin.observed["max_client_conn"] == pgbouncer.MAX_CLIENT_CONN
    assert admin.expected.startswith("max_client_conn >= 50")
    assert "SHOW CONFIG" in admin.evidence and "psql" in admin.evidence and pw not in as_json(res)
    pools = res["dependencies.pgbouncer.pools"]
    assert pools.observed["pool"] == f"{postgres.DBNAME}/{postgres.APP_USER}"
    assert pools.observed["server_connections"] >= 1 and pools.observed["cl_waiting"] == 0
    assert pools.observed["total_xact_count"] >= 1


@pytest.mark.debian("pgbouncer")
def test_too_few_client_connections_fail(sandbox, cfg, tmp_path):
    with real_pgbouncer(pg_port=sandbox.ports["postgres"], dbname=postgres.DBNAME,
                        app_user=postgres.APP_USER, app_password=sandbox.env["GOLIVE_SANDBOX_DB_PASSWORD"],
                        admin_password="pgb-Adm1n-pw", max_client_conn=20) as (port, _):
        r = run_one("dependencies.pgbouncer.admin", pgb(cfg, port, "pgb-Adm1n-pw"))
    assert r.status == Status.FAIL
    assert r.observed["problems"] == ["max_client_conn 20 < 50"]


@pytest.mark.debian("pgbouncer")
def test_unknown_database_fails(cfg, own_pgbouncer):
    port, pw = own_pgbouncer
    r = run_one("dependencies.pgbouncer.admin", pgb(cfg, port, pw, database="merchants_staging"))
    assert r.status == Status.FAIL and "merchants_staging" in r.observed["problems"][0]


@pytest.mark.debian("pgbouncer")
def test_pgbouncer_down_errors_and_skips_the_pool_check(sandbox, cfg):
    need(pgbouncer.executable(), "pgbouncer")
    with sandbox.fault("pgbouncer-down"):
        wait_gone(sandbox.ports["pgbouncer"])
        res = run_ids(PGB_IDS, cfg)
    assert res["dependencies.pgbouncer.admin"].status == Status.ERROR
    assert "refused" in res["dependencies.pgbouncer.admin"].cause.lower()
    pools = res["dependencies.pgbouncer.pools"]
    assert pools.status == Status.SKIPPED and "dependencies.pgbouncer.admin is ERROR" in pools.cause
    assert run_one("dependencies.pgbouncer.admin", cfg).status == Status.PASS  # repaired


@pytest.mark.debian("pgbouncer")
def test_wrong_admin_password_hung_and_postgres_down(cfg, own_pgbouncer):
    port, _ = own_pgbouncer
    bad = pgb(cfg, port, "Wr0ng-pgb-Passw0rd")
    r = run_one("dependencies.pgbouncer.admin", bad)
    assert r.status == Status.ERROR and "Wr0ng-pgb-Passw0rd" not in as_json(r)
    assert_no_secrets(r, bad)
    with hung_server() as hung:
        t0 = time.monotonic()
        r = run_one("dependencies.pgbouncer.admin", pgb(cfg, hung, "x-pw-1234"), timeout=2.5)
        assert r.status == Status.ERROR and time.monotonic() - t0 < 2.5 + 1.5  # a busy 2-core machine's slack
    # PostgreSQL unreachable: the pool check is SKIPPED with that cause (the admin console still answers)
    down = with_(pgb(cfg, port, own_pgbouncer[1]), "postgres", port=refused_port())
    res = run_ids(PGB_IDS, down)
    assert res["dependencies.pgbouncer.admin"].status == Status.PASS
    assert res["dependencies.pgbouncer.pools"].status == Status.SKIPPED
    assert "dependencies.postgres.reachable is ERROR" in res["dependencies.pgbouncer.pools"].cause


# --------------------------------------------------------------------------- indexes

def test_dropped_index_makes_the_query_seq_scan(sandbox, cfg):
    with sandbox.fault("index-missing"):
        r = run_one("dependencies.postgres.indexes", cfg)
    assert r.status == Status.FAIL
    problems = r.observed["problems"]
    assert f"missing index {depstack.INDEX_FAULT[0]}" in problems
    assert any(p.startswith("events of a campaign: Seq Scan on campaign_events") for p in problems)
    assert "EXPLAIN" in r.evidence and "***" in r.evidence
    ok = run_one("dependencies.postgres.indexes", cfg)
    assert ok.status == Status.PASS
    assert ok.observed["plans"]["events of a campaign"] == [f"Bitmap Index Scan on {depstack.INDEX_FAULT[0]}"]


def test_small_tables_may_seq_scan_and_unknown_indexes_fail(cfg):
    assert run_one("dependencies.postgres.indexes", with_(cfg, "indexes", large_table_rows=1_000_000,
                                                          queries={"all users": "SELECT * FROM users"})).status \
        == Status.PASS
    r = run_one("dependencies.postgres.indexes", with_(cfg, "indexes", required=["users_phone_idx"]))
    assert r.status == Status.FAIL and r.details["missing"] == ["users_phone_idx"]
    r = run_one("dependencies.postgres.indexes", with_(cfg, "indexes", queries={"all events": "SELECT * FROM "
                                                                                             "campaign_events"}))
    assert r.status == Status.FAIL and "Seq Scan on campaign_events" in r.observed["problems"][0]


def test_indexes_skip_when_postgres_is_down_and_reject_writes(cfg):
    res = run_ids(["dependencies.postgres.indexes"], with_(cfg, "postgres", port=refused_port()))
    assert res["dependencies.postgres.indexes"].status == Status.SKIPPED
    with pytest.raises(ValueError, match="SELECT"):  # only reads are planned
        with_(cfg, "indexes", queries={"oops": "DELETE FROM users"})


# --------------------------------------------------------------------------- Twilio, Stripe, Sentry, Analytics

@pytest.mark.parametrize("fault, check_id, problem", [
    ("twilio-suspended", "dependencies.twilio.account", "account status 'suspended'"),
    ("stripe-webhook-event-missing", "dependencies.stripe.webhooks", "events not subscribed: charge.refunded"),
    ("analytics-snippet-missing", "dependencies.analytics.tracking",
     "no gtag.js <script> for G-GOLIVE2026 on the page"),
])
def test_saas_faults_fail_with_the_reason(sandbox, cfg, fault, check_id, problem):
    with sandbox.fault(fault):
        r = run_one(check_id, cfg)
    assert r.status == Status.FAIL and problem in r.observed["problems"], r.observed


def test_sentry_rejecting_events_fails(sandbox, cfg):
    with sandbox.fault("sentry-rejects"):
        r = run_one("dependencies.sentry.events", cfg)
    assert r.status == Status.FAIL and r.observed["http"] == 403 and "ProjectDisabled" in r.observed["rejected"]
    assert cfg.saas.sentry.dsn.get_secret_value() not in as_json(r)


def test_stripe_test_key_in_production_fails_and_live_key_passes(cfg, tmp_path):
    prod = cfg.model_copy(update={"production": True})
    r = run_one("dependencies.stripe.api_key", prod)
    assert r.status == Status.FAIL and r.observed["problems"] == ["a sk_test_… key in production"]
    assert r.observed["livemode"] is False and prod.saas.stripe.secret_key.get_secret_value() not in as_json(r)
    live = "sk_live_" + secrets.token_urlsafe(24)
    with own_fakes(tmp_path, stripe_key=live) as u:
        live_cfg = parse_config({"environment": "production", "production": True,  # production: secrets by reference
                                 "saas": {"stripe": {"api_url": u["stripe"], "secret_key": "${STRIPE_KEY}",
                                                     "webhook_signing_secret": "${STRIPE_WHSEC}"}}},
                                env={"STRIPE_KEY": live, "STRIPE_WHSEC": "whsec_" + "a" * 24})
        res = run_ids(["dependencies.stripe.api_key", "dependencies.stripe.webhooks"], live_cfg)
    assert res["dependencies.stripe.api_key"].status == Status.PASS
    assert res["dependencies.stripe.api_key"].observed == {"key": "sk_live_…", "http": 200, "livemode": True}
    assert res["dependencies.stripe.webhooks"].status == Status.PASS
    assert live not in as_json(res) and "whsec_" + "a" * 24 not in as_json(res)


def test_stripe_wrong_key_and_missing_signing_secret_fail(cfg):
    r = run_one("dependencies.stripe.api_key", with_(cfg, "saas", stripe={**_stripe(cfg), "secret_key":
                                                                          "sk_test_Wr0ngKey0000000000"}))
    assert r.status == Status.FAIL and r.observed["http"] == 401 and "Wr0ngKey" not in as_json(r)
    r = run_one("dependencies.stripe.webhooks", with_(cfg, "saas", stripe={**_stripe(cfg),
                                                                           "webhook_signing_secret": None}))
    assert r.status == Status.FAIL and r.observed["signing_secret"] == "missing"
    r = run_one("dependencies.stripe.webhooks", with_(cfg, "saas", stripe={
        **_stripe(cfg), "webhook_url": "https://elsewhere.swipesavvy.test/hook"}))
    assert r.status == Status.FAIL and r.observed["problems"][0].startswith("no enabled webhook endpoint for")


def test_twilio_wrong_token_and_slow_api_fail(cfg):
    tw = cfg.saas.twilio.model_dump()
    tw["auth_token"] = "0" * 32
    r = run_one("dependencies.twilio.api", with_(cfg, "saas", twilio=tw))
    assert r.status == Status.FAIL and r.observed == "HTTP 401: authentication refused" and "0" * 32 not in as_json(r)
    r = run_one("dependencies.twilio.api", with_(cfg, "saas", twilio={**_twilio(cfg), "max_latency_s": 1e-6}))
    assert r.status == Status.FAIL and r.expected == "< 1e-06 s"
    r = run_one("dependencies.twilio.account", with_(cfg, "saas", twilio={**_twilio(cfg),
                                                                          "sender_numbers": ["+14155550100"]}))
    assert r.status == Status.FAIL and "sender +14155550100 is not on the account" in r.observed["problems"]


def test_malformed_dsn_fails_without_showing_it(cfg):
    r = run_one("dependencies.sentry.events", with_(cfg, "saas", sentry={"dsn": "https://sentry.example/no-key-42x"}))
    assert r.status == Status.FAIL and "no-key" not in as_json(r)
    assert parse_dsn("https://abc123@o1.ingest.sentry.io/4501")["project"] == "4501"
    assert parse_dsn("https://abc123@sentry.example/prefix/7")["path"] == "/prefix"
    assert key_class("sk_live_" + "x" * 20) == "sk_live_…" and key_class("rk_test_abc") == "rk_test_…"
    assert key_class("pk_live_abc").startswith("unknown prefix")


def _stripe(cfg) -> dict:
    return _plain(cfg.saas.stripe)


def _twilio(cfg) -> dict:
    return _plain(cfg.saas.twilio)


def _plain(model) -> dict:
    from pydantic import SecretStr
    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in model}


def own_fakes(tmp_path, **overrides):
    """A dedicated saas2 instance (HTTP + HTTPS for Kubernetes) with its own credentials."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    creds = saas2.new_credentials(lambda: secrets.token_urlsafe(16))
    fakes = saas2.Fakes.from_env(creds)
    for k, v in overrides.items():
        setattr(fakes, k, v)
    return saas2.running(fakes, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


# --------------------------------------------------------------------------- Docker, Kubernetes

def test_unhealthy_container_and_not_ready_node_fail(sandbox, cfg):
    with sandbox.fault("container-unhealthy"):
        r = run_one("dependencies.docker.containers", cfg)
    assert r.status == Status.FAIL and r.observed["problems"] == ["worker: unhealthy"]
    with sandbox.fault("k8s-node-notready"):
        res = run_ids(["dependencies.kubernetes.nodes", "dependencies.kubernetes.components"], cfg)
    nodes = res["dependencies.kubernetes.nodes"]
    assert nodes.status == Status.FAIL and nodes.observed["nodes"]["worker-2"].startswith("NotReady")
    assert "2 ready node(s) < 3" in nodes.observed["problems"]
    assert res["dependencies.kubernetes.components"].status == Status.PASS


def test_docker_over_tcp_and_a_missing_container(tmp_path):
    with own_fakes(tmp_path) as u:
        base = {"environment": "test", "containers": {"docker": {"url": u["docker"],
                                                                 "expected_containers": ["api", "worker"]}}}
        assert run_one("dependencies.docker.containers", parse_config(base, env={})).status == Status.PASS
        base["containers"]["docker"]["expected_containers"] = ["api", "billing"]
        r = run_one("dependencies.docker.containers", parse_config(base, env={}))
    assert r.status == Status.FAIL and r.observed["problems"] == ["billing: no such container"]
    assert "curl" in r.evidence and "/containers/json" in r.evidence


def test_kubernetes_wrong_token_and_untrusted_ca_are_errors(cfg, tmp_path):
    k = _plain(cfg.containers.kubernetes)
    r = run_one("dependencies.kubernetes.nodes", with_(cfg, "containers", kubernetes={**k, "token": "Wr0ng-k8s-t0ken"}))
    assert r.status == Status.ERROR and "401" in r.cause and "Wr0ng-k8s-t0ken" not in as_json(r)
    import trustme
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other.pem"))
    r = run_one("dependencies.kubernetes.nodes", with_(cfg, "containers", ca_file=str(tmp_path / "other.pem")))
    assert r.status == Status.ERROR and "certificate" in r.cause.lower()


def test_absent_subsections_are_not_applicable_with_the_reason():
    cfg = parse_config({"environment": "t", "saas": {}, "containers": {}}, env={})
    res = run_ids(SAAS_IDS + CONTAINER_IDS, cfg)
    assert {r.status for r in res.values()} == {Status.NOT_APPLICABLE}
    assert res["dependencies.stripe.api_key"].cause == "no `saas.stripe` configured"
    assert "containers.kubernetes" in res["dependencies.kubernetes.nodes"].cause
    res = run_ids(PGB_IDS, parse_config({"environment": "t"}, env={}))
    assert res["dependencies.pgbouncer.admin"].cause == "no `pgbouncer` section in the environment config"


# --------------------------------------------------------------------------- unreachable, hung

def unreachable(port: int, scheme: str = "http"):
    base = f"{scheme}://127.0.0.1:{port}"
    return parse_config({
        "environment": "nowhere",
        "postgres": {"host": "127.0.0.1", "port": port, "dbname": "d", "user": "u", "password": "db-password-123",
                     "sslmode": "disable"},
        "pgbouncer": {"host": "127.0.0.1", "port": port, "admin_user": "a", "admin_password": "pgb-password-123",
                      "sslmode": "disable"},
        "indexes": {},
        "saas": {"twilio": {"api_url": base, "account_sid": "AC" + "0" * 32, "auth_token": "twilio-token-123"},
                 "stripe": {"api_url": base, "secret_key": "sk_live_stripe-key-123",
                            "webhook_signing_secret": "whsec_signing-123"},
                 "sentry": {"dsn": f"http://0123456789abcdef@127.0.0.1:{port}/42"},
                 "analytics": {"measurement_id": "G-ABCDEF1", "page_url": base + "/", "collector_url": base}},
        "containers": {"docker": {"url": base, "expected_containers": ["api"]},
                       "kubernetes": {"api_url": base, "token": "k8s-token-123"}},
    }, env={})


def test_refused_targets_are_errors_or_skipped():
    cfg = unreachable(refused_port())
    res = run_ids(ALL_IDS, cfg)
    for i in ALL_IDS:
        assert res[i].status in (Status.ERROR, Status.SKIPPED), (i, res[i].status, res[i].summary)
        assert res[i].cause
    assert res["dependencies.twilio.account"].status == Status.SKIPPED
    assert res["dependencies.stripe.webhooks"].status == Status.SKIPPED
    assert res["dependencies.postgres.indexes"].status == Status.SKIPPED
    assert_no_secrets(res, cfg)


def test_hung_targets_end_as_errors_within_the_timeout():
    with hung_server() as port:
        cfg = unreachable(port)
        t0 = time.monotonic()
        res = run_ids(ALL_IDS, cfg, timeouts={i: 2.0 for i in [*ALL_IDS, "dependencies.postgres.reachable"]})
        wall = time.monotonic() - t0
    assert wall < 8  # every probe bounded (timing checks run one at a time, before the others)
    for i in ALL_IDS:
        assert res[i].status in (Status.ERROR, Status.SKIPPED), (i, res[i].status)
        assert res[i].duration_s <= 2.0 + 1.0, (i, res[i].duration_s)
    assert res["dependencies.docker.containers"].status == Status.ERROR
    assert "time" in res["dependencies.docker.containers"].cause.lower()
    assert_no_secrets(res, cfg)


# --------------------------------------------------------------------------- the sandbox's fault switches

@pytest.mark.parametrize("name", debian_faults(sorted(__import__("tests.probes_deps2",
                                                                  fromlist=["PROBES_2_7"]).PROBES_2_7)))
def test_fault_breaks_one_fact_and_repair_restores_it(sandbox, name):
    from tests.probes_deps2 import PROBES_2_7

    need(pgbouncer.executable() if name == "pgbouncer-down" else "", "pgbouncer")
    from golive.sandbox.parts import alertmanager
    need(alertmanager.executable() if name == "alertmanager-down" else "", "prometheus-alertmanager")
    probe, healthy, broken = PROBES_2_7[name]
    assert probe(sandbox) == healthy
    with sandbox.fault(name):
        assert probe(sandbox) == broken
    assert probe(sandbox) == healthy


@pytest.mark.e2e  # a sandbox of its own
def test_without_the_debian_packages_the_sandbox_runs_neither_and_says_so(monkeypatch):
    """The quick start needs pip only: without pgbouncer / prometheus-alertmanager the sandbox starts neither, its
    config has no section for them (NOT_APPLICABLE, with the reason) and the critical alerts do not pretend that an
    Alertmanager is there; everything else of sections 2 and 7 still passes."""
    from golive.flows.config import load_config
    from golive.sandbox import Sandbox

    monkeypatch.setattr(depstack, "have_pgbouncer", lambda: False)
    monkeypatch.setattr(depstack, "have_alertmanager", lambda: False)
    sb = Sandbox.start()
    try:
        assert "pgbouncer" not in sb.services and "alertmanager" not in sb.services
        text = sb.config_path.read_text()
        assert "# pgbouncer: not installed on this machine (apt-get install pgbouncer)" in text
        cfg = load_config(sb.config_path, env=sb.env)
        assert cfg.pgbouncer is None and cfg.observability.alertmanager is None
        assert cfg.monitoring.alert_rules.require_alertmanager is False
        ids = [*ALL_IDS, "monitoring.alerts.critical", "monitoring.alerts.warning", "monitoring.alertmanager.routing"]
        res = run_ids(ids, cfg)
        na = {i for i, r in res.items() if r.status == Status.NOT_APPLICABLE}
        assert na == {*PGB_IDS, "monitoring.alertmanager.reachable", "monitoring.alertmanager.routing"}
        assert res["dependencies.pgbouncer.admin"].cause == "no `pgbouncer` section in the environment config"
        assert res["monitoring.alertmanager.routing"].cause.endswith("no `observability.alertmanager` configured")
        assert all(r.status == Status.PASS for i, r in res.items() if i not in na), \
            {i: r.summary for i, r in res.items() if i not in na and r.status != Status.PASS}
        assert "alertmanagers" not in res["monitoring.alerts.critical"].observed
        with pytest.raises(RuntimeError, match="apt-get install pgbouncer"):
            sb.break_("pgbouncer-down")
        assert "pgbouncer-down" not in sb.faults
    finally:
        sb.stop()
