"""Alert rules (seed 7.2): the critical and warning alerts are loaded in Prometheus, healthy, labelled with their
severity, and their thresholds (parsed from the PromQL expressions) are the checklist's or stricter.

Read from Prometheus' `GET /api/v1/rules?type=alert` (what is loaded, not what a file in a repo says). Each expected
alert is found by its name (a regex) and, optionally, a pattern of its expression; its threshold is the comparison
at the end of the expression (`... > 0.05`, `... * 100 > 5` is read as 5 %, `up == 0`). A rule at 10 % where the
checklist says 5 % fires too late: FAIL. Critical alerts must also be able to notify: Prometheus has an active
Alertmanager (`GET /api/v1/alertmanagers`).

The expectations are `monitoring.alert_rules` (defaults: the checklist's six alerts).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..clients.prometheus import api_get
from ..core import Observation, RunContext, check, failed_if


class AlertExpectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name_pattern: str = Field(description="regex (case-insensitive, searched) matching the alert's name")
    expr_pattern: str | None = Field(None, description="regex the expression must contain (e.g. \\bup\\b)")
    op: str = Field(pattern=r"^(>|>=|<|<=|==)$", description="the comparison the checklist means")
    threshold: float
    unit: str = Field(
        "value",
        pattern="^(ratio|seconds|value)$",
        description="ratio: 0.05 == 5 % (a rule written `* 100 > 5` is read as 0.05); seconds: "
        "a *_milliseconds metric is converted",
    )
    severity: str = Field(description="the `severity` label the rule must carry")


def _crit(name: str, expr: str | None, op: str, thr: float, unit: str = "value") -> AlertExpectation:
    return AlertExpectation(name_pattern=name, expr_pattern=expr, op=op, threshold=thr, unit=unit, severity="critical")


def _warn(name: str, op: str, thr: float, unit: str) -> AlertExpectation:
    return AlertExpectation(name_pattern=name, op=op, threshold=thr, unit=unit, severity="warning")


CRITICAL = {
    "API down": _crit(r"(api|app|service|backend|http|instance).*(down|unavailable)", r"\bup\b", "==", 0),
    "database down": _crit(r"(database|db|postgres|pg|mysql).*(down|unavailable)", r"\b(up|pg_up)\b", "==", 0),
    "error rate > 5%": _crit(r"error.?rate|5xx", None, ">", 0.05, "ratio"),
}
WARNING = {
    "response time > 2 s": _warn(r"response.?time|latency", ">", 2.0, "seconds"),
    "memory > 85%": _warn(r"mem", ">", 0.85, "ratio"),
    "CPU > 80%": _warn(r"cpu", ">", 0.80, "ratio"),
}


class AlertRules(BaseModel):
    """Which alerting rules Prometheus must have loaded (seed 7.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    critical: dict[str, AlertExpectation] = Field(default_factory=lambda: dict(CRITICAL))
    warning: dict[str, AlertExpectation] = Field(default_factory=lambda: dict(WARNING))
    require_alertmanager: bool = Field(
        True, description="critical alerts must be able to notify: Prometheus has an active Alertmanager"
    )


# --------------------------------------------------------------------------- threshold parsing

_CMP = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_PERCENT = re.compile(r"\*\s*100\b|\b100\s*\*")


_FREE_SHARE = re.compile(r"avail|free|idle", re.I)  # the expression measures what is left, not what is used
_COMPLEMENT = re.compile(r"(?<![\w.])(?:1|100)\s*-")  # ... unless it subtracts that from the whole itself
_FLIP = {"<": ">", "<=": ">="}


def parse_threshold(expr: str, unit: str = "value") -> tuple[str, float] | None:
    """(op, value) of the comparison that ends `expr`, normalized to `unit`; None when there is none.

    A ratio alert written on the share left (`MemAvailable / MemTotal * 100 < 15`, idle CPU `< 0.2`: the
    node-exporter mixins' form) is read as the share used (`> 85 %`); the same comparison on an expression that
    already subtracts from the whole (`1 - avail / total < 0.15`) is not flipped."""
    e = expr.strip()
    while e.endswith(")") and e.startswith("("):  # ( ... > 0.05 )
        e = e[1:-1].strip()
    m = _CMP.search(e)
    if not m:
        return None
    op, value = m.group(1), float(m.group(2))
    body = e[: m.start()]
    if unit == "ratio" and (_PERCENT.search(body) or value > 1):
        value = value / 100
    if unit == "ratio" and op in _FLIP and _FREE_SHARE.search(body) and not _COMPLEMENT.search(body):
        op, value = _FLIP[op], round(1 - value, 12)
    if unit == "seconds" and "_milliseconds" in e:
        value = value / 1000
    return op, value


def meets(op: str, value: float, want: AlertExpectation) -> bool:
    """Does a rule `op value` fire at least as early as the checklist's `want.op want.threshold`?"""
    if want.op == "==":  # "down": up == 0 (or up < 1, up <= 0)
        return (
            (op == "==" and value == want.threshold)
            or (op == "<" and want.threshold < value <= want.threshold + 1)
            or (op == "<=" and value == want.threshold)
        )
    if want.op in (">", ">="):
        return op in (">", ">=") and value <= want.threshold + 1e-9
    return op in ("<", "<=") and value >= want.threshold - 1e-9


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:g}%"
    if unit == "seconds":
        return f"{value:g} s"
    return f"{value:g}"


def _evaluate(rules: list[dict[str, Any]], wanted: dict[str, AlertExpectation]) -> tuple[dict[str, str], list[str]]:
    observed: dict[str, str] = {}
    problems: list[str] = []
    for label, want in wanted.items():
        cands = [
            r
            for r in rules
            if re.search(want.name_pattern, r.get("name", ""), re.I)
            and (want.expr_pattern is None or re.search(want.expr_pattern, r.get("query", "")))
        ]
        if not cands:
            observed[label] = "no matching alerting rule"
            problems.append(f"{label}: no alerting rule named like /{want.name_pattern}/ is loaded")
            continue
        verdicts = []
        for r in cands:
            issues = []
            parsed = parse_threshold(r.get("query", ""), want.unit)
            if parsed is None:
                issues.append("no threshold comparison at the end of the expression")
                seen = "?"
            else:
                seen = f"{parsed[0]} {_fmt(parsed[1], want.unit)}"
                if not meets(parsed[0], parsed[1], want):
                    issues.append(f"threshold {seen}, expected {want.op} {_fmt(want.threshold, want.unit)}")
            sev = (r.get("labels") or {}).get("severity")
            if sev != want.severity:
                issues.append(f"severity {sev!r}, expected {want.severity!r}")
            if r.get("health") not in (None, "ok", "unknown"):
                issues.append(f"rule health {r.get('health')}: {r.get('lastError', '')}".strip())
            verdicts.append((r, seen, issues))
        good = next((v for v in verdicts if not v[2]), None)
        if good:
            r, seen, _ = good
            observed[label] = f"{r['name']}: {seen} (severity {want.severity}, for {r.get('duration', 0):g}s)"
        else:
            r, seen, issues = verdicts[0]
            observed[label] = f"{r['name']}: {seen}"
            problems.append(f"{label} ({r['name']}): {'; '.join(issues)}")
    return observed, problems


def _alerting_rules(t: Any, ctx: RunContext) -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        data = api_get(t, ctx, "/api/v1/rules", type="alert")
        return [r for g in data.get("groups") or [] for r in g.get("rules") or [] if r.get("type") == "alerting"]

    return ctx.memo(("prom-alert-rules", str(t.prometheus_url)), load)


def _expected(wanted: dict[str, AlertExpectation]) -> str:
    return "; ".join(
        f"{label}: {w.op} {_fmt(w.threshold, w.unit)}, severity {w.severity}" for label, w in wanted.items()
    )


def _evidence(t: Any) -> str:
    url = str(t.prometheus_url).rstrip("/") + "/api/v1/rules?type=alert"
    return (
        f"GET {url} (the loaded rules; thresholds parsed from each expression); re-run: `curl -sS '{url}' | "
        "jq '.data.groups[].rules[] | {name, query, labels, health}'`"
    )


REACHABLE = "monitoring.prometheus.reachable"


@check(
    "monitoring.alerts.critical",
    title="Critical alerts are loaded: API down, database down, error rate > 5%",
    seed=["7.2 Critical Alerts"],
    depends_on=[REACHABLE],
    timeout=10,
    target="monitoring",
)
def alerts_critical(t: Any, ctx: RunContext) -> Observation:
    """Prometheus /api/v1/rules: an alerting rule per critical expectation (name regex, expression pattern), its
    threshold parsed from the PromQL and at least as strict as the checklist's, severity=critical, health ok; and
    /api/v1/alertmanagers has an active Alertmanager so they notify."""
    spec = t.alert_rules
    observed, problems = _evaluate(_alerting_rules(t, ctx), spec.critical)
    evidence = _evidence(t)
    out: dict[str, Any] = {"rules": observed}
    if spec.require_alertmanager:
        ams = api_get(t, ctx, "/api/v1/alertmanagers").get("activeAlertmanagers") or []
        out["alertmanagers"] = ", ".join(a.get("url", "?") for a in ams) or "none active"
        if not ams:
            problems.append("Prometheus has no active Alertmanager: the alerts cannot notify")
        evidence += f"; GET {str(t.prometheus_url).rstrip('/')}/api/v1/alertmanagers"
    if problems:
        out["problems"] = problems
    expected = _expected(spec.critical) + ("; an active Alertmanager" if spec.require_alertmanager else "")
    return failed_if(problems, out, expected, evidence)


@check(
    "monitoring.alerts.warning",
    title="Warning alerts are loaded: response time > 2 s, memory > 85%, CPU > 80%",
    seed=["7.2 Warning Alerts"],
    depends_on=[REACHABLE],
    timeout=10,
    target="monitoring",
)
def alerts_warning(t: Any, ctx: RunContext) -> Observation:
    """Prometheus /api/v1/rules: an alerting rule per warning expectation, threshold parsed from the PromQL and at
    least as strict as the checklist's, severity=warning, health ok. Accepted forms: a ratio or a percent
    (`* 100 > 85`), on the share used or on the share left (`MemAvailable / MemTotal * 100 < 15`, idle CPU
    `< 0.2`), over recording rules, any `for:` duration; milliseconds metrics for the response time."""
    spec = t.alert_rules
    observed, problems = _evaluate(_alerting_rules(t, ctx), spec.warning)
    out: dict[str, Any] = {"rules": observed}
    if problems:
        out["problems"] = problems
    return failed_if(problems, out, _expected(spec.warning), _evidence(t))
