"""The README's quick start stays true: its test command is what CI runs, and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    test_block = readme.split("Run the tests", 1)[1]
    command = _blocks(test_block)[0].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_quick_start_installs_the_sandbox_extra_and_runs_the_demo():
    first = _blocks((REPO / "README.md").read_text())[0].strip()
    assert first == "python3 -m venv .venv && .venv/bin/pip install -q -e '.[sandbox]' && .venv/bin/golive demo"
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["golive"] == "golive.deployments.cli:main"
    assert "sandbox" in project["optional-dependencies"]
