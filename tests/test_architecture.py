"""The import contracts (.importlinter, issue 13): the design card's layers (deployments -> flows -> expectations ->
tasks; tasks imports nothing else of ours), only the demo imports the sandbox, and no import cycle among the modules
of tasks, flows, expectations or deployments. Checked by import-linter on the installed layout.

The editable install maps golive.<folder> to the repository's folders through an import hook that import-linter's
graph builder does not follow, so the test lays the layout out as symlinks (`golive/tasks -> tasks`, ...) and runs
`lint-imports` in a Python started without `site` (no hook), with only that layout and the venv's packages on the
path. By hand: `.venv/bin/python -m pytest tests/test_architecture.py -q`.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("tasks", "flows", "expectations", "deployments", "sandbox")


def lint_imports(layout: Path, config: Path) -> subprocess.CompletedProcess:
    (layout / "golive").mkdir(parents=True)
    for folder in FOLDERS:
        (layout / "golive" / folder).symlink_to(REPO / folder, target_is_directory=True)
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True))"
    )
    path = f"{layout}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=layout,
        env={"PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold(tmp_path):
    out = lint_imports(tmp_path / "layout", REPO / ".importlinter")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout, out.stdout[-3000:]


def test_a_broken_contract_is_caught(tmp_path):
    """The check bites: the same layout against a contract the code breaks (flows above deployments)."""
    config = tmp_path / "inverted.ini"
    config.write_text(
        "[importlinter]\nroot_package = golive\n\n[importlinter:contract:inverted]\nname = inverted\n"
        "type = layers\nlayers =\n    golive.flows\n    golive.deployments\n"
    )
    out = lint_imports(tmp_path / "layout", config)
    assert out.returncode == 1 and "golive.deployments is not allowed to import golive.flows" in out.stdout, (
        out.stdout[-3000:] + out.stderr[-2000:]
    )


def test_every_package_folder_is_installed():
    """Each folder with an __init__.py under the design card's top-level folders is a package the wheel ships (a new
    subpackage missing from pyproject.toml broke the installed wheel once, caught only by the slow packaging suite)."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {folder: package for package, folder in setuptools["package-dir"].items()}
    on_disk = set()
    for folder, package in mapped.items():
        for init in (REPO / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(REPO / folder)
            on_disk.add(".".join((package, *rel.parts)))
    assert on_disk - set(setuptools["packages"]) == set(), "add these to [tool.setuptools] packages"
    assert set(setuptools["packages"]) - on_disk == set(), "these packages have no folder"
