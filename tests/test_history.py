"""Readiness over time (issue 15, points 1-3): `golive history` from the artifacts Prefect keeps, the trend picture,
flaky checks. The pure parts without Prefect; then five rehearsals' worth of snapshots and verdicts published to a
real Prefect server and read back by the CLI; the whole rehearsal five times on the sandbox (its `dependencies`
section: ~15 s, in the default suite); the picture in the Prefect UI (`pytest -m ui`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest

from golive.deployments.cli import main
from golive.flows import artifacts, history, readiness, rehearsal, trend
from golive.flows.config import ConfigError, parse_config
from golive.flows.report import Verdict, build_report
from golive.tasks.core import Redactor, Severity, Status
from tests.support.flows import artifact, run_flow
from tests.test_rehearsal import SECTIONS, T0, env_config, result

P, W, F, N = Status.PASS, Status.WARN, Status.FAIL, Status.NOT_APPLICABLE
SVG = "{http://www.w3.org/2000/svg}"


def snap(night: int, checks: dict[str, Status], fingerprint: str | None = "sha256:aaaa", **kw) -> history.Snapshot:
    return history.Snapshot(
        environment="nightly",
        flow_run_id=f"run-{night}",
        started_at=T0 + timedelta(days=night),
        verdict=kw.pop("verdict", Verdict.GO),
        checks={cid: (st, 1.0) for cid, st in checks.items()},
        config_fingerprint=fingerprint,
        duration_s=kw.pop("duration_s", 10.0 + night),
        **kw,
    )


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- flaky, history, fingerprint: no Prefect


def test_flaky_means_more_than_k_changes_with_no_config_change():
    seqs = {
        "a.toggles.three": [P, P, F, P, F],  # 3 changes > 2: flaky
        "a.toggles.two": [P, F, F, F, P],  # 2 changes: not
        "a.steady.fail": [F, F, F, F, F],
        "a.gap.three": [P, F, None, P, F],  # not run one night: 3 changes among the nights it ran
    }
    snaps = [snap(i, {c: s[i] for c, s in seqs.items() if s[i] is not None}) for i in range(5)][
        ::-1
    ]  # newest first, as Prefect returns them
    found, looked = history.flaky_checks(snaps, runs=14, changes=2)
    assert looked == 5
    assert [(f.id, f.changes, f.letters()) for f in found] == [
        ("a.gap.three", 3, "P F · P F"),
        ("a.toggles.three", 3, "P P F P F"),
    ]
    assert history.flaky_checks(snaps, runs=14, changes=3)[0] == []  # K is the policy's
    assert history.flaky_checks(snaps, runs=3, changes=1)[1] == 3  # N: only the newest N rehearsals
    # a config change two nights ago: the window starts after it, and two nights cannot hold 3 changes
    changed = [s.model_copy(update={"config_fingerprint": "sha256:bbbb"}) if i < 2 else s for i, s in enumerate(snaps)]
    assert history.flaky_checks(changed, runs=14, changes=2) == ([], 2)
    # snapshots from before issue 15 carry no fingerprint: their config is unknown, they end the window
    old = [s.model_copy(update={"config_fingerprint": None}) for s in snaps]
    assert history.flaky_checks(old, runs=14, changes=2) == ([], 0)


def test_history_joins_verdicts_with_snapshots_and_reads_versions_from_before_issue_15():
    def verdict(night: int, mode: str, v: Verdict, blocking=(), **extra):
        return {
            "environment": "nightly",
            "mode": mode,
            "verdict": v.value,
            "exit_code": v.exit_code,
            "flow_run_id": f"run-{night}",
            "started_at": (T0 + timedelta(days=night)).isoformat(),
            "duration_s": 12.5,
            "blocking": [f"{b} FAIL: observed x" for b in blocking],
            "warnings": [],
            **extra,
        }

    old_snapshot = {  # as a rehearsal wrote it before issue 15: no mode, counts, duration, fingerprint, changes
        "version": 1,
        "environment": "nightly",
        "flow_run_id": "run-1",
        "started_at": (T0 + timedelta(days=1)).isoformat(),
        "verdict": "GO",
        "checks": {"dependencies.redis.memory": ["PASS", 0.1], "team.runbooks.reachable": ["WARN", 0.2]},
    }
    snaps = [rehearsal.snapshot_from(old_snapshot)]
    assert snaps[0] is not None and snaps[0].duration_s is None
    payloads = [
        verdict(4, "ci", Verdict.NO_GO, ["dependencies.redis.memory"], counts={"PASS": 9, "FAIL": 1}),
        verdict(3, "ci", Verdict.GO),  # an older ci verdict: no counts, no snapshot
        verdict(1, "rehearsal", Verdict.GO),
        {"environment": "other", "verdict": "GO", "started_at": T0.isoformat()},  # another environment's
        {"not": "a verdict"},
    ]
    h = history.build_history("nightly", payloads, snaps, last=30)
    assert [(r.mode, r.verdict.value) for r in h.runs] == [("ci", "NO-GO"), ("ci", "GO"), ("rehearsal", "GO")]
    assert h.skipped == 2
    ci4, ci3, r1 = h.runs
    assert ci4.counts["FAIL"] == 1 and ci3.counts is None
    assert r1.counts == {"PASS": 1, "WARN": 1, "FAIL": 0, "ERROR": 0, "SKIPPED": 0, "NOT_APPLICABLE": 0}
    assert ci4.changed == "GO → NO-GO; failing or warning now: dependencies.redis.memory"
    assert ci3.changed == "first ci run in this window" and r1.changed == "first rehearsal run in this window"
    table = history.rows(h)
    assert table[1][3:9] == ["?", "?", "?", "?", "?", "12.5 s"]  # unknown, never a made-up zero
    assert [r.flow_run_id for r in history.build_history("nightly", payloads, snaps, last=1).runs] == ["run-4"]
    # a new config between two runs of a mode is said (the fingerprints, never the config itself)
    refit = [verdict(6, "ci", Verdict.NO_GO, ["dependencies.redis.memory"], config_fingerprint="sha256:bbbb")]
    refit.append(verdict(5, "ci", Verdict.NO_GO, ["dependencies.redis.memory"], config_fingerprint="sha256:aaaa"))
    assert history.build_history("nightly", refit, [], last=30).runs[0].changed == "config changed"


def test_config_fingerprint_changes_with_the_config_never_with_a_secret():
    def cfg(password: str, max_ping_ms: int = 5):
        data = {
            "environment": "nightly",
            "redis": {"url": "redis://127.0.0.1:6379/0", "password": "${REDIS_PW}", "max_ping_ms": max_ping_ms},
        }
        return parse_config(data, env={"REDIS_PW": password})

    a, b = cfg("first-secret-value"), cfg("other-secret-value")
    fa = history.config_fingerprint(a)
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", fa)
    assert fa == history.config_fingerprint(b)  # a rotated secret is no config change
    assert fa != history.config_fingerprint(cfg("first-secret-value", max_ping_ms=50))


def test_notify_history_keys_are_validated_naming_the_field():
    cfg = parse_config({"environment": "nightly", "notify": {}}, env={})
    assert (cfg.notify.history_runs, cfg.notify.flaky_changes) == (14, 2)
    for key, bad in (("history_runs", 1), ("history_runs", 1000), ("flaky_changes", 0), ("flaky_changes", "x")):
        with pytest.raises(ConfigError) as e:
            parse_config({"environment": "nightly", "notify": {key: bad}}, env={})
        assert f"notify.{key}" in str(e.value)


@pytest.mark.parametrize(
    "args, field",
    [
        (["--environment", "Bad Name!"], "--environment"),
        (["--environment", "nightly", "--last", "0"], "--last"),
        (["--environment", "nightly", "--last", "201"], "--last"),
        (["--environment", "nightly", "--timeout", "0"], "--timeout"),
    ],
)
def test_history_usage_errors_are_one_line_and_exit_3(args, field, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    code, out, err = cli("history", *args)
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"golive: error: {field}")


def test_history_without_an_api_or_with_a_dead_one(monkeypatch, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.support.servers import refused_port

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))  # no local server either
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # (nor one in this process's Prefect settings)
        code, _, err = cli("history", "--environment", "nightly")
    assert code == 3 and "PREFECT_API_URL" in err and "local Prefect server is not running" in err
    code, _, err = cli(
        "history", "--environment", "nightly", "--api-url", f"http://u:hunter2pw@127.0.0.1:{refused_port()}/api"
    )
    assert code == 4 and "could not be read" in err and "hunter2pw" not in err and err.count("\n") == 1


@pytest.mark.parametrize("answer", ["hung", "not json", "not artifacts", "error"])
def test_history_survives_whatever_the_api_answers(answer):
    """A hung API is bounded by --timeout; an answer that is not Prefect's is exit 4 with one line, never a crash."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from tests.support.servers import ServerThread, hung_server

    def reply(request):
        if answer == "not json":
            return PlainTextResponse("<html>proxy login</html>")
        if answer == "not artifacts":
            return JSONResponse([{"id": "x", "key": 5, "data": {"<b>": "?"}}])
        return JSONResponse({"detail": "boom"}, status_code=500)

    app = Starlette(routes=[Route("/api/{path:path}", reply, methods=["GET", "POST"])])
    with hung_server() if answer == "hung" else ServerThread(app) as srv:
        port = srv if answer == "hung" else srv.port
        args = ("history", "--environment", "nightly", "--api-url", f"http://127.0.0.1:{port}/api", "--timeout", "2")
        code, out, err = cli(*args)
    assert code == 4 and out == "" and err.count("\n") == 1, err
    assert ("did not answer within 2 s" if answer == "hung" else "could not be read") in err


# --------------------------------------------------------------------------- the trend picture


def test_trend_svg_is_a_valid_image_with_every_panel():
    snaps = [
        snap(0, {"dependencies.redis.memory": P, "team.runbooks.reachable": P}),
        snap(1, {"dependencies.redis.memory": F, "team.runbooks.reachable": P}, verdict=Verdict.NO_GO),
        snap(2, {"dependencies.redis.memory": P, "team.runbooks.reachable": W}, verdict=Verdict.GO_WITH_WARNINGS),
    ]
    svg = trend.render(snaps, ["dependencies.redis.memory"], title="trend of nightly")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    w, h = int(root.get("width")), int(root.get("height"))
    assert w >= 640 and h > 300 and root.get("viewBox") == f"0 0 {w} {h}"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for panel in ("verdict", "failing checks per section", "duration of the run", "checks that changed status (2)"):
        assert any(t and t.startswith(panel) for t in texts), panel
    assert "FLAKY dependencies.redis.memory" in texts and "team.runbooks.reachable" in texts
    assert texts.count("NO-GO") == 1 and texts.count("GO") == 1 and texts.count("WARN") >= 1
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert fills.count(trend.VERDICT_FILL[Verdict.NO_GO]) >= 2  # the verdict cell and the FAIL strip cell
    assert trend.data_uri(svg).startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(trend.data_uri(svg).split(",", 1)[1]).decode() == svg


def test_a_crafted_check_id_or_section_is_text_never_markup():
    evil = [
        'x"><script>alert(1)</script><x a="',
        "<sec\u0001tion>&amp;.'quote'.<b>bold</b>",
        "]]><!--.<foreignObject>.\u0000",
    ]
    snaps = [snap(i, {e: (P if i % 2 else F) for e in evil}) for i in range(3)]
    svg = trend.render(snaps, evil[:1], title='<title>"pwned"</title>')
    root = ET.fromstring(svg)  # still well-formed XML
    tags = {el.tag.removeprefix(SVG) for el in root.iter()}
    assert tags <= {"svg", "title", "rect", "text", "line"}, tags
    assert "<script" not in svg and "<foreignObject" not in svg and "<b>" not in svg
    everything = " ".join("".join(el.itertext()) for el in root.iter(f"{SVG}text"))
    assert "<script>alert(1)</script>" in everything  # shown as text
    assert "<sec\ufffdtion>" in everything  # a character XML cannot hold is replaced, not passed through


# --------------------------------------------------------------------------- five nights on a real Prefect server


def nightly_report(night: int, statuses: dict[str, Status], env: str):
    results = [result(cid, st, severity=Severity.BLOCKING) for cid, st in statuses.items()]
    report = build_report(
        results,
        environment=env,
        mode="rehearsal",
        started_at=T0 + timedelta(days=night),
        flow_run_id=f"00000000-0000-4000-8000-{night:012d}",
    )
    return report.model_copy(update={"duration_s": 30.0 + 6 * (night % 3)})  # as a night's run took


NIGHTS = {  # five rehearsals, faults on nights 2 and 4
    "dependencies.redis.memory": [P, F, P, F, P],  # 4 changes: flaky, and a blocking failure is still NO-GO
    "dependencies.redis.replication": [P, P, N, P, N],  # 3 changes: flaky (exactly more than K=2)
    "team.runbooks.reachable": [P, N, P, P, P],  # 2 changes: not flaky
    "team.contacts.complete": [P, P, P, P, P],
}


async def publish_nights(env: str, cfg, out) -> list:
    fp = history.config_fingerprint(cfg)
    redact = Redactor(cfg.secrets())
    reports = []
    for night in range(5):
        report = nightly_report(night, {c: s[night] for c, s in NIGHTS.items()}, env)
        report.config_fingerprint = fp
        done = await rehearsal.since_last_rehearsal(report, cfg, redact)
        files = {"trend.svg": done.trend_svg} if done.trend_svg else None
        await readiness.publish(report, redact, out, done.markdown, files)  # report, checks and verdict artifacts
        reports.append(report)
    return reports


def test_five_rehearsals_history_shows_the_sequence_and_flags_the_flaky_checks(prefect_api, tmp_path, monkeypatch):
    env = "history-fast"
    cfg = parse_config({"environment": env, "notify": {"history_runs": 14, "flaky_changes": 2}}, env={})
    out = tmp_path / "reports"
    reports = asyncio.run(publish_nights(env, cfg, out))
    assert [r.verdict for r in reports] == [Verdict.GO, Verdict.NO_GO, Verdict.GO, Verdict.NO_GO, Verdict.GO]
    report_md = asyncio.run(artifact(f"golive-report-{env}"))["data"]  # the fifth night's (read before the ci run)
    # a ci run in between: the history shows every mode, from its verdict artifact
    ci = nightly_report(5, {c: P for c in NIGHTS}, env).model_copy(
        update={"mode": "ci", "flow_run_id": None, "config_fingerprint": history.config_fingerprint(cfg)}
    )
    asyncio.run(readiness.publish(ci, Redactor(), None))

    # what anyone with API access may write under golive's keys: left out and counted, never a crash
    asyncio.run(artifacts.publish("verdict", env, "# not golive JSON", "hostile"))
    asyncio.run(artifacts.publish_json("rehearsal", env, "", {"version": 1, "checks": "<b>nope</b>"}, "hostile"))

    monkeypatch.setenv("PREFECT_API_URL", prefect_api.api_url)
    code, text, err = cli("history", "--environment", env, "--format", "json", "--last", "10")
    assert code == 0, err
    h = json.loads(text)
    assert h["skipped"] == 2
    runs = h["runs"][::-1]  # oldest first
    assert [(r["mode"], r["verdict"]) for r in runs] == [
        ("rehearsal", "GO"),
        ("rehearsal", "NO-GO"),
        ("rehearsal", "GO"),
        ("rehearsal", "NO-GO"),
        ("rehearsal", "GO"),
        ("ci", "GO"),
    ]
    assert runs[1]["counts"] == {"PASS": 2, "WARN": 0, "FAIL": 1, "ERROR": 0, "SKIPPED": 0, "NOT_APPLICABLE": 1}
    assert runs[2]["counts"]["NOT_APPLICABLE"] == 1 and all(r["duration_s"] is not None for r in runs)
    assert runs[0]["changed"] == "first rehearsal (the baseline)"
    assert runs[1]["changed"].startswith("GO → NO-GO; 1 new failure: dependencies.redis.memory")
    assert runs[2]["changed"].startswith("NO-GO → GO; 1 fixed: dependencies.redis.memory")
    assert runs[5]["changed"] == "first ci run in this window"
    assert len({r["config_fingerprint"] for r in runs}) == 1 and runs[0]["config_fingerprint"].startswith("sha256:")
    flaky = {f["id"]: f for f in h["flaky"]}
    assert set(flaky) == {"dependencies.redis.memory", "dependencies.redis.replication"}
    assert flaky["dependencies.redis.memory"]["changes"] == 4
    assert h["flaky_rule"] == "changed status more than 2 times in the last 14 rehearsals with no config change"

    # the table, as a person reads it: the sequence, the counts, the flaky checks with their statuses
    code, table, _ = cli("history", "--environment", env, "--last", "5")
    assert code == 0
    verdicts = re.findall(r"\b(NO-GO|GO)\b", table.split("what changed", 1)[1].split("flaky checks", 1)[0])
    assert verdicts[:1] == ["GO"] and "NO-GO" in verdicts
    assert "flaky dependencies.redis.memory: P F P F P (4 changes; it still counts)" in table
    assert "flaky dependencies.redis.replication: P P n P n (3 changes" in table
    code, md_text, _ = cli("history", "--environment", env, "--format", "md", "--last", "3")
    assert code == 0 and md_text.count("\n| 20") == 3 and "**Flaky checks**" in md_text

    # the report: the trend picture as an image the Prefect UI shows, the flaky checks named; trend.svg beside it
    assert "## Trend of the last 5 rehearsals" in report_md and "![trend of the last 5 rehearsals](data:" in report_md
    assert "`dependencies.redis.memory` P F P F P" not in report_md  # (ids are escaped text, not code spans)
    assert "dependencies.redis.memory P F P F P (4 changes)" in report_md.replace("\\", "")
    uri = re.search(r"\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", report_md).group(1)
    root = ET.fromstring(base64.b64decode(uri))
    assert int(root.get("width")) > 0 and int(root.get("height")) > 0
    svg_file = out / env / "latest" / "trend.svg"
    assert ET.parse(svg_file).getroot().get("width") == root.get("width")
    assert (out / env / "latest" / "report.md").read_text().count("data:image/svg+xml;base64,") == 1
    assert any(n.startswith("flaky: dependencies.redis.memory changed status 4 times") for n in reports[-1].notes)


# --------------------------------------------------------------------------- the whole rehearsal, five nights


def test_five_sandbox_rehearsals_with_faults_on_nights_2_and_4(sandbox, prefect_api, tmp_path, monkeypatch):
    env = "history-e2e"
    cfg = env_config(sandbox, tmp_path, env, {"flaky_changes": 2, "history_runs": 14})
    out = tmp_path / "reports"
    verdicts = []
    for night in range(1, 6):
        with sandbox.fault("redis-noeviction") if night in (2, 4) else contextlib.nullcontext():
            report, state = run_flow(cfg, mode="rehearsal", out=out, sections=SECTIONS)
        assert state.is_completed(), state.message
        verdicts.append(report.verdict)
    assert verdicts[1] == verdicts[3] == Verdict.NO_GO and Verdict.NO_GO not in (verdicts[0], verdicts[2], verdicts[4])
    monkeypatch.setenv("PREFECT_API_URL", prefect_api.api_url)
    code, text, err = cli("history", "--environment", env, "--format", "json")
    assert code == 0, err
    h = json.loads(text)
    assert [r["verdict"] for r in h["runs"][::-1]] == [v.value for v in verdicts]
    assert all(r["mode"] == "rehearsal" and r["counts"]["PASS"] > 0 for r in h["runs"])
    memory = next(f for f in h["flaky"] if f["id"] == "dependencies.redis.memory")
    assert memory["sequence"] == ["PASS", "FAIL", "PASS", "FAIL", "PASS"]
    root = ET.parse(out / env / "latest" / "trend.svg").getroot()
    assert "FLAKY dependencies.redis.memory" in [t.text for t in root.iter(f"{SVG}text")]


# --------------------------------------------------------------------------- the picture in the Prefect UI


@pytest.mark.ui
def test_the_trend_picture_shows_in_the_prefect_ui(prefect_api, tmp_path):
    """The report artifact's data-URI image, as the Prefect UI's markdown renderer shows it: loaded, the SVG's size;
    the page is saved as docs/ui-trend.png (the README's picture)."""
    import shutil
    import struct
    from pathlib import Path

    import httpx
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "the UI test needs Debian's chromium: apt-get install chromium"
    env = "history-ui"
    cfg = parse_config({"environment": env, "notify": {}}, env={})
    asyncio.run(publish_nights(env, cfg, tmp_path / "reports"))
    svg = ET.parse(tmp_path / "reports" / env / "latest" / "trend.svg").getroot()
    found = httpx.post(  # the newest version's own id (`/artifacts/<key>/latest` answers the collection's)
        f"{prefect_api.api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [f"golive-report-{env}"]}}, "sort": "CREATED_DESC", "limit": 1},
        timeout=10,
    ).json()[0]
    shot = Path(__file__).resolve().parents[1] / "docs" / "ui-trend.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{prefect_api.ui_url}/artifacts/artifact/{found['id']}", wait_until="networkidle")
        img = page.locator('img[src^="data:image/svg+xml;base64,"]').first
        img.wait_for(timeout=30_000)
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=10_000)
        natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert natural == [int(svg.get("width")), int(svg.get("height"))]
        assert img.get_attribute("alt") == "trend of the last 5 rehearsals"
        page.get_by_role("heading", name="Trend of the last 5 rehearsals").evaluate("h => h.scrollIntoView()")
        page.screenshot(path=str(shot))
        browser.close()
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 1000) and len(png) > 20_000
