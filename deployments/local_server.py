"""golive's local Prefect server: Prefect's own server on a PostgreSQL of its own, started once, reused by every run.

With no `PREFECT_API_URL`, Prefect would start its SQLite-backed ephemeral server inside every `golive run`: seconds
to start, and slow and lock-prone under the flow's concurrent subflows (deployments/prefect_server.py). Instead
`golive run` and `golive serve` use this server (`ensure()`), which `golive server start|status|stop` also manage:

- a *supervisor* process (`python -m golive.deployments.local_server supervise DIR`), detached from the command that
  started it (its own session), runs the embedded PostgreSQL (on its Unix socket only) and Prefect's server app (on
  127.0.0.1 only, with its UI) as children that die with it; it stops both on SIGTERM, and stops the other and exits
  when either dies;
- its files live in the per-user data directory (`$XDG_DATA_HOME/golive/server`, else
  `~/.local/share/golive/server`, 0700): the state file `server.json` (the supervisor's and the server's pid and
  start time, the port, the URLs, when it started), the lock `server.lock` (held while a command checks or starts
  the server: two concurrent runs never start two), logs, Prefect's home and the PostgreSQL cluster (as root, where
  PostgreSQL runs as `nobody`, the cluster lives in `/var/tmp/golive-server/<id>`, a directory `nobody` can reach);
- its first start copies the migrated template of deployments/prefect_db.py (built once per user and version);
- a state file is trusted only when the supervisor and the server are the processes it names (pid *and* start time),
  the server's process owns the socket listening on the port, and `/api/health` answers: a state file whose processes
  are gone is removed, and a port now held by another program is never talked to.

No password exists: PostgreSQL trusts its 0700 socket directory only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from golive.sandbox import procs
from golive.sandbox.parts import postgres as pg

from . import prefect_db
from .prefect_server import OLDER_NAMES, SERVER_TUNING, PrefectServer

STATE, LOCK, LOG, ERROR, AUTH = "server.json", "server.lock", "server.log", "start-error", "api-auth"
#: Prefect's background services this long-lived server runs (prefect_server.LEAN_OFF lists those the throwaway
#: servers leave off): schedules (`golive serve`'s nightly rehearsal), late runs, automations, cancellations
SERVICES = ("SCHEDULER", "LATE_RUNS", "TRIGGERS", "CANCELLATION_CLEANUP")
ROOT_CLUSTERS = Path("/var/tmp/golive-server")  # as root: clusters `nobody` can reach (0755, ours)
#: what the supervisor keeps of the environment of the command that started it (no secrets of a config's)
KEEP_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "XDG_DATA_HOME", "XDG_CACHE_HOME")
KEEP_PREFIXES = ("LC_",)  # the locale
#: and an operator's tuning of the server, in any case as Prefect reads it: its services, and what golive tunes
TUNING_PREFIXES = ("PREFECT_SERVER_SERVICES_",)
START_TIMEOUT = 300.0


#: how long `stop` waits for the supervisor after SIGKILL (a process in uninterruptible sleep ignores it for now)
KILL_WAIT_S = 10.0


class ServerError(RuntimeError):
    """golive's local server could not be started or used (one line: why)."""


@dataclasses.dataclass(frozen=True)
class Paths:
    dir: Path

    @classmethod
    def default(cls) -> Paths:
        return cls(prefect_db.private_dir(prefect_db.xdg_dir("data") / "server"))

    @property
    def state(self) -> Path:
        return self.dir / STATE

    @property
    def lock(self) -> Path:
        return self.dir / LOCK

    @property
    def log(self) -> Path:
        return self.dir / LOG

    @property
    def error(self) -> Path:
        return self.dir / ERROR

    @property
    def auth(self) -> Path:
        """The API's basic-auth string (0600; kept across restarts, new after a purge): without it, no local user
        can drive the API."""
        return self.dir / AUTH

    @property
    def home(self) -> Path:
        return self.dir / "prefect-home"

    @property
    def migrated(self) -> Path:
        """The template key the cluster's database was last migrated for (its migrations are skipped when equal)."""
        return self.dir / "migrated"

    @property
    def cluster(self) -> Path:
        if pg.run_as() is None:
            return self.dir / "pg"
        ident = hashlib.sha256(str(self.dir.resolve()).encode()).hexdigest()[:16]
        return ROOT_CLUSTERS / ident


@dataclasses.dataclass(frozen=True)
class Running:
    state: dict[str, Any]
    reused: bool
    seconds: float  # to verify or start it

    @property
    def api_url(self) -> str:
        return str(self.state["api_url"])

    @property
    def ui_url(self) -> str:
        return str(self.state["ui_url"])

    @property
    def pid(self) -> int:
        return int(self.state["pid"])

    @property
    def auth_string(self) -> str:
        """What clients send (PREFECT_API_AUTH_STRING): read from the 0600 file the supervisor wrote."""
        return Path(str(self.state["data_dir"]), AUTH).read_text().strip()

    @property
    def uptime_s(self) -> float:
        return max(0.0, time.time() - float(self.state["started_at"]))


# --------------------------------------------------------------------------- state


def read_state(paths: Paths) -> dict[str, Any] | None:
    try:
        state = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return None
    need = {"pid": int, "pid_start": int, "server_pid": int, "server_start": int, "port": int, "started_at": float}
    if not isinstance(state, dict) or not all(isinstance(state.get(k), (t, int)) for k, t in need.items()):
        return None
    if not (0 < state["port"] < 65536):
        return None
    return state


def _write_private(path: Path, text: str) -> None:
    """`text` into `path`, 0600 from its creation, written under a temporary name and renamed (never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_state(paths: Paths, state: dict[str, Any]) -> None:
    _write_private(paths.state, json.dumps(state, indent=1))


def _alive(pid: int, start: int) -> bool:
    return procs.proc_identity(pid) == (pid, start)


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on TCP `port` (IPv4 and IPv6) in this network namespace."""
    out: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                out.add(cols[9])
    return out


def _owns_listener(pid: int, port: int) -> bool:
    inodes = {f"socket:[{i}]" for i in _listening_inodes(port)}
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def verify(state: dict[str, Any], timeout: float = 10.0) -> str | None:
    """None when the state file's server is ours and answers; else why not (one line)."""
    pid, port = state["pid"], state["port"]
    if not _alive(pid, state["pid_start"]):
        return f"its supervisor (pid {pid}) is gone"
    if not _alive(state["server_pid"], state["server_start"]):
        return f"its Prefect server (pid {state['server_pid']}) is gone"
    if not _owns_listener(state["server_pid"], port):
        return f"port {port} is not held by its Prefect server (pid {state['server_pid']})"
    if not Path(str(state.get("data_dir", "")), AUTH).is_file():
        return "its API auth string is missing (a server started before the API asked for one)"
    try:
        code = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=timeout).status_code
    except httpx.HTTPError as e:
        return f"its /api/health did not answer: {type(e).__name__}"
    return None if code == 200 else f"its /api/health answered {code}"


def current(paths: Paths) -> tuple[dict[str, Any] | None, str]:
    """(the state of our running, answering server, "") or (None, why not). A state file whose supervisor is gone
    is removed (stale); one whose supervisor lives but does not answer is left for `stop` / `ensure`."""
    state = read_state(paths)
    if state is None:
        if paths.state.exists():
            paths.state.unlink(missing_ok=True)
            return None, "removed an unreadable state file"
        return None, "no state file"
    why = verify(state)
    if why is None:
        return state, ""
    if not _alive(state["pid"], state["pid_start"]):
        paths.state.unlink(missing_ok=True)
        return None, f"removed a stale state file ({why})"
    return None, why


def status(paths: Paths) -> tuple[dict[str, Any] | None, str]:
    """`current`, under the lock without waiting for it: a state file judged stale is removed only by whoever holds
    the lock (never while another golive, starting the server, is about to write it); a start or stop in progress is
    said instead."""
    if not paths.dir.is_dir():
        return None, "no state file"
    try:
        with prefect_db.file_lock(paths.lock, timeout=0):
            return current(paths)
    except TimeoutError:
        return None, "another golive is starting or stopping it right now; ask again in a moment"


# --------------------------------------------------------------------------- start / stop


def ensure(paths: Paths | None = None, timeout: float = START_TIMEOUT) -> Running:
    """Our running server, started (detached) if it is not. Raises ServerError (or prefect_db.Unavailable) saying
    why it could not be."""
    t0 = time.monotonic()
    paths = paths or Paths.default()
    with prefect_db.file_lock(paths.lock, timeout=timeout):
        state, why = current(paths)
        busy_until = time.monotonic() + 30
        while state is None and why.startswith("its /api/health") and time.monotonic() < busy_until:
            time.sleep(1)  # ours by pid, start time and socket, but busy (a loaded machine): give it a moment
            state, why = current(paths)
        if state is not None and _versions(state) == _versions():
            return Running(state, True, time.monotonic() - t0)
        old = read_state(paths)
        if old is not None:  # ours, but it does not answer or runs another Prefect / golive (upgraded): replace it
            _stop_supervisor(old, paths)
        state = _start(paths, timeout)
        return Running(state, False, time.monotonic() - t0)


def _versions(state: dict[str, Any] | None = None) -> tuple[str, str]:
    """(Prefect's, golive's) version: of the running server's code if `state`, else of the installed packages."""
    if state is not None:
        return str(state.get("prefect")), str(state.get("golive"))
    return metadata.version("prefect"), metadata.version("golive")


def _supervisor_env() -> dict[str, str]:
    tuning = {n for k in SERVER_TUNING for n in (k, *OLDER_NAMES.get(k, ()))}  # (an operator's own, in any case)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in KEEP_ENV
        or k.startswith(KEEP_PREFIXES)
        or k.upper().startswith(TUNING_PREFIXES)
        or k.upper() in tuning
        or k == prefect_db.PG_ENV
    }
    return env | {"PYTHONUNBUFFERED": "1"}


def _rotate(log: Path, keep: int = 5 << 20) -> None:
    """A log past `keep` bytes becomes `<name>.1` (the one before is dropped): a long-lived server's logs stay small."""
    with contextlib.suppress(OSError):
        if log.stat().st_size > keep:
            os.replace(log, log.with_name(log.name + ".1"))


def _start(paths: Paths, timeout: float) -> dict[str, Any]:
    prefect_db.pg_bindir()  # no PostgreSQL to run (e.g. the sandbox extra is not installed): said at once
    paths.error.unlink(missing_ok=True)
    _rotate(paths.log)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "golive.deployments.local_server", "supervise", str(paths.dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=paths.dir,
            env=_supervisor_env(),
            start_new_session=True,  # detached: it outlives this command (and its terminal)
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(paths)
        if state is not None and state["pid"] == proc.pid:
            return state
        code = proc.poll()
        if code is not None:
            try:
                why = paths.error.read_text().strip() or f"exit {code}"
            except OSError:
                why = f"the supervisor exited {code}; see {paths.log}"
            raise ServerError(why)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise ServerError(f"not up within {timeout:.0f} s; see {paths.log}")
        time.sleep(0.05)


def _stop_supervisor(state: dict[str, Any], paths: Paths, grace: float = 30.0) -> bool:
    """SIGTERM our supervisor (only if it is the process the state names), wait, SIGKILL. Whether one was running."""
    pid, start = state["pid"], state["pid_start"]
    if not _alive(pid, start):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # its children die with it (PR_SET_PDEATHSIG)
        deadline = time.monotonic() + KILL_WAIT_S
        while _alive(pid, start):
            if time.monotonic() > deadline:  # (stuck in the kernel, uninterruptible: never wait for ever)
                raise ServerError(f"its supervisor (pid {pid}) did not exit {KILL_WAIT_S:g} s after SIGKILL")
            time.sleep(0.05)
    return True


def stop(paths: Paths | None = None, *, purge: bool = False) -> tuple[dict[str, Any] | None, str]:
    """Stop our server: (its state, "") if it was running, else (None, why it was not). `purge` also removes its data
    (the database of every run it recorded, its logs, Prefect's home)."""
    paths = paths or Paths.default()
    with prefect_db.file_lock(paths.lock):
        state = read_state(paths)
        was = _stop_supervisor(state, paths) if state is not None else False
        paths.state.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(paths.cluster, ignore_errors=True)
            for child in paths.dir.iterdir():
                if child.name != LOCK:
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
    if was:
        return state, ""
    return None, "no state file" if state is None else f"its supervisor (pid {state['pid']}) was already gone"


# --------------------------------------------------------------------------- the supervisor


def _last_port(paths: Paths) -> int | None:
    """The port of the last start (the UI's address stays the same across restarts), if it is free."""
    try:
        port = int((paths.dir / "port").read_text())
    except (OSError, ValueError):
        return None
    return port if 1024 <= port < 65536 and procs.reserve_port(port) else None


def _auth_string(paths: Paths) -> str:
    """The API's basic-auth string: kept across restarts (a running `golive serve` holds it), made anew when the
    file is missing, unreadable, or readable by others; `stop --purge` removes it."""
    with contextlib.suppress(OSError):
        st = paths.auth.stat()
        kept = paths.auth.read_text().strip()
        if st.st_mode & 0o077 == 0 and st.st_uid == os.getuid() and kept.startswith("golive:") and len(kept) > 40:
            return kept
    auth = f"golive:{secrets.token_urlsafe(32)}"
    _write_private(paths.auth, auth + "\n")
    return auth


def supervise(directory: Path) -> int:
    """Run PostgreSQL and Prefect's server until SIGTERM (or until either dies); the state file says it is up."""
    paths = Paths(directory)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    db: prefect_db.Cluster | None = None
    server: PrefectServer | None = None
    try:
        bindir = prefect_db.pg_bindir()
        key = prefect_db.template_key(bindir)
        cluster = paths.cluster
        if pg.run_as() is not None:
            pg.own_dir(cluster.parent).chmod(0o755)
            pg.own_dir(cluster).chmod(0o755)
        else:
            prefect_db.private_dir(cluster)
        for log in (paths.dir / "postgres.log", paths.home / "prefect-server.log"):
            _rotate(log)
        db = prefect_db.Cluster(bindir, cluster, paths.dir / "postgres.log")
        if not (db.data / "PG_VERSION").is_file():
            entry, _ = prefect_db.template(bindir, log_dir=paths.dir)
            db.ensure_data(entry)
            paths.migrated.write_text(key)
        db.start()
        try:
            migrated = paths.migrated.read_text().strip() == key
        except OSError:
            migrated = False
        # the API asks for basic auth (a random string, kept across restarts, in a 0600 file of the data directory):
        # a server on 127.0.0.1 is reachable by every local user, and its API resumes a paused go-live run, i.e.
        # signs it off; the UI asks for the string once per browser
        auth = _auth_string(paths)
        server = PrefectServer(
            db.url,
            paths.home,
            ui=True,
            port=_last_port(paths),
            services=SERVICES,
            extra_env={
                **(prefect_db.FROM_TEMPLATE_ENV if migrated else {}),
                "PREFECT_SERVER_API_AUTH_STRING": auth,
            },
        ).start(timeout=START_TIMEOUT)
        assert server.proc is not None
        paths.migrated.write_text(key)
        (paths.dir / "port").write_text(str(server.port))
        me, srv = procs.proc_identity(os.getpid()), procs.proc_identity(server.proc.pid)
        if me is None or srv is None:
            raise ServerError("the Prefect server exited as it started")
        _write_state(
            paths,
            {
                "pid": me[0],
                "pid_start": me[1],
                "server_pid": srv[0],
                "server_start": srv[1],
                "port": server.port,
                "api_url": server.api_url,
                "ui_url": server.ui_url,
                "data_dir": str(paths.dir),
                "started_at": time.time(),
                "prefect": _versions()[0],
                "golive": _versions()[1],
            },
        )
        print(f"golive local server up: pid {os.getpid()}, {server.ui_url}", flush=True)
        while not stopping.wait(0.5):
            if db.proc is None or db.proc.poll() is not None or server.proc is None or server.proc.poll() is not None:
                print("PostgreSQL or the Prefect server exited: stopping", flush=True)
                return 1
        return 0
    except BaseException as e:  # noqa: BLE001 - said in the error file for the command that waits, then exit 1
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        with contextlib.suppress(OSError):
            paths.error.write_text(why + "\n")
        print(f"golive local server failed: {type(e).__name__}: {why}", flush=True)
        return 1
    finally:
        if server is not None:
            server.stop()
        if db is not None:
            db.stop()
        state = read_state(paths)
        if state is not None and state["pid"] == os.getpid():
            paths.state.unlink(missing_ok=True)
        print("golive local server stopped", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "supervise":
        return supervise(Path(argv[1]))
    print("usage: python -m golive.deployments.local_server supervise DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
