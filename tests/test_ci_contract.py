"""What a CI system reads from golive: the JUnit file (one writer for `golive run --junit`, the report's junit.xml
and `golive ci --junit`) and the idempotency key a CI job's run is created with (issue 14, point 7)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from golive.deployments.ci_client import default_idempotency_key
from golive.flows.report import Verdict, build_report, ci_summary, junit_xml, to_junit, to_table
from golive.tasks.core import CheckSpec, Observation, Severity, Status, run_plain


def _spec(cid: str, status: Status, severity: str = "blocking", deps: tuple[str, ...] = ()) -> CheckSpec:
    def body(_t, _ctx):
        return Observation(status=status, observed=f"{cid} observed", expected="x", evidence=f"{cid} evidence")

    return CheckSpec(
        id=cid,
        title=cid,
        seed=("x",),
        severity=Severity(severity),
        depends_on=deps,
        timeout=2.0,
        target=None,
        body=body,
    )


def _report():
    specs = [
        _spec("infrastructure.a.pass", Status.PASS),
        _spec("infrastructure.a.warn", Status.WARN),
        _spec("infrastructure.a.fail", Status.FAIL),
        _spec("dependencies.b.error", Status.ERROR),
        # SKIPPED because a prerequisite broke: blocking -> NO-GO, so a JUnit failure; advisory -> skipped
        _spec("dependencies.b.blocked", Status.PASS, deps=("infrastructure.a.fail",)),
        _spec("dependencies.b.advisory", Status.PASS, severity="advisory", deps=("infrastructure.a.fail",)),
        _spec("team.c.na", Status.NOT_APPLICABLE),
    ]
    res = run_plain({s.id: s for s in specs}, None)
    return build_report(res, environment="ci-env", mode="ci", started_at=datetime.now(UTC))


def _outcomes(xml: str) -> dict[str, str]:
    root = ET.fromstring(xml.split("?>", 1)[1])
    out = {}
    for case in root.iter("testcase"):
        kinds = [e.tag for e in case if e.tag in ("failure", "error", "skipped")]
        out[case.get("name")] = kinds[0] if kinds else "passed"
    return out


EXPECTED = {
    "infrastructure.a.pass": "passed",
    "infrastructure.a.warn": "passed",
    "infrastructure.a.fail": "failure",
    "dependencies.b.error": "error",
    "dependencies.b.blocked": "failure",
    "dependencies.b.advisory": "skipped",
    "team.c.na": "skipped",
}


def test_junit_outcomes_follow_the_verdict_for_the_report_and_for_golive_ci():
    rep = _report()
    assert rep.verdict == Verdict.NO_GO
    assert {r.id: r.status for r in rep.results}["dependencies.b.blocked"] == Status.SKIPPED
    for xml in (to_junit(rep), junit_xml(to_table(rep), rep.environment)):  # the run's file; golive ci's from the table
        assert _outcomes(xml) == EXPECTED
        root = ET.fromstring(xml.split("?>", 1)[1])
        counts = {s.get("name"): (s.get("failures"), s.get("errors"), s.get("skipped")) for s in root.iter("testsuite")}
        assert counts == {"infrastructure": ("1", "0", "0"), "dependencies": ("1", "1", "1"), "team": ("0", "0", "1")}
        blocked = next(c for c in root.iter("testcase") if c.get("name") == "dependencies.b.blocked")
        assert "infrastructure.a.fail" in blocked.find("failure").get("message")  # the cause, not just "skipped"
        warn = next(c for c in root.iter("testcase") if c.get("name") == "infrastructure.a.warn")
        assert warn.find("system-out").text.startswith("WARNING: WARN [blocking]: infrastructure.a.warn observed")


def test_the_idempotency_key_tells_a_matrix_apart_and_keeps_a_retry(monkeypatch):
    for var in ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "CI_JOB_ID", "BUILD_TAG", "CIRCLE_BUILD_NUM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "1")
    staging = default_idempotency_key("go-live-readiness/ci", {"config": "envs/staging.yaml"})
    prod = default_idempotency_key("go-live-readiness/ci", {"config": "envs/production.yaml"})
    assert staging != prod  # a matrix over environments: one run each, each with its own verdict
    # the same job retried keeps its key whatever the order the parameters were given in
    assert default_idempotency_key(
        "go-live-readiness/ci", {"mode": "ci", "config": "envs/staging.yaml"}
    ) == default_idempotency_key("go-live-readiness/ci", {"config": "envs/staging.yaml", "mode": "ci"})
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")  # a re-run of the workflow is a new attempt: a new run
    assert default_idempotency_key("go-live-readiness/ci", {"config": "envs/staging.yaml"}) != staging
    monkeypatch.delenv("GITHUB_RUN_ID")
    monkeypatch.delenv("GITHUB_RUN_ATTEMPT")
    assert default_idempotency_key("d/x", {}) != default_idempotency_key("d/x", {})  # no CI id: unique


@pytest.mark.parametrize("status", [Status.PASS, Status.WARN])
def test_a_passing_check_has_no_failure_element(status):
    rep = build_report(
        run_plain({"infrastructure.a.x": _spec("infrastructure.a.x", status)}, None),
        environment="e",
        mode="ci",
        started_at=datetime.now(UTC),
    )
    assert _outcomes(to_junit(rep)) == {"infrastructure.a.x": "passed"}


def test_the_run_link_points_at_the_ui_of_the_api_the_job_called(monkeypatch):
    from golive.deployments.cli import ui_run_url

    rid = "0b7c8f6e-5c1a-4c59-9a59-2f3a1d2e4b10"
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    assert ui_run_url("http://prefect.internal:4200/api", rid) == f"http://prefect.internal:4200/runs/flow-run/{rid}"
    assert (
        ui_run_url("https://api.prefect.cloud/api/accounts/a1/workspaces/w1", rid)
        == f"https://app.prefect.cloud/account/a1/workspace/w1/runs/flow-run/{rid}"
    )
    # credentials in the API URL never reach the printed link or the job summary
    assert (
        ui_run_url("https://ci:s3cret-pw@prefect.internal/api?token=t0k", rid)
        == f"https://prefect.internal/runs/flow-run/{rid}"
    )
    with pytest.raises(ValueError):
        ui_run_url("http://prefect.internal:4200/api", "x)[evil](https://evil.example")  # a run id is a UUID
    monkeypatch.setenv("PREFECT_UI_URL", "https://prefect.example.com/")  # behind a proxy: the operator says where
    assert ui_run_url("http://10.0.0.5:4200/api", rid) == f"https://prefect.example.com/runs/flow-run/{rid}"


def test_the_job_summary_shows_the_verdict_and_a_hostile_target_cannot_write_markdown_into_it():
    verdict = {
        "environment": "prod",
        "verdict": "NO-GO",
        "sections": {"security": "NO-GO", "team": "GO"},
        "blocking": [
            "security.headers.hsts FAIL: observed ![x](https://evil.example/p.png) "
            "[click](https://evil.example) <script>alert(1)</script>\n## Approved"
        ],
        "warnings": [],
    }
    out = ci_summary(verdict, "http://prefect.internal:4200/runs/flow-run/r1")
    assert out.startswith("### 🔴 golive: NO-GO for `prod`")
    assert "[The readiness run in Prefect](http://prefect.internal:4200/runs/flow-run/r1)" in out
    assert "| security | 🔴 NO-GO |" in out and "| team | 🟢 GO |" in out
    line = next(ln for ln in out.splitlines() if "hsts" in ln)
    assert not re.search(r"(?<!\\)\]\(", line) and "![" not in line  # no link, no image: every bracket escaped
    assert "<script>" not in line and "\\[click\\]" in line and "&lt;script&gt;" in line
    assert "\n## Approved" not in out  # one line per failure: no heading smuggled in
    assert "(http://x/a%29%5Bevil%5D%28http://evil%29)" in ci_summary(verdict, "http://x/a)[evil](http://evil)")


def test_the_ci_examples_parse_and_their_golive_commands_are_valid():
    """docs/github-actions.yml and docs/gitlab-ci.yml: YAML that loads, golive installed by a pinned spec (not the
    app's own repository), the permission the JUnit reporter needs, and a `golive ci` line golive's parser accepts."""
    import shlex
    from pathlib import Path

    import yaml

    from golive.deployments.cli import build_parser

    docs = Path(__file__).resolve().parents[1] / "docs"
    gh = yaml.safe_load((docs / "github-actions.yml").read_text())
    assert gh["permissions"]["checks"] == "write"
    gh_steps = [s.get("run", "") for s in gh["jobs"]["readiness"]["steps"]]
    gl_steps = yaml.safe_load((docs / "gitlab-ci.yml").read_text())["golive-readiness"]["script"]
    for steps in (gh_steps, gl_steps):
        assert any("pip install" in s and "GOLIVE_PIP_SPEC" in s for s in steps)
        assert not any(re.search(r"pip install (\.|-e)", s) for s in steps)
        line = next(s for s in steps if s.strip().startswith("golive ci"))
        args = build_parser().parse_args(shlex.split(re.sub(r"\$\{\{[^}]*\}\}|\$\w+", "x", line))[1:])
        assert args.fail_on == "no-go" and args.junit and any(p.startswith("config=") for p in args.param)
        assert "${{" not in line  # no expression spliced into the script (GitHub's script-injection pattern)


def test_junit_from_a_hostile_checks_artifact_is_well_formed_xml():
    """`golive ci` builds JUnit from the run's table artifact, which the server hands back: every attribute escaped."""
    rows = [
        {
            "check": "secur\x1bity.a\x00.b",
            "status": "FAIL\x07",
            "severity": "blocking",
            "observed": "<x>",
            "expected": "]]>",
            "evidence": "\x1b[31m",
            "seconds": 1,
        }
    ]
    root = ET.fromstring(junit_xml(rows, "e\x1b").split("?>", 1)[1])
    case = next(root.iter("testcase"))
    assert case.get("name") == "secur\\x1bity.a\\x00.b" and next(root.iter("testsuite")).get("name") == "secur\\x1bity"


def test_golive_ci_takes_only_a_verdict_golive_wrote_for_its_run():
    """The job's exit code comes from the verdict: a payload whose exit code disagrees with its verdict (a NO-GO that
    says 0), a boolean for a code, or another run's verdict is no verdict (exit 4), never a green job."""
    from golive.deployments.ci_client import _verdict

    run = "0b6f3c2e-1111-2222-3333-444455556666"
    good = {"verdict": "NO-GO", "exit_code": 2, "environment": "prod", "flow_run_id": run}
    assert _verdict(good, run) == good
    assert _verdict({**good, "exit_code": 0}, run) is None
    assert _verdict({**good, "verdict": "GO", "exit_code": False}, run) is None
    assert _verdict({**good, "flow_run_id": "another-run"}, run) is None
    assert _verdict(["NO-GO"], run) is None and _verdict(None, run) is None
