"""Running `golive` as a user does, in a subprocess from the repository, and checking what it printed or wrote for
every form a secret takes on the way (plain, URL-quoted, JSON-escaped). No tests in here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

REPO = Path(__file__).resolve().parents[2]


def golive(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_leak(secret: str, *texts: str) -> None:
    for form in {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}:
        for text in texts:
            assert form not in text, f"a form of the secret ({form[:3]}...) leaked"
