"""Every sandbox fault against the check(s) it must make fail: one table, FAULT_CHECKS (issue 13).

For each fault of the sandbox's list (golive.sandbox.FAULTS) in the table: the fault is turned on, each check the
table names for it is run through the real runner, and each result must have the status the table gives and show
its texts (in what the check observed, expected, or its cause). A check the table gives PASS is a sibling the fault
must leave alone. After the repair every check the fault broke passes again, and no result shows a secret.

The checks run without their dependencies (`run_alone`): where the same fault breaks a dependency too (the DNS answer
of `dns-single-a`), the dependent would be SKIPPED and hide what the check itself sees. The skips that follow a
broken dependency have their own tests (e.g. tests/test_checks_infrastructure.py, tests/test_root_causes.py).

A fault whose failure needs more than this table says (a restore that must leave nothing behind, a count that must
grow, a value read from the running sandbox) is tested next to its check instead: TESTED_ELSEWHERE names the file,
and `test_every_sandbox_fault_is_tested_against_its_checks` keeps the two tables and the fault list the same set.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from golive.sandbox import FAULTS
from golive.sandbox import application as appsetup
from golive.tasks.core import CheckResult, Status, run_plain
from tests.conftest import debian_faults
from tests.support.checks import CATALOG, as_json, assert_no_secrets, sandbox_config

FAIL, ERROR, PASS = Status.FAIL, Status.ERROR, Status.PASS

# fault -> {check id: (its status under the fault, *texts its result shows)}
FAULT_CHECKS: dict[str, dict[str, tuple]] = {
    # --- infrastructure: the web edge, the network, the load balancer, the hosts
    "http-no-redirect": {"infrastructure.http.redirect": (FAIL, "200 Location: (none)")},
    "web-hang": {"infrastructure.web.reachable": (ERROR, "timed out")},
    "dns-ttl-long": {"infrastructure.dns.records": (FAIL, "'ttl_s': 3600")},
    "dns-cname-chain": {"infrastructure.dns.records": (FAIL, "app.edge.swipesavvy-cdn.test.")},
    "dns-single-a": {
        "infrastructure.dns.records": (FAIL, "['10.20.1.11']"),
        "infrastructure.dns.frontend_pool": (FAIL, "['10.20.1.11']"),
    },
    "bastion-no-banner": {"infrastructure.bastion.ssh": (FAIL, "no banner")},
    "cdn-ttl-long": {"infrastructure.cdn.cache_ttl": (FAIL, "'ttl_s': 86400")},
    "cdn-wrong-origin": {"infrastructure.cdn.origin": (FAIL, "DIFFERENT body")},
    "firewall-port-open": {"infrastructure.firewall.ports": (FAIL, "'open'")},
    "backend-instance-500": {"infrastructure.lb.backend_pool": (FAIL, ": 500}")},
    "lb-target-unhealthy": {"infrastructure.lb.backend_pool": (FAIL, "unused (Target.InvalidState)")},
    "node-target-down": {"infrastructure.backend.status": (FAIL, "'up': False")},
    # --- dependencies
    "redis-noeviction": {
        "dependencies.redis.memory": (
            FAIL,
            "'maxmemory_policy': 'noeviction'",
            "eviction policy noeviction != allkeys-lru",
        )
    },
    "redis-replica-down": {
        "dependencies.redis.replication": (FAIL, "0 connected replicas", "'caught_up': False", "'unreachable'")
    },
    "smtp-down": {"dependencies.smtp.session": (ERROR, "refused")},
    "smtp-no-starttls": {
        "dependencies.smtp.session": (FAIL, "'starttls': 'not offered'", "'auth': 'not attempted")
    },  # AUTH never sent in the clear
    "twilio-suspended": {"dependencies.twilio.account": (FAIL, "account status 'suspended'")},
    "stripe-webhook-event-missing": {"dependencies.stripe.webhooks": (FAIL, "events not subscribed: charge.refunded")},
    "sentry-rejects": {"dependencies.sentry.events": (FAIL, "'http': 403", "ProjectDisabled")},
    "analytics-snippet-missing": {
        "dependencies.analytics.tracking": (FAIL, "no gtag.js <script> for G-GOLIVE2026 on the page")
    },
    "container-unhealthy": {"dependencies.docker.containers": (FAIL, "'problems': ['worker: unhealthy']")},
    "k8s-node-notready": {
        "dependencies.kubernetes.nodes": (FAIL, "'worker-2': 'NotReady", "2 ready node(s) < 3"),
        "dependencies.kubernetes.components": (PASS,),
    },
    # --- data
    "schema-version-wrong": {"data.migrations.version": (FAIL, "'version': '20251205160000'", "== 20251231080000")},
    # --- application
    "health-down": {
        "application.api.health": (FAIL, "503, status='unhealthy'"),
        "performance.api.latency_p95": (FAIL, "'non_200': 20"),
    },
    "auth-off": {
        "security.api.auth_required": (FAIL, "'without credentials': 200"),
        "application.api.errors": (FAIL, "'/api/campaigns': '200"),
    },
    "env-missing": {"application.runtime.env_vars": (FAIL, "'missing': ['SECRET_KEY']")},
    "bundle-too-big": {"application.frontend.bundle": (FAIL, "'total_mb': 6.0")},
    "bundle-unminified": {"application.frontend.bundle": (FAIL, "/static/app.js")},
    "asset-missing": {"application.frontend.assets": (FAIL, "'/static/logo.png': 404")},
    "job-missing": {"application.workers.jobs": (FAIL, "'weekly_model_retraining': 'missing from the job store'")},
    # --- security
    "hsts-short": {"security.headers.hsts": (FAIL, "3600 s")},
    "cors-wildcard": {"security.cors.origins": (FAIL, "Access-Control-Allow-Origin: *")},
    "cookie-insecure": {"security.session.cookies": (FAIL, "'problems': ['no Secure', 'no HttpOnly']")},
    "password-plaintext": {"security.passwords.hashing": (FAIL, "'plaintext-or-unknown': [42]")},
    "admin-no-2fa": {"security.admin.mfa": (FAIL, "'without_2fa': [2]")},
    "admin-open": {"security.admin.panel": (FAIL, "'anonymous': 200")},
    "audit-log-short": {"security.audit.log": (FAIL, "'oldest_age_days': 2")},
    "db-exposed": {"security.network.db_exposure": (FAIL, "ACCEPTED")},
    "secrets-committed": {"security.secrets.repository": (FAIL, "'.env.production:3 aws-access-key-id'")},
    "vuln-published": {"security.dependencies.vulnerabilities": (FAIL, "GHSA-sbx3-starlette-2026")},
    "package-outdated": {"security.dependencies.outdated": (FAIL, "sqlalchemy")},
    # --- performance
    "lb-algorithm-random": {"performance.lb.distribution": (FAIL, "weighted_random")},
    "autoscaling-min-1": {"performance.autoscaling.config": (FAIL, "'min': 1")},
    "loadtest-p95-slow": {"performance.loadtest.p95": (FAIL, "'k6': '812 ms'")},
    "loadtest-low-throughput": {"performance.loadtest.throughput": (FAIL, "'locust': '31.5'")},
    "loadtest-memory-high": {"performance.loadtest.memory": (FAIL, "'k6': '1,434 MiB'")},
    "loadtest-cpu-high": {"performance.loadtest.cpu": (FAIL, "'k6': '86.0 %'")},
    # --- monitoring
    "alert-threshold-wrong": {"monitoring.alerts.critical": (FAIL, "threshold > 10%, expected > 5%")},
    "alertmanager-down": {"monitoring.alertmanager.reachable": (ERROR, "refused")},
    "grafana-dashboard-missing": {"monitoring.grafana.dashboards": (FAIL, "'missing': ['API Overview']")},
    "es-yellow": {"monitoring.elasticsearch.health": (FAIL, "'status': 'yellow'")},
    "es-red": {"monitoring.elasticsearch.health": (FAIL, "'status': 'red'")},
    "kibana-degraded": {"monitoring.kibana.status": (FAIL, "'overall': 'degraded'")},
    # --- backup
    "backup-missing": {
        "backup.s3.reachable": (PASS, "listable: 0 object(s)"),
        **dict.fromkeys(
            ["backup.s3.latest_full", "backup.s3.size", "backup.s3.encrypted"],
            (FAIL, "no backup found under s3://golive-backups/backups/"),
        ),
        "backup.s3.wal_fresh": (PASS,),
    },
    "wal-missing": {"backup.s3.wal_fresh": (FAIL, "no WAL/incremental backup found")},
    "backup-retention-short": {
        "backup.s3.retention": (
            FAIL,
            "lifecycle expires backups too early: expire-backups: "
            "prefix 'backups/', expires after 7 days (covers backups/)",
        )
    },
    "backup-alert-missing": {
        "backup.automation.failure_alert": (FAIL, "no alerting rule matches /(?i)backup/ (among 6 alerting rules)")
    },
    "config-backup-missing": {
        "backup.s3.config_files": (FAIL, "'nginx.conf': 'missing'", "'problems': ['nginx.conf: no backup']")
    },
    "rollback-rehearsal-stale": {"backup.rollback.rehearsal": (FAIL, "['the last rehearsal was 10.0 days ago']")},
    "release-tag-missing": {"backup.code.release_tag": (FAIL, "release tag v2.4.0 is missing in ")},
    # --- team: each fault of the Slack / PagerDuty fakes fails its own check only
    "runbook-missing": {"team.runbooks.reachable": (FAIL, "{'deployment': '200', 'rollback': '404'}")},
    "slack-channel-archived": {
        "team.slack.channels": (FAIL, "#alerts-production", "archived"),
        "team.oncall.current": (PASS,),
        "team.comms.templates": (PASS,),
    },
    "oncall-nobody": {
        "team.oncall.current": (FAIL, "nobody on call at level 1 now"),
        "team.slack.channels": (PASS,),
        "team.comms.templates": (PASS,),
    },
    "oncall-escalation-slow": {
        "team.oncall.current": (FAIL, "escalates after 15 min (> 5)"),
        "team.slack.channels": (PASS,),
        "team.comms.templates": (PASS,),
    },
    "comms-template-missing": {
        "team.comms.templates": (FAIL, "customer_email_template", "404"),
        "team.slack.channels": (PASS,),
        "team.oncall.current": (PASS,),
    },
    "saas-bad-token": {
        "team.slack.channels": (ERROR, "Slack rejected the bot token (invalid_auth)"),
        "team.oncall.current": (ERROR, "rejected the token", "HTTP 401"),
        "team.comms.templates": (PASS,),
    },
}

#: the deadline a fault's checks run under where the check's own would only make the test wait (a port that never
#: answers is an ERROR after any deadline)
TIMEOUTS = {"web-hang": 2.0}

#: fault -> the test file that turns it on against its check(s), and what that test asserts beyond this table
TESTED_ELSEWHERE = {
    "tls-expiry": "test_checks_web.py",  # the days left on the certificate; its chain still verifies
    "redis-aof-off": "test_checks_dependencies_redis_smtp.py",  # a primary not required to run AOF passes
    "postgres-down": "test_checks_postgres.py",  # ERROR, and every dependent SKIPPED naming it as the root cause
    "index-missing": "test_checks_postgres.py",  # the plan turns to a Seq Scan (EXPLAIN); after the repair, the index
    "pgbouncer-down": "test_checks_dependencies_pgbouncer.py",  # ERROR, and the pool check SKIPPED
    "scheduler-down": "test_checks_application.py",  # the heartbeat's age grows; restarted, it beats again
    "logs-stale": "test_checks_monitoring.py",  # the newest log's age; a red cluster skips freshness
    "backup-unencrypted": "test_backup_s3.py",  # the unencrypted object is the newest one (and test_restore.py)
    "backup-stale": "test_restore.py",  # its age, the restore SKIPPED (test_backup_s3.py: the schedule's gap)
    "wal-stale": "test_restore.py",  # the WAL's age and the RPO
    "backup-truncated": "test_restore.py",  # pg_restore's evidence; the scratch database dropped
    "backup-not-a-dump": "test_restore.py",  # refused before anything is restored
    "backup-wrong-db": "test_restore.py",  # refused by the dump's header, else caught by the row counts
    "backup-bucket-empty": "test_restore.py",  # the restore SKIPPED, and alone it says why
    "s3-forbidden": "test_restore.py",  # one failure with S3's answer, the readers SKIPPED
    "restore-is-source": "test_restore.py",  # refused by system identifier, production's databases unchanged
    "alert-data-corruption": "test_watch.py",  # a rollback criterion of the deploy watch, not a readiness check
    "alert-payments-down": "test_golive_e2e.py",  # ditto, end to end (`pytest -m e2e`)
}


@pytest.fixture(scope="module")
def cfg(sandbox):
    return sandbox_config(sandbox)


def run_alone(ids, config, timeout: float | None = None) -> dict[str, CheckResult]:
    """The checks through the real runner (one run, as a section runs them), none waiting for its dependencies."""
    specs = {i: dataclasses.replace(CATALOG[i], depends_on=(), timeout=timeout or CATALOG[i].timeout) for i in ids}
    return {r.id: r for r in run_plain(specs, config)}


def test_every_sandbox_fault_is_tested_against_its_checks():
    assert not set(FAULT_CHECKS) & set(TESTED_ELSEWHERE)
    assert set(FAULT_CHECKS) | set(TESTED_ELSEWHERE) == set(FAULTS), (
        "a fault neither in FAULT_CHECKS nor in TESTED_ELSEWHERE, or one the sandbox no longer has"
    )
    here = Path(__file__).parent
    for fault, file in TESTED_ELSEWHERE.items():
        assert f'"{fault}"' in (here / file).read_text(), (fault, file)


@pytest.mark.parametrize("fault", debian_faults([f for f in FAULTS if f in FAULT_CHECKS]))
def test_fault_fails_its_checks_and_the_repair_passes_them(sandbox, cfg, fault):
    expected = FAULT_CHECKS[fault]
    with sandbox.fault(fault):
        results = run_alone(list(expected), cfg, TIMEOUTS.get(fault))
    for cid, (status, *texts) in expected.items():
        r = results[cid]
        assert r.status == status, (cid, r.status, r.summary)
        shown = f"{r.observed}\n{r.expected}\n{r.cause}"
        for text in texts:
            assert text in shown, (cid, text, shown)
    blob = as_json(results)
    assert appsetup.PLAINTEXT_PASSWORD not in blob and "AKIA" not in blob  # classified, never shown
    assert_no_secrets(results, cfg)
    broken = [cid for cid, (status, *_) in expected.items() if status != PASS]
    assert {cid: r.status for cid, r in run_alone(broken, cfg).items()} == dict.fromkeys(broken, PASS), "repaired"
