"""Suite runs in a child process of their own: Great Expectations' import and its validation CPU off the process that
runs the gate.

Importing GX costs about 3 CPU-seconds and a suite run a few hundred milliseconds of Python; in the gate's own
process both compete for the GIL with Prefect's engine and every other check (measured in docs/architecture.md,
"Where the time goes"). Here one child process (`python -m golive.expectations.worker`) imports GX once, as soon as
a run knows it will validate suites (`prestart`), and validates them in threads of its own, with exactly the same code
(`runner.run_suite`: READ ONLY transactions, statement_timeout, the socket watchdog, at most
`runner.MAX_CONCURRENT_SUITES` at a time). The results come back as `SuiteRun`s, their validation JSON already
stripped of samples.

- Requests and answers are length-prefixed pickles on the child's stdin/stdout, which nothing else writes to (the
  child moves its own fd 1 to stderr first). Only golive's own code pickles on either side; what a database answers
  travels inside golive's own objects (strings, numbers), never as a pickle of its choosing.
- The target's password travels in the request, never in the child's argv or environment; the child gets the gate's
  environment minus every `PREFECT_*` setting and every variable holding a secret (`RunContext.child_env`).
- Deadlines are absolute `time.monotonic()` values: CLOCK_MONOTONIC is one clock for every process of the machine.
  The caller stops waiting at its deadline plus `GRACE`; a late answer is dropped.
- The child ends when the gate does (EOF on its stdin), and is killed at the gate's exit if it has not.
- If the child cannot start (or dies before it is ready) suites run in the gate's process as before, saying so once
  in the log; a child that dies later fails the suites it was running, naming its exit code.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import fcntl
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import IO, Any

from golive.tasks.core import RunContext
from golive.tasks.postgres import PostgresTarget

from . import runner
from .runner import SuiteRun, SuiteRunError
from .suites import Suite, SuiteError

log = logging.getLogger(__name__)

#: the child's deadline is this much before the caller's (a quarter of a shorter budget, 0.6 s at least), so that its
#: own answer, a timeout naming the target included (its watchdog fires 0.25 s after its deadline), comes back in time
GRACE = 2.0
#: no frame is ever this big (a suite's results are kilobytes): a larger length is a broken stream
MAX_FRAME = 64 * 1024 * 1024
_LEN = struct.Struct("!I")


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def _write(out: IO[bytes], obj: Any) -> None:
    out.write(_frame(obj))
    out.flush()


def _exactly(inp: IO[bytes], n: int) -> bytes:
    """`n` bytes (a pipe read may return fewer), or EOFError at the end of the stream."""
    parts, left = [], n
    while left:
        chunk = inp.read(left)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read(inp: IO[bytes]) -> Any:
    """The next frame, or EOFError at the end of the stream."""
    (n,) = _LEN.unpack(_exactly(inp, _LEN.size))
    if n > MAX_FRAME:
        raise EOFError(f"frame of {n} bytes")
    return pickle.loads(_exactly(inp, n))  # noqa: S301 - written by golive's own code at the other end of a private pipe


def _portable(e: BaseException) -> BaseException:
    """`e` itself if it is golive's or Python's own and survives a pickle round trip, else a SuiteRunError with its
    one-line message (unpickling a library's exception would import that library in the gate: GX's, say)."""
    try:
        if isinstance(e, (SuiteError, SuiteRunError)) or type(e).__module__ == "builtins":
            pickle.loads(pickle.dumps(e))  # noqa: S301 - our own bytes
            return e
        return SuiteRunError(f"{type(e).__name__}: {runner._one_line(e)}")
    except Exception:  # noqa: BLE001
        return SuiteRunError(type(e).__name__)


def _detached(run: SuiteRun) -> SuiteRun:
    """The run without GX's result object (not picklable, and nothing past the runner needs it): its validation JSON
    (samples removed) is computed here, in the child."""
    run._validation = run.validation
    run.result = None
    run.outcomes = {k: (_portable(v) if isinstance(v, BaseException) else v) for k, v in run.outcomes.items()}
    return run


# --------------------------------------------------------------------------- the child


def serve(inp: IO[bytes], out: IO[bytes], processes: int = 1) -> None:
    """The child's loop. With `processes` > 1 it forks that many validators once GX is imported (no thread running
    yet), pre-fork-server style: they take requests from the one request pipe and answer on the one answer pipe,
    each frame whole under a lock shared across the fork, so suites validate on several cores. Each validator takes
    a request only when it has a free slot (runner.MAX_CONCURRENT_SUITES in all); one thread per request."""
    import multiprocessing

    import great_expectations as gx

    runner._quiet_gx()
    locks = multiprocessing.get_context("fork")
    reading, writing = locks.Lock(), locks.Lock()
    n = processes if threading.active_count() == 1 else 1  # never fork a process that runs threads
    children: list[int] = []
    first = True
    for _ in range(n - 1):
        child = os.fork()
        if child == 0:
            first, children = False, []
            break
        children.append(child)
    for child in children:  # (threads only once every fork is done)
        # a validator that dies takes the first process with it: the gate then ends the whole group and fails
        # what was in flight, naming the exit (instead of waiting for answers that will never come)
        threading.Thread(target=_exit_with, args=(child,), daemon=True).start()
    if first:
        with writing:
            _write(out, ("ready", os.getpid(), gx.__version__))
    slots = threading.BoundedSemaphore(max(1, runner.MAX_CONCURRENT_SUITES // n))

    def answer(rid: int, req: dict[str, Any]) -> None:
        try:
            timeout = req["deadline"] - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the suite's time ran out before the Great Expectations worker could start it")
            run = runner.run_suite(
                req["suite"],
                req["target"],
                timeout=timeout,
                now=req["now"],
                sensitive_columns=req["sensitive"],
            )
            reply: tuple[str, Any] = ("ok", _detached(run))
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("err", _portable(e))
        finally:
            slots.release()
        try:
            frame = _frame((rid, *reply))
            if len(frame) > MAX_FRAME:
                raise ValueError(f"{len(frame)} bytes")
        except Exception as e:  # noqa: BLE001 - the result would not pickle, or is absurdly big: the caller hears why
            frame = _frame((rid, "err", SuiteRunError(f"the result could not be sent back: {runner._one_line(e)}")))
        with writing:
            out.write(frame)
            out.flush()

    while True:
        slots.acquire()
        with reading:
            try:
                rid, req = _read(inp)
            except EOFError:
                break
        threading.Thread(target=answer, args=(rid, req), name=f"suite:{rid}", daemon=True).start()
    os._exit(0)  # the gate is gone: threads still validating end with the process (their connections close)


def _exit_with(child: int) -> None:
    _, status = os.waitpid(child, 0)
    os._exit(70 if os.waitstatus_to_exitcode(status) != 0 else 0)


def main() -> None:
    # the frames own the original stdin/stdout; anything else that prints (a library) goes to stderr
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    serve(inp, out, processes=min(2, usable))  # (the cores this process may run on: a container's cpuset, taskset)


# --------------------------------------------------------------------------- the gate's side


class _Worker:
    def __init__(self, env: Mapping[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "golive.expectations.worker"],  # -P: not the working directory's modules
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            close_fds=True,
            start_new_session=True,  # its own process group: the gate ends every validator of it at once
        )
        with contextlib.suppress(OSError, AttributeError):  # room for ~200 queued requests (Linux; 64 KiB otherwise)
            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[union-attr]
        self.ready = threading.Event()
        self.gx_version = ""
        self.exit_reason = ""
        self._pending: dict[int, Future[SuiteRun]] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one request at a time into the pipe (never under _lock: a write can wait)
        self._reaping = threading.Lock()  # the group is signalled only while its first process is not reaped
        self._gone = threading.Event()  # the first process is reaped
        self._next = 0
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._drained = threading.Thread(target=self._drain_stderr, name="gx-worker-stderr", daemon=True)
        self._drained.start()
        threading.Thread(target=self._answers, name="gx-worker-answers", daemon=True).start()
        threading.Thread(target=self._reap, name="gx-worker-reaper", daemon=True).start()

    @property
    def alive(self) -> bool:
        return not self._gone.is_set() and not self.exit_reason

    def submit(self, req: dict[str, Any]) -> tuple[int, Future[SuiteRun]]:
        fut: Future[SuiteRun] = Future()
        with self._lock:
            if self.exit_reason:
                raise SuiteRunError(self.exit_reason)
            self._next += 1
            rid = self._next
            self._pending[rid] = fut
        try:
            frame = _frame((rid, req))
            with self._writing:
                self.proc.stdin.write(frame)  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001 - the worker is gone (a closed pipe), or the request would not pickle
            self.forget(rid)
            gone = isinstance(e, (OSError, ValueError)) and not isinstance(e, pickle.PicklingError)
            raise SuiteRunError(self._why_gone() if gone else f"the suite could not be sent: {e}") from None
        return rid, fut

    def forget(self, rid: int) -> None:
        with self._lock:
            self._pending.pop(rid, None)

    def _answers(self) -> None:
        try:
            while True:
                frame = _read(self.proc.stdout)  # type: ignore[arg-type]
                if frame[0] == "ready":
                    self.gx_version = frame[2]
                    self.ready.set()
                    continue
                rid, kind, value = frame
                with self._lock:
                    fut = self._pending.pop(rid, None)
                if fut is not None:
                    if kind == "ok":
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        except Exception:  # noqa: BLE001 - EOF (every process of it ended) or a broken stream: both end it
            pass
        self._end_group()
        self._gone.wait()
        self._drained.join(1.0)  # (the last line of a traceback says why)
        with self._lock:
            self.exit_reason = self._why_gone()
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.set_exception(SuiteRunError(self.exit_reason))
        self.ready.set()  # (nobody waits for a worker that will never be ready)

    def _reap(self) -> None:
        """The only place the first process is reaped. When it ends, so does every validator it forked (they hold the
        answer pipe open): it is waited for without reaping, the group ended, then reaped; until then its pid (the
        group's id) cannot name anyone else's group."""
        try:
            os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        except AttributeError:  # (no waitid: macOS before Python 3.13) reaped first, then the group, a moment after
            self.proc.wait()
        with self._reaping:
            self._signal_group()
            self.proc.wait()
            self._gone.set()

    def _end_group(self) -> None:
        """SIGKILL to every process of the worker (a no-op once it is gone)."""
        with self._reaping:
            if not self._gone.is_set():
                self._signal_group()

    def _signal_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:  # (already gone)
            pass

    def kill(self) -> None:
        """End every process of the worker now: what was in flight fails, naming it; the next suite starts another."""
        self._end_group()

    def _why_gone(self) -> str:
        code = self.proc.returncode
        last = next((line for line in reversed(list(self._stderr)) if line.strip()), "")
        return (
            f"the Great Expectations worker process (pid {self.proc.pid}) ended"
            + (f" with exit code {code}" if code is not None else "")
            + (f": {last.strip()[:300]}" if last else "")
        )

    def _drain_stderr(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):  # type: ignore[union-attr]
            self._stderr.append(raw.decode("utf-8", "replace"))

    def stop(self) -> None:
        """EOF to a worker that is ready and idle (it exits at once); otherwise, or if it has not exited within 2 s,
        SIGKILL to its group. Waits at most 5 s more for it to be reaped."""
        with self._lock:
            busy = bool(self._pending)
        if self.ready.is_set() and not busy and self._writing.acquire(timeout=0.5):
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            finally:
                self._writing.release()
            if self._gone.wait(2):
                return
        self._end_group()
        self._gone.wait(5)


_LOCK = threading.Lock()
_WORKER: _Worker | None = None
_UNAVAILABLE = ""  # why suites run in this process (the worker could not start here)


def prestart(ctx: RunContext) -> None:
    """Start the worker now (it imports GX while the run's other checks go on). Never raises."""
    try:
        _worker(ctx)
    except Exception as e:  # noqa: BLE001 - the suites will run in this process, saying why
        _fall_back(f"{type(e).__name__}: {e}")


def _worker(ctx: RunContext) -> _Worker | None:
    """The running worker, started if there is none (its environment: `ctx.child_env()`, the run's secrets out)."""
    global _WORKER
    with _LOCK:
        if _UNAVAILABLE:
            return None
        if _WORKER is None or not _WORKER.alive:
            _WORKER = _Worker(ctx.child_env())
        return _WORKER


def _fall_back(why: str) -> None:
    global _UNAVAILABLE
    with _LOCK:
        if not _UNAVAILABLE:
            _UNAVAILABLE = " ".join(why.split())[:300]
            log.warning("Great Expectations suites run in the gate's own process: %s", _UNAVAILABLE)


def stop() -> None:
    """Stop the worker (at exit, and for tests)."""
    global _WORKER
    with _LOCK:
        w, _WORKER = _WORKER, None
    if w is not None:
        w.stop()


atexit.register(stop)


def run_suite(
    suite: Suite,
    t: PostgresTarget,
    *,
    timeout: float = 30.0,
    now: datetime | None = None,
    sensitive_columns: Iterable[str] = (),
    ctx: RunContext,
) -> SuiteRun:
    """`runner.run_suite`, in the worker process (in this one when the worker is unavailable here); `ctx` is the
    check's (the worker, if it starts now, gets `ctx.child_env()`)."""
    deadline = time.monotonic() + timeout
    inner = deadline - max(0.6, min(GRACE, timeout / 4))  # the worker's deadline: its answer comes back before ours
    now = now or datetime.now(UTC)
    sensitive = set(sensitive_columns)
    try:
        w = _worker(ctx)
    except Exception as e:  # noqa: BLE001
        _fall_back(f"{type(e).__name__}: {e}")
        w = None
    if w is not None:
        # not ready yet: wait for it (it is importing GX); one that dies before it is ready means this machine
        # cannot run it, and this process validates instead
        w.ready.wait(max(0.0, inner - time.monotonic()))
        if not w.gx_version and w.exit_reason:
            _fall_back(w.exit_reason)
            w = None
    if w is None:
        return runner.run_suite(
            suite, t, timeout=max(0.05, deadline - time.monotonic()), now=now, sensitive_columns=sensitive
        )
    rid, fut = w.submit({"suite": suite, "target": t, "deadline": inner, "now": now, "sensitive": sensitive})
    try:
        # until just before the check's own deadline, so that what is said here is what the check reports
        return fut.result(timeout=max(0.0, deadline - time.monotonic() - 0.1))
    except TimeoutError:
        if fut.done():  # the answer came meanwhile (or it is the suite's own timeout, from the worker)
            return fut.result()
        w.forget(rid)
        if not w.ready.is_set():  # still importing GX past this suite's budget: slow, not wedged
            raise TimeoutError(
                f"the Great Expectations worker was not ready within the suite's {timeout:g}s (still importing GX)"
            ) from None
        # ready, and its watchdog would have answered by now: it is wedged; end it (what it was running fails,
        # naming it) so that the next suite gets a new one
        w.kill()
        raise TimeoutError(
            f"no answer from the Great Expectations worker within the suite's {timeout:g}s "
            "(the worker was stopped; the next suite starts a new one)"
        ) from None


if __name__ == "__main__":
    main()
