"""Everything a target says is data in every renderer (issue #10, item 5). A real Prometheus-API server answers its
health probe with Rich markup (`[/oops]`, `[bold`), XML that would close the JUnit element (`</testcase>]]>`), an ANSI
escape, a markdown table breaker, a code span, HTML and a link: `golive run` and `golive check` still reach their
verdict (before the fix: exit 4, no verdict), and the terminal, report.md / the markdown artifact, the table artifact,
JUnit XML (parsed back), the sign-off form and the Slack webhook (received by a real server) show the text as text."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timezone
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from golive.deployments.cli import main
from golive.flows import rehearsal
from golive.flows.approval import form_description
from golive.flows.config import parse_config
from golive.flows.policies import ApprovalPolicy
from golive.flows.report import build_report, to_junit, to_markdown, to_table
from golive.tasks.catalog import load_catalog
from golive.tasks.core import Status, run_plain, select
from tests.support.servers import ServerThread

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "[/oops] [bold \x1b[31m</testcase>]]> | x | `t` <b>&amp; :x: *e* [l](j:x)"
CHECK = "monitoring.prometheus.reachable"
CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture(scope="module")
def prometheus():
    async def healthy(request):
        return PlainTextResponse(HOSTILE, status_code=503)

    with ServerThread(Starlette(routes=[Route("/-/healthy", healthy)])) as srv:
        yield f"http://127.0.0.1:{srv.port}"


def config_file(tmp_path: Path, url: str) -> Path:
    f = tmp_path / "hostile.yaml"
    f.write_text(f"environment: hostile\nmonitoring:\n  prometheus_url: {url}\n")
    return f


def assert_markdown_data(md: str) -> None:
    row = next(line for line in md.splitlines() if line.startswith("| ") and f"`{CHECK}`" in line)
    assert len(re.split(r"(?<!\\)\|", row)) == 9, row  # 7 cells: the answer's pipes did not add columns
    assert "[/oops]" not in md and r"\[/oops\]" in md
    for raw in ("<b>", "</testcase>", "`t`", "[l](j:x)", "*e*", "\x1b"):
        assert raw not in md, raw
    assert "&lt;/testcase&gt;" in md and r"\`t\`" in md


def assert_junit_data(xml: str) -> None:
    root = ET.fromstring(xml.encode())
    msg = next(e for e in root.iter("testcase") if e.get("name") == CHECK).find("failure").get("message")
    assert "</testcase>]]>" in msg and "[/oops]" in msg and "\\x1b[31m" in msg and "\x1b" not in msg


def golive(prefect_api, *args: str) -> subprocess.CompletedProcess:
    # the session's Prefect server: an ephemeral one would take seconds to start in every run
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}, **prefect_api.client_env()}
    return subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_golive_run_reaches_its_verdict_and_every_file_shows_the_answer_as_data(prometheus, prefect_api, tmp_path):
    out, junit = tmp_path / "reports", tmp_path / "junit.xml"
    p = golive(
        prefect_api,
        "run",
        "--config",
        str(config_file(tmp_path, prometheus)),
        "--section",
        "monitoring",
        "--out",
        str(out),
        "--junit",
        str(junit),
    )
    assert p.returncode == 2, (p.returncode, p.stdout[-1500:], p.stderr[-1500:])
    assert "VERDICT: NO-GO" in p.stdout and "\x1b" not in p.stdout
    assert "observed: 503 [/oops] [bold \\x1b[31m</testcase>]]> | x | `t` <b>&amp;" in p.stdout
    assert_markdown_data((out / "hostile" / "latest" / "report.md").read_text())
    for xml in (junit.read_text(), (out / "hostile" / "latest" / "junit.xml").read_text()):
        assert_junit_data(xml)


def test_golive_check_prints_the_answer_as_text(prometheus, tmp_path, capsys):
    assert main(["check", "--config", str(config_file(tmp_path, prometheus)), "--check", CHECK]) == 2
    out = capsys.readouterr().out
    assert "VERDICT: NO-GO" in out and "\x1b" not in out
    assert out.count("503 [/oops] [bold \\x1b[31m</testcase>]]>") == 2  # the progress line and the blocking section


def test_artifacts_form_and_webhook_carry_the_answer_as_data(prometheus):
    cfg = parse_config({"environment": "hostile", "monitoring": {"prometheus_url": prometheus}}, env={})
    results = run_plain(select(load_catalog(), ids=[CHECK, "monitoring.prometheus.targets"]), cfg)
    started = datetime.now(UTC)
    report = build_report(results, environment="hostile", mode="rehearsal", started_at=started)
    assert report.verdict.value == "NO-GO"
    rows = to_table(report)
    assert any("[/oops]" in row["observed"] for row in rows)
    assert not any(CTRL.search(str(v)) for row in rows for v in row.values())
    assert_markdown_data(to_markdown(report))
    assert_junit_data(to_junit(report))
    form = form_description(report, ApprovalPolicy(), [], [])
    assert "<b>" not in form and "[l](j:x)" not in form and "\x1b" not in form and "&lt;b&gt;" in form

    # the rehearsal's diff against a night where the check passed: markdown section and Slack webhook
    before = build_report(
        [r.model_copy(update={"status": Status.PASS}) for r in results],
        environment="hostile",
        mode="rehearsal",
        started_at=started,
    )
    d = rehearsal.diff(report, rehearsal.snapshot_of(before))
    assert [c.id for c in d.new_failures] == [CHECK, "monitoring.prometheus.targets"]
    section = rehearsal.to_markdown(d)
    assert "<b>" not in section and "\x1b" not in section and r"\[/oops\]" in section
    got: list = []

    async def hook(request):
        got.append(await request.json())
        return JSONResponse({"ok": True})

    with ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as srv:
        err = asyncio.run(rehearsal.post_webhook(f"http://127.0.0.1:{srv.port}/hook", rehearsal.to_slack(d), 5.0))
    assert err is None and len(got) == 1
    texts = [got[0]["text"]] + [b["text"]["text"] for b in got[0]["blocks"] if b["type"] == "section"]
    lines = "\n".join(texts)
    assert "[/oops]" in lines and "&lt;/testcase&gt;" in lines and "&amp;amp;" in lines
    assert "<" not in lines and ">" not in lines and "\x1b" not in lines  # no Slack syntax, no control character
