"""The whole catalog: every check module imported (each registers its checks with `tasks.core.check` as it is
imported), then the dependency graph validated. Above every check module, so `tasks.core` imports none of them."""
from __future__ import annotations

from . import (  # noqa: F401  (imported for their registrations)
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
from .core import REGISTRY, CheckSpec, validate_graph


def load_catalog() -> dict[str, CheckSpec]:
    """Every check of the catalog by id, its dependency graph validated."""
    validate_graph(REGISTRY)
    return dict(sorted(REGISTRY.items()))
