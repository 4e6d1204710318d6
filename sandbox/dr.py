"""Disaster-recovery artifacts in the sandbox's base directory: the application's git repository with its release tag
(and a bare `origin` holding a copy, the code's off-machine backup), the rollback script, and the record of the last
rollback rehearsal."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

RELEASE_TAG = "v2.4.0"
PREVIOUS_TAG = "v2.3.2"
REHEARSAL_AGE = dt.timedelta(days=2)  # rehearsed two days ago (seed 8.2: within the last week)
STALE_REHEARSAL_AGE = dt.timedelta(days=10)  # the `rollback-rehearsal-stale` fault
REHEARSAL_SECONDS = 540  # 9 minutes (seed 8.2: the rollback completes in < 15 minutes)

ROLLBACK_SCRIPT = """\
#!/usr/bin/env bash
# Roll SwipeSavvy production back to the previous release.
# Usage: rollback_production.sh PREVIOUS_TAG      (rehearsed: see records/rollback-rehearsal.json)
set -euo pipefail

PREVIOUS_TAG="${1:?usage: rollback_production.sh PREVIOUS_TAG}"
APP_DIR="${APP_DIR:-/srv/swipesavvy}"

log() { printf '%s rollback: %s\\n' "$(date -u +%FT%TZ)" "$*"; }

log "switching ${APP_DIR} to ${PREVIOUS_TAG}"
git -C "${APP_DIR}" fetch --tags --quiet
git -C "${APP_DIR}" checkout --quiet "${PREVIOUS_TAG}"
log "restarting the API"
systemctl restart swipesavvy-api
for i in $(seq 1 30); do
    if curl -fsS http://127.0.0.1:8000/health >/dev/null; then
        log "healthy after ${i} s"
        exit 0
    fi
    sleep 1
done
log "API not healthy after 30 s"
exit 1
"""


def _git_env(when: dt.datetime | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Dana Whitfield",
            "GIT_AUTHOR_EMAIL": "dana.whitfield@swipesavvy.test",
            "GIT_COMMITTER_NAME": "Dana Whitfield",
            "GIT_COMMITTER_EMAIL": "dana.whitfield@swipesavvy.test",
        }
    )
    if when is not None:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        env.update({"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    return env


def git(repo: Path, *args: str, when: dt.datetime | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=_git_env(when), timeout=30
    ).stdout.strip()


def make_repo(base: Path, files: dict[str, str] | None = None) -> tuple[Path, Path]:
    """(work tree, bare origin): a few releases of history, the release tag pushed to origin. `files` (relative path
    -> text) are added with the release commit (the app's own files: lock file, settings)."""
    repo, origin = base / "app", base / "app-origin.git"
    repo.mkdir()
    now = dt.datetime.now(dt.UTC)
    git(repo, "init", "--quiet", "--initial-branch=main")
    history = [
        (40, "Initial SwipeSavvy API", None),
        (20, "Merchant affinity scores", PREVIOUS_TAG),
        (1, "Campaign optimizations and send-time model", RELEASE_TAG),
    ]
    for days, message, tag in history:
        when = now - dt.timedelta(days=days)
        (repo / "CHANGELOG.md").write_text(
            (repo / "CHANGELOG.md").read_text() + f"- {message}\n"
            if (repo / "CHANGELOG.md").exists()
            else f"# Changelog\n- {message}\n"
        )
        if tag == RELEASE_TAG:
            for rel, text in (files or {}).items():
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                (repo / rel).write_text(text)
        git(repo, "add", "-A", when=when)
        git(repo, "commit", "--quiet", "-m", message, when=when)
        if tag:
            git(repo, "tag", "-a", tag, "-m", f"Release {tag}", when=when)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", str(origin)], check=True, capture_output=True, env=_git_env(), timeout=30
    )
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "--quiet", "origin", "main", "--tags")
    return repo, origin


def delete_tag(repo: Path, tag: str = RELEASE_TAG) -> None:
    git(repo, "tag", "-d", tag)
    git(repo, "push", "--quiet", "origin", f":refs/tags/{tag}")


def restore_tag(repo: Path, tag: str = RELEASE_TAG) -> None:
    git(repo, "tag", "-a", tag, "-m", f"Release {tag}", "HEAD")
    git(repo, "push", "--quiet", "origin", f"refs/tags/{tag}")


def write_rollback_script(base: Path) -> Path:
    path = base / "scripts" / "rollback_production.sh"
    path.parent.mkdir(exist_ok=True)
    path.write_text(ROLLBACK_SCRIPT)
    path.chmod(0o755)
    return path


def write_rehearsal(record: Path, script: Path, age: dt.timedelta = REHEARSAL_AGE) -> None:
    """The record a rehearsal leaves (one JSON object; golive also reads JSON lines, the last line winning)."""
    record.parent.mkdir(exist_ok=True)
    finished = dt.datetime.now(dt.UTC) - age
    entry = {
        "finished_at": finished.isoformat(timespec="seconds"),
        "status": "success",
        "duration_seconds": REHEARSAL_SECONDS,
        "environment": "staging",
        "operator": "Dana Whitfield",
        "rolled_back_to": PREVIOUS_TAG,
        "script": str(script),
        "script_sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
    }
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(entry, indent=2) + "\n")
    os.replace(tmp, record)
