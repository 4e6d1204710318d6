"""The pipe: the S3 object streamed into `pg_restore`'s stdin (memory flat whatever the dump size), bounded by a
watchdog that kills pg_restore and closes the S3 stream at the deadline."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .target import CHUNK, STDERR_KEEP, RestoreTarget


class RestoreProbeError(RuntimeError):
    """The restore test could not run (S3 refused, the budget ran out): an ERROR, with what was cleaned up."""


@dataclass
class StreamResult:
    returncode: int | None = None
    stderr: str = ""
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    download_seconds: float | None = None
    md5: str | None = None
    killed: str | None = None  # "restore-timeout" | "check-budget"
    stream_error: str | None = None  # the S3 side failed mid-stream


def _die_with_parent() -> Callable[[], None] | None:
    """preexec_fn: pg_restore gets SIGKILL when the thread that started it dies (Linux); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def pg_restore_version(t: RestoreTarget, timeout: float, env: dict[str, str]) -> str:
    exe = shutil.which(t.pg_restore) or t.pg_restore
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=max(1.0, timeout), env=env)
    except FileNotFoundError:
        raise FileNotFoundError(f"pg_restore not found: {t.pg_restore!r} (restore.pg_restore)") from None
    return (out.stdout or out.stderr).strip()


# --------------------------------------------------------------------------- streaming


def _stderr_reader(stream: Any, keep: deque, counts: dict[str, int]) -> threading.Thread:
    def run() -> None:
        size = 0
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            if "error:" in line or line.startswith("pg_restore: error"):
                counts["errors"] += 1
            keep.append(line)
            size += len(line)
            while size > STDERR_KEEP and len(keep) > 1:
                size -= len(keep.popleft())
        stream.close()

    th = threading.Thread(target=run, name="pg_restore-stderr", daemon=True)
    th.start()
    return th


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(Exception):
        import fcntl

        fcntl.fcntl(fd, 1031, CHUNK)  # F_SETPIPE_SZ: fewer wake-ups per MB


def run_pg_restore(
    argv: list[str],
    env: dict[str, str],
    chunks: Iterator[bytes] | None,
    deadline: float,
    limit_reason: str,
    on_abort: Callable[[], None] = lambda: None,
    verify_md5: bool = True,
) -> StreamResult:
    """Run pg_restore; feed it `chunks` on stdin (None: it reads a file named in argv). The watchdog kills it (and
    calls on_abort, which closes the S3 stream) at `deadline`, recording `limit_reason`."""
    res = StreamResult()
    keep: deque = deque()
    counts = {"errors": 0}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if chunks is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        close_fds=True,
        preexec_fn=_die_with_parent(),
    )  # noqa: PLW1509 - prctl only, async-signal-safe
    reader = _stderr_reader(proc.stderr, keep, counts)

    def abort() -> None:
        if proc.poll() is None:
            res.killed = res.killed or limit_reason
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(Exception):
            on_abort()

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), abort)
    watchdog.daemon = True
    watchdog.start()
    md5 = hashlib.md5(usedforsecurity=False) if verify_md5 else None
    try:
        if chunks is not None:
            _grow_pipe(proc.stdin.fileno())
            try:
                for chunk in chunks:
                    if md5 is not None:
                        md5.update(chunk)
                    res.bytes += len(chunk)
                    proc.stdin.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # pg_restore stopped reading: its exit status and stderr say why
            except Exception as e:  # noqa: BLE001 - the S3 side broke mid-stream (or the watchdog closed it)
                if not res.killed:
                    res.stream_error = " ".join(f"{type(e).__name__}: {e}".split())
                    with contextlib.suppress(OSError):
                        proc.kill()
            finally:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
        try:
            res.returncode = proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            abort()
            res.returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    res.seconds = time.monotonic() - t0
    res.stderr = "\n".join(keep)
    res.errors = counts["errors"]
    res.md5 = md5.hexdigest() if md5 is not None and res.bytes else None
    return res


def abort_stream(body: Any) -> None:
    """Unblock a read stuck on the S3 socket (closing the body alone does not interrupt a recv in another thread):
    shut the socket down, then close."""
    raw = getattr(body, "_raw_stream", None)
    for path in (("connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj = raw
        for attr in path:
            obj = getattr(obj, attr, None)
        if isinstance(obj, socket.socket):
            with contextlib.suppress(OSError):
                obj.shutdown(socket.SHUT_RDWR)
            break
    with contextlib.suppress(Exception):
        body.close()


def body_chunks(body: Any, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        chunk = body.read(CHUNK)
        if not chunk:
            return
        yield chunk


def read_first(body: Any, want: int = 64 * 1024) -> bytes:
    """At least `want` bytes (or the whole object if smaller): enough for the archive header."""
    parts, size = [], 0
    while size < want:
        chunk = body.read(min(CHUNK, want - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
