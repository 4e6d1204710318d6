"""Imports every check module so `tasks.core.load_catalog()` sees the whole catalog (import for side effects)."""
from __future__ import annotations

from . import postgres, prometheus, recovery, rediscache, restore, s3backup, smtp, team, tls, web  # noqa: F401
from . import hosts, loadbalancer, loadtest, network  # noqa: F401  (sections 1 and 6)
from . import alerts, containers, observability, pgbouncer, pgindexes, saas_deps  # noqa: F401  (sections 2 and 7)
from . import app, security, supplychain, workers  # noqa: F401  (sections 4 and 5)
