"""Prefect's database on the embedded PostgreSQL: a migrated template, cached per user, and clusters cloned from it.

Migrating an empty database to Prefect's schema (and registering its block types) takes most of a Prefect server's
first start. A cluster with a migrated `prefect` database is built once per machine and user (initdb, the role and
database, `pg_trgm`, then Prefect's own server started on it once, which migrates and registers), and kept in the
per-user cache (`$XDG_CACHE_HOME/golive`, else `~/.cache/golive`, 0700) under a key naming the Prefect, golive and
PostgreSQL versions: `golive demo` and golive's local server (deployments/local_server.py) copy it instead of
migrating. The template is built in a temporary directory and renamed into place (never half-written; a marker file
written last says which key it holds); one without its marker, with another key or without a cluster is removed and
built again. Builds are serialised by a lock file beside it.

The clusters listen on their Unix socket only (`listen_addresses=''`, trust in a 0700 socket directory): no TCP port,
no password. PostgreSQL refuses to run as root: when we are root it runs as `nobody` (as the sandbox's do), from a
directory `nobody` can reach.

`GOLIVE_PG_INSTALL` names another PostgreSQL installation (its bin/ has initdb and postgres), e.g. a distribution's
/usr/lib/postgresql/NN; the wheel's otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import psycopg

from golive.sandbox import procs
from golive.sandbox.parts import postgres as pg

from .prefect_server import PrefectServer

FORMAT = 1  # of the template's layout: a change builds new templates
PG_ENV = "GOLIVE_PG_INSTALL"
DBNAME = ROLE = "prefect"
MARKER = "golive-template.json"
PRUNE_DAYS = 14
SOCKET_PORT = 5432  # names the socket file only: the clusters listen on no TCP port
#: the server's environment when its database came from a template of this Prefect version: nothing to migrate
#: or register (both were done when the template was built)
FROM_TEMPLATE_ENV = {
    "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
}


class Unavailable(RuntimeError):
    """The embedded PostgreSQL cannot run here (the package is missing, initdb or the server failed)."""


def private_dir(path: Path) -> Path:
    """`path` as a directory of this user that nobody else can enter (made 0700, tightened if looser). One owned by
    another user is refused: it could hold files planted for us."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a directory of uid {os.geteuid()} (owner uid {st.st_uid}): remove it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def xdg_dir(kind: str) -> Path:
    """golive's per-user directory of `kind` ("data" or "cache"), per the XDG base directory spec, 0700."""
    var, default = {"data": ("XDG_DATA_HOME", ".local/share"), "cache": ("XDG_CACHE_HOME", ".cache")}[kind]
    base = os.environ.get(var, "")
    root = Path(base) if os.path.isabs(base) else Path.home() / default  # the spec: a relative value is ignored
    return private_dir(root / "golive")


def pg_bindir() -> Path:
    """The bin/ directory of the PostgreSQL to run, or Unavailable saying why (one line)."""
    custom = os.environ.get(PG_ENV, "")
    try:
        root = Path(custom) if custom else pg.pg_install(pg.ROOT / "cache")
    except (RuntimeError, OSError) as e:
        raise Unavailable(str(e)) from None
    bindir = root / "bin"
    for exe in ("initdb", "postgres"):
        if not os.access(bindir / exe, os.X_OK):
            raise Unavailable(f"no executable {bindir / exe}" + (f" ({PG_ENV}={custom})" if custom else ""))
    return bindir


def scratch_dir() -> Path:
    """A fresh directory to build a cluster in: as root, a sandbox run directory `nobody` can reach (removed by the
    next sandbox start if this process dies); else a temporary one in the cache (0700 is enough)."""
    if pg.run_as() is None:
        return Path(tempfile.mkdtemp(prefix="prefect-build-", suffix=".tmp", dir=xdg_dir("cache")))
    from golive.sandbox.stack import run_dir  # the whole sandbox (its extra's packages): only when needed

    return run_dir()


def template_key(bindir: Path) -> str:
    st = (bindir / "postgres").stat()
    pg_id = hashlib.sha256(f"{(bindir / 'postgres').resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    return f"prefect-{metadata.version('prefect')}-golive-{metadata.version('golive')}-pg-{pg_id[:12]}-f{FORMAT}"


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 600.0) -> Iterator[None]:
    """An exclusive flock on `path` (released when the holder dies, so never stale), waited for up to `timeout`."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is still locked after {timeout:.0f} s") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


def socket_url(sock: Path) -> str:
    """Prefect's connection URL to the `prefect` database over the cluster's Unix socket (trust: no password)."""
    return f"postgresql+asyncpg://{ROLE}@/{DBNAME}?host={sock}"


def argv(bindir: Path, data: Path, sock: Path) -> list[str]:
    """The postmaster's argv: the sandbox's settings, with no TCP listener."""
    return [*pg.server_argv(bindir, data, sock, SOCKET_PORT), "-c", "listen_addresses="]


def start_cluster(bindir: Path, data: Path, sock: Path, log: Path, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """The postmaster as a child that dies with this process, once it accepts connections (or Unavailable)."""
    proc: subprocess.Popen[bytes] = procs.spawn(argv(bindir, data, sock), log=log, user=pg.run_as(), cwd=data.parent)
    try:
        procs.wait_until(
            "PostgreSQL", lambda: pg.accepting(sock, SOCKET_PORT), timeout, alive=lambda: proc.poll() is None, log=log
        )
    except (RuntimeError, TimeoutError) as e:
        stop_cluster(proc)
        said = [ln for ln in _tail_lines(log) if any(w in ln for w in ("FATAL", "PANIC", "ERROR"))]
        why = said[-1].split(":  ", 1)[-1] if said else str(e).splitlines()[0]
        raise Unavailable(f"PostgreSQL did not start: {why} (log: {log})") from None
    return proc


def _tail_lines(log: Path, n: int = 4000) -> list[str]:
    try:
        return log.read_bytes()[-n:].decode(errors="replace").splitlines()
    except OSError:
        return []


def _remove_stale_pid_file(data: Path) -> None:
    """postmaster.pid of a postmaster that is gone (killed with its supervisor; a zombie where nothing reaps it):
    PostgreSQL would take the pid for a live one and refuse to start."""
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if procs.proc_identity(pid) is None:
        pid_file.unlink(missing_ok=True)


def stop_cluster(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        procs.stop([proc], {proc.pid: pg.STOP_SIGNAL}, timeout=20)


def _valid(entry: Path, key: str) -> bool:
    try:
        marker = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return False
    data = entry / "pgdata"
    return (
        isinstance(marker, dict)
        and marker.get("key") == key
        and (data / "PG_VERSION").is_file()
        and (data / "global" / "pg_control").is_file()
    )


def template(bindir: Path, log_dir: Path | None = None) -> tuple[Path, bool]:
    """The cached template's directory (pgdata/ inside) for this bindir and these versions, and whether it was
    already there (False: built now). Raises Unavailable when PostgreSQL or Prefect's server cannot run."""
    key = template_key(bindir)
    cache = xdg_dir("cache")
    entry = cache / key
    if _valid(entry, key):
        with contextlib.suppress(OSError):
            os.utime(entry / MARKER)  # used: kept by _prune
        return entry, True
    with file_lock(cache / f"{key}.lock"):
        if _valid(entry, key):  # another process built it while we waited
            return entry, True
        _prune(cache, entry)
        _build(bindir, entry, key, log_dir)
    return entry, False


def _prune(cache: Path, entry: Path) -> None:
    """Remove this key's invalid entry, half-built ones (a crash while building: the lock is free now), and other
    versions' templates unused for PRUNE_DAYS."""
    shutil.rmtree(entry, ignore_errors=True)
    for old in cache.glob("prefect-*"):
        if not old.is_dir() or old == entry:
            continue
        with contextlib.suppress(OSError):
            if old.name.endswith(".tmp") or time.time() - (old / MARKER).stat().st_mtime > PRUNE_DAYS * 86400:
                shutil.rmtree(old, ignore_errors=True)


def _build(bindir: Path, entry: Path, key: str, log_dir: Path | None) -> None:
    work = scratch_dir()
    try:
        data, sock = work / "pgdata", work / "pgsock"
        try:
            pg.initdb(bindir, data, sock)
        except (OSError, subprocess.SubprocessError) as e:
            raise Unavailable(f"initdb failed: {_first_line(e)}") from None
        proc = start_cluster(bindir, data, sock, work / "postgres.log")
        try:
            pg.create_database(sock, SOCKET_PORT, "", ROLE, "", DBNAME, extensions=("pg_trgm",))
            _drop_passwords(sock)
            # Prefect's own server migrates the database and registers its block types when it starts
            home = work / "prefect-home"
            try:
                PrefectServer(socket_url(sock), home).start(timeout=300).stop()
            except RuntimeError as e:
                if log_dir is not None:
                    with contextlib.suppress(OSError):
                        shutil.copy(home / "prefect-server.log", log_dir / "prefect-template.log")
                raise Unavailable(f"Prefect's server could not migrate the template: {_first_line(e)}") from None
        finally:
            stop_cluster(proc)
        stage = Path(tempfile.mkdtemp(prefix=f"{key}.", suffix=".tmp", dir=entry.parent))
        shutil.copytree(data, stage / "pgdata", symlinks=True)
        (stage / MARKER).write_text(json.dumps({"key": key, "built_at": time.time()}))
        os.rename(stage, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _drop_passwords(sock: Path) -> None:
    """The template's roles have no password (create_database set empty ones): the socket's trust is the way in."""
    with psycopg.connect(pg.admin_conninfo(sock, SOCKET_PORT), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {pg.SUPERUSER} PASSWORD NULL")
        conn.execute(f"ALTER ROLE {ROLE} PASSWORD NULL")


def _first_line(e: BaseException) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else str(e.stderr or "")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        return f"exit {e.returncode}" + (f": {lines[-1].strip()}" if lines else "")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def clone(entry: Path, data: Path) -> None:
    """A copy of the template's cluster at `data` (absent before), owned by whoever runs PostgreSQL, 0700."""
    pg.clone_cluster(entry / "pgdata", data)


def socket_dir(path: Path) -> Path:
    """A fresh 0700 socket directory owned by whoever runs PostgreSQL (a Unix socket's path is at most 107 bytes)."""
    if len(str(path / f".s.PGSQL.{SOCKET_PORT}")) > 100:
        raise Unavailable(f"{path}: too long a path for PostgreSQL's Unix socket (set XDG_DATA_HOME shorter)")
    shutil.rmtree(path, ignore_errors=True)
    pg.private_socket_dir(path)
    return path


def sandbox_bindir() -> Path:
    """The PostgreSQL the sandbox runs (the wheel's): its Prefect database's template must be of the same."""
    return pg.pg_install(pg.ROOT / "cache") / "bin"


def cached_template(bindir: Path) -> Path | None:
    """The valid cached template for this bindir and these versions, if there is one (nothing is built)."""
    entry = xdg_dir("cache") / template_key(bindir)
    if not _valid(entry, template_key(bindir)):
        return None
    with contextlib.suppress(OSError):
        os.utime(entry / MARKER)  # used: kept by _prune
    return entry


class Cluster:
    """PostgreSQL holding Prefect's migrated database, cloned from the template on its first start, on its Unix
    socket only: `url` is what Prefect's server connects with. `base` must be reachable by whoever runs PostgreSQL."""

    def __init__(self, bindir: Path, base: Path, log: Path):
        self.bindir, self.base, self.log = bindir, base, log
        self.data, self.sock = base / "pgdata", base / "pgsock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return socket_url(self.sock)

    def ensure_data(self, entry: Path) -> bool:
        """Clone the template unless a cluster is there already; whether it was cloned now. Atomic: a half-copied
        cluster is never taken for one."""
        if (self.data / "PG_VERSION").is_file():
            return False
        shutil.rmtree(self.data, ignore_errors=True)
        partial = self.base / "pgdata.tmp"
        shutil.rmtree(partial, ignore_errors=True)
        clone(entry, partial)
        partial.rename(self.data)
        return True

    def start(self, timeout: float = 60.0) -> Cluster:
        _remove_stale_pid_file(self.data)
        socket_dir(self.sock)
        self.proc = start_cluster(self.bindir, self.data, self.sock, self.log, timeout)
        return self

    def stop(self) -> None:
        stop_cluster(self.proc)
        self.proc = None
