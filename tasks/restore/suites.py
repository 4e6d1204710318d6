"""Integrity suites run on the restored copy before it is dropped: the extension point the data-integrity suites
(GX, in `expectations/`) plug into without `tasks/` importing them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import RunContext, Status
from ..models import libpq_tls
from ..postgres import PostgresTarget

# --------------------------------------------------------------------------- integrity suites (extension point)


@dataclass(frozen=True)
class RestoredDatabase:
    """The scratch database while it exists (suites run before it is dropped). `password` is the restore user's."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None
    sslmode: str
    source_dbname: str
    backup_key: str
    source: PostgresTarget | None = None  # the production target the backup is of (its suites_dir, ...)
    sslrootcert: Path | None = None

    def as_target(self) -> PostgresTarget:
        """The scratch database as a PostgresTarget (the restore user's credentials), for suites that take one."""
        extra = (
            {}
            if self.source is None
            else {"suites_dir": self.source.suites_dir, "sensitive_columns": self.source.sensitive_columns}
        )
        return PostgresTarget(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            **libpq_tls(self),
            **extra,
        )

    def conninfo(self) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            **libpq_tls(self),
        )

    def sqlalchemy_url(self) -> str:
        from urllib.parse import quote

        pw = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"postgresql+psycopg://{quote(self.user, safe='')}{pw}@{self.host}:{self.port}/"
            f"{quote(self.dbname, safe='')}?" + "&".join(f"{k}={quote(v)}" for k, v in libpq_tls(self).items())
        )


@dataclass
class SuiteOutcome:
    status: Status  # PASS / WARN / FAIL / ERROR
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


RestoredSuite = Callable[[RestoredDatabase, RunContext], SuiteOutcome]
SUITES: dict[str, RestoredSuite] = {}


def register_restored_db_suite(name: str, suite: RestoredSuite) -> None:
    """Run `suite` on every restored copy (before it is dropped) of every restore test of this process.

    This is how the data-integrity suites (GX, in `expectations/`) plug in without `tasks/` importing them: e.g.
    `register_restored_db_suite("gx", lambda db, ctx: run_gx_suites(db.sqlalchemy_url(), deadline=ctx.remaining))`
    from the flow that loads them. A suite returning FAIL/ERROR (or raising) makes the restore test FAIL.
    """
    SUITES[name] = suite


def unregister_restored_db_suite(name: str) -> None:
    SUITES.pop(name, None)
