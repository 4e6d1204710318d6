"""A Prefect API server for one machine, backed by PostgreSQL.

Why not Prefect's ephemeral (SQLite) server: measured here, 9 concurrent section subflows x 10 tasks took
28-32 s on SQLite ("database is locked" retries) and 1.5 s on PostgreSQL (docs/architecture.md). The demo and
the tests therefore run Prefect's own server (`prefect.server.api.server:create_app`, the same app as
`prefect server start`) as a child process on a PostgreSQL database (the sandbox starts a second PostgreSQL for it,
so that the product database's faults never take the orchestrator down).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    """A free port, reserved machine-wide like the sandbox's (another process's bind(0) may pick it before this
    server binds it: two servers on one port would answer each other's clients)."""
    try:
        from golive.sandbox.procs import free_ports
    except ImportError:  # pragma: no cover - the sandbox ships with golive
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            return port
    return free_ports(1)[0]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


LEAN_OFF = (
    "CANCELLATION_CLEANUP",
    "DB_VACUUM",
    "EVENT_LOGGER",
    "FOREMAN",
    "LATE_RUNS",
    "SCHEDULER",
    "REPOSSESSOR",
    "CLEANUP_RECONCILER",
    "TRIGGERS",
)


#: Prefect's task run recorder writes each task-run event in its own transaction by default (batch size 1): a
#: readiness run's 134 task runs cost the server 3.9 CPU-s; read and written 50 at a time (flushed at least every
#: second, so the UI is at most a second behind), 2.0 CPU-s, on 2 cores shared with the checks
#: (`bench/overhead.py` prints it). And its SQLAlchemy pool keeps 5 connections to its database by default (10 more
#: opened and closed on demand): a readiness run's concurrent API calls overflowed it, opening and closing about 10
#: PostgreSQL sessions a run (`pg_stat_database.sessions`), each a backend fork and authentication; a pool of 20 keeps
#: them open (0 new sessions a run; the no-op floor of `bench/overhead.py` 1.3-1.5 -> 1.0 s). Recommended for any
#: Prefect server golive runs on (README, "Prefect server").
SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
}


#: Older names Prefect still reads for a SERVER_TUNING setting, after its own name (tests/test_server_cmd.py checks
#: this against Prefect's settings model). Not read from Prefect here: importing prefect freezes its settings, and
#: the callers set `PREFECT_API_URL` only once this server is up (a flow would then run on Prefect's ephemeral
#: server: bench/overhead.py's floor went from 1.0 to 7-16 s when this module imported it).
OLDER_NAMES: dict[str, tuple[str, ...]] = {
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": ("PREFECT_SQLALCHEMY_POOL_SIZE",)
}


def server_tuning(environ: Mapping[str, str]) -> dict[str, str]:
    """SERVER_TUNING less what the operator set in `environ`, under the setting's name or an older one of it, in
    any case (Prefect reads its own name first, so setting it would override an operator's older one)."""
    theirs = {k.upper() for k in environ}
    return {k: v for k, v in SERVER_TUNING.items() if not {k, *OLDER_NAMES.get(k, ())} & theirs}


def export_client_env(env: Mapping[str, str]) -> None:
    """Export a server's client settings (`PrefectServer.client_env`: its URL, its auth) to this process and what
    it starts, and have Prefect read its settings again where it was already imported: it reads them once, when
    first imported, and its flows would otherwise run on its ephemeral server without a word."""
    os.environ.update(env)
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def stop_child(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaped. A child already gone is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrefectServer:
    """`prefect server` as a child process: started on a free port, killed with its parent, logs to a file."""

    def __init__(
        self,
        database_url: str,
        home: Path,
        *,
        ui: bool = False,
        port: int | None = None,
        services: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ):
        self.extra_env = dict(extra_env or {})  # e.g. prefect_db.FROM_TEMPLATE_ENV: nothing to migrate
        self.services = services  # of LEAN_OFF, those this server runs anyway (e.g. TRIGGERS, for Automations)
        self.database_url = database_url
        self.home = Path(home)
        self.ui = ui
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "prefect-server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What a client process needs to talk to this server (and only to it)."""
        return {
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
        }

    def start(self, timeout: float = 90.0) -> PrefectServer:
        return self.launch().wait_ready(timeout)

    def launch(self) -> PrefectServer:
        """Start the process and return at once (it imports, migrates and binds while the caller goes on; the
        process dies with the thread that called this: call it from one that outlives it)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **server_tuning(os.environ),  # (an operator's own setting, in the environment, wins)
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true" if self.ui else "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
            # a single-machine server for one gate: no schedules to run, no automations, no vacuuming; on 2
            # cores every background loop competes with the checks (the flow itself needs none of them)
            **{f"PREFECT_SERVER_SERVICES_{svc}_ENABLED": "false" for svc in LEAN_OFF if svc not in self.services},
            **self.extra_env,
        }
        env.pop("PREFECT_API_URL", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--lifespan",
                "on",
            ],
            env=env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 90.0) -> PrefectServer:
        """Until /api/health answers 200; raises (after stopping it) if the process exits or the time is up."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the Prefect server exited with {self.proc.returncode}; see {self.log_path}: {self._tail()}"
                    )
                try:
                    if c.get(f"{self.api_url}/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s; see {self.log_path}")

    def _tail(self, n: int = 600) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_child(self.proc)
        self.proc = None

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
