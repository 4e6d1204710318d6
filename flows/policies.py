"""Run policies that live in the environment config: who must sign off, and how a release is deployed and watched.

Kept free of Prefect imports so that loading and validating a config stays fast.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

RecheckSection = Literal[
    "infrastructure", "dependencies", "data", "application", "security", "performance", "monitoring", "backup", "team"
]
#: The sections whose light checks a stale GO re-runs before it deploys (issue 15): what can change in minutes
#: (hosts, services, the release, security settings, monitoring); not the data suites nor the restore test, unless asked.
RECHECK_SECTIONS: tuple[RecheckSection, ...] = (
    "infrastructure",
    "dependencies",
    "application",
    "security",
    "monitoring",
)


class Role(str, Enum):
    DEPLOYMENT_COORDINATOR = "Deployment Coordinator"
    CTO = "CTO"
    VP_ENGINEERING = "VP Engineering"
    PRODUCT_LEAD = "Product Lead"
    DEVOPS_LEAD = "DevOps Lead"
    INFRASTRUCTURE_LEAD = "Infrastructure Team Lead"
    DBA = "Database Administrator"
    BACKEND_LEAD = "Backend Team Lead"
    SECURITY_ENGINEER = "Security Engineer"
    OPERATIONS_MANAGER = "Operations Manager"


class Decision(str, Enum):
    GO = "GO"
    NO_GO = "NO-GO"


class Approver(BaseModel):
    """Someone who signs off, and where they hear that a sign-off waits (email through the config's `smtp`,
    and/or a Slack-compatible incoming webhook: a secret, the URL is the credential)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=2, max_length=120)
    role: Role
    email: str | None = Field(None, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$", max_length=254)
    slack_webhook: SecretStr | None = Field(None, description="Slack-compatible incoming webhook URL (a secret)")

    @field_validator("slack_webhook")
    @classmethod
    def _http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return v


class ApprovalPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    approvers: list[Approver] = Field(
        default_factory=list,
        description="who is told a sign-off waits, is refused, times out soon "
        "(a reminder at half the timeout), timed out, or was decided",
    )
    mail_from: str = Field(
        "golive@localhost",
        max_length=254,
        pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$",
        description="the From of approvers' emails (an address: no name, no header syntax)",
    )
    notify_timeout_s: float = Field(10.0, gt=0, le=60, description="each delivery's budget (best effort)")
    required_roles: list[Role] = Field(
        default_factory=lambda: [Role.CTO, Role.VP_ENGINEERING],
        description="seed: approval required from CTO + VP Engineering",
    )
    timeout_minutes: float = Field(60.0, gt=0, description="per sign-off; a timeout is a recorded NO-GO")
    poll_seconds: int = Field(
        10,
        ge=1,
        le=60,
        description="how often a run paused in its process (one without a deployment) checks for its resume",
    )
    max_rounds: int = Field(10, ge=1, le=50, description="refused or extra sign-offs before the gate gives up: NO-GO")
    requester_may_approve_alone: bool = Field(
        False,
        description="false (the default): whoever requested the go-live (the run's `requested_by`, or the "
        "user the Prefect API reports as the run's creator) cannot be its only GO approver",
    )
    max_evidence_age_minutes: float = Field(
        30.0,
        gt=0,
        le=10080,
        description="a GO deploys on evidence at most this old: when the deploy starts later than this after the "
        "readiness run started, the deploy flow first re-runs the light checks of `recheck_sections` and deploys "
        "only if no blocking check fails that did not fail before (the signed-off ones)",
    )
    recheck_sections: list[RecheckSection] = Field(
        default_factory=lambda: list(RECHECK_SECTIONS),
        min_length=1,
        description="the sections re-checked when the evidence is older than max_evidence_age_minutes",
    )
    recheck_heavy: bool = Field(
        False, description="also re-run the heavy checks (restore, data suites) of `recheck_sections`"
    )


class AlertCriterion(BaseModel):
    """A rollback criterion the team's monitoring already alerts on: while the Prometheus alert `alert` is firing
    during the watch window, the criterion is failing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alert: str = Field(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$", description="Prometheus alertname")
    severity: Literal["CRITICAL", "HIGH", "MEDIUM"] = Field(
        description="CRITICAL: immediate rollback; HIGH: rollback after high_assess_seconds unless acknowledged; "
        "MEDIUM: reported only"
    )
    criterion: str = Field(min_length=3, description="the seed's wording, shown in the report")


def _seed_alert_criteria() -> list[AlertCriterion]:
    """The seed's rollback criteria that no probe of golive's own can see, as the alerts that signal them."""
    rows = [
        ("DataCorruptionDetected", "CRITICAL", "data corruption detected"),
        ("SecurityBreachDetected", "CRITICAL", "security breach detected"),
        ("RevenueFeatureBroken", "CRITICAL", "revenue-impacting feature broken"),
        ("LoginFailureRateHigh", "HIGH", "login failing for > 5% of users"),
        ("CampaignCreationFailing", "HIGH", "campaign creation failing"),
        ("PaymentProcessingDown", "HIGH", "payment processing down"),
        ("NotificationDeliveryFailing", "HIGH", "notification delivery failing"),
        ("PerformanceDegraded", "MEDIUM", "performance degradation > 50%"),
        ("AnalyticsNotCollecting", "MEDIUM", "analytics not collecting"),
    ]
    return [AlertCriterion(alert=a, severity=s, criterion=c) for a, s, c in rows]


#: Seed 10.1: the five approval gates and their owners (the sign-off form's switches).
SECTION_SIGNOFFS = {
    "infrastructure_signed_off": "Infrastructure: all checks complete (Infrastructure Team Lead)",
    "database_signed_off": "Database: all checks complete (Database Administrator)",
    "application_signed_off": "Application: all checks complete (Backend Team Lead)",
    "security_signed_off": "Security: all checks complete (Security Engineer)",
    "operations_signed_off": "Operations: all checks complete (Operations Manager)",
}

#: seed item -> the sign-off form field that records it (section 10 is the form itself)
SIGNOFF_SEED = {
    "10.1 Infrastructure": "infrastructure_signed_off",
    "10.1 Database": "database_signed_off",
    "10.1 Application": "application_signed_off",
    "10.1 Security": "security_signed_off",
    "10.1 Operations": "operations_signed_off",
    "10.2 GO": "decision (GO: refused over a blocking failure unless overridden with a reason)",
    "10.2 NO-GO": "decision (NO-GO, with its required reason)",
}


class DeployPolicy(BaseModel):
    """The deploy flow: how to deploy and roll back, what to smoke-test, and the seed's rollback criteria."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    deployment: str = Field("deploy-production/deploy-production", description="the deploy flow's deployment")
    command: list[str] | None = Field(None, description="argv run to deploy; `{release}` is replaced by the release")
    webhook_url: SecretStr | None = Field(None, description="instead of a command: POSTed {release, readiness_run_id}")
    rollback_command: list[str] | None = Field(None, description="argv run to roll back (`{release}` = the release)")
    timeout_s: float = Field(900.0, gt=0, description="deploy / rollback step timeout (seed: rollback < 15 min)")
    smoke_checks: list[str] = Field(
        default_factory=lambda: [
            "infrastructure.web.reachable",
            "application.api.health",
            "application.api.endpoints",
            "security.api.auth_required",
            "dependencies.postgres.reachable",
        ],
        description="check ids re-run after the deploy (their dependencies come along); at least one: an empty "
        "list (a deploy without a smoke test) is refused",
    )
    watch_seconds: float = Field(600.0, ge=0, description="how long the rollback criteria are watched after deploy")
    poll_seconds: float = Field(10.0, gt=0)
    api_down_seconds: float = Field(60.0, ge=0, description="CRITICAL: API not responding for longer -> rollback")
    db_down_seconds: float = Field(0.0, ge=0, description="CRITICAL: database inaccessible for longer -> rollback")
    high_assess_seconds: float = Field(
        300.0, ge=0, description="HIGH: failing for longer than this (5 min) -> rollback"
    )
    high_checks: list[str] = Field(
        default_factory=lambda: ["application.api.endpoints"],
        description="HIGH criteria probed by checks (login, campaign list)",
    )
    error_rate_query: str | None = Field(None, description="PromQL giving the login/API error ratio (0-1)")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="seed: login failing for > 5 % of users")
    alert_criteria: list[AlertCriterion] = Field(
        default_factory=_seed_alert_criteria,
        description="rollback criteria read from Prometheus /api/v1/alerts (firing alerts) when `monitoring` is set",
    )

    @field_validator("smoke_checks", "high_checks")
    @classmethod
    def _known(cls, v: list[str], info: ValidationInfo) -> list[str]:  # selected after the deploy: too late to fail
        from golive.tasks.catalog import load_catalog

        if not v and info.field_name == "smoke_checks":
            raise ValueError("empty: a deploy without a smoke test is refused (name at least one check id)")
        unknown = [i for i in v if i not in load_catalog()]
        if unknown:
            raise ValueError(f"unknown check id(s): {', '.join(unknown)} (see `golive catalog`)")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> DeployPolicy:
        if bool(self.command) == bool(self.webhook_url):
            raise ValueError("set exactly one of `command` or `webhook_url`")
        return self
