"""A real PgBouncer (Debian's `pgbouncer` package) in front of a PostgreSQL server: config files and argv.

Used by the sandbox (only when the binary is installed: the quick start needs pip only) and by the tests, which
start their own instances. PgBouncer refuses to run as root, so as root it runs as `nobody` (like the sandbox's
PostgreSQL) and its files are made readable by that user only.

    write_config(dir, listen_port=..., pg_port=..., dbname=..., users={name: password}, admin_user=...)
    argv(ini)  ->  ["pgbouncer", ini]       run_as() -> "nobody" | None
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

ADMIN_USER = "golive_pgb_admin"
MAX_CLIENT_CONN = 200
DEFAULT_POOL_SIZE = 20
RUN_AS = "nobody"


def executable() -> str | None:
    """The pgbouncer binary (Debian installs it in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def run_as() -> str | None:
    return RUN_AS if os.geteuid() == 0 else None


def _q(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def write_config(
    directory: Path,
    *,
    listen_port: int,
    pg_host: str = "127.0.0.1",
    pg_port: int,
    dbname: str,
    users: dict[str, str],
    admin_user: str = ADMIN_USER,
    max_client_conn: int = MAX_CLIENT_CONN,
    default_pool_size: int = DEFAULT_POOL_SIZE,
    pool_mode: str = "transaction",
) -> Path:
    """pgbouncer.ini + userlist.txt (plain passwords: PgBouncer then speaks SCRAM to both sides) in `directory`.
    `users` must include `admin_user`. Returns the ini path."""
    directory.mkdir(parents=True, exist_ok=True)
    userlist = directory / "userlist.txt"
    ini = directory / "pgbouncer.ini"
    userlist.write_text("".join(f"{_q(u)} {_q(p)}\n" for u, p in users.items()))
    ini.write_text(f"""\
[databases]
{dbname} = host={pg_host} port={pg_port} dbname={dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
admin_users = {admin_user}
stats_users = {admin_user}
pool_mode = {pool_mode}
max_client_conn = {max_client_conn}
default_pool_size = {default_pool_size}
ignore_startup_parameters = extra_float_digits,options
server_login_retry = 1
logfile =
pidfile =
""")
    for p in (userlist, ini):
        p.chmod(0o600)
    user = run_as()
    if user:
        pw = pwd.getpwnam(user)
        os.chmod(directory, 0o755)
        for p in (userlist, ini):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    return ini


def argv(ini: Path) -> list[str]:
    exe = executable()
    if exe is None:
        raise FileNotFoundError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    return [exe, str(ini)]
