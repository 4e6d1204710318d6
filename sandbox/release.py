"""Deployable releases of the sandbox's web product, for the deploy flow: a healthy next version and a broken one.

The web process serves whatever `release.json` in the sandbox base dir names (re-read when the file changes, like
the fault file): a deploy is an atomic switch of that file, the way a blue/green switch changes what a load
balancer serves. `python -m golive.sandbox.release --base-dir DIR deploy VERSION` and `... rollback` are the deploy and
rollback commands the sandbox's config gives the deploy flow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

CURRENT = "1.4.0"
RELEASES = {
    "1.4.0": "the release in production",
    "1.5.0": "the next release: healthy",
    "1.5.0-broken": "the next release, broken: /health answers 503 from BREAKS_AFTER_S after it starts",
}
BREAKS_AFTER_S = 2.0  # long enough to pass a smoke test, so that the watch window is what catches it


def release_path(base_dir: Path) -> Path:
    return Path(base_dir) / "release.json"


def read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": CURRENT, "history": []}


def _write(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def deploy(base_dir: Path, version: str) -> str:
    if version not in RELEASES:
        raise ValueError(f"unknown release {version!r}; known: {', '.join(RELEASES)}")
    path = release_path(base_dir)
    state = read(path)
    _write(path, {"version": version, "history": [*state["history"], state["version"]], "since": time.time()})
    return f"deployed {version} (was {state['version']})"


def rollback(base_dir: Path) -> str:
    path = release_path(base_dir)
    state = read(path)
    if not state["history"]:
        raise ValueError(f"nothing to roll back to: {state['version']} is the first release")
    previous = state["history"][-1]
    _write(path, {"version": previous, "history": state["history"][:-1], "since": time.time()})
    return f"rolled back {state['version']} -> {previous}"


class ReleaseFile:
    """What the web process reads: the served version, cached on the file's inode and mtime."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._state = {"version": CURRENT, "history": [], "since": 0.0}

    def _current(self) -> dict:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {"version": CURRENT, "history": [], "since": 0.0}
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._stamp:
            self._state = read(self.path)
            self._stamp = stamp
        return self._state

    @property
    def version(self) -> str:
        return self._current()["version"]

    @property
    def broken(self) -> bool:
        state = self._current()
        return state["version"].endswith("-broken") and time.time() - state.get("since", 0.0) >= BREAKS_AFTER_S


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m golive.sandbox.release")
    p.add_argument("--base-dir", required=True, type=Path)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy")
    d.add_argument("version")
    sub.add_parser("rollback")
    args = p.parse_args(argv)
    try:
        print(deploy(args.base_dir, args.version) if args.cmd == "deploy" else rollback(args.base_dir))
    except ValueError as e:
        print(f"release: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def deploy_section(
    base_dir: Path,
    *,
    watch_seconds: float = 10,
    poll_seconds: float = 1,
    api_down_seconds: float = 3,
    high_assess_seconds: float = 5,
) -> dict:
    """The golive config's `deploy:` section for this sandbox: its deploy and rollback commands, and rollback
    criteria scaled down from the seed's minutes to seconds so a demo or a test watches for real but briefly."""
    cmd = [sys.executable, "-m", "golive.sandbox.release", "--base-dir", str(base_dir)]
    return {
        "command": [*cmd, "deploy", "{release}"],
        "rollback_command": [*cmd, "rollback"],
        "watch_seconds": watch_seconds,
        "poll_seconds": poll_seconds,
        "api_down_seconds": api_down_seconds,
        "high_assess_seconds": high_assess_seconds,
        "timeout_s": 60,
    }
