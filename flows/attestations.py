"""Attestations: the checklist items only people can know (a briefing was held, the CEO was told, I will be around).

They are not fake checks: each is a statement a signer attests on the sign-off form, with the role that answers for
it and the seed items it covers. Where a machine can know part of an item, that part is a check (the contact list is
complete, the release notes answer 200, someone is on call) and the attestation covers only the rest.

`id` is a snake_case identifier (the sign-off form's field is `attest_<id>`); `role` is the owning role's name
(`flows.policies.Role`) or `every signer` for what each signer acknowledges personally (seed 10.3).
Kept free of Prefect imports.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .policies import Role

EVERY_SIGNER = "every signer"
ROLE_NAMES = frozenset(r.value for r in Role) | {EVERY_SIGNER}


class Attestation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{2,60}$")
    statement: str = Field(min_length=10, description="what the signer attests, as they would say it")
    role: str = Field(description="the owning role (a flows.policies.Role value) or 'every signer'")
    seed: tuple[str, ...] = Field(default=(), description="seed items (flows/seed_items.json refs) it covers")
    source: str = Field(description="where the wording comes from in the seed checklist")

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ROLE_NAMES:
            raise ValueError(f"unknown role {v!r}; one of {sorted(ROLE_NAMES)}")
        return v


def _a(id: str, statement: str, role: Role | str, seed: tuple[str, ...], source: str) -> Attestation:
    return Attestation(
        id=id, statement=statement, role=role.value if isinstance(role, Role) else role, seed=seed, source=source
    )


ATTESTATIONS: tuple[Attestation, ...] = (
    _a(
        "team_briefed",
        "Every team member (DevOps, Backend, Frontend, QA, PM) was briefed on the timeline, the "
        "procedures and the escalation path",
        Role.DEPLOYMENT_COORDINATOR,
        ("9.1 Team Briefing",),
        "9.1 Team Briefing: attendees, topics",
    ),
    _a(
        "briefing_questions_answered",
        "All questions raised in the team briefing were answered",
        Role.DEPLOYMENT_COORDINATOR,
        ("9.1 Team Briefing",),
        "9.1 Team Briefing: questions all answered",
    ),
    _a(
        "contact_phones_verified",
        "The phone numbers on the emergency contact list were verified with their owners",
        Role.DEPLOYMENT_COORDINATOR,
        ("9.1 Team Contact Info",),
        "9.1 Team Contact Info: phone numbers updated and verified (golive checks only that they are well-formed)",
    ),
    _a(
        "runbooks_printed",
        "The deployment runbook is printed and the emergency contacts are posted at the deployment terminal",
        Role.DEVOPS_LEAD,
        ("9.1 Runbooks Available",),
        "9.1 Runbooks Available: printed; emergency contacts posted (golive checks that the runbooks answer)",
    ),
    _a(
        "executives_informed",
        "The CEO and CFO were informed of the go-live",
        Role.VP_ENGINEERING,
        ("9.2 Stakeholder Notification",),
        "9.2 Stakeholder Notification: CEO/CFO informed",
    ),
    _a(
        "product_team_ready",
        "The product team is ready for urgent issues during and after the go-live",
        Role.PRODUCT_LEAD,
        ("9.2 Stakeholder Notification",),
        "9.2 Stakeholder Notification: product team ready",
    ),
    _a(
        "support_team_briefed",
        "The support team was briefed on the new features",
        Role.PRODUCT_LEAD,
        ("9.2 Stakeholder Notification",),
        "9.2 Stakeholder Notification: support team briefed",
    ),
    _a(
        "rollback_decision_known",
        "The team knows how to decide a rollback: the documented criteria, that the CTO "
        "makes the final call, and the steps to execute it",
        Role.CTO,
        ("8.2 Rollback Decision",),
        "8.2 Rollback Decision: criteria, owner, process",
    ),
    _a(
        "blog_post_drafted",
        "The go-live blog post draft is ready",
        Role.PRODUCT_LEAD,
        ("9.2 Post-Deployment Communication",),
        "9.2 Post-Deployment Communication: blog post (golive checks the release notes)",
    ),
    _a(
        "social_posts_queued",
        "The social media posts are queued",
        Role.PRODUCT_LEAD,
        ("9.2 Post-Deployment Communication",),
        "9.2 Post-Deployment Communication: social media",
    ),
    _a(
        "rollback_procedures_understood",
        "I understand the rollback procedures",
        EVERY_SIGNER,
        (),
        "10.3 Stakeholder Sign-Off: acknowledgement 3",
    ),
    _a(
        "available_post_deployment",
        "I am available for post-deployment monitoring (the first hour is critical)",
        EVERY_SIGNER,
        (),
        "10.3 Stakeholder Sign-Off: acknowledgement 4; Post-Checklist Handover: monitor",
    ),
    # sections 1 and 6: what golive's probes cannot see
    _a(
        "bastion_keys_valid",
        "Every ops team member has a valid SSH key on the bastion host and has logged in with it",
        Role.INFRASTRUCTURE_LEAD,
        ("1.2 VPN/Bastion Access",),
        "1.2 VPN/Bastion Access: keys: all team members have valid keys (golive checks that the bastion answers SSH)",
    ),
    _a(
        "firewall_egress_verified",
        "The cloud provider's egress rules (security groups, network ACLs) were reviewed for this release",
        Role.INFRASTRUCTURE_LEAD,
        ("1.2 Firewall Rules",),
        "1.2 Firewall Rules: egress: AWS/cloud provider rules verified (golive probes the ingress ports)",
    ),
    _a(
        "loadtest_baseline_reviewed",
        "The last load test was reviewed beyond the API: pages load < 2 s, database "
        "queries < 200 ms with database CPU < 50 %, frontend < 100 MB and Redis < 500 MB of memory",
        Role.BACKEND_LEAD,
        ("6.1 Response Times", "6.1 Memory Usage", "6.1 CPU Usage"),
        "6.1 Baseline Metrics Review: front-end, database and Redis figures (golive compares the API's from the "
        "k6 / Locust results)",
    ),
    # sections 4 and 5: what golive's probes cannot see
    _a(
        "db_access_reviewed",
        "Only current team members hold bastion SSH keys for the database network, and the "
        "database credentials are strong and changed on schedule",
        Role.SECURITY_ENGINEER,
        ("5.3 Database Access",),
        "5.3 Database Access: SSH keys, credentials (golive probes that the database port is refused where it must be)",
    ),
    _a(
        "secrets_rotated",
        "Production secrets live in the secret store / environment only and were rotated on schedule",
        Role.SECURITY_ENGINEER,
        ("5.2 Secrets Management",),
        "5.2 Secrets Management: rotation (golive scans the app's git for committed secrets)",
    ),
    _a(
        "audit_log_access_restricted",
        "Only the security team can read the audit logs",
        Role.SECURITY_ENGINEER,
        ("5.3 Audit Logging",),
        "5.3 Audit Logging: access (golive checks entries and the 90-day retention)",
    ),
    _a(
        "scheduler_logs_clean",
        "The scheduler's and workers' logs show no errors since the deploy",
        Role.BACKEND_LEAD,
        ("4.3 Scheduler Running",),
        "4.3 Scheduler Running: no errors in logs (golive reads the heartbeat and the job store)",
    ),
    # sections 2 and 7: what golive's probes cannot see
    _a(
        "test_alert_delivered",
        "A test alert fired through Alertmanager reached #alerts-production and the on-call email list",
        Role.DEVOPS_LEAD,
        ("7.2 Critical Alerts", "7.1 Alertmanager"),
        "7.2 Critical Alerts: expected to trigger and notify (golive checks the rules, their thresholds, that "
        "Prometheus has an Alertmanager and that its routes reach Slack and email; it never fires an alert)",
    ),
    _a(
        "warning_alert_responses_documented",
        "The expected response to each warning alert (response time, memory, CPU) is documented in the runbook",
        Role.DEVOPS_LEAD,
        ("7.2 Warning Alerts",),
        "7.2 Warning Alerts: expected behavior documented (golive checks the rules and their thresholds)",
    ),
    _a(
        "error_dashboards_accessible",
        "The team can open the Sentry and Google Analytics dashboards and sees this environment's events there",
        Role.BACKEND_LEAD,
        ("2.2 Google Analytics / Sentry: Error Tracking", "2.2 Google Analytics / Sentry: Analytics Integration"),
        "2.2 Google Analytics / Sentry: dashboards accessible (golive sends a Sentry test event, checks the snippet "
        "and the collector)",
    ),
)


def attestation(id: str) -> Attestation:
    for a in ATTESTATIONS:
        if a.id == id:
            return a
    raise KeyError(f"unknown attestation {id!r}")


def for_role(role: Role | str) -> list[Attestation]:
    """What a signer of `role` answers for: the attestations their role owns, and those every signer makes."""
    name = role.value if isinstance(role, Role) else role
    return [a for a in ATTESTATIONS if a.role in (name, EVERY_SIGNER)]


def covering() -> dict[str, list[Attestation]]:
    """seed ref -> the attestations covering it."""
    out: dict[str, list[Attestation]] = {}
    for a in ATTESTATIONS:
        for ref in a.seed:
            out.setdefault(ref, []).append(a)
    return out
