"""Imports every check module so `tasks.core.load_catalog()` sees the whole catalog (import for side effects)."""
from __future__ import annotations

from . import (  # noqa: F401  # noqa: F401  (sections 1 and 6)  # noqa: F401  (sections 2 and 7)  # noqa: F401  (sections 4 and 5)
    alerts,
    app,
    containers,
    hosts,
    loadbalancer,
    loadtest,
    network,
    observability,
    pgbouncer,
    pgindexes,
    postgres,
    prometheus,
    recovery,
    rediscache,
    restore,
    s3backup,
    saas_deps,
    security,
    smtp,
    supplychain,
    team,
    tls,
    web,
    workers,
)
