"""`golive demo`'s whole path: readiness, the sign-off (terminal prompts or --approve), the deploy flow and its watch.

The readiness flow runs in this process (for the live progress lines); `golive serve` runs in a child process and
executes the deploy flow when the GO triggers it; the sign-off is given through the REST API, exactly as the
Prefect UI gives it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import yaml

from . import prefect_db
from .prefect_server import PrefectServer, stop_child
from .signoff_client import (
    Waiting,
    api_client,
    json_artifact,
    resume,
    signoff_fields,
    wait_final,
    wait_paused_sign_off,
)

if TYPE_CHECKING:
    from prefect import State
    from rich.console import Console

    from golive.flows.report import Report

T = TypeVar("T")


class DemoPrefect:
    """The demo's Prefect server and its PostgreSQL: a copy of the cached migrated database (deployments/prefect_db.py)
    on its own cluster, so neither initdb nor Prefect's migrations run; with the copy there, both start before the
    sandbox does and come up alongside it. Without a cached template, it is built while the sandbox starts (the first
    demo on a machine, or after an upgrade); if that fails, the sandbox's PostgreSQL and Prefect's migrations, as
    before (said in the line that shows the API)."""

    def __init__(self, console: Console):
        self.console = console
        self.home = Path(tempfile.mkdtemp(prefix="golive-prefect-"))
        self.db: prefect_db.Cluster | None = None
        self.server: PrefectServer | None = None
        self.template_job: Callable[[], tuple[Path, bool]] | None = None
        self.phase = "Prefect server"
        self.how = ""
        self.note = ""

    def launch_cached(self) -> bool:
        """Start the copy of a cached template and launch the server (returns at once): True; else start building
        the template in the background: False."""
        try:
            bindir = prefect_db.sandbox_bindir()
            entry = prefect_db.cached_template(bindir)
            if entry is None:
                self.template_job = _in_background(lambda: prefect_db.template(bindir))
                return False
            self._start_db(bindir, entry)
            assert self.db is not None
            self.server = PrefectServer(self.db.url, self.home, extra_env=prefect_db.FROM_TEMPLATE_ENV).launch()
        except Exception as e:  # noqa: BLE001 - the demo runs on without the cache
            self.note = _one_line(e)
            self.stop()
            return False
        self.how = "a copy of the cached migrated database"
        self.phase = "Prefect server (after the sandbox)"
        return True

    def ready(self, sb: Any) -> PrefectServer:
        """The server, up."""
        if self.server is not None:
            try:
                return self.server.wait_ready(120)
            except RuntimeError as e:
                self.note, self.server = _one_line(e), None
                self.stop()
        elif self.template_job is not None:
            try:
                entry, cached = self.template_job()
                self._start_db(prefect_db.sandbox_bindir(), entry)
                assert self.db is not None
                server = PrefectServer(self.db.url, self.home, extra_env=prefect_db.FROM_TEMPLATE_ENV)
                self.server = server.start()
                self.how = "a migrated database" + ("" if cached else ", now cached for the next demo")
                self.phase = "Prefect database and server" + (
                    "" if cached else " (template built while the sandbox started)"
                )
                return server
            except Exception as e:  # noqa: BLE001 - as before: the sandbox's PostgreSQL, migrated now
                self.note = _one_line(e)
                self.stop()
        self.server = PrefectServer(sb.prefect_database_url(), self.home).start()
        self.how = f"the sandbox's PostgreSQL, migrated now (no cached template: {self.note})"
        self.phase = "Prefect database and server (migrations)"
        return self.server

    def _start_db(self, bindir: Path, entry: Path) -> None:
        from golive.sandbox.stack import run_dir  # the sandbox extra: not for `golive approve`'s import of this module

        base = run_dir()
        self.db = prefect_db.Cluster(bindir, base, base / "postgres.log")
        self.db.ensure_data(entry)
        self.db.start()

    def stop(self) -> None:
        """Stop the server and the cluster, remove their directories. Idempotent."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.db is not None:
            self.db.stop()
            shutil.rmtree(self.db.base, ignore_errors=True)
            self.db = None
        shutil.rmtree(self.home, ignore_errors=True)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _in_background(fn: Callable[[], T]) -> Callable[[], T]:
    """Start fn() in a daemon thread; the returned callable waits for it and returns its result (or raises its
    error)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["err"] = e

    thread = threading.Thread(target=run, name="golive-demo-template", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if "err" in box:
            raise box["err"]
        return cast("T", box["out"])

    return result


def parse_approvals(values: list[str]) -> list[tuple[str, str]]:
    from golive.flows.policies import Role

    roles = {r.value.casefold(): r.value for r in Role}
    out = []
    for v in values:
        name, sep, role = v.rpartition(":")
        if not sep or not name.strip() or role.strip().casefold() not in roles:
            raise ValueError(f"--approve: expected 'NAME:ROLE' with ROLE one of {', '.join(roles.values())}; got {v!r}")
        out.append((name.strip(), roles[role.strip().casefold()]))
    return out


def demo_config(sb: Any, required_roles: list[str]) -> Path:
    """The sandbox's config plus a sign-off policy and the sandbox's deploy section."""
    from golive.sandbox.release import deploy_section

    data = yaml.safe_load(Path(sb.config_path).read_text())
    data["approval"] = {"required_roles": required_roles, "timeout_minutes": 15, "poll_seconds": 1}
    data["deploy"] = deploy_section(sb.base_dir)
    path = Path(sb.base_dir) / "golive-demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_serve(config: Path, log: Path, api_url: str, timeout: float = 90) -> subprocess.Popen[bytes]:
    from .prefect_server import _die_with_parent

    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "golive.deployments.cli", "serve", "--config", str(config), "--poll-seconds", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log.parent,
            preexec_fn=_die_with_parent,
        )
    with api_client(api_url) as api:
        deadline = time.monotonic() + timeout
        while api.get("deployments/name/deploy-production/deploy-production").json().get("status") != "READY":
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"`golive serve` did not come up; see {log}")
            time.sleep(0.3)
    return proc


def _prompt_signoff(console: Console, report: Report | None, required: list[str], signed: list[str]) -> dict[str, Any]:
    from golive.flows.approval import attestations
    from golive.flows.policies import SECTION_SIGNOFFS

    todo = [r for r in required if r not in signed]
    console.print(f"\n[bold]Sign-off[/] ({', '.join(required)} required; still needed: {', '.join(todo)})")
    name = input("  your full name: ").strip()
    role = input(f"  your role [{todo[0] if todo else required[0]}]: ").strip() or (todo[0] if todo else required[0])
    decision = (input("  decision GO / NO-GO [NO-GO]: ").strip().upper() or "NO-GO").replace("NOGO", "NO-GO")
    override = False
    if decision == "GO" and report is not None and report.blocking_failures:
        override = (
            input(f"  {len(report.blocking_failures)} blocking check(s) failed: override? [y/N]: ").strip().lower()
            == "y"
        )
    reason = input("  reason (required for NO-GO and overrides): ").strip()
    console.print("  By signing GO you confirm each section owner signed off:")
    for title in SECTION_SIGNOFFS.values():
        console.print(f"    - {title}")
    console.print("  and attest:")
    for a in attestations():
        console.print(f"    - {a.statement} ({a.role})", markup=False)
    attest = input("  do you confirm all of the above? [y/N]: ").strip().lower() == "y"
    return signoff_fields(name, role, decision, reason, attest=attest, override=override)


def go_live(
    sb: Any,
    server: Any,
    args: Any,
    console: Console,
    run_flow: Callable[..., tuple[Report | None, State]],
    render_report: Callable[[Console, Report], None],
    t0: float,
) -> int:
    """Readiness in go-live mode, the sign-off, the deploy. Returns the exit code."""
    from golive.flows import readiness

    approvals = parse_approvals(args.approve)
    required = list(dict.fromkeys(role for _, role in approvals)) or ["CTO", "VP Engineering"]
    config = demo_config(sb, required)
    release = "1.5.0-broken" if args.break_release else args.release
    console.print("  starting `golive serve` (go-live, nightly-rehearsal, ci, deploy-production deployments)")
    serve = start_serve(config, Path(sb.base_dir) / "serve.log", server.api_url)
    try:
        box: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: box.update(out=run_flow(str(config), "go-live", None, args.out, console, release=release)),
            daemon=True,
        )
        console.print(f"  readiness for release [bold]{release}[/] (sandbox serves 1.4.0), then the sign-off:")
        worker.start()
        api = api_client(server.api_url)
        seen: set[Waiting] = set()
        signed: list[str] = []
        queue = list(approvals)
        shown = False
        while worker.is_alive():
            try:
                pid = wait_paused_sign_off(api, seen, timeout=1.0)
            except TimeoutError:
                continue
            report = next(iter(readiness.REPORTS.values()), None)
            if report is not None and not shown:
                render_report(console, report)
                shown = True
            while True:
                if queue:
                    name, role = queue.pop(0)
                    blocked = bool(report and report.blocking_failures)
                    fields = signoff_fields(
                        name, role, "NO-GO" if blocked else "GO", "demo: readiness is NO-GO" if blocked else ""
                    )
                    console.print(f"  sign-off by {name} ({role}): {fields['decision']}")
                elif sys.stdin.isatty():
                    fields = _prompt_signoff(console, report, required, signed)
                else:
                    console.print(
                        "  [red]no more --approve values and no terminal to ask: waiting for the form "
                        "timeout (a NO-GO)[/]"
                    )
                    break
                answer = resume(api, pid, fields)
                if answer.get("status") == "ACCEPT":
                    signed.append(fields["signer_role"])
                    break
                console.print(f"  [red]the form refused that input:[/] {answer.get('details')}")
                if not sys.stdin.isatty():
                    break
            seen.add(pid)
        worker.join()
        report, state = box["out"]
        decision = json_artifact(api, f"golive-decision-{report.environment}") if report else None
        if decision is None:
            console.print(f"[bold red]no decision was recorded:[/] {state.message}")
            return 4
        colour = "green" if decision["decision"] == "GO" else "red"
        console.print(f"\nDECISION: [bold {colour}]{decision['decision']}[/] — {decision['why']}")
        for r in decision.get("refused", []):
            console.print(
                f"  [yellow]refused sign-off[/] by {r['signer_name']}: {'; '.join(r['refused_because'])}", markup=True
            )
        dep_id = decision.get("deploy_flow_run_id")
        if not dep_id:
            return 2
        console.print(f"  deploy flow run {dep_id}: deploying {release}, smoke tests, then the rollback watch")
        final = wait_final(
            api, dep_id, timeout=600, on_change=lambda run: console.print(f"    deploy: {run['state']['name']}")
        )
        dep = json_artifact(api, f"golive-deploy-{report.environment}") or {}
        console.print(f"DEPLOY: [bold]{dep.get('outcome', final['state']['type'])}[/] — {final['state']['message']}")
        console.print(
            f"  deploy {dep.get('deploy_seconds')} s; time to detect {dep.get('time_to_detect_s')} s; "
            f"time to roll back {dep.get('time_to_rollback_s')} s; health now reports version "
            f"{_served_version(sb)}"
        )
        console.print(f"[dim]demo total {time.monotonic() - t0:.1f} s; sandbox stopped next[/]")
        return 0 if dep.get("outcome") == "DEPLOYED" else 2
    finally:
        stop_child(serve, 15)


def _served_version(sb: Any) -> str:
    import httpx

    try:
        health = httpx.get(sb.urls["web"] + "/health", verify=str(sb.ca_file), timeout=5)
        version: str = health.json().get("version", "?")
        return version
    except httpx.HTTPError as e:
        return f"unknown ({type(e).__name__})"
