"""Scratch databases: named per run, dropped on success, failure, timeout and interpreter exit, and stale ones of
killed runs dropped by the next restore test."""

from __future__ import annotations

import atexit
import contextlib
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .target import CLEANUP_BUDGET_S, RestoreTarget, restore_connect

# --------------------------------------------------------------------------- cleanup registry

LIVE: dict[str, Callable[[], str | None]] = {}
LIVE_LOCK = threading.Lock()


def _cleanup_at_exit() -> None:
    """Drop the scratch databases of restores still running when the interpreter exits; say on stderr what could
    not be dropped (the next restore test drops it once stale)."""
    with LIVE_LOCK:
        pending = dict(LIVE)
        LIVE.clear()
    for name, fn in pending.items():
        with contextlib.suppress(Exception):
            why = fn()
            if why:
                print(f"golive: the scratch database {name} could not be dropped at exit: {why}", file=sys.stderr)


atexit.register(_cleanup_at_exit)


def scratch_name(t: RestoreTarget) -> str:
    return f"{t.scratch_prefix}{datetime.now(UTC):%Y%m%dt%H%M%Sz}_{secrets.token_hex(3)}"


_STAMP = re.compile(r"(\d{8}t\d{6}z)_[0-9a-f]{6}$")


def drop_scratch(t: RestoreTarget, name: str, budget: float = CLEANUP_BUDGET_S) -> str | None:
    """Drop the scratch database; None when it is gone, else why not (the last error seen).

    `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13+) refuses as a whole when any session in the database belongs to a
    role the restore user may not signal: an autovacuum worker analysing the freshly restored tables is one (it has
    no role, and only pg_signal_backend may terminate it). Then, and until the budget is spent: end the restore
    user's own sessions there and retry a plain DROP DATABASE, which asks autovacuum workers to leave and waits for
    them (a session of another role stays an honest error)."""
    from psycopg import errors, sql

    deadline = time.monotonic() + budget
    drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    why: str | None = None
    first: str | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            with restore_connect(t, t.maintenance_dbname, max(1.0, deadline - time.monotonic())) as conn:
                num = int(conn.execute("SHOW server_version_num").fetchone()[0])
                try:
                    if num >= 130000 and attempt == 1:
                        conn.execute(force)
                    else:
                        conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                            "AND pid <> pg_backend_pid() AND usename = current_user",
                            [name],
                        )
                        conn.execute(drop)
                except (errors.InsufficientPrivilege, errors.ObjectInUse) as e:
                    why = " ".join(f"{type(e).__name__}: {e}".split())
                    first = first or why  # the telling one (which session); later ones may be a timeout
                else:
                    left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0]
                    if left == 0:
                        return None
                    why = "still listed in pg_database after DROP DATABASE"
        except Exception as e:  # noqa: BLE001 - reported, never raised from cleanup
            why = " ".join(f"{type(e).__name__}: {e}".split())
        if time.monotonic() + 1.0 >= deadline:
            told = why if first is None or first == why else f"{first}; last: {why}"
            return f"{told} ({attempt} attempt{'s' if attempt > 1 else ''} in {budget:g}s)"
        time.sleep(min(0.5 * attempt, 2.0, max(0.0, deadline - time.monotonic() - 1.0)))


def drop_stale_scratch(t: RestoreTarget, conn: Any) -> list[str]:
    """Scratch databases of runs killed before their cleanup (older than twice the restore timeout, idle), on the
    restore server connection `conn` (proven not production first)."""
    from psycopg import sql

    cutoff = time.time() - max(2 * t.restore_limit_s, 3600)
    dropped = []
    names = [
        r[0]
        for r in conn.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
            [t.scratch_prefix.replace("_", r"\_") + "%"],
        ).fetchall()
    ]
    for name in names:
        m = _STAMP.search(name)
        if not m:
            continue
        born = datetime.strptime(m.group(1), "%Y%m%dt%H%M%Sz").replace(tzinfo=UTC).timestamp()
        if born < cutoff:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
