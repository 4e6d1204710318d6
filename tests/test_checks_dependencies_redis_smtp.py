"""Redis and SMTP checks (section 2, dependencies) against the sandbox's real servers and dedicated servers (the
sandbox's Redis and SMTP faults against their checks: tests/test_faults.py, but for AOF off, here)."""

from __future__ import annotations

import time

import pytest
import trustme

from golive.flows.config import parse_config
from golive.tasks.core import Status
from tests.support.checks import as_json, assert_no_secrets, run_ids, run_one, sandbox_config, with_
from tests.support.servers import hung_server, redis_server, refused_port

REDIS_IDS = [
    "dependencies.redis.ping",
    "dependencies.redis.memory",
    "dependencies.redis.persistence",
    "dependencies.redis.replication",
]
SMTP_IDS = ["dependencies.smtp.session", "dependencies.smtp.capacity"]


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


# --------------------------------------------------------------------------- Redis


def test_sandbox_redis_passes_every_check(cfg):
    res = run_ids(REDIS_IDS, cfg)
    assert {i: r.status for i, r in res.items()} == {i: Status.PASS for i in REDIS_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    assert len(res["dependencies.redis.ping"].details["samples_ms"]) == 10
    mem = res["dependencies.redis.memory"].observed
    assert mem["maxmemory"] == 64 * 1024 * 1024 and mem["maxmemory_policy"] == "allkeys-lru" and mem["ratio"] < 0.8
    assert res["dependencies.redis.persistence"].observed["aof_enabled"] == 1
    rep = res["dependencies.redis.replication"].observed
    assert rep["role"] == "master" and rep["connected_slaves"] == 1
    (replica,) = rep["replicas"].values()
    assert replica["caught_up"] is True and replica["master_link_status"] == "up"
    assert_no_secrets(res, cfg)


def test_aof_off_fails_persistence(sandbox, cfg):
    with sandbox.fault("redis-aof-off"):
        r = run_one("dependencies.redis.persistence", cfg)
    assert r.status == Status.FAIL and r.details["wrong"] == {"aof_enabled": 0}
    # a primary that is not required to run AOF passes on its RDB status alone
    with sandbox.fault("redis-aof-off"):
        assert run_one("dependencies.redis.persistence", with_(cfg, "redis", require_aof=False)).status == Status.PASS


def test_no_replicas_configured_is_not_applicable(cfg):
    r = run_one("dependencies.redis.replication", with_(cfg, "redis", replica_urls=[]))
    assert r.status == Status.NOT_APPLICABLE and "replica_urls" in r.cause


def test_redis_without_maxmemory_fails_with_no_limit():
    with redis_server("maxmemory 0", "maxmemory-policy allkeys-lru", password="redis-t3st-Passw0rd") as port:
        cfg = parse_config(
            {"environment": "test", "redis": {"url": f"redis://127.0.0.1:{port}/0", "password": "redis-t3st-Passw0rd"}},
            env={},
        )
        r = run_one("dependencies.redis.memory", cfg)
    assert r.status == Status.FAIL and r.observed["problems"] == ["no limit (maxmemory 0)"]


def test_redis_wrong_password_hung_and_refused_are_errors(cfg):
    bad = with_(cfg, "redis", password="Wr0ng-redis-Passw0rd")
    res = run_ids(REDIS_IDS, bad)
    assert res["dependencies.redis.ping"].status == Status.ERROR
    assert "password" in res["dependencies.redis.ping"].cause.lower()
    assert all(res[i].status == Status.SKIPPED for i in REDIS_IDS[1:])
    assert "Wr0ng-redis-Passw0rd" not in as_json(res)
    assert_no_secrets(res, bad)
    r = run_one("dependencies.redis.ping", with_(cfg, "redis", url=f"redis://127.0.0.1:{refused_port()}/0"))
    assert r.status == Status.ERROR and "refused" in r.cause.lower()
    with hung_server() as port:
        t0 = time.monotonic()
        r = run_one("dependencies.redis.ping", with_(cfg, "redis", url=f"redis://127.0.0.1:{port}/0"), timeout=1.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and "time" in r.cause.lower() and took < 1.5 + 1.0


def test_ping_threshold_is_compared_with_the_median(cfg):
    r = run_one("dependencies.redis.ping", with_(cfg, "redis", max_ping_ms=0.0001))
    assert r.status == Status.FAIL and r.expected == "< 0.0001 ms"


# --------------------------------------------------------------------------- SMTP


def test_sandbox_smtp_passes(cfg):
    res = run_ids(SMTP_IDS, cfg)
    s = res["dependencies.smtp.session"]
    assert s.status == Status.PASS, s.summary
    assert s.observed["banner"].startswith("220 ")
    assert s.observed["starttls"].startswith("negotiated TLSv1.")
    assert s.observed["auth"].startswith("235 accepted as ")
    assert "no mail sent" in s.evidence
    assert res["dependencies.smtp.capacity"].status == Status.PASS
    assert res["dependencies.smtp.capacity"].severity.value == "advisory"
    assert_no_secrets(res, cfg)


def test_wrong_smtp_password_fails_auth(cfg):
    bad = with_(cfg, "smtp", password="Wr0ng-smtp-Passw0rd")
    r = run_one("dependencies.smtp.session", bad)
    assert r.status == Status.FAIL and r.observed["auth"].startswith("535 rejected")
    assert "Wr0ng-smtp-Passw0rd" not in as_json(r)
    assert_no_secrets(r, bad)


def test_untrusted_smtp_certificate_fails(tmp_path, cfg):
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    r = run_one("dependencies.smtp.session", with_(cfg, "smtp", ca_file=str(tmp_path / "other-ca.pem")))
    assert r.status == Status.FAIL and r.observed["starttls"].startswith("certificate not trusted")


def test_smtp_hung_is_an_error_within_the_timeout(cfg):
    with hung_server() as port:  # accepts, never sends the banner
        t0 = time.monotonic()
        r = run_one("dependencies.smtp.session", with_(cfg, "smtp", port=port), timeout=1.5)
        took = time.monotonic() - t0
    assert r.status == Status.ERROR and "time" in r.cause.lower() and took < 1.5 + 1.0


def test_capacity_declared_below_or_not_at_all(cfg):
    r = run_one("dependencies.smtp.capacity", with_(cfg, "smtp", hourly_capacity=500))
    assert r.status == Status.FAIL and r.observed == "500 emails/hour" and r.expected == ">= 1000 emails/hour"
    r = run_one("dependencies.smtp.capacity", with_(cfg, "smtp", hourly_capacity=None))
    assert r.status == Status.NOT_APPLICABLE and "hourly_capacity" in r.cause
