"""Security checks (checklist 5.1-5.4) against the sandbox's real processes: the HTTPS app (cookies, admin panel,
rate limiter), its PostgreSQL (hashes, sensitive columns, 2FA, audit log), the app's git repository, and the
supply-chain mirrors (an OSV API for pip-audit, a simple package index, npm's bulk advisory endpoint). PASS on the
healthy sandbox, then each failing case through a config that expects something else (the sandbox's security faults
against their checks: tests/test_faults.py).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from golive.sandbox import application as appsetup
from golive.tasks.core import Status
from golive.tasks.security.data import classify_hash, hash_census_sql, looks_encrypted
from tests.support.checks import as_json, assert_no_secrets, run_ids, run_one, sandbox_config, with_

SEC_IDS = [
    "security.session.cookies",
    "security.passwords.hashing",
    "security.data.sensitive_columns",
    "security.transit.tls",
    "security.secrets.repository",
    "security.admin.panel",
    "security.admin.mfa",
    "security.network.db_exposure",
    "security.ratelimit.enforced",
    "security.audit.log",
    "security.dependencies.vulnerabilities",
    "security.dependencies.outdated",
]


@pytest.fixture(scope="session")
def cfg(sandbox):
    return sandbox_config(sandbox)


def test_sandbox_security_checks_pass(sandbox, cfg):
    res = run_ids(["infrastructure.web.reachable", "dependencies.postgres.reachable", *SEC_IDS], cfg)
    assert {i: r.status for i, r in res.items() if i in SEC_IDS} == {i: Status.PASS for i in SEC_IDS}, {
        i: r.summary for i, r in res.items() if r.status != Status.PASS
    }
    ck = res["security.session.cookies"].observed
    assert ck["secure"] and ck["httponly"] and ck["samesite"] == "lax" and ck["lifetime_h"] == 24.0
    assert ck["rotated_on_login"] is True
    assert res["security.passwords.hashing"].observed["schemes"] == {"bcrypt": 500}
    assert res["security.admin.panel"].observed["/admin"] == {"anonymous": 401, "non_admin": 403}
    assert res["security.admin.mfa"].observed == {"admins": 3, "without_2fa": []}
    rl = res["security.ratelimit.enforced"].observed
    assert rl["first_429_at_request"] == 601 and rl["retry_after"]
    assert res["security.audit.log"].observed["oldest_age_days"] >= 90
    tls = res["security.transit.tls"].observed
    assert tls["api"] in ("TLSv1.2", "TLSv1.3") and tls["postgres"].startswith("not applicable")
    dep = res["security.dependencies.vulnerabilities"].observed
    assert dep["audited"] > 50 and dep["vulnerable"] == {}
    assert res["security.dependencies.outdated"].observed["checked"] == len(appsetup.WATCHED)
    for r in res.values():
        assert r.evidence and r.expected is not None, r.id
    assert not re.search(r"\$2b\$10\$", as_json(res))  # no hash value anywhere
    assert_no_secrets(res, cfg)


def test_rate_limit_probe_is_opt_in_and_a_missing_limit_fails(cfg):
    off = with_(cfg, "security", rate_limit_probe=False)
    r = run_one("security.ratelimit.enforced", off)
    assert r.status == Status.NOT_APPLICABLE and "rate_limit_probe" in r.cause
    # expecting a limit of 100/min: the app's 600 gives no 429 within 100 + 10% + 10 requests
    r = run_one("security.ratelimit.enforced", with_(cfg, "security", rate_limit_per_minute=100))
    assert r.status == Status.FAIL and r.observed["first_429_at_request"] is None
    assert r.observed["requests"] == 120 and r.observed["statuses"] == {200: 120}


def test_plaintext_sensitive_column_and_remote_redis_without_tls_fail(cfg):
    r = run_one("security.data.sensitive_columns", with_(cfg, "security", sensitive_columns=["users.email"]))
    assert r.status == Status.FAIL and r.observed["users.email"]["plaintext_looking"] == 500
    assert "@" not in json.dumps(r.observed)  # ids and reasons, not values
    r = run_one("security.transit.tls", with_(cfg, "redis", url="redis://cache.internal.example:6379/0"))
    assert r.status == Status.FAIL and r.details["failing"] == ["redis"]
    assert r.observed["redis"] == {"scheme": "redis"}


def test_transit_tls_is_skipped_behind_an_unreachable_database_not_an_error_of_its_own(cfg):
    """One root cause, one failure: the database down is dependencies.postgres.reachable's failure."""
    from tests.support.servers import refused_port

    down = with_(cfg, "postgres", host="db.internal.example", port=refused_port())
    res = run_ids(["infrastructure.web.reachable", "dependencies.postgres.reachable", "security.transit.tls"], down)
    assert res["dependencies.postgres.reachable"].status in (Status.FAIL, Status.ERROR)
    r = res["security.transit.tls"]
    assert r.status == Status.SKIPPED and "dependencies.postgres.reachable" in r.cause, (r.status, r.cause)


def test_hash_and_ciphertext_classifiers():
    assert classify_hash("$2b$12$" + "a" * 53) == "bcrypt"
    assert classify_hash("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQxMjM$" + "A" * 43) == "argon2"
    assert classify_hash("5f4dcc3b5aa765d61d8327deb882cf99") == "md5"
    assert classify_hash("5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8") == "sha1"
    assert classify_hash("hunter2") == "plaintext-or-unknown"
    assert looks_encrypted("v1:" + "q83vEjRWeJq8nN7/AQIDBAUGBwgJCgsMDQ4PEBESExQ=", None)[0]
    assert not looks_encrypted("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", None)[0]  # a base32 TOTP secret
    assert not looks_encrypted("alice@example.com", None)[0]


SAMPLES = [
    "$2b$12$" + "a" * 53,
    "$2a$08$" + "b" * 53,
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQxMjM$" + "A" * 43,
    "5f4dcc3b5aa765d61d8327deb882cf99",
    "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
    "hunter2",
    "",
    "$6$salt$" + "x" * 86,
    "pbkdf2_sha256$600000$salt$hash",
]


def test_the_database_classifies_hashes_as_golive_does(sandbox):
    """The check classifies in SQL (no hash leaves the database): same answer as classify_hash, sample by sample."""
    with sandbox.admin_db() as conn:
        conn.execute("CREATE TEMP TABLE pw_samples (id int, pw text)")
        for i, v in enumerate(SAMPLES):
            conn.execute("INSERT INTO pw_samples VALUES (%s, %s)", (i, v))
        rows = conn.execute(hash_census_sql("pw_samples", "pw", "id")).fetchall()
    by_id = {i: (scheme, cost) for scheme, cost, _, ids in rows for i in ids}
    assert {i: s for i, (s, _) in by_id.items()} == {i: classify_hash(v) for i, v in enumerate(SAMPLES)}
    assert by_id[0] == ("bcrypt", 12) and by_id[1] == ("bcrypt", 8)
    r = run_one("security.passwords.hashing", with_(sandbox_config(sandbox), "security", min_bcrypt_cost=11))
    assert r.status == Status.FAIL and len(r.observed["offending_ids"]["bcrypt cost < 11"]) == 10  # seed: cost 10


def test_npm_audit_runs_where_a_package_lock_exists(sandbox, cfg, tmp_path):
    registry = f"http://127.0.0.1:{sandbox.ports['advisories']}/"

    def lock(version: str) -> None:
        (tmp_path / "package.json").write_text(
            json.dumps(
                {
                    "name": "swipesavvy-frontend",
                    "version": "2.4.0",
                    "private": True,
                    "dependencies": {"lodash": version},
                }
            )
        )
        (tmp_path / "package-lock.json").write_text(
            json.dumps(
                {
                    "name": "swipesavvy-frontend",
                    "version": "2.4.0",
                    "lockfileVersion": 3,
                    "requires": True,
                    "packages": {
                        "": {"name": "swipesavvy-frontend", "version": "2.4.0", "dependencies": {"lodash": version}},
                        "node_modules/lodash": {"version": version},
                    },
                }
            )
        )

    deps = {
        **cfg.security.dependencies.model_dump(mode="json"),
        "npm_lock_dir": str(tmp_path),
        "npm_registry": registry,
    }
    with_npm = with_(cfg, "security", dependencies=deps)
    lock("4.17.20")
    r = run_one("security.dependencies.vulnerabilities", with_npm)
    if shutil.which("npm") is None:  # the check says so: a FAIL, never a silent pass
        assert r.status == Status.FAIL and "npm is not installed" in str(r.observed["npm"])
        return
    assert r.status == Status.FAIL, r.summary
    assert r.observed["npm"]["counts"]["high"] == 1 and r.observed["npm"]["packages"] == ["lodash"]
    assert "npm audit --package-lock-only" in r.evidence
    lock("4.17.21")
    r = run_one("security.dependencies.vulnerabilities", with_npm)
    assert r.status == Status.PASS, r.summary
    assert r.observed["npm"]["counts"]["high"] == 0
