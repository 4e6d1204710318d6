"""The whole catalog: every check module imported (each registers its checks with `tasks.core.check` as it is
imported), then the dependency graph validated. Above every check module, so `tasks.core` imports none of them.
One module (or package) per config section, named after its key."""

from __future__ import annotations

from . import (  # noqa: F401  (imported for their registrations)
    app,
    backups,
    containers,
    hosts,
    indexes,
    loadbalancer,
    loadtest,
    network,
    observability,
    pgbouncer,
    postgres,
    redis,
    saas,
    smtp,
    team,
    web,
    workers,
)
from .core import REGISTRY, CheckSpec, validate_graph
from .monitoring import alerts, prometheus, servers  # noqa: F401
from .restore import checks, recovery  # noqa: F401
from .security import access, data, sessions, supplychain  # noqa: F401


def load_catalog() -> dict[str, CheckSpec]:
    """Every check of the catalog by id, its dependency graph validated."""
    validate_graph(REGISTRY)
    return dict(sorted(REGISTRY.items()))
