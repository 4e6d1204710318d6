"""The `golive` command line.

Exit codes (the same for every command that reaches a verdict):
  0  GO                  every blocking check passed, no warnings
  1  GO-WITH-WARNINGS    no blocking failure; warnings or advisory failures to read
  2  NO-GO               a blocking check failed, errored or was skipped because its prerequisite broke
  3  usage or config error (one line per problem, naming the field)
  4  the gate itself failed (could not start, crashed): no verdict was reached
`golive ci` fails a CI job on NO-GO only by default: GO-WITH-WARNINGS exits 0 there unless `--fail-on warn`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

if TYPE_CHECKING:
    from prefect import State
    from rich.console import Console

    from golive.deployments.local_server import Running
    from golive.flows.config import GoliveConfig
    from golive.flows.history import History
    from golive.flows.report import Report
    from golive.tasks.core import CheckResult, Redactor

EXIT_GO, EXIT_WARN, EXIT_NOGO, EXIT_USAGE, EXIT_GATE = 0, 1, 2, 3, 4


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 by default: that is NO-GO here, so use 3
        self.print_usage(sys.stderr)
        print(f"golive: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _console() -> Console:
    from rich.console import Console

    # no `:name:` emoji codes either: a target's `:x:` stays text
    return Console(highlight=False, emoji=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


STYLE = {
    "PASS": "green",
    "WARN": "yellow",
    "FAIL": "red",
    "ERROR": "bold red",
    "SKIPPED": "magenta",
    "NOT_APPLICABLE": "dim",
    "GO": "bold green",
    "GO-WITH-WARNINGS": "bold yellow",
    "NO-GO": "bold red",
}
MARK = {"PASS": "✓", "WARN": "!", "FAIL": "✗", "ERROR": "✗", "SKIPPED": "↷", "NOT_APPLICABLE": "-"}


def _progress_line(console: Console, res: CheckResult) -> None:
    """One line per landed check: what it is when it passed, what went wrong when not."""
    s = res.status.value
    text = res.title if s == "PASS" else res.summary
    console.print(
        f"  [{STYLE[s]}]{MARK[s]} {s:<14}[/] {res.id:<40} [dim]{_t(text, 90)} ({res.duration_s:.2f}s)[/]",
        markup=True,
        emoji=False,
        no_wrap=True,
        overflow="ellipsis",
    )


class _Progress:
    """The progress lines, written by a thread of their own while the checks run.

    The board calls its listeners on the run's event loop (Board.post). A console write there gives up the GIL and,
    while check threads hold it, waits to get it back: a profile of `golive demo` (pyinstrument) found 1.7 s of the
    loop's time in Console.print, time in which no task run started. Queued here, the loop goes on; leaving the block
    writes what is left, in order, before the report is rendered."""

    def __init__(self, console: Console):
        import queue

        self.console = console
        self.queue: queue.SimpleQueue[CheckResult | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="golive-progress", daemon=True)

    def _write(self) -> None:
        while (res := self.queue.get()) is not None:
            try:
                _progress_line(self.console, res)
            except Exception:  # noqa: BLE001 - a line that cannot be written (a closed pipe) changes no result
                pass

    def __enter__(self) -> Callable[[CheckResult], None]:
        self.thread.start()
        return self.queue.put

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        # every line out before the report, which writes to the same stdout: a bound here would only let the two
        # interleave, or leave a daemon thread writing while the interpreter exits
        self.thread.join()


def _t(text: Any, n: int = 100_000) -> str:
    """What a target said, for a string printed with markup: one line, control characters (an ANSI escape) written
    out, cut to `n`, Rich markup escaped (`[/oops]` in a server's answer once crashed the gate with exit 4)."""
    from rich.markup import escape

    from golive.flows.report import plain

    return escape(plain(text, n))


def _v(text: Any) -> str:
    """What a target said, for a string printed without markup: control characters written out, lines kept."""
    from golive.flows.report import visible

    return visible(str(text))


def report_by_id(report: Report) -> dict[str, CheckResult]:
    return {r.id: r for r in report.results}


def render_report(console: Console, report: Report, *, out_path: Path | None = None) -> None:
    from rich.table import Table

    t = Table(title=f"go-live readiness: {_t(report.environment)} ({report.mode})", title_justify="left")
    for col in ("Section", "Verdict", "PASS", "WARN", "FAIL", "ERROR", "SKIPPED", "N/A", "s"):
        t.add_column(col, justify="left" if col in ("Section", "Verdict") else "right")
    for s in report.sections:
        c = s.counts
        t.add_row(
            s.title,
            f"[{STYLE[s.verdict.value]}]{s.verdict.value}[/]",
            str(c.get("PASS", 0)),
            str(c.get("WARN", 0)),
            str(c.get("FAIL", 0)),
            str(c.get("ERROR", 0)),
            str(c.get("SKIPPED", 0)),
            str(c.get("NOT_APPLICABLE", 0)),
            f"{s.duration_s:.2f}",
        )
    console.print(t)
    bad = report.blocking_failures
    if bad:
        console.print("[bold red]Blocking:[/]")
        skipped: dict[str, list[str]] = {}
        for r in bad:
            if r.status.value == "SKIPPED":
                skipped.setdefault(r.details.get("root_cause", ""), []).append(r.id)
        roots = [r for r in bad if r.status.value != "SKIPPED"]
        for r in roots:
            console.print(f"  [red]{r.status.value}[/] [bold]{r.id}[/] {_t(r.title)}", emoji=False)
            if r.status.value == "FAIL":
                console.print(
                    _v(f"      observed: {r.observed}\n      expected: {r.expected}"), emoji=False, markup=False
                )
            elif r.cause != r.evidence:
                console.print(_v(f"      cause: {r.cause}"), emoji=False, markup=False)
            console.print(_v(f"      evidence: {r.evidence}"), emoji=False, markup=False)
            if skipped.get(r.id):
                console.print(f"      [magenta]and so SKIPPED:[/] {', '.join(skipped.pop(r.id))}", emoji=False)
        for ids in skipped.values():  # skipped behind a root that is not itself blocking
            for cid in ids:
                cause = _t(report_by_id(report)[cid].cause)
                console.print(f"  [magenta]SKIPPED[/] [bold]{cid}[/]: {cause}", emoji=False)
    warns = report.warnings
    if warns:
        console.print("[yellow]Warnings:[/]")
        for r in warns:
            console.print(f"  [yellow]{r.status.value}[/] {r.id}: {_t(r.summary)}", emoji=False)
    na = [r for r in report.results if r.status.value == "NOT_APPLICABLE"]
    if na:
        causes = sorted(
            {r.cause for r in na if r.cause is not None and not r.cause.startswith("not applicable because")}
        )
        console.print(f"[dim]Not applicable: {len(na)} check(s): {_t('; '.join(causes))}[/]", emoji=False)
    console.print(
        f"\nVERDICT: [{STYLE[report.verdict.value]}]{report.verdict.value}[/]  "
        f"({len(report.results)} checks in {report.duration_s:.1f} s)"
    )
    if out_path:
        console.print(f"[dim]report files: {out_path}[/]")


# --------------------------------------------------------------------------- commands


def _load_config(path: str) -> GoliveConfig | None:
    """The config, or None after one line per problem on stderr (each `file: key.path: message`, redacted)."""
    from golive.flows.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        for line in e.problems:
            print(f"{e.source}: {line}", file=sys.stderr)
        return None


def _load_config_or_usage(path: str) -> GoliveConfig:
    cfg = _load_config(path)
    if cfg is None:
        raise SystemExit(EXIT_USAGE)
    return cfg


def cmd_config(args: argparse.Namespace) -> int:
    from pydantic import BaseModel

    from golive.flows.config import json_schema
    from golive.tasks.core import Redactor

    if args.config_cmd == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.config_cmd == "init":
        from golive.flows.configinit import InitError, command

        try:
            command(args)
        except InitError as e:
            raise UsageError(str(e)) from None
        return 0
    cfg = _load_config(args.file)
    if cfg is None:
        return EXIT_USAGE
    sections = [
        k
        for k in type(cfg).model_fields  # every section written in the file, in the schema's order
        if k in cfg.model_fields_set and isinstance(getattr(cfg, k), BaseModel)
    ]
    rules = "production rules" if cfg.production else "not production"
    print(
        Redactor(cfg.secrets()).text(
            f"{args.file}: ok (environment {cfg.environment}, {rules}; sections: {', '.join(sections) or 'none'})"
        )
    )
    return 0


def cmd_expectations(args: argparse.Namespace) -> int:
    """`lint`: every suite file through GX, one line per bad file; `scaffold`: starter suites from a live schema."""
    from golive.expectations.suites import SuiteError, display_path, lint_dir

    if args.exp_cmd == "lint":
        try:
            good, errors = lint_dir(args.dir)
        except SuiteError as e:
            print(e, file=sys.stderr)
            return EXIT_USAGE
        for err in errors:
            print(err, file=sys.stderr)
        n = sum(len(s.expectations) for s in good)
        where = display_path(Path(args.dir)) if args.dir else "expectations/suites"
        print(f"{where}: {len(good)} suite(s), {n} expectation(s) ok" + (f"; {len(errors)} bad" if errors else ""))
        return EXIT_USAGE if errors else 0
    cfg = _load_config_or_usage(args.config)
    if cfg.postgres is None:
        print(f"{args.config}: postgres: required key is missing (scaffolding reads that database)", file=sys.stderr)
        return EXIT_USAGE
    from golive.expectations.scaffold import scaffold

    written, kept = scaffold(cfg.postgres, args.out, tables=args.table or (), force=args.force)
    for path in written:
        print(f"wrote {display_path(path)}")
    for path in kept:
        print(f"kept  {display_path(path)} (exists; --force overwrites)")
    print(
        f"{len(written)} starter suite(s) for review; lint them with `golive expectations lint {args.out}` and "
        f"point `postgres.suites_dir` at {args.out}"
    )
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from golive.flows.catalog import catalog_rows, render_catalog

    if args.format == "json":
        print(json.dumps(catalog_rows(), indent=2))
    else:
        print(render_catalog(fmt=args.format), end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run checks without Prefect (quick local probing)."""
    from datetime import datetime

    from golive.expectations import prestart_worker
    from golive.flows.config import ConfigError
    from golive.flows.readiness import plan
    from golive.flows.report import build_report
    from golive.tasks.core import Redactor, RunContext, run_plain

    cfg = _load_config_or_usage(args.config)
    try:
        specs = plan(cfg, args.section)
        if args.check:
            from golive.tasks.core import select

            specs = select(specs, ids=args.check)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    except ConfigError as e:  # a bad suite file
        raise UsageError("; ".join(e.problems)) from None
    console = _console()
    started = datetime.now(UTC)
    redact = Redactor(cfg.secrets())
    prestart_worker(specs, RunContext(cfg, redact=redact))  # GX imports in its own process while light checks run
    with _Progress(console) as progress:
        results = run_plain(specs, cfg, redact=redact, on_result=progress)
    report = build_report(results, environment=cfg.environment, mode="check", started_at=started)
    render_report(console, report)
    return report.verdict.exit_code


def _run_flow(
    config_path: str, mode: str, sections: list[str] | None, output_dir: str | None, console: Console, **params: Any
) -> tuple[Report | None, State]:
    """Run the readiness flow in this process; return (Report or None, final state)."""
    import asyncio

    from golive.flows import engine, readiness

    try:
        with _Progress(console) as listener:
            engine.LISTENERS.append(listener)
            try:
                # (the cast: an async flow called with return_state=True gives a coroutine of its final State;
                # Prefect types it as any awaitable, which asyncio.run does not take)
                state = asyncio.run(
                    cast(
                        "Coroutine[Any, Any, State]",
                        readiness.go_live_readiness(
                            config=config_path,
                            mode=mode,
                            sections=sections,
                            output_dir=output_dir,
                            return_state=True,
                            **params,
                        ),
                    )
                )
            finally:
                engine.LISTENERS.remove(listener)
    finally:
        _drain_prefect()
    return readiness.REPORTS.pop(str(state.state_details.flow_run_id), None), state


def _drain_prefect() -> None:
    """Send the logs and events still queued to the API before the server (or this process) goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


def _quiet_prefect_console() -> None:
    # our own console shows every result; Prefect's full logs go to its API (the UI)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load_config_or_usage(args.config)
    _quiet_prefect_console()
    console = _console()
    api = _prefect_server_for(console)
    console.print(
        f"golive: readiness of [bold]{_t(cfg.environment)}[/] ({args.mode}) "
        f"on {_t(_bare_url(api)) if api else 'an ephemeral Prefect server'}"
    )
    report, state = _run_flow(args.config, args.mode, args.section, args.out, console)
    if report is None:
        console.print(f"[bold red]the gate failed:[/] {_t(state.message)}", markup=True)
        return EXIT_GATE
    render_report(console, report, out_path=Path(args.out) / report.environment / "latest" if args.out else None)
    if args.junit:
        from golive.flows.report import to_junit

        Path(args.junit).write_text(to_junit(report))
    return report.verdict.exit_code


# --------------------------------------------------------------------------- golive's local Prefect server


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d {s // 3600 % 24}h"
    if s >= 3600:
        return f"{s // 3600}h {s // 60 % 60}m"
    return f"{s // 60}m {s % 60}s" if s >= 60 else f"{seconds:.1f}s"


def _api_url(args: argparse.Namespace) -> str:
    """The Prefect API a client command talks to: --api-url, else PREFECT_API_URL, else one in Prefect's own settings
    (`ack` uses it; the readers refuse it, saying why), else golive's local server when it runs (the one `golive run`
    used; never started by a command that only reads or answers). Its credentials go into the environment for
    Prefect's client (PREFECT_API_AUTH_STRING)."""
    api_url: str | None = getattr(args, "api_url", None) or os.environ.get("PREFECT_API_URL")
    if api_url:
        return api_url
    if profiled := _configured_api_url():  # (Prefect's own settings: its active profile, a .env, prefect.toml)
        if not hasattr(args, "api_url"):
            return profiled  # (`ack`: Prefect's own client, which reads the profile's URL and key itself)
        raise UsageError(  # (golive's readers take credentials from the environment, never a profile's key
            # to a server it was not meant for): not golive's local server either, which is not the team's
            "Prefect's own settings (its active profile, a .env or prefect.toml) set the API URL: export "
            "PREFECT_API_URL (and PREFECT_API_KEY or PREFECT_API_AUTH_STRING) or pass --api-url"
        )
    from golive.deployments import local_server

    state, why = local_server.status(local_server.Paths.default())
    if state is None:
        need = "--api-url or PREFECT_API_URL" if hasattr(args, "api_url") else "PREFECT_API_URL"
        raise UsageError(f"{need} is required (golive's local Prefect server is not running: {why})")
    return _talk_to(local_server.Running(state, True, 0.0))


def _talk_to(srv: Running) -> str:
    """Point Prefect's client (this process, and what it starts) at golive's running local server `srv`."""
    from golive.deployments.prefect_server import export_client_env

    # (its API asks for basic auth: deployments/local_server.py; Prefect, if imported already, reads both again)
    export_client_env({"PREFECT_API_URL": srv.api_url, "PREFECT_API_AUTH_STRING": srv.auth_string})
    return srv.api_url


def _configured_api_url() -> str | None:
    """The Prefect API the operator configured, which always wins over golive's local server: PREFECT_API_URL in
    the environment, else in Prefect's own settings (the active profile, as `prefect config set` and `prefect cloud
    login` leave it; a .env or prefect.toml). Importing prefect to read them is harmless: `_talk_to` has them read
    again (`export_client_env`)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from pydantic import ValidationError

    try:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
    except ValidationError as e:  # (a profile's bad value: one line naming it, not the value)
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "?"
        raise UsageError(f"Prefect's settings (profile, .env or prefect.toml): {field}: {err['msg']}") from None
    return str(url) if url else None


def _prefect_server_for(console: Console) -> str | None:
    """The Prefect API the run talks to (None: Prefect's ephemeral server). The configured one (`_configured_api_url`)
    if any; else golive's local server (started if need be; deployments/local_server.py), said in one line with its
    UI; if it cannot run, one line saying why, and Prefect's ephemeral server as before."""
    configured = _configured_api_url()
    if configured:
        return configured  # the configured server always wins
    from golive.deployments import local_server

    try:
        srv = local_server.ensure()
    except Exception as e:  # noqa: BLE001 - the gate still runs, on Prefect's own fallback
        why = _env_redactor().text(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        console.print(
            f"golive: the local Prefect server is unavailable ({_t(why, 300)}); using Prefect's ephemeral SQLite "
            "server (slower)",
            markup=True,
            soft_wrap=True,
        )
        return None
    _talk_to(srv)
    how = f"reused, up {_duration(srv.uptime_s)}" if srv.reused else f"started in {srv.seconds:.1f} s"
    console.print(
        f"golive: Prefect server: golive's local server (PostgreSQL; {how}; pid {srv.pid}), UI {srv.ui_url}",
        markup=False,
        soft_wrap=True,
    )
    return srv.api_url


def cmd_server(args: argparse.Namespace) -> int:
    """`golive server start|status|stop`: golive's local Prefect server (used when PREFECT_API_URL is not set)."""
    from golive.deployments import local_server

    paths = local_server.Paths.default()
    if args.server_cmd == "start":
        try:
            srv = local_server.ensure(paths)
        except Exception as e:  # noqa: BLE001 - said in one line
            print(f"golive: the local Prefect server could not start: {_env_redactor().text(str(e))}", file=sys.stderr)
            return EXIT_GATE
        print(
            f"golive local Prefect server: {'already running' if srv.reused else f'started in {srv.seconds:.1f} s'}"
            f" (pid {srv.pid})\n  UI   {srv.ui_url}\n  API  {srv.api_url}\n  data {paths.dir}"
        )
        return 0
    if args.server_cmd == "status":
        state, why = local_server.status(paths)
        if state is None:
            print(f"golive local Prefect server: not running ({why}); data {paths.dir}")
            return 1
        up = _duration(time.time() - float(state["started_at"]))
        print(
            f"golive local Prefect server: running, pid {state['pid']} (Prefect server pid {state['server_pid']})"
            f"\n  UI     {state['ui_url']}\n  API    {state['api_url']}\n  data   {paths.dir}\n  uptime {up}"
            f"\n  auth   basic auth: the string in {paths.auth} (PREFECT_API_AUTH_STRING; the UI asks for it)"
        )
        return 0
    try:
        stopped, why = local_server.stop(paths, purge=args.purge)
    except local_server.ServerError as e:
        print(f"golive local Prefect server: not stopped: {e}", file=sys.stderr)
        return EXIT_GATE
    print(
        (f"golive local Prefect server: stopped (pid {stopped['pid']})" if stopped else f"not running ({why})")
        + (f"; removed its data ({paths.dir})" if args.purge else "")
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from golive.sandbox import FAULTS, Sandbox
    except ImportError:
        print("golive demo needs the sandbox extra: pip install 'golive[sandbox]'", file=sys.stderr)
        return EXIT_USAGE
    unknown = [f for f in args.break_ if f not in FAULTS]
    if unknown:
        print(f"--break: unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}", file=sys.stderr)
        return EXIT_USAGE
    from golive.deployments.demo import go_live, parse_approvals
    from golive.sandbox.release import RELEASES

    try:
        parse_approvals(args.approve)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.release not in RELEASES:
        raise UsageError(f"--release: unknown sandbox release {args.release!r}; known: {', '.join(RELEASES)}")
    full_path = bool(args.approve) or (sys.stdin.isatty() and not args.readiness_only)
    console = _console()
    t0 = time.monotonic()
    _quiet_prefect_console()
    console.print(
        "golive demo: starting the sandbox (PostgreSQL, Redis primary+replica, S3, SMTP, HTTPS app, "
        "Prometheus API)" + (f" with fault(s) {', '.join(args.break_)}" if args.break_ else "")
    )
    from golive.deployments.demo import DemoPrefect
    from golive.deployments.prefect_server import export_client_env

    phases: dict[str, float] = {}
    code = EXIT_GATE
    # Prefect's database is a copy of a cached, migrated one (deployments/prefect_db.py); with the copy there, its
    # server starts alongside the sandbox, else the template is built while the sandbox starts (the first demo)
    prefect = DemoPrefect(console)
    try:
        t = time.monotonic()
        if prefect.launch_cached():
            phases["Prefect database (cached)"] = time.monotonic() - t
        t = time.monotonic()
        with Sandbox.start(faults=args.break_) as sb:
            t_sb = phases["sandbox"] = time.monotonic() - t
            os.environ.update(sb.env)
            t = time.monotonic()
            server = prefect.ready(sb)
            phases[prefect.phase] = time.monotonic() - t
            export_client_env(server.client_env())
            console.print(
                f"  sandbox up in {t_sb:.1f} s; Prefect API {server.api_url} on {prefect.how} "
                f"(up at {time.monotonic() - t0:.1f} s)"
            )
            t = time.monotonic()
            if full_path:
                code = go_live(sb, server, args, console, _run_flow, render_report, t0)
                phases["readiness, sign-off, deploy"] = time.monotonic() - t
            else:
                console.print(
                    "  running the checks (readiness only; sign-off and deploy: run it in a terminal, or "
                    "pass --approve 'NAME:ROLE' for each required role):"
                )
                report, state = _run_flow(str(sb.config_path), "rehearsal", None, args.out, console)
                phases["checks"] = time.monotonic() - t
                if report is None:
                    console.print(f"[bold red]the gate failed:[/] {_t(state.message)}")
                else:
                    out = Path(args.out) / report.environment / "latest" if args.out else None
                    render_report(console, report, out_path=out)
                    code = report.verdict.exit_code
            t = time.monotonic()
            prefect.stop()
            phases["Prefect stop"] = time.monotonic() - t
            t = time.monotonic()
    finally:
        prefect.stop()
    phases["sandbox stop"] = time.monotonic() - t
    console.print(
        "[dim]demo phases: "
        + " | ".join(f"{name} {secs:.1f} s" for name, secs in phases.items())
        + f" | total {time.monotonic() - t0:.1f} s; sandbox stopped[/]",
        soft_wrap=True,
    )
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    _load_config_or_usage(args.config)
    _prefect_server_for(_console())
    from golive.deployments.serve import serve

    serve(args.config, cron=args.cron, timezone=args.timezone, poll_seconds=args.poll_seconds)
    return 0


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param: expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)  # numbers, booleans, lists as JSON; anything else a string
        except ValueError:
            out[key.strip()] = value
    return out


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader left (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout (captured): not a reader that left
        return False


def _bare_url(url: str) -> str:
    """`url` with no userinfo, query or fragment: a URL that is shown (its password, a token in its query never)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:  # (a port that is not a number: nothing of it is shown)
        return "(a URL that does not parse)"
    return urlunsplit((u.scheme, (u.hostname or "") + (f":{port}" if port else ""), u.path.rstrip("/"), "", ""))


def ui_run_url(api_url: str, flow_run_id: str) -> str:
    """The run's page in the Prefect UI: `PREFECT_UI_URL` where set, else what Prefect derives from the API URL
    (a self-hosted server's origin; Prefect Cloud's app.prefect.cloud/account/.../workspace/...)."""
    import uuid

    from prefect.settings import Settings

    base = _bare_url(str(Settings(api={"url": _bare_url(api_url)}).ui_url))
    return f"{base}/runs/flow-run/{uuid.UUID(str(flow_run_id))}"


def cmd_ci(args: argparse.Namespace) -> int:
    from golive.deployments.ci_client import CiError, trigger_and_wait
    from golive.flows.report import ci_summary, junit_xml

    api_url = _api_url(args)
    console = _console()
    try:
        out = trigger_and_wait(
            args.deployment,
            _params(args.param),
            api_url=api_url,
            api_key=os.environ.get("PREFECT_API_KEY"),
            idempotency_key=args.idempotency_key,
            timeout_s=args.timeout,
            poll_s=args.poll_seconds,
            on_state=lambda rid, t, name: console.print(f"[dim]flow run {rid}: {_t(name or t)}[/]"),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    except CiError as e:
        console.print(f"[bold red]golive ci: no verdict:[/] {_t(e)}")
        return EXIT_GATE
    if out.verdict is None:
        console.print(
            f"[bold red]golive ci: run {out.flow_run_id} ended {out.state} without a verdict:[/] "
            f"{_t(out.state_message)}"
        )
        return EXIT_GATE
    v = out.verdict
    console.print(
        f"VERDICT: [{STYLE[v['verdict']]}]{_t(v['verdict'])}[/] for {_t(v['environment'])} "
        f"(flow run {out.flow_run_id}, {out.state})"
    )
    for line in v.get("blocking", []):
        console.print(f"  [red]blocking[/] {_t(line)}", markup=True, emoji=False)
    for line in v.get("warnings", []):
        console.print(f"  [yellow]warning[/] {_t(line)}", markup=True, emoji=False)
    if args.junit:
        Path(args.junit).write_text(junit_xml(out.checks, v["environment"]))
        console.print(f"[dim]JUnit: {args.junit} ({len(out.checks)} checks)[/]")
    try:  # the link and the job summary are extras: a verdict reached is never lost to them
        run_url: str | None = ui_run_url(api_url, out.flow_run_id)
        console.print(f"[dim]the run: {_t(run_url)}[/]")
    except Exception as e:  # noqa: BLE001
        run_url = None
        console.print(f"[dim]no link to the run: {_t(type(e).__name__)}[/]")
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):  # GitHub Actions' job summary page: appended, never replaced
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(ci_summary(v, run_url))
        except OSError as e:
            console.print(f"[yellow]job summary not written:[/] {_t(e)}")
    code = int(v["exit_code"])
    return 0 if code == 1 and args.fail_on == "no-go" else code


def cmd_approve(args: argparse.Namespace) -> int:
    """Sign off a waiting go-live run without the UI: the same form model and rules as the UI's form."""
    import httpx
    from pydantic import ValidationError

    from golive.deployments.ci_client import prefect_client
    from golive.deployments.demo import parse_approvals
    from golive.deployments.signoff_client import ApproveError, signoff_fields, submit_sign_off
    from golive.flows.approval import attestations, signoff_form
    from golive.flows.policies import SECTION_SIGNOFFS
    from golive.flows.report import plain

    try:
        uuid.UUID(args.run)
    except ValueError:
        raise UsageError(f"RUN: expected a flow run id (a UUID), got {args.run!r}") from None
    api_url = _api_url(args)
    try:
        [(name, role)] = parse_approvals([args.as_])
    except ValueError as e:
        raise UsageError(str(e).replace("--approve", "--as")) from None
    decision = "GO" if args.go else "NO-GO"
    if decision == "NO-GO" and not (args.reason or "").strip():
        raise UsageError("--reason: a NO-GO needs a reason")
    if args.override and decision == "NO-GO":
        raise UsageError("--override: only with --go (it overrides blocking failures for a GO)")
    if args.override and not (args.reason or "").strip():
        raise UsageError("--reason: an override needs a reason")
    if decision == "GO" and not args.attest:
        need = [*SECTION_SIGNOFFS.values(), *(f"{a.statement} ({a.role})" for a in attestations())]
        raise UsageError(
            "--attest: a GO signs off every section and every attestation; read them and pass --attest:\n"
            + "\n".join(f"  - {n}" for n in need)
        )
    fields = signoff_fields(name, role, decision, args.reason or "", attest=decision == "GO", override=args.override)
    try:
        signoff_form()(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        raise UsageError(f"--{_FORM_FLAG.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}") from None
    try:  # Prefect's own client: PREFECT_API_KEY (Cloud, keyed servers) or PREFECT_API_AUTH_STRING (basic auth)
        with prefect_client(api_url) as client:
            out = submit_sign_off(client, args.run, fields, timeout=args.timeout)
    except ApproveError as e:
        print(f"golive: {e}", file=sys.stderr)
        return EXIT_GATE
    except httpx.HTTPError as e:
        redact = _env_redactor()
        print(
            redact.text(
                f"golive: the Prefect API failed before anything was submitted: {type(e).__name__}: "
                f"{plain(str(e), 300)}"
            ),
            file=sys.stderr,
        )
        return EXIT_GATE
    who = f"{decision} by {name} ({role})"
    if out["outcome"] == "refused":
        print(f"{who} REFUSED by the go-live run:")
        for p in out["problems"]:
            print(f"  - {p}")
        return EXIT_NOGO
    where = f"sign-off {out['round']} of go-live run {out['sign_off_run']}"
    if out["outcome"] == "recorded":
        print(f"{who} recorded ({where}; the run now {out['state']}: another role's sign-off is still needed)")
        return EXIT_GO
    if out["outcome"] == "ended":
        print(f"{who} submitted ({where}); the go-live run ended {out['state']}: {out['message']}")
        return EXIT_GO
    print(
        f"{who} submitted to {where}, but the go-live run's judgement was not seen"
        + (f" ({out['message']})" if out["message"] else f" within {args.timeout:g}s")
        + ": do not sign again; look at the run"
    )
    return EXIT_WARN


_FORM_FLAG = {"signer_name": "as", "signer_role": "as", "reason": "reason", "decision": "go/--no-go"}


def cmd_ack(args: argparse.Namespace) -> int:
    """Acknowledge HIGH rollback criteria for a release being watched (or clear it): a Prefect Variable."""
    from datetime import datetime

    from pydantic import ValidationError

    from golive.flows.watch import Ack, ack_variable

    name = ack_variable(args.environment)
    if args.clear:
        _api_url(args)  # (Prefect's own client reads PREFECT_API_URL: never its throwaway ephemeral server)
        from prefect.variables import Variable

        Variable.unset(name)
        print(f"cleared {name}: HIGH rollback criteria of {args.environment} roll back again after their assessment")
        return EXIT_GO
    missing = [f for f in ("release", "by", "reason") if not getattr(args, f)]
    if missing:
        raise UsageError(f"--{missing[0]} is required (or --clear)")
    try:
        ack = Ack(
            release=args.release, by=args.by, reason=args.reason, criteria=args.criterion or [], at=datetime.now(UTC)
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise UsageError(f"--{err['loc'][0]}: {err['msg']}") from None
    _api_url(args)  # (the server's URL and auth for Prefect's client: `_talk_to`)
    from prefect.variables import Variable

    Variable.set(name, ack.model_dump(mode="json"), overwrite=True)
    what = ", ".join(ack.criteria) if ack.criteria else "every HIGH criterion"
    print(
        f"acknowledged {what} for release {ack.release} of {args.environment} by {ack.by} "
        f"(Prefect Variable {name}); CRITICAL criteria still roll back"
    )
    return EXIT_GO


def cmd_history(args: argparse.Namespace) -> int:
    """An environment's last runs, from the artifacts Prefect keeps (flows/history.py): no second store."""
    import asyncio
    import re
    from urllib.parse import urlsplit

    import httpx

    from golive.deployments.ci_client import prefect_async_client
    from golive.flows import history

    if not re.fullmatch(history.ENVIRONMENT, args.environment):
        raise UsageError(
            f"--environment: expected an environment name (lowercase letters, digits, dashes), got {args.environment!r}"
        )
    if not 1 <= args.last <= history.MAX_RUNS:
        raise UsageError(f"--last: expected 1 to {history.MAX_RUNS} runs, got {args.last}")
    if not args.timeout > 0:
        raise UsageError(f"--timeout: expected seconds > 0, got {args.timeout:g}")
    api_url = _api_url(args)
    where = urlsplit(api_url).hostname or "?"

    async def read() -> history.History:
        async with prefect_async_client(api_url, timeout=args.timeout) as client:
            return await history.read_history(args.environment, args.last, client=client, timeout=args.timeout)

    try:
        h = asyncio.run(read())
    except TimeoutError:
        print(f"golive history: the Prefect API at {where} did not answer within {args.timeout:g} s", file=sys.stderr)
        return EXIT_GATE
    except (httpx.HTTPError, OSError, ValueError) as e:  # ValueError: an answer that is not Prefect's JSON
        why = _env_redactor().text(f"{type(e).__name__}: {e}").replace(api_url, where)
        print(
            f"golive history: the Prefect API at {where} could not be read: {_v(' '.join(why.split()))[:300]}",
            file=sys.stderr,
        )
        return EXIT_GATE
    if args.format == "json":
        print(json.dumps(history.to_json(h), indent=2, ensure_ascii=False))
    elif args.format == "md":
        print(history.to_markdown(h), end="")
    else:
        _history_table(h, where)
    return EXIT_GO


def _history_table(h: History, where: str) -> None:
    from rich.table import Table

    from golive.flows import history

    console = _console()
    if not h.runs:
        console.print(f"no golive runs of {_t(h.environment)} in the Prefect API at {_t(where)}")
        return
    t = Table(title=f"readiness history of {_t(h.environment)} (last {len(h.runs)} runs)", title_justify="left")
    for col in history.HEADER:
        t.add_column(
            col, justify="right" if col in ("PASS", "WARN", "FAIL", "ERROR", "SKIPPED", "duration") else "left"
        )
    for row in history.rows(h):
        verdict = f"[{STYLE.get(row[2], '')}]{_t(row[2])}[/]"
        t.add_row(*(_t(c) for c in row[:2]), verdict, *(_t(c) for c in row[3:]))
    console.print(t)
    for line in history.flaky_lines(h):
        flagged = line.startswith("  flaky ")
        console.print(f"  [bold red]flaky[/] {_t(line.removeprefix('  flaky '))}" if flagged else _t(line))
    if h.skipped:
        console.print(f"[dim]{h.skipped} artifact version(s) were not golive JSON and were left out[/]")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="golive",
        description="golive: the go-live checklist as a Prefect workflow, with evidence.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="bring up the local sandbox, run the readiness flow against it, tear it down")
    d.add_argument(
        "--break",
        dest="break_",
        action="append",
        default=[],
        metavar="FAULT",
        help="turn one fact of the sandbox wrong (repeatable); see `golive demo --list-faults`",
    )
    d.add_argument("--list-faults", action="store_true", help="list the sandbox's fault switches and exit")
    d.add_argument("--out", default="golive-reports", help="where report.json/report.md/junit.xml go")
    d.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="NAME:ROLE",
        help="sign off without prompts, once per required role (e.g. 'Samuel Adeyemi:CTO'); "
        "then a GO deploys the sandbox's next release and watches it",
    )
    d.add_argument("--release", default="1.5.0", help="the release a GO deploys (default 1.5.0)")
    d.add_argument(
        "--break-release",
        action="store_true",
        help="deploy a release that breaks /health during the watch: the deploy flow rolls back",
    )
    d.add_argument("--readiness-only", action="store_true", help="no sign-off and no deploy, even in a terminal")
    d.set_defaults(fn=cmd_demo)

    r = sub.add_parser("run", help="run the readiness flow against a real environment")
    r.add_argument("--config", required=True, help="the environment's YAML file")
    r.add_argument("--mode", choices=["rehearsal", "ci"], default="rehearsal")
    r.add_argument("--section", action="append", help="only this section (repeatable; dependencies are pulled in)")
    r.add_argument("--out", default="golive-reports")
    r.add_argument("--junit", help="also write JUnit XML here")
    r.set_defaults(fn=cmd_run)

    so = sub.add_parser(
        "server", help="golive's local Prefect server (PostgreSQL-backed), used when PREFECT_API_URL is not set"
    )
    sos = so.add_subparsers(dest="server_cmd", required=True, parser_class=_Parser)
    sos.add_parser("start", help="start it (detached; later runs reuse it)")
    sos.add_parser("status", help="pid, URL, data directory, uptime; exit 1 when not running")
    st = sos.add_parser("stop", help="stop it")
    st.add_argument("--purge", action="store_true", help="also delete its data (every run it recorded)")
    so.set_defaults(fn=cmd_server)

    c = sub.add_parser("check", help="run checks in-process without Prefect (quick probing)")
    c.add_argument("--config", required=True)
    c.add_argument("--section", action="append")
    c.add_argument("--check", action="append", help="only this check id (repeatable)")
    c.set_defaults(fn=cmd_check)

    sv = sub.add_parser("serve", help="serve the go-live, nightly-rehearsal, ci and deploy-production deployments")
    sv.add_argument("--config", required=True, help="the environment's YAML file (its secrets in this environment)")
    sv.add_argument("--cron", default="0 2 * * *", help="nightly rehearsal schedule (default 02:00)")
    sv.add_argument("--timezone", default="UTC")
    sv.add_argument("--poll-seconds", type=float, default=1.0, help="how quickly a triggered run is picked up")
    sv.set_defaults(fn=cmd_serve)

    ci = sub.add_parser("ci", help="trigger a served deployment through the Prefect API, wait, grade the verdict")
    ci.add_argument("--deployment", default="go-live-readiness/ci", help="FLOW/DEPLOYMENT")
    ci.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="flow parameter (repeatable)")
    ci.add_argument("--wait", action="store_true", default=True, help="wait for the verdict (the default)")
    ci.add_argument("--junit", help="write JUnit XML here")
    ci.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    ci.add_argument("--poll-seconds", type=float, default=2.0)
    ci.add_argument(
        "--idempotency-key", help="default: derived from the CI system's run id and the parameters, else random"
    )
    ci.add_argument(
        "--fail-on",
        choices=["no-go", "warn"],
        default="no-go",
        help="the verdict that fails the job: no-go (the default: GO-WITH-WARNINGS exits 0) or warn "
        "(GO-WITH-WARNINGS exits 1)",
    )
    ci.add_argument("--api-url", help="default: PREFECT_API_URL (PREFECT_API_KEY is sent when set)")
    ci.set_defaults(fn=cmd_ci)

    hi = sub.add_parser(
        "history",
        help="an environment's last runs (every mode) from Prefect's artifacts: verdict, counts, duration, what "
        "changed; flaky checks",
    )
    hi.add_argument("--environment", required=True, help="the config's `environment` name")
    hi.add_argument("--last", type=int, default=30, help="how many runs, newest first (default 30, at most 200)")
    hi.add_argument("--format", choices=["table", "json", "md"], default="table")
    hi.add_argument("--timeout", type=float, default=30.0, help="seconds the Prefect API gets for the whole read")
    hi.add_argument("--api-url", help="default: PREFECT_API_URL (PREFECT_API_KEY is sent when set)")
    hi.set_defaults(fn=cmd_history)

    ap = sub.add_parser(
        "approve", help="sign off a go-live run waiting for its sign-off, without the UI (the same form and rules)"
    )
    ap.add_argument("run", metavar="RUN", help="the go-live flow run id (the run waiting for its sign-off)")
    ap.add_argument("--as", dest="as_", required=True, metavar="NAME:ROLE", help="who signs, in which role")
    dec = ap.add_mutually_exclusive_group(required=True)
    dec.add_argument("--go", action="store_true", help="decide GO")
    dec.add_argument("--no-go", action="store_true", help="decide NO-GO (needs --reason)")
    ap.add_argument("--reason", help="why (required for NO-GO and for --override)")
    ap.add_argument(
        "--attest",
        action="store_true",
        help="sign off every section and attest every statement (a GO needs it; without it the list is printed)",
    )
    ap.add_argument("--override", action="store_true", help="GO although blocking checks failed (needs --reason)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds to follow the run's judgement (a suspended run restarts first: a few seconds)",
    )
    ap.add_argument("--api-url", help="default: PREFECT_API_URL (PREFECT_API_KEY is sent when set)")
    ap.set_defaults(fn=cmd_approve)

    a = sub.add_parser(
        "ack",
        help="acknowledge HIGH rollback criteria for a release in its watch window "
        "(the deploy flow then keeps it; CRITICAL criteria still roll back)",
    )
    a.add_argument("--environment", required=True, help="the config's `environment` name")
    a.add_argument("--release", help="the release being watched")
    a.add_argument("--by", help="who acknowledges: 'Name: Role'")
    a.add_argument("--reason", help="why the release stays (at least 10 characters)")
    a.add_argument("--criterion", action="append", help="a HIGH criterion to cover (repeatable; default: all)")
    a.add_argument("--clear", action="store_true", help="remove the acknowledgement")
    a.set_defaults(fn=cmd_ack)

    k = sub.add_parser("catalog", help="list every check with its section, severity and the seed items it covers")
    k.add_argument("--format", choices=["md", "json", "text"], default="text")
    k.set_defaults(fn=cmd_catalog)

    x = sub.add_parser("expectations", help="the data-integrity suites (Great Expectations files): lint, scaffold")
    xs = x.add_subparsers(dest="exp_cmd", required=True, parser_class=_Parser)
    xl = xs.add_parser("lint", help="load every suite file through GX; one line per bad file naming the field; exit 3")
    xl.add_argument("dir", nargs="?", help="a directory of suite files (default: the shipped expectations/suites)")
    xf = xs.add_parser("scaffold", help="write starter suites (one per table) from the live schema, for review")
    xf.add_argument("--config", required=True, help="the environment's YAML file (its postgres section)")
    xf.add_argument("--out", default="expectations/suites", help="where the suite files go")
    xf.add_argument("--table", action="append", help="only this table (repeatable; default: every user table)")
    xf.add_argument("--force", action="store_true", help="overwrite suite files that exist")
    x.set_defaults(fn=cmd_expectations)

    g = sub.add_parser("config", help="validate an environment config or print its JSON Schema")
    gs = g.add_subparsers(dest="config_cmd", required=True, parser_class=_Parser)
    v = gs.add_parser("validate", help="print one line per problem, naming the key path; exit 3 if any")
    v.add_argument("file")
    gs.add_parser("schema", help="print the JSON Schema of the config (for editors)")
    gi = gs.add_parser(
        "init",
        help="write a commented starter config from the URLs you know, discovering the rest "
        "(read-only; passwords become ${VAR} references)",
    )
    gi.add_argument("--environment", required=True, help="the environment's name (lowercase, digits, dashes)")
    for flag, what in (
        ("--site-url", "https:// URL of the product"),
        ("--database-dsn", "postgresql:// DSN"),
        ("--redis-url", "redis:// URL of the primary"),
        ("--s3-bucket", "the backup bucket"),
        ("--s3-endpoint", "S3-compatible endpoint (default: AWS)"),
        ("--s3-prefix", "where full backups live (default: discovered)"),
        ("--prometheus-url", "http(s):// URL of Prometheus"),
        ("--smtp-host", "HOST[:PORT]"),
        (
            "--ca-file",
            "extra trust anchor (PEM) of a private CA: the site, SMTP, Prometheus, an https S3 "
            "endpoint, rediss://, and the database when its DSN says sslmode=verify-*",
        ),
        ("--suites-dir", "where starter data suites go (default: suites-<env> beside --out)"),
    ):
        gi.add_argument(flag, help=what)
    gi.add_argument("--out", help="the file to write (default: golive-<environment>.yaml)")
    gi.add_argument("--force", action="store_true", help="replace --out if it exists")
    gi.add_argument("--no-discover", action="store_true", help="write from the flags only; ask no server")
    gi.add_argument("--interactive", action="store_true", help="prompt for missing flags (only on a terminal)")
    gi.add_argument(
        "--timeout", dest="timeout_s", type=float, default=10.0, help="seconds each server gets to answer (default 10)"
    )
    g.set_defaults(fn=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv[:1] == ["demo"] and "--list-faults" in argv:
        from golive.sandbox import FAULTS

        for name, desc in FAULTS.items():
            print(f"{name:<22} {desc}")
        return 0
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except UsageError as e:
        print(f"golive: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("golive: interrupted; no verdict", file=sys.stderr)
        return EXIT_GATE
    except BrokenPipeError as e:  # `golive catalog | head`: the reader left; no traceback, as a shell tool would (141)
        if _stdout_gone():  # it was our stdout: quiet (the interpreter's final flush must not fail either)
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + 13
        print(f"golive: the gate itself failed: {_env_redactor().text(f'{type(e).__name__}: {e}')}", file=sys.stderr)
        return EXIT_GATE  # a socket's broken pipe is no reader leaving
    except Exception as e:  # noqa: BLE001 - the gate itself failed: say so, exit 4, never a verdict
        print(f"golive: the gate itself failed: {_env_redactor().text(f'{type(e).__name__}: {e}')}", file=sys.stderr)
        return EXIT_GATE


def _env_redactor() -> Redactor:
    """Masks the values of secret-looking environment variables (and URL passwords) in a last-resort message."""
    import re

    from golive.tasks.core import Redactor

    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE|AUTH_STRING", re.I)
    return Redactor([v for k, v in os.environ.items() if secretish.search(k)])


if __name__ == "__main__":
    raise SystemExit(main())
