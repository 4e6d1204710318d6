"""Section 2, dependencies, beyond the servers: the service APIs Twilio / Stripe / Sentry / Google Analytics (`saas`)
and Docker / Kubernetes (`containers`), against local fakes that answer like the real APIs
(sandbox/fakes/service_apis.py), each passing and failing for real. The unreachable, hung and absent cases cover
every section-2 check beyond PostgreSQL, Redis and SMTP: PgBouncer's and the indexes' too. The sandbox's faults of
these APIs against their checks: tests/test_faults.py."""

from __future__ import annotations

import secrets
import time

import pytest

from golive.flows.config import parse_config
from golive.sandbox.fakes import service_apis as saas2
from golive.tasks.core import Status
from golive.tasks.saas import key_class, parse_dsn
from tests.support.checks import as_json, assert_no_secrets, run_dag, run_one, sandbox_config, with_
from tests.support.servers import hung_server, refused_port

PGB_IDS = ["dependencies.pgbouncer.admin", "dependencies.pgbouncer.pools"]
SAAS_IDS = [
    "dependencies.twilio.api",
    "dependencies.twilio.account",
    "dependencies.stripe.api_key",
    "dependencies.stripe.webhooks",
    "dependencies.sentry.events",
    "dependencies.analytics.tracking",
]
CONTAINER_IDS = [
    "dependencies.docker.containers",
    "dependencies.kubernetes.nodes",
    "dependencies.kubernetes.components",
]
ALL_IDS = PGB_IDS + ["dependencies.postgres.indexes"] + SAAS_IDS + CONTAINER_IDS


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


# --------------------------------------------------------------------------- the healthy sandbox


def test_every_saas_and_container_check_passes_on_the_sandbox(cfg):
    ids = SAAS_IDS + CONTAINER_IDS
    res = run_dag(ids, cfg)
    bad = {i: f"{r.status.value}: {r.summary}" for i, r in res.items() if i in ids and r.status != Status.PASS}
    assert not bad, bad
    assert res["dependencies.docker.containers"].evidence.count("--unix-socket") == 1  # the Engine API over a socket
    assert res["dependencies.stripe.api_key"].observed["key"] == "sk_test_…"
    assert res["dependencies.twilio.account"].observed["status"] == "active"
    assert_no_secrets(res, cfg)
    blob = as_json(res)
    for secret in (
        cfg.saas.stripe.secret_key,
        cfg.saas.sentry.dsn,
        cfg.saas.twilio.auth_token,
        cfg.containers.kubernetes.token,
    ):
        assert secret.get_secret_value() not in blob
    assert "@127.0.0.1" in res["dependencies.sentry.events"].observed["dsn"]
    assert res["dependencies.sentry.events"].observed["dsn"].startswith("http://***@")


# --------------------------------------------------------------------------- Twilio, Stripe, Sentry, Analytics


def test_stripe_test_key_in_production_fails_and_live_key_passes(cfg, tmp_path):
    prod = cfg.model_copy(update={"production": True})
    r = run_one("dependencies.stripe.api_key", prod)
    assert r.status == Status.FAIL and r.observed["problems"] == ["a sk_test_… key in production"]
    assert r.observed["livemode"] is False and prod.saas.stripe.secret_key.get_secret_value() not in as_json(r)
    live = "sk_live_" + secrets.token_urlsafe(24)
    with own_fakes(tmp_path, stripe_key=live) as u:
        live_cfg = parse_config(
            {
                "environment": "production",
                "production": True,  # production: secrets by reference
                "saas": {
                    "stripe": {
                        "api_url": u["stripe"],
                        "secret_key": "${STRIPE_KEY}",
                        "webhook_signing_secret": "${STRIPE_WHSEC}",
                    }
                },
            },
            env={"STRIPE_KEY": live, "STRIPE_WHSEC": "whsec_" + "a" * 24},
        )
        res = run_dag(["dependencies.stripe.api_key", "dependencies.stripe.webhooks"], live_cfg)
    assert res["dependencies.stripe.api_key"].status == Status.PASS
    assert res["dependencies.stripe.api_key"].observed == {"key": "sk_live_…", "http": 200, "livemode": True}
    assert res["dependencies.stripe.webhooks"].status == Status.PASS
    assert live not in as_json(res) and "whsec_" + "a" * 24 not in as_json(res)


def test_stripe_wrong_key_and_missing_signing_secret_fail(cfg):
    r = run_one(
        "dependencies.stripe.api_key",
        with_(cfg, "saas", stripe={**_stripe(cfg), "secret_key": "sk_test_Wr0ngKey0000000000"}),
    )
    assert r.status == Status.FAIL and r.observed["http"] == 401 and "Wr0ngKey" not in as_json(r)
    r = run_one(
        "dependencies.stripe.webhooks", with_(cfg, "saas", stripe={**_stripe(cfg), "webhook_signing_secret": None})
    )
    assert r.status == Status.FAIL and r.observed["signing_secret"] == "missing"
    r = run_one(
        "dependencies.stripe.webhooks",
        with_(cfg, "saas", stripe={**_stripe(cfg), "webhook_url": "https://elsewhere.swipesavvy.test/hook"}),
    )
    assert r.status == Status.FAIL and r.observed["problems"][0].startswith("no enabled webhook endpoint for")


def test_twilio_wrong_token_and_slow_api_fail(cfg):
    tw = cfg.saas.twilio.model_dump()
    tw["auth_token"] = "0" * 32
    r = run_one("dependencies.twilio.api", with_(cfg, "saas", twilio=tw))
    assert r.status == Status.FAIL and r.observed == "HTTP 401: authentication refused" and "0" * 32 not in as_json(r)
    r = run_one("dependencies.twilio.api", with_(cfg, "saas", twilio={**_twilio(cfg), "max_latency_s": 1e-6}))
    assert r.status == Status.FAIL and r.expected == "< 1e-06 s"
    r = run_one(
        "dependencies.twilio.account", with_(cfg, "saas", twilio={**_twilio(cfg), "sender_numbers": ["+14155550100"]})
    )
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


def test_docker_over_tcp_and_a_missing_container(tmp_path):
    with own_fakes(tmp_path) as u:
        base = {
            "environment": "test",
            "containers": {"docker": {"url": u["docker"], "expected_containers": ["api", "worker"]}},
        }
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
    res = run_dag(SAAS_IDS + CONTAINER_IDS, cfg)
    assert {r.status for r in res.values()} == {Status.NOT_APPLICABLE}
    assert res["dependencies.stripe.api_key"].cause == "no `saas.stripe` configured"
    assert "containers.kubernetes" in res["dependencies.kubernetes.nodes"].cause
    res = run_dag(PGB_IDS, parse_config({"environment": "t"}, env={}))
    assert res["dependencies.pgbouncer.admin"].cause == "no `pgbouncer` section in the environment config"


# --------------------------------------------------------------------------- unreachable, hung


def unreachable(port: int, scheme: str = "http"):
    base = f"{scheme}://127.0.0.1:{port}"
    return parse_config(
        {
            "environment": "nowhere",
            "postgres": {
                "host": "127.0.0.1",
                "port": port,
                "dbname": "d",
                "user": "u",
                "password": "db-password-123",
                "sslmode": "disable",
            },
            "pgbouncer": {
                "host": "127.0.0.1",
                "port": port,
                "admin_user": "a",
                "admin_password": "pgb-password-123",
                "sslmode": "disable",
            },
            "indexes": {},
            "saas": {
                "twilio": {"api_url": base, "account_sid": "AC" + "0" * 32, "auth_token": "twilio-token-123"},
                "stripe": {
                    "api_url": base,
                    "secret_key": "sk_live_stripe-key-123",
                    "webhook_signing_secret": "whsec_signing-123",
                },
                "sentry": {"dsn": f"http://0123456789abcdef@127.0.0.1:{port}/42"},
                "analytics": {"measurement_id": "G-ABCDEF1", "page_url": base + "/", "collector_url": base},
            },
            "containers": {
                "docker": {"url": base, "expected_containers": ["api"]},
                "kubernetes": {"api_url": base, "token": "k8s-token-123"},
            },
        },
        env={},
    )


def test_refused_targets_are_errors_or_skipped():
    cfg = unreachable(refused_port())
    res = run_dag(ALL_IDS, cfg)
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
        res = run_dag(ALL_IDS, cfg, timeouts={i: 2.0 for i in [*ALL_IDS, "dependencies.postgres.reachable"]})
        wall = time.monotonic() - t0
    assert wall < 8  # every probe bounded (timing checks run one at a time, before the others)
    for i in ALL_IDS:
        assert res[i].status in (Status.ERROR, Status.SKIPPED), (i, res[i].status)
        assert res[i].duration_s <= 2.0 + 1.0, (i, res[i].duration_s)
    assert res["dependencies.docker.containers"].status == Status.ERROR
    assert "time" in res["dependencies.docker.containers"].cause.lower()
    assert_no_secrets(res, cfg)
