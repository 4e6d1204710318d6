"""Child processes that die with their parent: spawn, wait for readiness, stop.

Every child gets `prctl(PR_SET_PDEATHSIG, SIGKILL)` in its `preexec_fn`; CPython runs `preexec_fn` after the uid/gid
switch (`user=`), which would otherwise clear the death signal. The signal fires when the *thread* that forked the
child exits, not the process: a child forked from a short-lived thread (a Prefect task, a thread pool) would be killed
when that thread ends. So every fork happens on one long-lived daemon thread of this process, whichever thread asks.
Daemon threads are never joined: it lives until the process itself dies, after `atexit` has stopped the children.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class _Forker:
    """The one thread that forks every child (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def call(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._jobs, self._pid = queue.SimpleQueue(), os.getpid()
                self._thread = threading.Thread(
                    target=self._run, args=(self._jobs,), name="sandbox-forker", daemon=True
                )
                self._thread.start()
            if threading.current_thread() is self._thread:
                return fn()
            done: Future = Future()
            self._jobs.put((fn, done))
        return done.result()

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        while True:
            fn, done = jobs.get()
            try:
                done.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                done.set_exception(e)


_forker = _Forker()


def spawn(
    argv: list[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
    capture: bool = False,
) -> subprocess.Popen:
    """Start `argv` as a child that is SIGKILLed when this process dies (also on SIGKILL)."""

    def fork() -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below, the child has its copy
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else out,
                stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                env=env,
                cwd=cwd,
                user=user,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with(os.getpid()),
            )
        finally:
            if log:
                out.close()

    return _forker.call(fork)


def run(argv: list[str], *, env: dict[str, str] | None = None, user: str | None = None, timeout: float = 60.0) -> bytes:
    """Run a short command (initdb, pg_dump) as a dying-with-parent child; its stdout, or CalledProcessError."""
    proc = spawn(argv, env=env, user=user, capture=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv, stdout, stderr)
    return stdout


def stop(procs: list[subprocess.Popen], sig: dict[int, int] | None = None, timeout: float = 5.0) -> None:
    """Signal all (SIGTERM, or sig[pid]), wait together up to `timeout`, then SIGKILL the rest."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        try:
            os.kill(p.pid, (sig or {}).get(p.pid, signal.SIGTERM))
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for p in live:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _port_registry() -> Path:
    """Where sandboxes on this machine (pytest-xdist workers, a demo beside a test run) reserve their ports: a port
    one process picked and has not bound yet is free to the kernel, and another process's bind(0) may pick it too;
    then a service starts on a port another sandbox's service owns and talks to the wrong one. Per user, 0755."""
    import tempfile

    path = Path(tempfile.gettempdir()) / f"golive-ports-{os.geteuid()}"
    path.mkdir(mode=0o755, exist_ok=True)
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PermissionError(f"{path} is not a directory of uid {os.geteuid()} that only it can write: remove it")
    return path


def _reserve(registry: Path, port: int) -> bool:
    """Claim `port` for this process; False if a live process (this one included) holds it."""
    f = registry / str(port)
    for _ in range(2):
        try:
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = int(f.read_text() or "0")
            except (OSError, ValueError):
                holder = 0
            if holder and (holder == os.getpid() or proc_identity(holder) is not None):
                return False
            with contextlib.suppress(FileNotFoundError):
                f.unlink()  # its process is gone
            continue
        with os.fdopen(fd, "w") as out:
            out.write(str(os.getpid()))
        return True
    return False


def reserve_port(port: int) -> bool:
    """Claim a given port for this process machine-wide (see _port_registry), if no live process holds it and it can
    be bound (SO_REUSEADDR, as servers bind: a port in TIME_WAIT is free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    try:
        return _reserve(_port_registry(), port)
    except OSError:
        return True


def release_ports(ports: Iterable[int]) -> None:
    """Give back ports this process reserved (a stopped sandbox); a dead process's are reclaimed on their own."""
    try:
        registry = _port_registry()
    except OSError:
        return
    for port in ports:
        f = registry / str(port)
        with contextlib.suppress(OSError, ValueError):
            if int(f.read_text()) == os.getpid():
                f.unlink()


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1, reserved for this process machine-wide (see _port_registry) until
    `release_ports` or its exit."""
    try:
        registry: Path | None = _port_registry()
    except OSError:  # e.g. another user made the directory first: pick ports as before, unreserved
        registry = None
    found: list[int] = []
    socks = []
    try:
        while len(found) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)  # held open together so they differ
            port = s.getsockname()[1]
            if registry is None or _reserve(registry, port):
                found.append(port)
            elif len(socks) > n + 1000:
                raise RuntimeError("no free port left that another sandbox has not reserved")
        return found
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `ready()` until true; fail early when `alive()` says the process died (with its log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited during startup{_tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path | None, n: int = 2000) -> str:
    if log is None or not log.exists():
        return ""
    return "; log tail:\n" + log.read_bytes()[-n:].decode(errors="replace")


def proc_identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks) of a live, non-zombie process; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return pid, int(fields[19])


def descendants(pid: int) -> list[int]:
    """Child pids of `pid`, recursively (postgres backends and helpers)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out.extend(int(k) for k in kids)
        todo.extend(int(k) for k in kids)
    return out
