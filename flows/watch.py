"""The deploy flow's watch window: the seed's rollback criteria, evaluated poll by poll.

Each poll turns what was observed into `Signal`s (a criterion, its severity, failing or not, the evidence):
- CRITICAL: the API not answering healthy (for longer than `api_down_seconds`), the database inaccessible (longer than
  `db_down_seconds`), and the CRITICAL alert criteria (data corruption, security breach, revenue feature broken) while
  their Prometheus alert fires: immediate rollback, never acknowledgeable;
- HIGH: the `high_checks` (login, campaign list), the error ratio from Prometheus, and the HIGH alert criteria (login
  failures, campaign creation, payments, notifications): rollback once failing for `high_assess_seconds` (the seed's
  "assess within 5 minutes, decide rollback"), unless an operator acknowledged it for this release (the decision to
  keep it is theirs, and it is recorded with who and why);
- MEDIUM: recorded in the report, never a rollback.

The acknowledgement is a Prefect Variable `golive-ack-<environment>` (set with `golive ack`, or by hand in the UI's
Variables page) holding {"release", "by", "reason", "criteria"}; an empty `criteria` covers every HIGH criterion.
Kept free of Prefect imports: the flow reads the variable and passes its value in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from .policies import DeployPolicy

if TYPE_CHECKING:
    from golive.tasks.core import CheckResult

ACK_PREFIX = "golive-ack-"


class Trip(BaseModel):
    severity: str  # CRITICAL / HIGH
    criterion: str
    evidence: str
    detected_at: datetime


class Ack(BaseModel):
    """An operator's acknowledgement of HIGH criteria for one release (never of a CRITICAL one)."""

    release: str = Field(min_length=1)
    by: str = Field(min_length=3, description="who acknowledges: 'Name: Role'")
    reason: str = Field(min_length=10, description="why the release stays despite the failing criterion")
    criteria: list[str] = Field(default_factory=list, description="HIGH criteria covered; empty: all of them")
    at: datetime | None = None

    def covers(self, criterion: str) -> bool:
        return not self.criteria or any(c.lower() in criterion.lower() for c in self.criteria)


def ack_variable(environment: str) -> str:
    return f"{ACK_PREFIX}{environment}"


def parse_ack(value: Any, release: str) -> tuple[Ack | None, str | None]:
    """The acknowledgement for `release` from the variable's value, or (None, why not) with one line naming the field."""
    if value in (None, "", {}):
        return None, None
    try:
        ack = Ack.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "value"
        return None, f"acknowledgement ignored: {where}: {err['msg']}"
    if ack.release != release:
        return None, None  # an acknowledgement of an earlier release does not carry over
    return ack, None


@dataclass
class Signal:
    severity: str  # CRITICAL / HIGH / MEDIUM
    criterion: str
    failing: bool
    evidence: str
    allowed_s: float = 0.0  # how long it may fail before it trips


@dataclass
class Watch:
    """The state of one watch window across polls."""

    policy: DeployPolicy
    first_bad: dict[str, float] = field(default_factory=dict)  # criterion -> when it started failing
    medium: list[str] = field(default_factory=list)  # MEDIUM findings, once each
    acknowledged: list[dict[str, Any]] = field(default_factory=list)  # HIGH criteria kept, with who and why

    def evaluate(self, now: float, signals: list[Signal], ack: Ack | None) -> Trip | None:
        """The trip this poll causes, if any; MEDIUM and acknowledged HIGH findings are recorded, once each."""
        for sig in signals:
            if not sig.failing:
                self.first_bad.pop(sig.criterion, None)
                continue
            since = self.first_bad.setdefault(sig.criterion, now)
            if sig.severity == "MEDIUM":
                line = f"{sig.criterion}: {sig.evidence}"
                if line not in self.medium:
                    self.medium.append(line)
                continue
            if now - since < sig.allowed_s:
                continue
            if sig.severity == "HIGH" and ack is not None and ack.covers(sig.criterion):
                if not any(a["criterion"] == sig.criterion for a in self.acknowledged):
                    self.acknowledged.append(
                        {
                            "criterion": sig.criterion,
                            "evidence": sig.evidence,
                            "by": ack.by,
                            "reason": ack.reason,
                            "failing_for_s": round(now - since, 1),
                        }
                    )
                continue
            return Trip(
                severity=sig.severity,
                criterion=f"{sig.criterion} for {now - since:.1f}s (allowed {sig.allowed_s:g}s)",
                evidence=sig.evidence,
                detected_at=datetime.now(UTC),
            )
        return None


def check_signals(
    policy: DeployPolicy, results: Mapping[str, CheckResult], api_ids: list[str], db_ids: list[str]
) -> list[Signal]:
    """The criteria golive probes itself, from one poll's check results."""
    ok = ("PASS", "WARN", "NOT_APPLICABLE")
    groups = [
        ("CRITICAL", "API not responding", policy.api_down_seconds, api_ids),
        ("CRITICAL", "database inaccessible", policy.db_down_seconds, db_ids),
        ("HIGH", "login / campaign list failing", policy.high_assess_seconds, policy.high_checks),
    ]
    out = []
    for sev, name, allowed, ids in groups:
        bad = [results[i] for i in ids if i in results and results[i].status.value not in ok]
        out.append(
            Signal(sev, name, bool(bad), "; ".join(f"{r.id} {r.status.value}: {r.summary}" for r in bad), allowed)
        )
    return out


def alert_signals(policy: DeployPolicy, firing: list[dict[str, Any]]) -> list[Signal]:
    """One signal per configured alert criterion: failing while its alert fires."""
    out = []
    for c in policy.alert_criteria:
        hits = [a for a in firing if a.get("labels", {}).get("alertname") == c.alert]
        evidence = "; ".join(
            f"alert {c.alert} firing since {a.get('activeAt', '?')}"
            + (f": {a['annotations']['summary']}" if a.get("annotations", {}).get("summary") else "")
            for a in hits
        )
        allowed = policy.high_assess_seconds if c.severity == "HIGH" else 0.0
        out.append(Signal(c.severity, c.criterion, bool(hits), evidence, allowed))
    return out


def error_rate_signal(policy: DeployPolicy, rate: float | None) -> list[Signal]:
    if rate is None:
        return []
    return [
        Signal(
            "HIGH",
            f"error ratio > {policy.max_error_rate}",
            rate > policy.max_error_rate,
            f"PromQL {policy.error_rate_query} = {rate:.3f}",
            policy.high_assess_seconds,
        )
    ]


#: the least time one poll's probes get, however short poll_seconds is (a healthy API answers in milliseconds)
POLL_BUDGET_MIN_S = 5.0


#: the most a monitoring answer of the watch may weigh (Prometheus answers in kilobytes)
MAX_ANSWER_BYTES = 8 << 20


def poll_budget(policy: DeployPolicy) -> float:
    """How long one poll's probes may take, all of them together: a probe still running then counts as the failure it
    is (the API not answering), so the rollback criteria are evaluated every poll whatever a target does."""
    return max(policy.poll_seconds, POLL_BUDGET_MIN_S)
