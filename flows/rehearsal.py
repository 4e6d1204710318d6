"""Nightly rehearsal: what changed since the previous rehearsal of the same environment.

Each rehearsal publishes a compact snapshot artifact `golive-rehearsal-<env>` (status and duration per check id,
the verdict, the flow run id and the time: a few KB, far below the 1.5 MB above which Prefect emits no artifact
event). The next rehearsal reads the latest version of it *before* publishing its own, and reports the change:

- new failures: PASS / WARN / N/A before, FAIL / ERROR / SKIPPED now; fixed: the reverse; still failing;
- other status changes (PASS -> WARN, FAIL -> ERROR, ...), checks added to or removed from the run;
- slower checks: the duration grew more than `notify.slow_factor` x and by more than `notify.slow_min_seconds`
  (both times the check ran: a restore test that took 40 s last night and 95 s tonight);
- the verdict before and now.

The diff is a markdown section of the report (artifact and report.md), a one-line note in the report, and a
Slack-compatible message (`{"text", "blocks"}`) POSTed to `notify.webhook_url`: one attempt, bounded by
`notify.timeout_s`; a failing webhook is a warning and a note, never a failed run.

It reads the last `notify.history_runs` snapshots (not only the latest): the report also gets the trend picture of
those rehearsals (flows/trend.py; trend.svg beside report.md) and names the flaky checks (flows/history.py), and
tonight's snapshot keeps its counts, duration, config fingerprint, what changed and the flaky checks for
`golive history`.

The pure parts (snapshot, diff, renderers) need no Prefect; `since_last_rehearsal` is what the flow calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from golive.tasks.core import CheckResult, Redactor, Status

from . import artifacts, trend
from .history import SNAPSHOT_VERSION as SNAPSHOT_VERSION  # the snapshot model lives in flows/history.py
from .history import Flaky, Snapshot, counts_of, flaky_checks, flaky_rule, read_snapshots
from .history import snapshot_from as snapshot_from
from .report import VICON, Report, Verdict, md, plain, slack_escape

if TYPE_CHECKING:
    from .config import GoliveConfig

GOOD = frozenset({Status.PASS, Status.WARN, Status.NOT_APPLICABLE})
BAD = frozenset({Status.FAIL, Status.ERROR, Status.SKIPPED})
RAN = frozenset({Status.PASS, Status.WARN, Status.FAIL, Status.ERROR})  # the duration measured the target
SLACK_ITEMS = 10  # per block; Slack caps a section's text at 3000 characters and a message at 50 blocks


def snapshot_key(environment: str) -> str:
    return artifacts.key("rehearsal", environment)


# --------------------------------------------------------------------------- the snapshot


def snapshot_of(report: Report) -> Snapshot:
    return Snapshot(
        environment=report.environment,
        flow_run_id=report.flow_run_id,
        started_at=report.started_at,
        verdict=report.verdict,
        checks={r.id: (r.status, round(r.duration_s, 3)) for r in report.results},
        mode=report.mode,
        duration_s=round(report.duration_s, 3),
        counts=counts_of(r.status for r in report.results),
        config_fingerprint=report.config_fingerprint,
    )


def snapshot_people(snap: Snapshot) -> str:
    return (
        f"Rehearsal snapshot of `{snap.environment}`: {snap.verdict.value}, {len(snap.checks)} checks, "
        f"{snap.started_at:%Y-%m-%d %H:%M:%S} UTC. The next rehearsal compares with it."
    )


def snapshot_markdown(snap: Snapshot) -> str:
    """The artifact body: one line for people, then the compact JSON (flows.artifacts' one format)."""
    return artifacts.json_markdown(snapshot_people(snap), snap.model_dump(mode="json"), compact=True)


def parse_snapshot(markdown: Any) -> Snapshot | None:
    """The snapshot inside an artifact's markdown, or None when it is not one (another format, a newer version)."""
    return snapshot_from(artifacts.parse_json(markdown))


# --------------------------------------------------------------------------- the diff


class Change(BaseModel):
    id: str
    before: Status | None = None
    after: Status | None = None
    summary: str = ""  # tonight's summary (observed / cause), already redacted by the runner

    def line(self, esc: Callable[[str], str] = str) -> str:
        """`esc` renders the summary (what a target said) as data in the target format."""
        arrow = f"{self.before.value if self.before else 'new'} → {self.after.value if self.after else 'gone'}"
        return f"`{self.id}` {arrow}" + (f": {esc(self.summary)}" if self.summary else "")


class Slower(BaseModel):
    id: str
    before_s: float
    after_s: float

    def line(self) -> str:
        pct = (self.after_s / self.before_s - 1) * 100 if self.before_s > 0 else float("inf")
        grew = f"+{pct:.0f} %" if pct != float("inf") else "from ~0 s"
        return f"`{self.id}` {self.before_s:.1f} s → {self.after_s:.1f} s ({grew})"


class RehearsalDiff(BaseModel):
    environment: str
    flow_run_id: str | None = None
    started_at: datetime
    verdict: Verdict
    previous: Snapshot | None = Field(None, exclude=True)
    previous_run_id: str | None = None
    previous_started_at: datetime | None = None
    previous_verdict: Verdict | None = None
    new_failures: list[Change] = Field(default_factory=list)
    fixed: list[Change] = Field(default_factory=list)
    still_failing: list[Change] = Field(default_factory=list)
    other_changes: list[Change] = Field(default_factory=list)
    added: list[Change] = Field(default_factory=list)
    removed: list[Change] = Field(default_factory=list)
    slower: list[Slower] = Field(default_factory=list)
    scope_note: str = ""
    slow_rule: str = ""

    @property
    def first(self) -> bool:
        return self.previous_started_at is None

    @property
    def changed(self) -> bool:
        return (
            self.first
            or self.previous_verdict != self.verdict
            or any((self.new_failures, self.fixed, self.other_changes, self.added, self.removed, self.slower))
        )

    def headline(self) -> str:
        v = f"{VICON[self.verdict]} {self.verdict.value}"
        if self.first:
            return f"golive rehearsal `{self.environment}`: {v} (first rehearsal: nothing to compare with)"
        assert self.previous_verdict is not None  # set with previous_started_at, by diff()
        was = "" if self.previous_verdict == self.verdict else f" (was {self.previous_verdict.value})"
        parts = [
            f"{len(self.new_failures)} new failure{'s' * (len(self.new_failures) != 1)}",
            f"{len(self.fixed)} fixed",
            f"{len(self.still_failing)} still failing",
        ]
        if self.slower:
            parts.append(f"{len(self.slower)} slower")
        return f"golive rehearsal `{self.environment}`: {v}{was} · {', '.join(parts)}"

    def groups(self, esc: Callable[[str], str] = str) -> list[tuple[str, str, list[str]]]:
        """(title, icon, lines) of the non-empty groups, most urgent first."""
        out = [
            ("New failures", "❌", [c.line(esc) for c in self.new_failures]),
            ("Fixed", "✅", [c.line(esc) for c in self.fixed]),
            ("Slower", "🐢", [s.line() for s in self.slower]),
            ("Other status changes", "🔀", [c.line(esc) for c in self.other_changes]),
            ("New checks", "🆕", [c.line(esc) for c in self.added]),
            ("Checks no longer run", "➖", [c.line(esc) for c in self.removed]),
            ("Still failing", "⏳", [c.line(esc) for c in self.still_failing]),
        ]
        return [g for g in out if g[2]]


def diff(
    report: Report, previous: Snapshot | None, *, slow_factor: float = 1.5, slow_min_seconds: float = 1.0
) -> RehearsalDiff:
    """Compare tonight's report with the previous rehearsal's snapshot (None: the first rehearsal)."""
    d = RehearsalDiff(
        environment=report.environment,
        flow_run_id=report.flow_run_id,
        started_at=report.started_at,
        verdict=report.verdict,
        previous=previous,
        slow_rule=f"> {slow_factor:g}x and > {slow_min_seconds:g} s longer",
    )
    if previous is None:
        return d
    d.previous_run_id, d.previous_started_at = previous.flow_run_id, previous.started_at
    d.previous_verdict = previous.verdict
    now: dict[str, CheckResult] = {r.id: r for r in report.results}
    shared = previous.sections & {r.section for r in report.results}
    if previous.sections != {r.section for r in report.results}:
        d.scope_note = (
            f"The previous rehearsal covered sections {', '.join(sorted(previous.sections))}; "
            f"checks added or removed are compared within {', '.join(sorted(shared)) or 'none'} only."
        )
    for cid, r in now.items():
        if cid not in previous.checks:
            if r.section in shared:
                d.added.append(Change(id=cid, after=r.status, summary=r.summary))
            continue
        before, before_s = previous.checks[cid]
        c = Change(id=cid, before=before, after=r.status, summary=r.summary)
        if before in GOOD and r.status in BAD:
            d.new_failures.append(c)
        elif before in BAD and r.status in GOOD:
            d.fixed.append(c)
        elif before in BAD:
            d.still_failing.append(c)  # FAIL -> ERROR shows here, with its arrow
        elif before != r.status:
            d.other_changes.append(c)  # PASS <-> WARN <-> N/A
        if (
            before in RAN
            and r.status in RAN
            and r.duration_s > before_s * slow_factor
            and r.duration_s - before_s > slow_min_seconds
        ):
            d.slower.append(Slower(id=cid, before_s=before_s, after_s=round(r.duration_s, 3)))
    d.removed = [
        Change(id=cid, before=st)
        for cid, (st, _) in previous.checks.items()
        if cid not in now and cid.split(".", 1)[0] in shared
    ]
    return d


# --------------------------------------------------------------------------- renderers


def to_markdown(d: RehearsalDiff) -> str:
    out = ["## What changed since the last rehearsal", ""]
    if d.first:
        out += [
            f"No previous rehearsal of `{d.environment}` was found: this run is the baseline the next "
            "rehearsal compares with.",
            "",
        ]
        return "\n".join(out)
    assert d.previous_verdict is not None  # set with previous_started_at, by diff()
    now = f"{VICON[d.verdict]} {d.verdict.value}"
    verdict = (
        f"verdict {VICON[d.previous_verdict]} {d.previous_verdict.value} → {now}"
        if d.previous_verdict != d.verdict
        else f"verdict unchanged: {now}"
    )
    out += [
        f"Compared with the rehearsal of {d.previous_started_at:%Y-%m-%d %H:%M:%S} UTC "
        f"(flow run `{d.previous_run_id or '?'}`): {verdict}.",
        "",
    ]
    if d.scope_note:
        out += [d.scope_note, ""]
    groups = d.groups(lambda s: md(s, 240))
    if not any(title != "Still failing" for title, _, _ in groups):
        out += [f"No status changed and no check got slower ({d.slow_rule}).", ""]
    for title, icon, lines in groups:
        extra = f" ({d.slow_rule})" if title == "Slower" else ""
        out += [f"**{icon} {title} ({len(lines)})**{extra}", ""] + [f"- {x}" for x in lines] + [""]
    return "\n".join(out)


def _one_line(s: str, limit: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _lines_within(lines: list[str], limit: int) -> str:
    """As many whole lines as fit (a cut could split an entity)."""
    out = "\n".join(lines)
    while len(out) > limit and "\n" in out:
        out = out.rsplit("\n", 1)[0]
    return out[:limit]


def to_slack(d: RehearsalDiff) -> dict[str, Any]:
    """A Slack incoming-webhook payload: `text` (the notification / fallback) and Block Kit `blocks`."""
    text = d.headline()
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _one_line(f"{VICON[d.verdict]} golive rehearsal {d.environment}: {d.verdict.value}", 150),
                "emoji": True,
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(_one_line(text, 2900))}},
    ]
    if d.first:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "No previous rehearsal: this run is the baseline the next one compares with.",
                },
            }
        )
    for title, icon, lines in d.groups(lambda s: plain(s, 200)):
        shown = [f"• {slack_escape(x)}" for x in lines[:SLACK_ITEMS]]
        if len(lines) > SLACK_ITEMS:
            shown.append(f"… and {len(lines) - SLACK_ITEMS} more (see the report)")
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _one_line(f"*{icon} {title} ({len(lines)})*", 200) + "\n" + _lines_within(shown, 2700),
                },
            }
        )
    ctx = f"flow run {d.flow_run_id or '?'} · {d.started_at:%Y-%m-%d %H:%M} UTC"
    if d.previous_run_id:
        ctx += f" · compared with flow run {d.previous_run_id}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(ctx)}]})
    return {"text": slack_escape(text), "blocks": blocks}


# --------------------------------------------------------------------------- Prefect API and webhook


async def publish_snapshot(report: Report, snap: Snapshot | None = None) -> None:
    snap = snap or snapshot_of(report)
    await artifacts.publish_json(
        "rehearsal",
        report.environment,
        snapshot_people(snap),
        snap.model_dump(mode="json"),
        f"rehearsal snapshot: {snap.verdict.value}, {len(snap.checks)} checks",
        compact=True,
    )


def webhook_label(url: str) -> str:
    """Where a webhook points, without its secret path: `https://hooks.slack.com/…`."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or '?'}{f':{u.port}' if u.port else ''}/…"


async def post_webhook(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    """POST once, bounded by `timeout` as a whole (connect, send, answer). None on 2xx, else what went wrong."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False) as client:
            r = await asyncio.wait_for(client.post(url, json=payload), timeout)
    except (TimeoutError, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    except Exception as e:  # noqa: BLE001 - refused, DNS, TLS, a bad URL: all a failed notification
        return f"{type(e).__name__}: {e}".rstrip(": ").replace(url, webhook_label(url))
    if 200 <= r.status_code < 300:
        return None
    body = _one_line(r.text, 120).replace(url, webhook_label(url))
    return f"HTTP {r.status_code}" + (f" {body}" if body else "")


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run (tests, plain use)
        return logging.getLogger("golive.rehearsal")


class Rehearsed(NamedTuple):
    """What the rehearsal adds to the report: its markdown (what changed, the trend, flaky checks) and the trend
    picture (SVG text, already redacted) written beside report.md."""

    markdown: str
    trend_svg: str | None = None


def change_summary(d: RehearsalDiff, shown: int = 3) -> str:
    """One line of what changed since the previous rehearsal (kept in the snapshot: `golive history` shows it)."""
    if d.first:
        return "first rehearsal (the baseline)"
    assert d.previous_verdict is not None  # set with previous_started_at, by diff()
    parts = [f"{d.previous_verdict.value} → {d.verdict.value}"] if d.previous_verdict != d.verdict else []
    groups: list[tuple[str, str, list[str]]] = [
        ("new failure", "new failures", [c.id for c in d.new_failures]),
        ("fixed", "fixed", [c.id for c in d.fixed]),
        ("other change", "other changes", [c.id for c in d.other_changes]),
        ("added", "added", [c.id for c in d.added]),
        ("removed", "removed", [c.id for c in d.removed]),
        ("slower", "slower", [s.id for s in d.slower]),
    ]
    for one, many, ids in groups:
        if ids:
            more = f" (+{len(ids) - shown})" if len(ids) > shown else ""
            parts.append(f"{len(ids)} {one if len(ids) == 1 else many}: {', '.join(ids[:shown])}{more}")
    if d.still_failing:
        parts.append(f"{len(d.still_failing)} still failing")
    return "; ".join(parts) or "no change"


def trend_section(window: list[Snapshot], flaky: list[Flaky], rule: str, looked_at: int, svg: str) -> str:
    """The report's trend section: the picture (an image the Prefect UI shows), then the flaky checks."""
    out = [f"## Trend of the last {len(window)} rehearsals", "", trend.markdown(svg, len(window)), ""]
    if flaky:
        out += [f"**⚠️ Flaky checks ({len(flaky)})**: {rule} (looked at {looked_at}); they still count.", ""]
        out += [f"- {md(f.id, 200)} {f.letters()} ({f.changes} changes)" for f in flaky]
        out += [
            "",
            "Statuses oldest first: P pass, W warn, F fail, E error, S skipped, n not applicable, · not run.",
            "",
        ]
    else:
        out += [f"No flaky check ({rule}; looked at {looked_at}).", ""]
    return "\n".join(out)


async def since_last_rehearsal(report: Report, config: GoliveConfig, redact: Redactor) -> Rehearsed:
    """Rehearsal mode, after the report is built and before it is published: read the last rehearsals' snapshots,
    diff with the previous one, notify, find flaky checks, draw the trend, publish tonight's snapshot. Returns the
    markdown for the report and the trend picture; adds notes to `report`. Never raises: a rehearsal that cannot
    compare or notify still publishes its report."""
    from .config import NotifyPolicy

    policy: NotifyPolicy = config.notify or NotifyPolicy()
    log = _logger()
    past: list[Snapshot] = []
    try:
        past = await read_snapshots(report.environment, policy.history_runs)
    except Exception as e:  # noqa: BLE001 - the comparison is a bonus; the report is the product
        why = redact.text(_one_line(f"{type(e).__name__}: {e}", 200))
        log.warning("the previous rehearsal could not be read (%s): nothing to compare with", why)
        report.notes.append(f"rehearsal: the previous snapshot could not be read ({why})")
    # this very run's snapshot (a retried publish): never compare a run with itself
    past = [
        p
        for p in past
        if p.environment == report.environment and not (p.flow_run_id and p.flow_run_id == report.flow_run_id)
    ]
    previous = past[0] if past else None
    d = diff(report, previous, slow_factor=policy.slow_factor, slow_min_seconds=policy.slow_min_seconds)
    report.notes.append(redact.text(d.headline().replace("`", "")))
    if policy.webhook_url is not None and (d.changed or not policy.only_on_change):
        url = policy.webhook_url.get_secret_value()
        err = await post_webhook(url, redact(to_slack(d)), policy.timeout_s)
        if err:
            err = redact.text(err)
            log.warning("rehearsal webhook %s failed: %s (the run goes on)", webhook_label(url), err)
            report.notes.append(f"rehearsal: the webhook {webhook_label(url)} failed: {err}")
        else:
            log.info("rehearsal diff posted to %s", webhook_label(url))
    tonight = snapshot_of(report)
    window = [tonight, *past][: policy.history_runs]  # newest first
    flaky, looked_at = flaky_checks(window, policy.history_runs, policy.flaky_changes)
    rule = flaky_rule(policy.history_runs, policy.flaky_changes)
    tonight = tonight.model_copy(update={"changed": change_summary(d), "flaky": flaky, "flaky_rule": rule})
    for f in flaky:
        report.notes.append(
            redact.text(f"flaky: {f.id} changed status {f.changes} times ({f.letters()}); it still counts")
        )
    try:
        await publish_snapshot(report, tonight)
    except Exception as e:  # noqa: BLE001
        why = redact.text(_one_line(f"{type(e).__name__}: {e}", 200))
        log.warning("the rehearsal snapshot could not be published (%s)", why)
        report.notes.append(
            f"rehearsal: tonight's snapshot could not be published ({why}): "
            "the next rehearsal will compare with an older one"
        )
    oldest_first = window[::-1]
    # redacted before it is encoded: base64 would hide a secret from the report's redaction
    svg = redact.text(
        trend.render(
            oldest_first,
            [f.id for f in flaky],
            title=f"golive: the last {len(window)} rehearsals of {report.environment}",
        )
    )
    md_out = to_markdown(d).rstrip() + "\n\n" + trend_section(window, flaky, rule, looked_at, svg)
    return Rehearsed(redact.text(md_out), svg)
