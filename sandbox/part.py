"""What a part of the sandbox is: the one protocol every part implements, and the process it defines.

A part is a module that the Sandbox starts processes from; `stack.PARTS` lists them: the modules of sandbox/parts/
(the stack's own services), the three servers of sandbox/fakes/ (the third-party APIs' fakes), and dependencies.py
(PgBouncer and Alertmanager, where their Debian packages are installed). Each one says

- `PORTS`: the names of the ports its processes listen on; the stack picks a free port for every name of every part
  (`stack.ports[name]`) before anything starts, so that URLs, argv and the golive config agree;
- `services(stack)`: its long-running processes, as `Service`s: how to build the argv (from the current faults), the
  environment, which ports (and which readiness check) prove it is up. The stack starts, waits for, restarts and
  stops every one by its name in the same way (procs.spawn, procs.wait_until, procs.stop); when each starts is the
  stack's start sequence.

`Stack` is the running Sandbox as the parts, the faults and the checklist sections' modules see it: none of them
imports stack.py, which imports them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .certs import CertFiles  # only for the type: the servers the parts run need no trustme


@dataclass
class Service:
    """One long-running child: how to build its argv (from the current faults), and which ports prove it is up."""

    name: str
    argv: Callable[[], list[str]]
    ports: tuple[int, ...]
    env: dict[str, str] | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    ready: Callable[[], bool] | None = None  # beyond the ports accepting
    host: str = "127.0.0.1"  # where the ports listen
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Part(Protocol):
    """A part of the stack (a module): the ports it needs and the processes it runs."""

    @property
    def PORTS(self) -> Sequence[str]: ...  # read-only here: a module's tuple of names is one

    def services(self, stack: Stack) -> list[Service]: ...


def python(module: str, *args: str) -> list[str]:
    """The argv that runs `module` (`python -m`) with this interpreter: our own servers run from the installed
    package."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """Our environment without sandbox secrets (a service adds the ones it needs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_SANDBOX_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Stack(Protocol):
    """The running Sandbox (sandbox/stack.py), as its parts, faults and checklist sections use it."""

    # where it runs
    base_dir: Path
    ports: dict[str, int]  # port name (from the parts' PORTS) -> port
    urls: dict[str, str]
    env: dict[str, str]  # the secrets the config references, by env var name
    certs: CertFiles | None
    ca_file: Path
    fault_file: Path  # the runtime fault file (runtime.py)
    faults: set[str]  # the active fault names
    services: dict[str, Service]
    rate_limit: int  # the web app's requests/minute per client
    clock_file: Path  # moto's S3 clock (parts/s3_server.py)
    mailbox: Path  # what the SMTP relay accepted
    pg_bindir: Path  # PostgreSQL's binaries
    # the application (application.py, dr.py)
    repo: Path | None
    app_lock: Path | None
    app_secret_key: str
    saved_password_hash: str
    db_exposure: Any
    rollback_script: Path
    rehearsal_record: Path
    # the database and its backups (faults.py)
    schema_version: str
    dump: bytes
    backup_key: str
    backup_uploaded_at: dt.datetime
    unencrypted_key: str | None
    fault_keys: dict[str, str]

    # its processes, by Service name
    def start_service(self, name: str, wait: bool = True) -> None: ...
    def stop_service(self, name: str) -> None: ...
    def restart_service(self, name: str) -> None: ...
    def wait_service(self, name: str, timeout: float = ...) -> None: ...

    # clients and actions
    def admin_db(self) -> contextlib.AbstractContextManager[Any]: ...
    def redis_client(self, replica: bool = False) -> Any: ...
    def wait_aof_rewrite(self, timeout: float = 10.0) -> None: ...
    def s3_client(self) -> Any: ...
    def s3_clock(self, age: dt.timedelta) -> contextlib.AbstractContextManager[None]: ...
    def upload_backup(self) -> None: ...
    def upload_history(self, days: range | None = None) -> None: ...
    def upload_all_backups(self) -> None: ...
    def history_keys(self) -> dict[int, str]: ...
    def wrong_database_dump(self) -> bytes: ...
