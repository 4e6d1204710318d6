"""Readiness over time, read from Prefect itself: every run's verdict and every rehearsal's snapshot are versions of
one artifact key per environment (`golive-verdict-<env>`, `golive-rehearsal-<env>`, flows/artifacts.py), and Prefect
keeps every version. No second store.

- a **run** of the history: time, mode, verdict, PASS/WARN/FAIL/ERROR/SKIPPED counts, duration, what changed, from
  the verdict artifact (every mode: rehearsal, ci, go-live), joined by flow run id with the rehearsal's snapshot
  (per-check statuses) where there is one. Older versions without counts or fingerprint are still read (their
  counts come from the snapshot when there is one, else they are shown as unknown);
- **what changed**: for a rehearsal, what it reported itself (its diff with the previous rehearsal); for the other
  modes (and older rehearsals), the difference with the previous run of the same mode in the window: the verdict,
  checks that started or stopped failing or warning; and "config changed" when the fingerprints differ;
- the **config fingerprint**: a hash of the config's non-secret content (every secret value masked before hashing,
  never hashed itself), so "the config changed" is known without storing it;
- **flaky** checks: a check whose status changed more than `notify.flaky_changes` times in the last
  `notify.history_runs` rehearsals, counted back to the last config change (a change of config is a change of what
  is checked, not a flap). The rehearsal computes it and keeps it in its snapshot, so the report and
  `golive history` say the same; it still counts (a flaky blocking failure is still NO-GO).

The pure parts need no Prefect; `read_history` and `read_snapshots` read through Prefect's client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from golive.tasks.core import Redactor, Status

from . import artifacts
from .report import Verdict, md

if TYPE_CHECKING:
    from .config import GoliveConfig

SNAPSHOT_VERSION = 1  # new fields are optional: older snapshots stay readable, older readers ignore them
COUNTED = ("PASS", "WARN", "FAIL", "ERROR", "SKIPPED", "NOT_APPLICABLE")
PROBLEMS = frozenset({Status.WARN, Status.FAIL, Status.ERROR, Status.SKIPPED})
LETTER = {
    Status.PASS: "P",
    Status.WARN: "W",
    Status.FAIL: "F",
    Status.ERROR: "E",
    Status.SKIPPED: "S",
    Status.NOT_APPLICABLE: "n",
}
MAX_RUNS = 200  # `golive history --last`: at most this many runs
ENVIRONMENT = r"[a-z0-9][a-z0-9-]{0,62}"  # an environment name, as flows/config.py's `environment` field


# --------------------------------------------------------------------------- the snapshot a rehearsal keeps


class Flaky(BaseModel):
    """A check that changed status more than the policy allows, with its statuses oldest first (None: not run)."""

    id: str
    sequence: list[Status | None]
    changes: int

    def letters(self) -> str:
        """`P F P F P`: P pass, W warn, F fail, E error, S skipped, n not applicable, · not in that run."""
        return " ".join(LETTER[s] if s else "·" for s in self.sequence)


class Snapshot(BaseModel):
    """What the next rehearsals compare with: per check id `[status, duration_s]`, and (since issue 15) the run's
    mode, counts, duration, config fingerprint, what changed and the flaky checks it found."""

    version: int = SNAPSHOT_VERSION
    environment: str
    flow_run_id: str | None = None
    started_at: datetime
    verdict: Verdict
    checks: dict[str, tuple[Status, float]]
    mode: str = "rehearsal"
    duration_s: float | None = None
    counts: dict[str, int] | None = None
    config_fingerprint: str | None = None
    changed: str | None = None
    flaky: list[Flaky] = Field(default_factory=list)
    flaky_rule: str | None = None

    @property
    def sections(self) -> set[str]:
        return {cid.split(".", 1)[0] for cid in self.checks}

    def status_counts(self) -> dict[str, int]:
        return self.counts if self.counts is not None else counts_of(st for st, _ in self.checks.values())


def snapshot_from(payload: Any) -> Snapshot | None:
    """The snapshot in an artifact's payload, or None when it is not one (another format, a newer version)."""
    if not isinstance(payload, dict):
        return None
    try:
        snap = Snapshot.model_validate(payload)
    except ValueError:
        return None
    return snap if snap.version == SNAPSHOT_VERSION else None


def counts_of(statuses: Iterable[Status]) -> dict[str, int]:
    out = dict.fromkeys(COUNTED, 0)
    for st in statuses:
        out[st.value] += 1
    return out


def config_fingerprint(cfg: GoliveConfig, redact: Redactor | None = None) -> str:
    """A short hash of the config's non-secret content: every SecretStr dumps masked and every secret value (whatever
    field it landed in: `${VAR}`, a Secret block) is masked in every string before hashing, so no secret is ever
    hashed (a hash of a short secret can be guessed back). A rotated secret is no config change. `redact`: the
    run's own redactor (it knows the config's secrets), saving building another."""
    redact = redact or Redactor(cfg.secrets())
    canon = json.dumps(
        _each_string(cfg.model_dump(mode="json"), redact.text), sort_keys=True, separators=(",", ":"), default=str
    )
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()[:16]


def _each_string(v: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return fn(v)
    if isinstance(v, dict):
        return {_each_string(k, fn): _each_string(x, fn) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_each_string(x, fn) for x in v]
    return v


# --------------------------------------------------------------------------- flaky checks


def flaky_rule(runs: int, changes: int) -> str:
    return f"changed status more than {changes} times in the last {runs} rehearsals with no config change"


def flaky_checks(snaps: Sequence[Snapshot], runs: int, changes: int) -> tuple[list[Flaky], int]:
    """(flaky checks, rehearsals looked at) over `snaps`, newest first: the newest `runs` back to the last config
    change (a snapshot without a fingerprint, from before issue 15, ends the window too: its config is unknown)."""
    newest = snaps[0].config_fingerprint if snaps else None
    window: list[Snapshot] = []
    for s in snaps[:runs]:
        if newest is None or s.config_fingerprint != newest:
            break
        window.append(s)
    window.reverse()  # oldest first
    out = []
    for cid in sorted({c for s in window for c in s.checks}):
        seq = [s.checks[cid][0] if cid in s.checks else None for s in window]
        ran = [x for x in seq if x is not None]
        n = sum(a != b for a, b in zip(ran, ran[1:]))
        if n > changes:
            out.append(Flaky(id=cid, sequence=seq, changes=n))
    return out, len(window)


# --------------------------------------------------------------------------- the history's runs


class _VerdictRecord(BaseModel):
    """The fields of a verdict artifact the history reads (older versions have no counts nor fingerprint)."""

    environment: str
    mode: str = "?"
    verdict: Verdict
    flow_run_id: str | None = None
    started_at: datetime
    duration_s: float | None = None
    blocking: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    counts: dict[str, int] | None = None
    config_fingerprint: str | None = None


class Run(BaseModel):
    """One readiness run of an environment, as `golive history` shows it."""

    flow_run_id: str | None = None
    started_at: datetime
    mode: str
    verdict: Verdict
    counts: dict[str, int] | None = None  # None: an older verdict without counts and no snapshot
    duration_s: float | None = None
    changed: str = ""
    config_fingerprint: str | None = None
    flaky: list[str] = Field(default_factory=list)  # what this rehearsal flagged
    problems: set[str] | None = Field(None, exclude=True)  # checks WARN/FAIL/ERROR/SKIPPED (None: unknown)
    stored_change: str | None = Field(None, exclude=True)
    joined: bool = Field(False, exclude=True)  # its rehearsal snapshot is read


class History(BaseModel):
    environment: str
    runs: list[Run]  # newest first
    flaky: list[Flaky] = Field(default_factory=list)  # as the newest rehearsal found them
    flaky_rule: str | None = None
    flaky_as_of: datetime | None = None
    skipped: int = 0  # versions that were not golive JSON (an artifact is API-writable input)


def _ids(lines: list[str]) -> set[str]:
    return {line.split(" ", 1)[0] for line in lines if isinstance(line, str) and line}


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def build_history(
    environment: str, verdicts: Sequence[Any], snapshots: Sequence[Snapshot], last: int, skipped: int = 0
) -> History:
    """The newest `last` runs from verdict payloads (any order; not golive JSON: counted in `skipped`) and rehearsal
    snapshots, joined by flow run id. Never raises on what an artifact holds."""
    by_run: dict[str, Run] = {}
    loose: list[Run] = []
    for payload in verdicts:
        try:
            v = _VerdictRecord.model_validate(payload)
        except ValidationError:
            skipped += 1
            continue
        if v.environment != environment:
            skipped += 1
            continue
        run = Run(
            flow_run_id=v.flow_run_id,
            started_at=_aware(v.started_at),
            mode=v.mode,
            verdict=v.verdict,
            counts=v.counts,
            duration_s=v.duration_s,
            config_fingerprint=v.config_fingerprint,
            problems=_ids(v.blocking) | _ids(v.warnings),
        )
        if v.flow_run_id:
            by_run.setdefault(v.flow_run_id, run)  # newest version first: a run's latest verdict wins
        else:
            loose.append(run)
    for s in snapshots:
        if s.environment != environment:
            continue
        found = by_run.get(s.flow_run_id or "")
        if found is None:  # a rehearsal whose verdict artifact is older than the window (or was not published)
            run = Run(flow_run_id=s.flow_run_id, started_at=_aware(s.started_at), mode=s.mode, verdict=s.verdict)
            if s.flow_run_id:
                by_run[s.flow_run_id] = run
            else:
                loose.append(run)
        elif found.joined:
            continue  # this run's snapshot was already joined (two versions on one run: the newest wins)
        else:
            run = found
        run.joined = True
        run.counts = run.counts or s.status_counts()
        run.duration_s = run.duration_s if run.duration_s is not None else s.duration_s
        run.config_fingerprint = run.config_fingerprint or s.config_fingerprint
        run.problems = {cid for cid, (st, _) in s.checks.items() if st in PROBLEMS}
        run.stored_change = s.changed
        run.flaky = [f.id for f in s.flaky]
    runs = sorted([*by_run.values(), *loose], key=lambda r: r.started_at, reverse=True)[:last]
    for i, run in enumerate(runs):
        prev = next((p for p in runs[i + 1 :] if p.mode == run.mode), None)
        run.changed = _changed(prev, run)
    newest = next((s for s in snapshots if s.environment == environment and s.flaky_rule), None)
    return History(
        environment=environment,
        runs=runs,
        flaky=newest.flaky if newest else [],
        flaky_rule=newest.flaky_rule if newest else None,
        flaky_as_of=_aware(newest.started_at) if newest else None,
        skipped=skipped,
    )


def _names(ids: set[str], shown: int = 3) -> str:
    s = sorted(ids)
    return ", ".join(s[:shown]) + (f" (+{len(s) - shown})" if len(s) > shown else "")


def _changed(prev: Run | None, run: Run) -> str:
    config = (
        prev is not None
        and prev.config_fingerprint is not None
        and run.config_fingerprint is not None
        and prev.config_fingerprint != run.config_fingerprint
    )
    if run.stored_change is not None:  # a rehearsal says itself what changed since the previous rehearsal
        return run.stored_change + ("; config changed" if config else "")
    if prev is None:
        return f"first {run.mode} run in this window"
    parts = []
    if prev.verdict != run.verdict:
        parts.append(f"{prev.verdict.value} → {run.verdict.value}")
    if prev.problems is not None and run.problems is not None:
        if new := run.problems - prev.problems:
            parts.append(f"failing or warning now: {_names(new)}")
        if fixed := prev.problems - run.problems:
            parts.append(f"fixed: {_names(fixed)}")
    if config:
        parts.append("config changed")
    return "; ".join(parts) or "no change"


# --------------------------------------------------------------------------- renderers


def _counts(r: Run) -> list[str]:
    return [str(r.counts.get(k, 0)) if r.counts is not None else "?" for k in COUNTED[:5]]


def _duration(r: Run) -> str:
    return f"{r.duration_s:.1f} s" if r.duration_s is not None else "?"


def rows(h: History) -> list[list[str]]:
    """time, mode, verdict, PASS, WARN, FAIL, ERROR, SKIPPED, duration, what changed: one row per run."""
    return [
        [f"{r.started_at:%Y-%m-%d %H:%M} UTC", r.mode, r.verdict.value, *_counts(r), _duration(r), r.changed]
        for r in h.runs
    ]


HEADER = ["time", "mode", "verdict", "PASS", "WARN", "FAIL", "ERROR", "SKIPPED", "duration", "what changed"]


def flaky_lines(h: History) -> list[str]:
    if h.flaky_rule is None:
        return []
    head = f"flaky checks ({h.flaky_rule}; as of the rehearsal of {h.flaky_as_of:%Y-%m-%d %H:%M} UTC)"
    if not h.flaky:
        return [f"{head}: none"]
    return [f"{head}:"] + [f"  flaky {f.id}: {f.letters()} ({f.changes} changes; it still counts)" for f in h.flaky]


def to_json(h: History) -> dict[str, Any]:
    return h.model_dump(mode="json")


def _md(v: str) -> str:
    """A cell of a markdown table: no pipe, no newline, no markup from a name."""
    return md(v, 300)


def to_markdown(h: History) -> str:
    out = [f"# Readiness history of {_md(h.environment)} (last {len(h.runs)} runs)", ""]
    out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows(h)]
    if h.flaky_rule is not None:
        out += ["", f"**Flaky checks** ({_md(h.flaky_rule)}):", ""]
        out += [f"- {_md(f.id)} {f.letters()} ({f.changes} changes; it still counts)" for f in h.flaky] or ["- none"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- Prefect


def snapshots_of(versions: Sequence[artifacts.Version]) -> tuple[list[Snapshot], int]:
    """(snapshots, versions that are not one), order kept."""
    snaps = [s for v in versions if (s := snapshot_from(v.payload)) is not None]
    return snaps, len(versions) - len(snaps)


async def read_snapshots(environment: str, limit: int, *, client: Any = None, timeout: float = 20.0) -> list[Snapshot]:
    """The newest `limit` rehearsal snapshots, newest first (versions that are not one left out). Raises when the API
    cannot be read within `timeout`."""
    versions = await asyncio.wait_for(artifacts.versions_json("rehearsal", environment, limit, client), timeout)
    return snapshots_of(versions)[0]


async def read_history(environment: str, last: int, *, client: Any = None, timeout: float = 30.0) -> History:
    """The newest `last` runs of `environment` from its verdict and rehearsal artifacts, read through Prefect's
    client within `timeout` (the caller says what a failure means)."""

    async def both() -> tuple[list[artifacts.Version], list[artifacts.Version]]:
        verdicts = await artifacts.versions_json("verdict", environment, last, client)
        rehearsals = await artifacts.versions_json("rehearsal", environment, last, client)
        return verdicts, rehearsals

    verdicts, rehearsals = await asyncio.wait_for(both(), timeout)
    snaps, bad = snapshots_of(rehearsals)
    payloads = [v.payload for v in verdicts if v.payload is not None]
    return build_history(environment, payloads, snaps, last, skipped=bad + len(verdicts) - len(payloads))
