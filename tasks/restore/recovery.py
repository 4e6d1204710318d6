"""Disaster recovery (seed 8.1, 8.2): RPO and RTO from measurements, the rollback script and its last rehearsal, the
release tag in git. The settings live in the `restore` section (restore/target.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..backups import REACHABLE as S3_REACHABLE
from ..backups import BackupTarget, age_hours, list_evidence, listing, newest
from ..core import Observation, RunContext, check, compare, failed, given, passed
from .target import MEASUREMENT, TEST, RestoreTarget

SCRIPT = "backup.rollback.script"
OK_STATUSES = {"success", "succeeded", "passed", "pass", "ok", "completed"}


@check(
    "backup.recovery.rpo",
    title="Recovery point objective: the newest WAL/incremental backup is recent",
    seed=["8.2 Recovery Time Objective", "3.3 Incremental/WAL Backups"],
    depends_on=[S3_REACHABLE],
    timeout=15,
    target="restore",
    needs=["backups"],
)
def recovery_rpo(t: RestoreTarget, ctx: RunContext, *, backups: BackupTarget) -> Observation:
    """The data lost in a disaster is at most the age of the newest recovery point: the newest object under
    `backups.wal_prefix` (the newest full backup when no WAL is archived) must be younger than rpo_minutes."""
    b = backups
    prefix = b.wal_prefix or b.prefix
    kind = "WAL/incremental" if b.wal_prefix else "full backup (no WAL archived)"
    o = newest(listing(b, prefix, ctx))
    evidence = f"newest {kind} object: {list_evidence(b, prefix)}"
    if o is None:
        return failed(
            f"no recovery point under s3://{b.bucket}/{prefix}",
            f"newest recovery point < {t.rpo_minutes:g} min old",
            evidence,
        )
    minutes = age_hours(o) * 60
    obs = compare(minutes, "<", t.rpo_minutes, unit="min", evidence=evidence, key=o["Key"], kind=kind)
    obs.observed = f"{minutes:.1f} min of data at risk (newest {kind}: {o['Key']})"
    obs.expected = f"RPO < {t.rpo_minutes:g} min"
    return obs


@check(
    "backup.recovery.rto",
    title="Recovery time objective: measured restore + rollback fit the RTO",
    seed=["8.2 Recovery Time Objective"],
    depends_on=[TEST],
    timeout=5,
    target="restore",
)
def recovery_rto(t: RestoreTarget, ctx: RunContext) -> Observation:
    """RTO = the restore time measured by backup.restore.test in this run + rollback_minutes (the configured deploy
    rollback); it must stay below rto_minutes."""

    def missing() -> Any:
        raise RuntimeError(f"no restore measurement in this run ({TEST} recorded none)")

    m = ctx.memo(MEASUREMENT, missing)
    restore_min = m["restore_seconds"] / 60
    total = restore_min + t.rollback_minutes
    evidence = (
        f"restore of {m['key']} measured by {TEST} in this run ({m['restore_seconds']:.1f} s, "
        f"{m['bytes']:,} bytes) + restore.rollback_minutes ({t.rollback_minutes:g} min)"
    )
    obs = compare(
        total,
        "<",
        t.rto_minutes,
        unit="min",
        evidence=evidence,
        restore_minutes=round(restore_min, 3),
        rollback_minutes=t.rollback_minutes,
    )
    took = f"{m['restore_seconds']:.2f} s" if m["restore_seconds"] < 120 else f"{restore_min:.1f} min"
    obs.observed = f"{total:.1f} min = restore {took} + rollback {t.rollback_minutes:g} min"
    obs.expected = f"RTO < {t.rto_minutes:g} min"
    return obs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


@check(
    SCRIPT,
    title="The rollback script exists, is executable and parses",
    seed=["8.2 Rollback Script"],
    timeout=10,
    target="restore",
    needs={"restore.rollback_script": "the seed's /scripts/rollback_production.sh"},
)
def rollback_script(t: RestoreTarget, ctx: RunContext) -> Observation:
    """restore.rollback_script is a non-empty executable file; a sh/bash script must pass `bash -n` (parsed, never
    executed). Its SHA-256 is recorded (the rehearsal check compares it)."""
    p = given(t.rollback_script)
    expected = "an executable, non-empty script that parses"
    evidence = f"stat {p}; `bash -n {p}` for shell scripts (syntax only, nothing executed)"
    if not p.exists():
        return failed(f"{p} does not exist", expected, evidence)
    if not p.is_file():
        return failed(f"{p} is not a regular file", expected, evidence)
    size = p.stat().st_size
    problems = []
    if size == 0:
        problems.append("empty")
    if not os.access(p, os.X_OK):
        problems.append("not executable")
    with p.open("rb") as f:
        first = f.readline(256).decode("utf-8", errors="replace").strip()
    observed: dict[str, Any] = {
        "path": str(p),
        "size_bytes": size,
        "sha256": _sha256(p),
        "interpreter": first[2:].strip() if first.startswith("#!") else "none (no #!)",
    }
    if size and (p.suffix in (".sh", ".bash") or any(x in first for x in ("sh", "bash"))):
        r = subprocess.run(
            ["bash", "-n", str(p)], capture_output=True, text=True, timeout=max(1.0, ctx.remaining), env=ctx.child_env()
        )
        observed["syntax"] = "ok" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["error"])[-1]
        if r.returncode != 0:
            problems.append(f"syntax error: {observed['syntax']}")
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


def _last_record(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError("the record is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = json.loads(text.splitlines()[-1])  # JSON lines: the last rehearsal wins
    if isinstance(doc, list):
        doc = doc[-1] if doc else {}
    if not isinstance(doc, dict):
        raise ValueError("the record is not a JSON object")
    return doc


def _when(value: Any) -> datetime:
    d = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


@check(
    "backup.rollback.rehearsal",
    title="The rollback was rehearsed within the last week, successfully, in time",
    seed=["8.2 Rollback Script", "8.2 Recovery Time Objective"],
    depends_on=[SCRIPT],
    timeout=10,
    target="restore",
    needs={"restore.rehearsal_record": "no record of a rollback rehearsal"},
)
def rollback_rehearsal(t: RestoreTarget, ctx: RunContext) -> Observation:
    """The last record of restore.rehearsal_record (JSON, or JSON lines) finished less than rehearsal_max_age_days
    ago with a success status, took at most rollback_minutes, and rehearsed the script that is in place now (its
    script_sha256, when recorded, equals the current script's)."""
    p = given(t.rehearsal_record)
    expected = (
        f"a successful rehearsal < {t.rehearsal_max_age_days:g} days ago, <= {t.rollback_minutes:g} min, of "
        "the current script"
    )
    evidence = f"the last record in {p}"
    if not p.is_file():
        return failed(f"no rehearsal record at {p}", expected, evidence)
    try:
        rec = _last_record(p)
        finished = _when(rec.get("finished_at") or rec.get("rehearsed_at") or rec["date"])
    except (ValueError, KeyError, TypeError) as e:
        return failed(f"unreadable rehearsal record: {type(e).__name__}: {e}", expected, evidence)
    age_days = (datetime.now(UTC) - finished).total_seconds() / 86400
    status = str(rec.get("status", "")).lower()
    observed: dict[str, Any] = {
        "finished_at": finished.isoformat(),
        "age_days": round(age_days, 2),
        "status": rec.get("status"),
    }
    problems = []
    if age_days > t.rehearsal_max_age_days:
        problems.append(f"the last rehearsal was {age_days:.1f} days ago")
    if age_days < -0.01:
        problems.append("the rehearsal is dated in the future")
    if status not in OK_STATUSES:
        problems.append(f"the last rehearsal did not succeed (status {rec.get('status')!r})")
    duration = rec.get("duration_seconds")
    if duration is not None:
        observed["duration_minutes"] = round(float(duration) / 60, 2)
        if float(duration) > t.rollback_minutes * 60:
            problems.append(f"the rollback took {float(duration) / 60:.1f} min > {t.rollback_minutes:g} min")
    rehearsed = rec.get("script_sha256")
    if rehearsed and t.rollback_script is not None and t.rollback_script.is_file():
        current = _sha256(t.rollback_script)
        observed["script_unchanged_since"] = rehearsed == current
        if rehearsed != current:
            problems.append("the rollback script changed since it was rehearsed")
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


def _git(repo: Path, ctx: RunContext, *args: str) -> subprocess.CompletedProcess:
    env = ctx.child_env(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C")
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=max(1.0, ctx.remaining - 0.5)
    )


@check(
    "backup.code.release_tag",
    title="The release is tagged in git, with full history, also on the remote",
    seed=["8.1 Application Code Backup"],
    timeout=20,
    target="restore",
    needs=["restore.git_repo", "restore.release_tag"],
)
def release_tag(t: RestoreTarget, ctx: RunContext) -> Observation:
    """`git rev-parse refs/tags/<release_tag>^{commit}` resolves, the repository is not shallow (full history), and
    with git_remote the tag is on the remote (`git ls-remote --tags`) at the same commit: the code exists off this
    machine."""
    repo, tag = given(t.git_repo), given(t.release_tag)
    expected = f"tag {tag} on a commit, full history" + (f", on remote {t.git_remote}" if t.git_remote else "")
    evidence = (
        f"`git -C {repo} rev-parse --verify refs/tags/{tag}^{{commit}}`, `git rev-parse "
        f"--is-shallow-repository`, `git rev-list --count {tag}`"
        + (f", `git ls-remote --tags {t.git_remote} refs/tags/{tag}*`" if t.git_remote else "")
    )
    if not repo.exists():
        return failed(f"no repository at {repo}", expected, evidence)
    r = _git(repo, ctx, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    if r.returncode != 0:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"tag {tag} not found"
        return failed(f"release tag {tag} is missing in {repo} ({why})", expected, evidence)
    commit = r.stdout.strip()
    shallow = _git(repo, ctx, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    count = _git(repo, ctx, "rev-list", "--count", commit).stdout.strip()
    date = _git(repo, ctx, "log", "-1", "--format=%cI", commit).stdout.strip()
    observed: dict[str, Any] = {
        "tag": tag,
        "commit": commit[:12],
        "committed": date,
        "commits_in_history": int(count) if count.isdigit() else count,
        "shallow": shallow,
    }
    problems = []
    if shallow:
        problems.append("shallow clone: the full history is not available here")
    if t.git_remote:
        r = _git(repo, ctx, "ls-remote", "--tags", t.git_remote, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
        if r.returncode != 0:
            problems.append(f"remote {t.git_remote} not readable: {(r.stderr.strip().splitlines() or ['error'])[-1]}")
        else:
            refs = dict(reversed(line.split("\t", 1)) for line in r.stdout.splitlines() if "\t" in line)
            remote_commit = refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")
            observed["remote"] = {t.git_remote: remote_commit[:12] if remote_commit else "missing"}
            if remote_commit is None:
                problems.append(f"tag {tag} is not on remote {t.git_remote}")
            elif remote_commit != commit:
                problems.append(f"tag {tag} on {t.git_remote} points at {remote_commit[:12]}, here at {commit[:12]}")
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)
