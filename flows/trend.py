"""The trend picture of the last rehearsals: one hand-written SVG (no plotting library), oldest run on the left.

Panels, one column per rehearsal:
- **verdict** per night (green GO, amber GO-WITH-WARNINGS, red NO-GO);
- **failing checks per section** (FAIL, ERROR or SKIPPED), the count in a cell shaded by it;
- **duration** of the run, as bars;
- a **heat strip** per check that changed status in the window (one colour per status; a check flagged flaky is
  marked so), at most `MAX_STRIPS` of them, the rest counted.

Every text in it (check ids and sections come from the config and the suites) is escaped for XML and stripped of the
characters XML cannot hold, so a crafted name is text, never markup. It has its own white background (the Prefect UI
may be dark). The rehearsal's markdown artifact shows it as a `data:image/svg+xml;base64,` image (what the Prefect
UI's markdown renderer displays, tests/test_history.py) and the run writes it beside report.md as trend.svg.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape

from golive.tasks.core import Status

from .history import Snapshot
from .report import BAD, Verdict

CELL, ROW, STRIP, LEFT, PAD = 34, 20, 16, 270, 16
MAX_STRIPS = 40
LABEL_CHARS = 40
FONT = 'font-family="DejaVu Sans, Arial, Helvetica, sans-serif"'
VERDICT_FILL = {Verdict.GO: "#2e9e44", Verdict.GO_WITH_WARNINGS: "#e0a100", Verdict.NO_GO: "#d1342f"}
VERDICT_TEXT = {Verdict.GO: "GO", Verdict.GO_WITH_WARNINGS: "WARN", Verdict.NO_GO: "NO-GO"}
STATUS_FILL = {
    Status.PASS: "#2e9e44",
    Status.WARN: "#e0a100",
    Status.FAIL: "#d1342f",
    Status.ERROR: "#7a0f0c",
    Status.SKIPPED: "#8e44ad",
    Status.NOT_APPLICABLE: "#b8b8b8",
}
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def x(text: str) -> str:
    """`text` as XML character data or an attribute value: escaped, without the characters XML 1.0 cannot hold."""
    return escape(_NOT_XML.sub("\ufffd", str(text)), {'"': "&quot;", "'": "&apos;"})


def _clip(text: str, n: int = LABEL_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def changed_checks(snaps: Sequence[Snapshot]) -> list[str]:
    """Check ids whose status was not the same in every run of the window that ran them."""
    out = []
    for cid in sorted({c for s in snaps for c in s.checks}):
        seen = {s.checks[cid][0] for s in snaps if cid in s.checks}
        if len(seen) > 1:
            out.append(cid)
    return out


def failing_by_section(snap: Snapshot) -> dict[str, int]:
    out: dict[str, int] = {}
    for cid, (st, _) in snap.checks.items():
        sec = cid.split(".", 1)[0]
        out[sec] = out.get(sec, 0) + (st in BAD)
    return out


def render(snaps: Sequence[Snapshot], flaky: Iterable[str] = (), *, title: str = "") -> str:
    """The SVG text for `snaps`, oldest first (at least one)."""
    flaky_ids = set(flaky)
    n = max(1, len(snaps))
    width = max(LEFT + n * CELL + PAD, 640)
    parts: list[str] = []
    y = PAD

    def text(tx: float, ty: float, s: str, size: int = 11, extra: str = "") -> None:
        parts.append(f'<text x="{tx:.0f}" y="{ty:.0f}" font-size="{size}" {extra}>{x(s)}</text>')

    def rect(rx: float, ry: float, w: float, h: float, fill: str, extra: str = "") -> None:
        parts.append(f'<rect x="{rx:.0f}" y="{ry:.0f}" width="{w:.0f}" height="{h:.0f}" fill="{fill}" {extra}/>')

    def col(i: int) -> float:
        return LEFT + i * CELL

    text(PAD, y + 12, title or f"golive: the last {len(snaps)} rehearsals", 15, 'font-weight="bold"')
    y += 30
    # dates, rotated, above the columns
    for i, s in enumerate(snaps):
        cx, cy = col(i) + CELL / 2 + 4, y + 62
        text(cx, cy, f"{s.started_at:%m-%d %H:%M}", 10, f'transform="rotate(-60 {cx:.0f} {cy:.0f})"')
    y += 70
    # verdict per night
    text(PAD, y + 14, "verdict", 12, 'font-weight="bold"')
    for i, s in enumerate(snaps):
        rect(col(i) + 1, y, CELL - 2, ROW, VERDICT_FILL[s.verdict], 'rx="3"')
        text(col(i) + CELL / 2, y + 14, VERDICT_TEXT[s.verdict], 8, 'fill="#fff" text-anchor="middle"')
    y += ROW + 18
    # failing checks per section
    by_run = [failing_by_section(s) for s in snaps]
    sections = sorted({sec for f in by_run for sec in f})
    text(PAD, y, "failing checks per section (FAIL, ERROR, SKIPPED)", 12, 'font-weight="bold"')
    y += 8
    top = max([v for f in by_run for v in f.values()] + [1])
    for sec in sections:
        text(PAD + 8, y + 14, _clip(sec))
        for i, f in enumerate(by_run):
            if sec not in f:
                rect(col(i) + 1, y + 1, CELL - 2, ROW - 2, "#f4f4f4")
                continue
            v = f[sec]
            if v == 0:
                rect(col(i) + 1, y + 1, CELL - 2, ROW - 2, "#e8f5e9")
            else:
                rect(col(i) + 1, y + 1, CELL - 2, ROW - 2, "#d1342f", f'fill-opacity="{0.25 + 0.6 * v / top:.2f}"')
            text(col(i) + CELL / 2, y + 14, str(v), 10, 'text-anchor="middle"')
        y += ROW
    if not sections:
        text(PAD + 8, y + 14, "no checks")
        y += ROW
    y += 18
    # duration
    durations = [s.duration_s for s in snaps]
    longest = max([d for d in durations if d is not None] + [1e-9])
    text(PAD, y, "duration of the run", 12, 'font-weight="bold"')
    bar_h = 50
    text(PAD + 8, y + 16, f"longest {longest:.1f} s", 10, 'fill="#555"')
    y += 6
    for i, d in enumerate(durations):
        if d is None:
            text(col(i) + CELL / 2, y + bar_h, "?", 10, 'text-anchor="middle" fill="#888"')
            continue
        h = max(1.0, (bar_h - 12) * d / longest)
        rect(col(i) + 5, y + bar_h - h, CELL - 10, h, "#4a78c2")
        text(
            col(i) + CELL / 2,
            y + bar_h - h - 3,
            f"{d:.0f}s" if d < 1000 else f"{d / 60:.0f}m",
            8,
            'text-anchor="middle"',
        )
    parts.append(f'<line x1="{LEFT}" y1="{y + bar_h}" x2="{col(n)}" y2="{y + bar_h}" stroke="#999"/>')
    y += bar_h + 26
    # per-check heat strip for the checks that changed status
    changed = changed_checks(snaps)
    text(PAD, y, f"checks that changed status ({len(changed)})", 12, 'font-weight="bold"')
    y += 8
    for cid in changed[:MAX_STRIPS]:
        is_flaky = cid in flaky_ids
        label = ("FLAKY " if is_flaky else "") + _clip(cid, LABEL_CHARS - 6 * is_flaky)
        text(PAD + 8, y + 12, label, 10, 'fill="#b00020" font-weight="bold"' if is_flaky else "")
        for i, s in enumerate(snaps):
            got = s.checks.get(cid)
            if got is None:
                rect(col(i) + 1, y + 1, CELL - 2, STRIP - 2, "#ffffff", 'stroke="#ddd"')
            else:
                rect(col(i) + 1, y + 1, CELL - 2, STRIP - 2, STATUS_FILL[got[0]])
        y += STRIP
    if len(changed) > MAX_STRIPS:
        text(PAD + 8, y + 12, f"… and {len(changed) - MAX_STRIPS} more", 10, 'fill="#555"')
        y += STRIP
    if not changed:
        text(PAD + 8, y + 12, "none: every check kept its status", 10, 'fill="#555"')
        y += STRIP
    y += 14
    # legend
    lx = PAD
    for status, fill in STATUS_FILL.items():
        rect(lx, y, 12, 12, fill)
        text(lx + 16, y + 10, status.value, 10)
        lx += 28 + 7 * len(status.value)
    rect(lx, y, 12, 12, "#ffffff", 'stroke="#ddd"')
    text(lx + 16, y + 10, "not run", 10)
    y += 12 + PAD
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" '
        f'role="img" {FONT}><title>{x(title or "golive rehearsal trend")}</title>'
        f'<rect x="0" y="0" width="{width}" height="{y}" fill="#ffffff"/>'
    )
    return head + "".join(parts) + "</svg>\n"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def markdown(svg: str, runs: int) -> str:
    """The image line of the report's trend section (the alt text is ours: no name from the config in it)."""
    return f"![trend of the last {runs} rehearsals]({data_uri(svg)})"
