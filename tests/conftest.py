import pytest

pytest_plugins = ["tests.support.fixtures_prefect", "tests.support.fixtures_golive"]


@pytest.fixture(scope="session")
def sandbox():
    """The local production-like stack (real processes), started once per test session.

    Its secrets are exported while it runs (as `python -m golive.sandbox up` tells a shell to), so its config loads the way
    production loads its own: `${VAR}` from the environment.
    """
    from golive.sandbox import Sandbox

    sb = Sandbox.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in sb.env.items():
                env.setenv(name, value)
            yield sb
    finally:
        sb.stop()


# --------------------------------------------------------------------------- servers only Debian ships
# PgBouncer, Prometheus and Alertmanager come from Debian's packages (no registry wheel ships them). A test that needs
# one is marked `@pytest.mark.debian("pgbouncer", ...)`. Outside CI, where the package is missing, it is skipped and
# one summary line says which packages and the command that brings them; under CI=true (as .ci/run runs, after
# installing them) it runs, and a missing package fails it: CI never skips.
DEBIAN_SERVERS = {
    "pgbouncer": "golive.sandbox.parts.pgbouncer:executable",
    "prometheus": "tests.support.servers_debian:prometheus_executable",
    "prometheus-alertmanager": "golive.sandbox.parts.alertmanager:executable",
    "redis-server": "tests.support.servers_debian:redis7_executable",
    "prometheus-pushgateway": "tests.support.servers_debian:pushgateway_executable",
    "prometheus-node-exporter": "tests.support.servers_debian:node_exporter_executable",
}


def missing_debian_packages() -> list[str]:
    import importlib

    def present(ref: str) -> bool:
        module, fn = ref.split(":")
        return getattr(importlib.import_module(module), fn)() is not None

    return [pkg for pkg, ref in DEBIAN_SERVERS.items() if not present(ref)]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "debian(*packages): needs servers from these Debian packages; outside CI it is "
        "skipped where one is missing (CI=true: it runs and fails)",
    )


# pytest-xdist runs the files in the order they are collected, each file on one worker: the slowest files go first, so
# the workers finish together instead of one waiting for the last long file (order within a file is kept).
SLOW_FILES_FIRST = [
    "test_packaging.py",
    "test_golive_e2e.py",
    "test_stock_conformance.py",  # the marked suites
    "test_deploy_authorization.py",
    "test_cli.py",
    "test_expectations.py",
    "test_flow.py",
    "test_root_causes.py",
    "test_restore.py",
    "test_faults.py",
    "test_sandbox.py",
    "test_deadlines.py",
    "test_team.py",
    "test_config_init.py",
    "test_checks_catalog.py",
]


def pytest_collection_modifyitems(config, items):
    import os
    from pathlib import Path

    gone = [name for name in SLOW_FILES_FIRST if not (Path(__file__).parent / name).is_file()]
    if gone:  # a renamed file would silently lose its place
        raise pytest.UsageError(f"tests/conftest.py SLOW_FILES_FIRST names files that do not exist: {gone}")
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    if os.environ.get("CI") == "true":
        return
    missing = set(missing_debian_packages())
    for item in items:
        marker = item.get_closest_marker("debian")
        need = sorted(missing & set(marker.args)) if marker else []
        if need:
            item.add_marker(pytest.mark.skip(reason=f"needs Debian's {', '.join(need)} (not installed here)"))


def pytest_terminal_summary(terminalreporter):
    """One line naming the missing Debian packages (read from the skip reasons: under pytest-xdist the workers
    collect, not this process)."""
    import re

    pkgs: set[str] = set()
    n = 0
    for rep in terminalreporter.stats.get("skipped", []):
        m = re.search(r"needs Debian's (.+?) \(not installed here\)", str(rep.longrepr))
        if m:
            n += 1
            pkgs.update(p.strip() for p in m.group(1).split(","))
    if pkgs:
        names = " ".join(sorted(pkgs))
        terminalreporter.write_line(
            f"{n} tests skipped: Debian packages not installed here: {names}; to run them: "
            f"sudo apt-get install -y --no-install-recommends {names} (.ci/run installs them)"
        )


#: the sandbox faults that switch a Debian-only server off
_DEBIAN_FAULTS = {"pgbouncer-down": "pgbouncer", "alertmanager-down": "prometheus-alertmanager"}


def debian_faults(names):
    """Fault names as parameters, the Debian-only ones marked with their package."""
    return [pytest.param(n, marks=pytest.mark.debian(_DEBIAN_FAULTS[n])) if n in _DEBIAN_FAULTS else n for n in names]
