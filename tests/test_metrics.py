"""Metrics for Grafana (issue 15, point 4): a report as Prometheus series, pushed to Debian's real Pushgateway and
scraped back through a real Prometheus' query API, written for Debian's node_exporter textfile collector and read
back through it; a dead or hung Pushgateway is a note, never a failed run nor a leaked credential; the Grafana
dashboard's every query names only what golive exports and returns data from a real Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from golive.flows import metrics
from golive.flows.config import ConfigError, GoliveConfig, parse_config
from golive.flows.report import Verdict, build_report
from golive.sandbox import procs
from golive.tasks.core import CheckResult, Redactor, Severity, Status
from tests.support.flows import artifact, flow_run_logs, run_flow
from tests.support.servers import hung_server, refused_port
from tests.support.servers_debian import (
    _wait_http,
    need,
    prometheus_executable,
    real_node_exporter,
    real_pushgateway,
)

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
PUSH_USER, PUSH_PASSWORD = "golive-push", "Pu5hgw-S3cret-9f2c"
HOSTILE = 'security.evil"} 1\ngolive_verdict{environment="prod"} 0\n# \\x'


def result(cid: str, status: Status, duration: float = 0.25, severity: Severity = Severity.BLOCKING) -> CheckResult:
    return CheckResult(
        id=cid,
        title=cid,
        section=cid.split(".")[0],
        severity=severity,
        seed=["7.1 Monitoring"],
        status=status,
        observed=status.value,
        expected="ok",
        evidence="test",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=duration),
        duration_s=duration,
    )


EVERY_STATUS = [
    result("infrastructure.web.reachable", Status.PASS, 0.5),
    result("dependencies.redis.memory", Status.FAIL, 1.25),
    result("dependencies.redis.persistence", Status.SKIPPED, 0.0),
    result("monitoring.grafana.dashboards", Status.WARN, 2.5, Severity.ADVISORY),
    result("backup.s3.reachable", Status.ERROR, 5.0),
    result("team.oncall.current", Status.NOT_APPLICABLE, 0.0),
]


def report_of(results: list[CheckResult], environment: str = "staging", mode: str = "rehearsal"):
    return build_report(results, environment=environment, mode=mode, started_at=T0, flow_run_id="run-1")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(name, labels) -> value of every sample of a text-format exposition (prometheus_client's parser)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


@contextlib.contextmanager
def logged():
    """What golive.metrics logs meanwhile (a handler of its own: Prefect's logging setup, on its first import, may
    replace the root handlers caplog relies on)."""
    import io

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    log = logging.getLogger("golive.metrics")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        yield buf
    finally:
        log.removeHandler(handler)
        log.setLevel(old)


def config(notify: dict, environment: str = "staging") -> GoliveConfig:
    return parse_config({"environment": environment, "notify": notify}, env={})


# --------------------------------------------------------------------------- the exposition


def test_every_status_and_the_run_are_exported_with_their_documented_values():
    report = report_of(EVERY_STATUS)
    assert report.verdict == Verdict.NO_GO
    got = samples(metrics.render(report))
    run = frozenset({("environment", "staging"), ("mode", "rehearsal")})
    assert got[("golive_verdict", run)] == 2
    assert got[("golive_run_duration_seconds", run)] == report.duration_s
    assert got[("golive_last_run_timestamp_seconds", run)] == report.finished_at.timestamp()
    status = {dict(k)["check"]: v for (n, k), v in got.items() if n == "golive_check_status"}
    assert status == {
        "infrastructure.web.reachable": 0,
        "dependencies.redis.memory": 3,
        "dependencies.redis.persistence": 2,
        "monitoring.grafana.dashboards": 1,
        "backup.s3.reachable": 4,
        "team.oncall.current": -1,
    }
    labels = next(dict(k) for (n, k), _ in got.items() if n == "golive_check_status" and "advisory" in dict(k).values())
    assert labels == {
        "environment": "staging",
        "check": "monitoring.grafana.dashboards",
        "section": "monitoring",
        "severity": "advisory",
    }
    durations = {dict(k)["check"]: v for (n, k), v in got.items() if n == "golive_check_duration_seconds"}
    assert durations["backup.s3.reachable"] == 5.0 and len(durations) == 6
    assert {n for n, _ in got} == set(metrics.METRICS)
    assert len(got) == 3 + 2 * len(EVERY_STATUS)
    # every Status has a value, and the values order "higher is worse"
    assert set(metrics.STATUS_VALUE) == set(Status)
    order = [Status.NOT_APPLICABLE, Status.PASS, Status.WARN, Status.SKIPPED, Status.FAIL, Status.ERROR]
    assert [metrics.STATUS_VALUE[s] for s in order] == sorted(metrics.STATUS_VALUE.values())
    # the OpenMetrics rendering parses with the OpenMetrics parser and holds the same samples
    om = metrics.render(report, openmetrics=True)
    assert om.endswith("# EOF\n")
    om_samples = {(s.name, frozenset(s.labels.items())): s.value for f in parse_openmetrics(om) for s in f.samples}
    assert om_samples == got


def test_a_hostile_check_id_is_one_escaped_label_value_never_a_new_series():
    """A check id with a quote, a brace, a newline and a backslash (ids come from code, but a renderer must not trust
    that): the exposition still parses, to exactly the series of the report, the id intact as a label value."""
    report = report_of(
        [result(HOSTILE, Status.FAIL), result("infrastructure.web.ok", Status.PASS)], environment="staging"
    )
    text = metrics.render(report)
    got = samples(text)
    assert len(got) == 3 + 2 * 2
    checks = {dict(k)["check"] for (n, k), _ in got.items() if n == "golive_check_status"}
    assert checks == {HOSTILE, "infrastructure.web.ok"}
    assert not [k for (n, k), _ in got.items() if ("environment", "prod") in k]  # the injected series is not one
    assert all(line.startswith(("#", "golive_")) for line in text.splitlines())  # the newline stayed inside a label
    om = {
        dict(s.labels).get("check")
        for f in parse_openmetrics(metrics.render(report, openmetrics=True))
        for s in f.samples
    }
    assert HOSTILE in om


def test_a_secret_in_a_label_value_is_redacted():
    secret = "tok-3f9a1c77e2b4"
    report = report_of([result(f"infrastructure.{secret}.x", Status.PASS)])
    text = metrics.render(report, Redactor([secret]))
    assert secret not in text and "golive_check_status" in text


def test_the_config_keys_are_validated_naming_the_key_without_echoing_a_secret():
    cfg = config({"pushgateway_url": "https://u:p4ssw0rd-x@push.example.test:9091", "metrics_textfile": "/x/g.prom"})
    assert cfg.notify is not None and cfg.notify.metrics_textfile == Path("/x/g.prom")
    assert "https://u:p4ssw0rd-x@push.example.test:9091" in cfg.secrets()
    assert "p4ssw0rd" not in repr(cfg.notify)
    with pytest.raises(ConfigError) as e:
        config({"pushgateway_url": "ftp://u:TOKEN-77aa@push.example.test"})
    assert "notify.pushgateway_url: must be an http(s):// URL" in str(e.value) and "TOKEN-77aa" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        config({"metrics_textfile": "/var/lib/node-exporter/golive.txt"})
    assert str(e.value).startswith("notify.metrics_textfile: must end in .prom")


def test_the_pushgateway_is_named_without_credentials_and_a_group_path_is_always_one_segment():
    assert metrics.gateway_label(f"https://{PUSH_USER}:{PUSH_PASSWORD}@push.example.test:9091/p") == (
        "https://push.example.test:9091"
    )
    assert metrics.group_url("http://pg:9091/", "staging") == "http://pg:9091/metrics/job/golive/environment/staging"
    odd = metrics.group_url("http://pg:9091/prefix", "a/b c")
    assert odd == "http://pg:9091/prefix/metrics/job/golive/environment@base64/YS9iIGM="


# --------------------------------------------------------------------------- the textfile, through node_exporter


@pytest.mark.debian("prometheus-node-exporter")
def test_the_textfile_is_written_atomically_and_node_exporter_reads_it(tmp_path):
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    target = textdir / "golive.prom"
    cfg = config({"metrics_textfile": str(target)})
    report = report_of([*EVERY_STATUS, result(HOSTILE, Status.FAIL)])
    asyncio.run(metrics.export_metrics(report, cfg, Redactor()))
    assert report.notes == []
    assert sorted(p.name for p in textdir.iterdir()) == ["golive.prom"]  # the temporary name was renamed away
    with real_node_exporter(textdir, tmp_path / "node") as url:
        text = httpx.get(url, timeout=10).text
    got = samples(text)
    assert got[("node_textfile_scrape_error", frozenset())] == 0
    status = {dict(k)["check"]: v for (n, k), v in got.items() if n == "golive_check_status"}
    assert status["dependencies.redis.memory"] == 3 and status["team.oncall.current"] == -1
    assert status[HOSTILE] == 3 and len(status) == len(EVERY_STATUS) + 1
    run = frozenset({("environment", "staging"), ("mode", "rehearsal")})
    assert got[("golive_verdict", run)] == 2


def test_an_unwritable_textfile_is_a_note_and_the_export_goes_on(tmp_path):
    cfg = config({"metrics_textfile": str(tmp_path / "missing-dir" / "golive.prom")})
    report = report_of(EVERY_STATUS)
    asyncio.run(metrics.export_metrics(report, cfg, Redactor()))
    assert len(report.notes) == 1 and report.notes[0].startswith("metrics: the textfile could not be written")
    assert "FileNotFoundError" in report.notes[0]
    assert not (tmp_path / "missing-dir").exists()


# --------------------------------------------------------------------------- the Pushgateway, through Prometheus


@contextlib.contextmanager
def prometheus_scraping(pushgateway: str, directory: Path):
    """Debian's Prometheus scraping the Pushgateway every second with `honor_labels: true` (the pushed `job` and
    `environment` labels are kept, as the Pushgateway's documentation asks)."""
    exe = need(prometheus_executable(), "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    (port,) = procs.free_ports(1)
    (directory / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "pushgateway",
                        "honor_labels": True,
                        "static_configs": [{"targets": [pushgateway.split("://")[1]]}],
                    }
                ],
            }
        )
    )
    proc = procs.spawn(
        [
            exe,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log=directory / "log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", proc, directory / "log")
        yield url
    finally:
        procs.stop([proc], sig={proc.pid: signal.SIGTERM})


def query(prometheus: str, expr: str) -> list[dict]:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_query(prometheus: str, expr: str, ready, timeout: float = 20.0) -> list[dict]:
    """Poll `expr` until `ready(result)` (a scrape every second; the push landed a moment before)."""
    deadline = time.monotonic() + timeout
    while True:
        res = query(prometheus, expr)
        if ready(res) or time.monotonic() > deadline:
            return res
        time.sleep(0.25)


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{PUSH_USER}:{PUSH_PASSWORD}@")


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard, its variables' queries included."""
    dash = json.loads(DASHBOARD.read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    out += [(f"variable {v['name']}", v["query"]["query"]) for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def promql(expr: str) -> str:
    """The PromQL of a dashboard query: a variable's `label_values(<selector>, <label>)` (Grafana's own function) is
    its selector."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", expr.strip())
    return m.group(1) if m else expr


def substitute(expr: str, environment: str) -> str:
    """The dashboard's variables as Grafana fills them with one environment and every section selected."""
    return expr.replace("$environment", environment).replace("$section", ".*")


@pytest.mark.debian("prometheus", "prometheus-pushgateway")
def test_pushed_metrics_are_scraped_back_through_prometheus_and_the_dashboard_queries_answer(tmp_path):
    with real_pushgateway(tmp_path / "pgw") as pgw, prometheus_scraping(pgw, tmp_path / "prom") as prom:
        cfg = config({"pushgateway_url": with_credentials(pgw), "timeout_s": 5})
        first = report_of(EVERY_STATUS)
        with logged() as log:
            asyncio.run(metrics.export_metrics(first, cfg, Redactor(cfg.secrets())))
        assert first.notes == []
        assert f"metrics pushed to the Pushgateway {pgw}" in log.getvalue() and PUSH_PASSWORD not in log.getvalue()

        verdict = wait_query(prom, 'golive_verdict{environment="staging"}', lambda r: len(r) == 1)
        assert len(verdict) == 1 and verdict[0]["value"][1] == "2"
        assert verdict[0]["metric"] == {  # honor_labels: the pushed job, no instance of the Pushgateway's
            "__name__": "golive_verdict",
            "environment": "staging",
            "mode": "rehearsal",
            "job": "golive",
        }
        status = {
            r["metric"]["check"]: (r["metric"]["section"], r["metric"]["severity"], float(r["value"][1]))
            for r in query(prom, 'golive_check_status{job="golive", environment="staging"}')
        }
        assert status == {
            "infrastructure.web.reachable": ("infrastructure", "blocking", 0),
            "dependencies.redis.memory": ("dependencies", "blocking", 3),
            "dependencies.redis.persistence": ("dependencies", "blocking", 2),
            "monitoring.grafana.dashboards": ("monitoring", "advisory", 1),
            "backup.s3.reachable": ("backup", "blocking", 4),
            "team.oncall.current": ("team", "blocking", -1),
        }
        (slowest,) = query(prom, 'topk(1, golive_check_duration_seconds{environment="staging"})')
        assert slowest["metric"]["check"] == "backup.s3.reachable" and slowest["value"][1] == "5"
        (last,) = query(prom, 'golive_last_run_timestamp_seconds{environment="staging"}')
        assert float(last["value"][1]) == first.finished_at.timestamp()

        # every query of the Grafana dashboard evaluates on this Prometheus and has data
        for title, expr in dashboard_exprs():
            assert query(prom, substitute(promql(expr), "staging")), f"{title}: {expr} has no data"

        # the next run replaces the whole group: a check no longer run does not linger as a stale FAIL
        second = report_of([result("infrastructure.web.reachable", Status.PASS)], mode="ci")
        asyncio.run(metrics.export_metrics(second, cfg, Redactor(cfg.secrets())))
        assert second.notes == []
        now = wait_query(
            prom,
            'golive_check_status{environment="staging"}',
            lambda r: [x["metric"]["check"] for x in r] == ["infrastructure.web.reachable"],
        )
        assert [x["metric"]["check"] for x in now] == ["infrastructure.web.reachable"]
        (v,) = query(prom, 'golive_verdict{environment="staging"}')
        assert v["value"][1] == "0" and v["metric"]["mode"] == "ci"
        # and Prometheus keeps the history a dashboard draws: the NO-GO of the first run is still in the last minute
        (worst,) = query(prom, 'max(max_over_time(golive_verdict{environment="staging"}[1m]))')
        assert worst["value"][1] == "2"


@pytest.mark.parametrize("kind", ["refused", "hung"])
def test_a_dead_or_hung_pushgateway_is_a_note_within_the_timeout_without_its_credentials(kind):
    with hung_server() if kind == "hung" else contextlib.nullcontext(refused_port()) as port:
        url = f"http://{PUSH_USER}:{PUSH_PASSWORD}@127.0.0.1:{port}/secret-prefix-{PUSH_PASSWORD}"
        cfg = config({"pushgateway_url": url, "timeout_s": 1})
        report = report_of(EVERY_STATUS)
        t0 = time.monotonic()
        with logged() as log:
            asyncio.run(metrics.export_metrics(report, cfg, Redactor(cfg.secrets())))
        elapsed = time.monotonic() - t0
    assert elapsed < 3, elapsed  # timeout_s 1: one attempt, bounded as a whole (plus the rendering)
    (note,) = report.notes
    assert note.startswith(f"metrics: the push to the Pushgateway http://127.0.0.1:{port} failed: ")
    assert ("no answer within 1 s" in note) if kind == "hung" else ("ConnectError" in note)
    assert "the run goes on" in log.getvalue()
    for text in (note, log.getvalue()):
        assert PUSH_PASSWORD not in text and PUSH_USER not in text and "secret-prefix" not in text


def test_a_pushgateway_refusing_the_push_is_a_note_naming_its_status():
    """A server that answers 4xx (here: a plain HTTP server that knows no PUT)."""
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'text format parsing error in line 1: "golive_verdict" is bad')

        def log_message(self, *a) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://{PUSH_USER}:{PUSH_PASSWORD}@127.0.0.1:{srv.server_port}"
        report = report_of(EVERY_STATUS)
        asyncio.run(metrics.export_metrics(report, config({"pushgateway_url": url}), Redactor()))
    finally:
        srv.shutdown()
    (note,) = report.notes
    assert "HTTP 400 text format parsing error" in note and PUSH_PASSWORD not in note


def test_a_pushgateway_flooding_its_answer_is_read_no_further_than_the_cap():
    """A hostile gateway answers 500 with an endless body: the note comes at once, from its first bytes only."""
    import http.server
    import threading

    sent = []

    class Flood(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.end_headers()
            try:
                for _ in range(100_000):  # up to 6.4 GB, if anyone read it
                    self.wfile.write(b"x" * 65536)
                    sent.append(1)
            except OSError:
                pass

        def log_message(self, *a) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        report = report_of(EVERY_STATUS)
        t0 = time.monotonic()
        cfg = config({"pushgateway_url": f"http://127.0.0.1:{srv.server_port}", "timeout_s": 10})
        asyncio.run(metrics.export_metrics(report, cfg, Redactor()))
        elapsed = time.monotonic() - t0
    finally:
        srv.shutdown()
    (note,) = report.notes
    assert "HTTP 500 xxxx" in note and len(note) < 400, note
    assert elapsed < 5, elapsed  # not the 10 s budget: it stopped reading, it did not time out
    assert len(sent) < 1000, len(sent)  # the gateway could not push more than socket buffers' worth


# --------------------------------------------------------------------------- the readiness flow's one call


def test_the_readiness_flow_exports_every_run_and_a_failed_push_is_in_the_published_report(
    sandbox, prefect_api, tmp_path, monkeypatch
):
    """A real flow run on the session's Prefect server (ci mode): the textfile holds this run's checks; a hung
    Pushgateway (its URL, with credentials, from the environment) is a note in the published report, the run ends
    on its own verdict, and the credentials appear in no log, artifact or file."""
    from golive.deployments.cli import _drain_prefect

    textdir = tmp_path / "textfile"
    textdir.mkdir()
    data = yaml.safe_load(Path(sandbox.config_path).read_text())
    data = {k: v for k, v in data.items() if k in GoliveConfig.model_fields}
    data["environment"] = "metrics-flow"
    data["notify"] = {
        "pushgateway_url": "${GOLIVE_TEST_PUSHGATEWAY}",
        "metrics_textfile": str(textdir / "golive.prom"),
        "timeout_s": 1,
    }
    data["redis"].update(max_ping_ms=200, max_replication_lag_ms=2000)  # a busy machine: not this test's subject
    cfg_path = tmp_path / "metrics-flow.yaml"
    cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "reports"
    with hung_server() as port:
        monkeypatch.setenv("GOLIVE_TEST_PUSHGATEWAY", f"http://{PUSH_USER}:{PUSH_PASSWORD}@127.0.0.1:{port}")
        report, state = run_flow(cfg_path, mode="ci", out=out, sections=["dependencies"])
    assert report.verdict != Verdict.NO_GO and state.is_completed(), state.message
    got = samples((textdir / "golive.prom").read_text())
    checks = {dict(k)["check"] for (n, k), _ in got.items() if n == "golive_check_status"}
    assert checks == {r.id for r in report.results} and "dependencies.postgres.reachable" in checks
    run = frozenset({("environment", "metrics-flow"), ("mode", "ci")})
    assert got[("golive_verdict", run)] == report.verdict.exit_code
    note = next(n for n in report.notes if n.startswith("metrics:"))
    assert f"Pushgateway http://127.0.0.1:{port} failed: no answer within 1 s" in note
    report_md = (out / "metrics-flow" / "latest" / "report.md").read_text()
    assert "no answer within 1 s" in report_md  # the note is published with the report
    _drain_prefect()
    logs, _ = asyncio.run(flow_run_logs(str(state.state_details.flow_run_id)))
    assert any("metrics push to the Pushgateway http://127.0.0.1:" in m for m in logs)
    arts = [json.dumps(asyncio.run(artifact(f"golive-{k}-metrics-flow"))) for k in ("report", "checks", "verdict")]
    files = [p.read_text() for p in [*out.rglob("*"), *textdir.rglob("*")] if p.is_file()]
    haystack = "\n".join([*logs, *arts, *files, report.model_dump_json()])
    assert PUSH_PASSWORD not in haystack and PUSH_USER not in haystack


# --------------------------------------------------------------------------- the Grafana dashboard

_PROMQL_WORDS = {
    # functions, aggregations and keywords the dashboard may use; anything else that looks like a name is a metric
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "time", "max_over_time", "min_over_time",
    "changes", "rate", "increase", "label_values", "last_over_time", "abs", "clamp_min", "vector", "scalar",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: strings, label matchers, grouping lists, ranges and numbers
    removed, what is left that is a name not followed by `(` and not a keyword."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()", e):
        if m.group(1) not in _PROMQL_WORDS and not m.group(1).startswith("$"):
            names.add(m.group(1))
    return names


def test_metric_names_finds_what_a_query_reads():
    assert metric_names('topk(10, max by (check) (golive_check_duration_seconds{section=~"a b"}))') == {
        "golive_check_duration_seconds"
    }
    assert metric_names("time() - max by (environment) (up{job='x'}) + node_load1 offset 5m") == {"up", "node_load1"}
    assert metric_names("count by (section) (golive_check_status >= 1)") == {"golive_check_status"}


def test_the_grafana_dashboard_is_importable_and_reads_only_what_golive_exports():
    dash = json.loads(DASHBOARD.read_text())
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"environment", "section"} <= set(variables)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    types = {p["type"] for p in dash["panels"]}
    assert {"state-timeline", "table", "timeseries", "bargauge", "stat"} <= types
    exprs = dashboard_exprs()
    assert len(exprs) >= len(dash["panels"])
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["targets"], p["title"]
    read = set()
    for title, expr in exprs:
        names = metric_names(promql(expr))
        assert names, f"{title}: {expr} reads no metric"
        assert names <= set(metrics.METRICS), f"{title}: {expr} reads {names - set(metrics.METRICS)}"
        read |= names
    assert read == set(metrics.METRICS)  # the dashboard shows every metric golive exports
    by_title = {p["title"]: p for p in dash["panels"]}
    section_filtered = [p for p in dash["panels"] if any("golive_check_status" in t["expr"] for t in p["targets"])]
    assert all('section=~"$section"' in t["expr"] for p in section_filtered for t in p["targets"])
    timeline = by_title["Check status over time"]
    mapped = timeline["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {int(k): v["text"] for k, v in mapped.items()} == {v: s.value for s, v in metrics.STATUS_VALUE.items()}


def test_the_readme_config_example_is_a_valid_notify_block():
    readme = (REPO / "README.md").read_text().split("## Metrics and Grafana", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", readme, re.S).group(1)
    cfg = parse_config(
        {"environment": "staging", **yaml.safe_load(block)}, env={}, secret_loader=lambda n: "https://u:p@pg:9091"
    )
    assert cfg.notify.pushgateway_url is not None and cfg.notify.metrics_textfile.suffix == ".prom"
    documented = set(re.findall(r"^\| `(golive_\w+)` \|", readme, re.M))
    assert documented == set(metrics.METRICS)


# --------------------------------------------------------------------------- the README's picture (pytest -m ui)

SHOWN = [  # real check ids of the catalog, a night of rehearsals each
    ("infrastructure.web.reachable", [Status.PASS] * 6),
    ("dependencies.redis.memory", [Status.PASS, Status.PASS, Status.FAIL, Status.FAIL, Status.PASS, Status.PASS]),
    ("dependencies.redis.persistence", [Status.PASS, Status.PASS, Status.SKIPPED, Status.SKIPPED, Status.PASS, Status.PASS]),
    ("backup.s3.reachable", [Status.PASS, Status.ERROR, Status.PASS, Status.PASS, Status.PASS, Status.PASS]),
    ("monitoring.grafana.dashboards", [Status.WARN, Status.WARN, Status.WARN, Status.PASS, Status.PASS, Status.PASS]),
    ("team.oncall.current", [Status.NOT_APPLICABLE] * 6),
]  # fmt: skip


def test_the_pictured_checks_are_real_checks_of_the_catalog():
    from golive.tasks.catalog import load_catalog

    catalog = load_catalog()
    assert {cid for cid, _ in SHOWN} <= set(catalog) and {r.id for r in EVERY_STATUS} <= set(catalog)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.mark.ui
@pytest.mark.debian("prometheus", "prometheus-pushgateway")
def test_screenshot_of_golive_metrics_in_the_prometheus_ui(tmp_path):
    """Six pushed runs, a few seconds apart, then Prometheus' own graph page of `golive_check_status` in headless
    Chromium (Debian's): docs/prometheus-metrics.png, the README's picture."""
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "the UI test needs Debian's chromium: apt-get install chromium"
    shot = REPO / "docs" / "prometheus-metrics.png"
    with real_pushgateway(tmp_path / "pgw") as pgw, prometheus_scraping(pgw, tmp_path / "prom") as prom:
        cfg = config({"pushgateway_url": pgw})  # (the group is the report's environment)
        for night in range(6):
            results = [result(cid, statuses[night], 0.2 + i / 3) for i, (cid, statuses) in enumerate(SHOWN)]
            report = report_of(results, environment="production")
            asyncio.run(metrics.export_metrics(report, cfg, Redactor()))
            assert report.notes == []
            if night == 0:  # Prometheus' first scrape of a new target comes a few seconds after its start
                wait_query(prom, 'golive_check_status{environment="production"}', bool)
            time.sleep(3)  # three scrapes: each run its own stretch of the graph
        series = query(prom, 'golive_check_status{environment="production"}')
        assert {s["metric"]["check"] for s in series} == {cid for cid, _ in SHOWN}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(
                f"{prom}/graph?g0.expr=golive_check_status&g0.tab=0&g0.range_input=20s&g0.stacked=0&g0.show_exemplars=0",
                wait_until="networkidle",
            )
            # (Debian's Prometheus 2.42 serves the classic UI: a Rickshaw graph and legend)
            page.wait_for_selector(".rickshaw_legend .line")
            legend = page.locator(".rickshaw_legend").inner_text()
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    assert all(cid in legend for cid, _ in SHOWN)
    width, height = png_size(shot)
    assert width >= 1400 and height >= 600 and shot.stat().st_size > 20_000
