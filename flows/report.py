"""The report: one model fed by the check results, and small separate renderers (markdown, table, JSON, JUnit XML).

Verdict rules (per section and overall):
- NO-GO: a blocking check is FAIL, ERROR or SKIPPED (a skipped blocking check means its prerequisite broke);
- GO-WITH-WARNINGS: anything WARN, or an advisory check FAIL / ERROR / SKIPPED;
- GO: everything else (PASS and NOT_APPLICABLE, the latter always listed with its reason).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

from pydantic import BaseModel, Field

from golive.tasks.core import SECTIONS, CheckResult, Redactor, Severity, Status


class Verdict(str, Enum):
    GO = "GO"
    GO_WITH_WARNINGS = "GO-WITH-WARNINGS"
    NO_GO = "NO-GO"

    @property
    def exit_code(self) -> int:
        return {Verdict.GO: 0, Verdict.GO_WITH_WARNINGS: 1, Verdict.NO_GO: 2}[self]


BAD = {Status.FAIL, Status.ERROR, Status.SKIPPED}


def verdict_of(results: list[CheckResult]) -> Verdict:
    if any(r.status in BAD and r.severity == Severity.BLOCKING for r in results):
        return Verdict.NO_GO
    if any(r.status == Status.WARN or r.status in BAD for r in results):
        return Verdict.GO_WITH_WARNINGS
    return Verdict.GO


class SectionSummary(BaseModel):
    section: str
    title: str
    verdict: Verdict
    counts: dict[str, int]
    duration_s: float


class Report(BaseModel):
    environment: str
    mode: str
    verdict: Verdict
    started_at: datetime
    finished_at: datetime
    duration_s: float
    sections: list[SectionSummary]
    results: list[CheckResult]
    flow_run_id: str | None = None
    notes: list[str] = Field(default_factory=list)
    config_fingerprint: str | None = None  # flows/history.config_fingerprint: which config (never its secrets) ran

    @property
    def blocking_failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in BAD and r.severity == Severity.BLOCKING]

    @property
    def warnings(self) -> list[CheckResult]:
        return [
            r for r in self.results if r.status == Status.WARN or (r.status in BAD and r.severity == Severity.ADVISORY)
        ]


def _own_failures(results: list[CheckResult]) -> list[CheckResult]:
    """A check SKIPPED because a service it could not reach is another check's (`tasks.core.service_down`) is that
    check's ERROR again when the named check passed or was not in this run: the blame is never put where nothing
    failed (a flap between the two probes, a run of a few sections)."""
    by_id = {r.id: r for r in results}

    def own(r: CheckResult) -> CheckResult:
        b = r.details.get("blocked_by")
        if (
            r.status != Status.SKIPPED
            or not r.details.get("unreached")
            or (b in by_id and by_id[b].status != Status.PASS)
        ):
            return r
        why = f"{b} passed" if b in by_id else f"{b} was not in this run"
        return r.model_copy(
            update={
                "status": Status.ERROR,
                "cause": f"{r.evidence} (but {why})",
                "details": {k: v for k, v in r.details.items() if k != "blocked_by"},
            }
        )

    return [own(r) for r in results]


def build_report(
    results: list[CheckResult],
    *,
    environment: str,
    mode: str,
    started_at: datetime,
    flow_run_id: str | None = None,
    notes: list[str] | None = None,
) -> Report:
    finished = datetime.now(UTC)
    order = list(SECTIONS)
    results = sorted(_own_failures(results), key=lambda r: (order.index(r.section), r.id))
    sections = []
    for sec in order:
        rs = [r for r in results if r.section == sec]
        if not rs:
            continue
        span = (max(r.finished_at for r in rs) - min(r.started_at for r in rs)).total_seconds()
        sections.append(
            SectionSummary(
                section=sec,
                title=SECTIONS[sec],
                verdict=verdict_of(rs),
                counts=dict(Counter(r.status.value for r in rs)),
                duration_s=round(span, 3),
            )
        )
    return Report(
        environment=environment,
        mode=mode,
        verdict=verdict_of(results),
        started_at=started_at,
        finished_at=finished,
        duration_s=round((finished - started_at).total_seconds(), 3),
        sections=sections,
        results=results,
        flow_run_id=flow_run_id,
        notes=list(notes or []),
    )


# --------------------------------------------------------------------------- renderers

ICON = {
    Status.PASS: "✅",
    Status.WARN: "⚠️",
    Status.FAIL: "❌",
    Status.ERROR: "🛑",
    Status.SKIPPED: "⏭️",
    Status.NOT_APPLICABLE: "➖",
}
VICON = {Verdict.GO: "🟢", Verdict.GO_WITH_WARNINGS: "🟡", Verdict.NO_GO: "🔴"}


# Everything a target said is data in every renderer: control characters (an ANSI escape, NUL) are shown as `\x1b`
# (a terminal would obey them; XML 1.0 cannot hold them), markdown and HTML syntax is escaped, XML is written by
# ElementTree, the terminal escapes Rich markup (deployments/cli.py), Slack gets its three entities
# (flows/rehearsal.py).
_CTRL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MD = str.maketrans({**{c: "\\" + c for c in "\\`*_[]|~"}, "<": "&lt;", ">": "&gt;", "&": "&amp;"})


def visible(text: str) -> str:
    """`text` with its control characters written out (`\\x1b`); tab and newline stay."""
    return _CTRL.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode(), text)


def plain(v: Any, limit: int = 160) -> str:
    """One line of plain text (a table artifact cell, a terminal line): visible control characters, cut to `limit`."""
    if v is None:
        return ""
    s = " ".join(visible(v if isinstance(v, str) else json.dumps(v, default=str)).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def slack_escape(s: str) -> str:
    """Slack's mrkdwn reads only these three as syntax (`<!channel>`, `<url|label>`): everything else stays text."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md(v: Any, limit: int = 160) -> str:
    """`plain`, then escaped so that markdown reads it as text: no table break, code span, link, emphasis or HTML."""
    return plain(v, limit).translate(_MD)


def to_markdown(report: Report, redact: Redactor | None = None) -> str:
    r = report
    out = [
        f"# {VICON[r.verdict]} {r.verdict.value}: go-live readiness of `{r.environment}`",
        "",
        f"Mode `{r.mode}` · {len(r.results)} checks · {r.duration_s:.1f} s · {r.started_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
    ]
    if r.blocking_failures:
        out += ["## Blocking", ""]
        out += [f"- {ICON[c.status]} **{c.id}** {c.status.value}: {md(c.summary, 300)}" for c in r.blocking_failures]
        out.append("")
    if r.warnings:
        out += ["## Warnings", ""]
        out += [f"- {ICON[c.status]} **{c.id}** {c.status.value}: {md(c.summary, 300)}" for c in r.warnings]
        out.append("")
    out += [
        "## Sections",
        "",
        "| Section | Verdict | PASS | WARN | FAIL | ERROR | SKIPPED | N/A |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in r.sections:
        n = s.counts
        out.append(
            f"| {s.title} | {VICON[s.verdict]} {s.verdict.value} | {n.get('PASS', 0)} | {n.get('WARN', 0)} | "
            f"{n.get('FAIL', 0)} | {n.get('ERROR', 0)} | {n.get('SKIPPED', 0)} | {n.get('NOT_APPLICABLE', 0)} |"
        )
    out += [
        "",
        "## Evidence",
        "",
        "| | Check | Severity | Observed | Expected | How it was measured | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in r.results:
        observed = c.cause if c.status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.ERROR) else c.observed
        out.append(
            f"| {ICON[c.status]} {c.status.value} | `{c.id}` {c.title} | {c.severity.value} | {md(observed)} | "
            f"{md(c.expected)} | {md(c.evidence)} | {c.duration_s:.2f} |"
        )
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {md(n, 2000)}" for n in r.notes]
    text = "\n".join(out) + "\n"
    return redact.text(text) if redact else text


def to_table(report: Report) -> list[dict[str, Any]]:
    return [
        {
            "status": c.status.value,
            "check": c.id,
            "title": c.title,
            "severity": c.severity.value,
            "observed": plain(
                c.cause if c.status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.ERROR) else c.observed
            ),
            "expected": plain(c.expected),
            "evidence": plain(c.evidence),
            "seconds": round(c.duration_s, 3),
            "seed": "; ".join(c.seed),
        }
        for c in report.results
    ]


def to_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


def ci_summary(verdict: dict[str, Any], run_url: str | None, limit: int = 40) -> str:
    """Markdown for a CI job's summary page (GitHub's `$GITHUB_STEP_SUMMARY`, a GitLab MR note): the verdict, each
    section's verdict, the blocking failures and warnings, the link to the run. Every value that came from the run is
    escaped (`md`): what a target answered cannot become a markdown link, an image or a heading there (a bare URL
    in it may still be autolinked by the renderer, as it would be anywhere)."""
    v = Verdict(verdict["verdict"])
    out = [f"### {VICON[v]} golive: {v.value} for `{md(verdict['environment'], 80)}`", ""]
    if run_url:
        out += [f"[The readiness run in Prefect]({quote(run_url, safe=':/?&=#%~+,;@')})", ""]
    out += ["| section | verdict |", "|---|---|"]
    out += [
        f"| {md(s, 40)} | {VICON.get(Verdict(sv), '')} {md(sv, 20)} |"
        for s, sv in verdict.get("sections", {}).items()
        if sv in {x.value for x in Verdict}
    ]
    for title, lines in (("Blocking", verdict.get("blocking", [])), ("Warnings", verdict.get("warnings", []))):
        if lines:
            out += ["", f"**{title}** ({len(lines)})", ""] + [f"- {md(line, 300)}" for line in lines[:limit]]
            out += [f"- ... and {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join(out) + "\n"


def to_junit(report: Report) -> str:
    """JUnit XML of a report (`junit_xml`), with the full evidence (the table artifact's cells are cut)."""
    rows = [
        {
            "status": c.status.value,
            "check": c.id,
            "title": c.title,
            "severity": c.severity.value,
            "observed": visible(
                str(c.cause if c.status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.ERROR) else c.observed)
            ),
            "expected": visible(str(c.expected)),
            "evidence": visible(c.evidence),
            "seconds": c.duration_s,
            "seed": "; ".join(c.seed),
        }
        for c in report.results
    ]
    return junit_xml(rows, report.environment, time_s=report.duration_s, timestamp=report.started_at.isoformat())


def junit_outcome(row: dict[str, Any]) -> str | None:
    """How a check reads in JUnit, by what it does to the verdict: FAIL -> failure, ERROR -> error, a blocking
    SKIPPED -> failure (its prerequisite broke: NO-GO), a non-blocking SKIPPED or NOT_APPLICABLE -> skipped; PASS and
    WARN pass (a WARN says so in the case's system-out: it does not fail a CI job, `golive ci --fail-on warn` does)."""
    st = row["status"]
    if st == "FAIL" or (st == "SKIPPED" and row.get("severity") == "blocking"):
        return "failure"
    return {"ERROR": "error", "SKIPPED": "skipped", "NOT_APPLICABLE": "skipped"}.get(st)


def junit_xml(
    rows: list[dict[str, Any]], environment: str, *, time_s: float | None = None, timestamp: str | None = None
) -> str:
    """The one JUnit writer (a report's `to_junit`, `golive ci` from the checks table artifact): one testsuite per
    section, one testcase per check, outcomes by `junit_outcome`. ElementTree escapes markup; `visible` writes out the
    control characters XML 1.0 cannot hold."""
    root = ET.Element(
        "testsuites",
        {
            "name": visible(f"golive {environment}"),
            "tests": str(len(rows)),
            **({"time": f"{time_s:.3f}"} if time_s is not None else {}),
        },
    )
    by_section: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_section.setdefault(str(row["check"]).split(".", 1)[0], []).append(row)
    for section, rs in by_section.items():
        kinds = Counter(junit_outcome(r) for r in rs)
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": visible(section),
                "tests": str(len(rs)),
                "failures": str(kinds["failure"]),
                "errors": str(kinds["error"]),
                "skipped": str(kinds["skipped"]),
                "time": f"{sum(float(r.get('seconds') or 0) for r in rs):.3f}",
                **({"timestamp": timestamp} if timestamp else {}),
            },
        )
        for r in rs:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=visible(f"golive.{section}"),
                name=visible(str(r["check"])),
                time=f"{float(r.get('seconds') or 0):.3f}",
            )
            exp = f" (expected {r['expected']})" if r.get("expected") not in (None, "", "None") else ""
            msg = visible(f"{r['status']} [{r['severity']}]: {r['observed']}{exp}")
            detail = visible(f"observed: {r['observed']}\nexpected: {r.get('expected')}\nevidence: {r['evidence']}")
            if (kind := junit_outcome(r)) in ("failure", "error"):
                ET.SubElement(case, kind, message=msg, type=visible(str(r["status"]))).text = detail
            elif kind == "skipped":
                ET.SubElement(case, "skipped", message=msg)
            warn = f"WARNING: {msg}\n" if r["status"] == "WARN" else ""
            ET.SubElement(case, "system-out").text = visible(
                f"{warn}{r.get('title', '')}\nseed: {r.get('seed', '')}\n{detail}"
            )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
