"""The sign-off in the real Prefect UI, driven in headless Chromium (Debian's `chromium`, via Playwright).

Marked `ui`: the README's test command deselects it (it needs a browser from the system's packages), `.ci/run`
installs Chromium and runs it explicitly with `pytest -m ui`. It saves docs/ui-sign-off.png (the form) and
docs/ui-notification.png (the approvers' email whose link it follows to the form).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from golive.deployments.signoff_client import json_artifact, wait_final, wait_paused_sign_off
from tests.support.fixtures_golive import wait_mail

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.ui


def fill_sign_off(page, name: str, role: str, decision: str, shot: Path | None = None) -> None:
    """Open the paused run's Resume dialog and fill the typed form the way a person does."""
    page.get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("textarea").first.fill(name)
    selects = dialog.locator(".p-select-button__control")
    for i, value in ((0, role), (1, decision)):
        selects.nth(i).click()
        page.keyboard.press("ArrowDown")
        page.get_by_role("option", name=value, exact=True).click()
    if shot:
        page.screenshot(path=str(shot))
    switches = dialog.get_by_role("switch")
    for i in range(1, switches.count()):  # every section sign-off and attestation; 0 is "override", left off
        switches.nth(i).scroll_into_view_if_needed()
        switches.nth(i).click()


def show_mail(page, mail, shot: Path) -> None:
    """The received email (headers and plain-text body, escaped) as a page, screenshotted."""
    from html import escape

    head = "".join(f"<tr><th>{k}</th><td>{escape(str(mail[k]))}</td></tr>" for k in ("From", "X-Rcpt-To", "Subject"))
    body = escape(mail.get_content())
    page.set_content(f"""<html><body style="font-family: sans-serif; margin: 24px; max-width: 1000px">
        <h3>Email received by the sandbox's SMTP server</h3><table style="text-align:left">{head}</table><hr>
        <pre style="white-space: pre-wrap; font-size: 14px">{body}</pre></body></html>""")
    page.screenshot(path=str(shot), full_page=True)


def test_sign_off_in_the_prefect_ui_triggers_the_deploy(served, prefect_api, sandbox):
    assert Path(CHROMIUM).exists(), "the UI test needs Debian's chromium: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    api = served
    seen: set = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(prefect_api.ui_url, wait_until="networkidle")  # warm: the UI's assets load once
        dep = api.get("deployments/name/go-live-readiness/go-live").json()
        run = api.post(f"deployments/{dep['id']}/create_flow_run", json={"parameters": {"release": "1.5.0"}}).json()[
            "id"
        ]
        for name, role in (("Samuel Adeyemi", "CTO"), ("Grace Liu", "VP Engineering")):
            mails = len(sandbox.mail())
            pid = wait_paused_sign_off(api, seen, timeout=90, run_id=run)
            seen.add(pid)
            # as an approver does: the link in the email that says the sign-off waits opens the form's page
            told = wait_mail(
                sandbox,
                mails,
                lambda m, r=pid.round_no: "waits for your sign-off" in m["Subject"] and f"round {r}" in m.get_content(),
            )
            link = next(w for w in told.get_content().split() if "/runs/flow-run/" in w)
            assert link.endswith(f"/runs/flow-run/{run}"), link
            if role == "CTO":  # the README's picture of the approvers' email, as the sandbox's SMTP received it
                show_mail(page, told, REPO / "docs" / "ui-notification.png")
            time.sleep(1.0)  # the run saves its form's schema just after it suspends
            page.goto(link, wait_until="networkidle")
            fill_sign_off(page, name, role, "GO", shot=REPO / "docs" / "ui-sign-off.png" if role == "CTO" else None)
            page.get_by_role("dialog").get_by_role("button", name="Submit").click()
            deadline = time.monotonic() + 30
            while api.get(f"flow_runs/{pid}").json()["state"]["type"] == "PAUSED":
                assert time.monotonic() < deadline, "the UI's Submit did not resume the run"
                time.sleep(0.3)
        browser.close()
    assert wait_final(api, run)["state"]["type"] == "COMPLETED"
    decision = json_artifact(api, "golive-decision-sandbox")
    assert decision["decision"] == "GO" and decision["readiness_flow_run_id"] == run
    assert [s["signer_name"] for s in decision["signoffs"]] == ["Samuel Adeyemi", "Grace Liu"]
    deployed = wait_final(api, decision["deploy_flow_run_id"])
    assert deployed["state"]["type"] == "COMPLETED", deployed["state"]
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "golive.sandbox.release", "--base-dir", str(sandbox.base_dir), "rollback"], check=True
    )
