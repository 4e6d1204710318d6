"""PostgreSQL indexes (seed 2.1 Database Indexes): the critical indexes exist and are valid, and the plans of the
configured critical queries use them (EXPLAIN, never executed: no Seq Scan on a large table).

The connection (host, user, password) is the `postgres` section's; this section says which indexes and queries.
The defaults are the checklist's schema (the 11 Phase 4 tables); environments with their own schema set them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from .core import Observation, RunContext, check, failed_if
from .models import Target
from .postgres import REACHABLE as PG_REACHABLE
from .postgres import PostgresTarget, connect, dsn_for_evidence, psql

SEED_INDEXES = [
    "users_email_key",
    "users_created_at_idx",
    "campaigns_merchant_id_idx",
    "campaigns_status_idx",
    "notifications_campaign_id_idx",
    "notifications_user_id_idx",
    "notifications_status_created_at_idx",
    "campaign_events_campaign_id_idx",
    "campaign_events_occurred_at_idx",
    "campaign_analytics_daily_day_idx",
    "merchant_affinity_scores_merchant_id_idx",
    "job_runs_job_name_started_at_idx",
]
SEED_QUERIES = {
    "events of a campaign": "SELECT * FROM campaign_events WHERE campaign_id = 42",
    "notifications of a user": "SELECT * FROM notifications WHERE user_id = 7",
    "user by email": "SELECT * FROM users WHERE email = 'someone@example.com'",
    "affinity scores of a merchant": "SELECT * FROM merchant_affinity_scores WHERE merchant_id = 3",
    "one analytics day": "SELECT * FROM campaign_analytics_daily WHERE day = current_date - 3",
}


class IndexesTarget(Target):
    required: list[str] = Field(
        default_factory=lambda: list(SEED_INDEXES),
        description="index names ([schema.]name) that must exist and be valid",
    )
    queries: dict[str, str] = Field(
        default_factory=lambda: dict(SEED_QUERIES),
        description="name -> critical read query; its EXPLAIN must not Seq Scan a large "
        "table (the query is planned, never run)",
    )
    large_table_rows: int = Field(
        10_000,
        ge=0,
        description="a table is large from this many rows (pg_class estimate); a Seq Scan on a smaller one is fine",
    )

    @field_validator("queries")
    @classmethod
    def _selects(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [
            n for n, q in v.items() if not q.lstrip().lower().startswith(("select", "with")) or ";" in q.rstrip(" ;")
        ]
        if bad:
            raise ValueError(f"must each be one SELECT (or WITH ... SELECT) statement: {bad}")
        return v


def _walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans") or []:
        out += _walk(child)
    return out


@check(
    "dependencies.postgres.indexes",
    title="Critical indexes exist and the critical queries use them",
    seed=["2.1 PostgreSQL Database: Database Indexes"],
    depends_on=[PG_REACHABLE],
    timeout=15,
    target="indexes",
    needs={"postgres": "nothing to connect to"},
)
def postgres_indexes(t: IndexesTarget, ctx: RunContext, *, postgres: PostgresTarget) -> Observation:
    """pg_index: every required index exists and is valid; EXPLAIN (FORMAT JSON) of each configured query: no
    Seq Scan node on a table with >= large_table_rows rows (pg_class.reltuples), and the index scans are listed."""
    pg = postgres
    missing: list[str] = []
    invalid: list[str] = []
    seq: dict[str, list[str]] = {}
    used: dict[str, list[str]] = {}
    with connect(pg, ctx, read_only=True) as conn:
        for name in t.required:
            schema, _, idx = name.rpartition(".")
            row = conn.execute(
                "SELECT i.indisvalid, c.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
                "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = x.relnamespace "
                "WHERE x.relname = %s AND (%s = '' AND n.nspname = ANY (current_schemas(false)) OR n.nspname = %s)",
                [idx, schema, schema],
            ).fetchone()
            if row is None:
                missing.append(name)
            elif not row[0]:
                invalid.append(name)
        sizes: dict[tuple[str, str], float] = {}
        for qname, sql in t.queries.items():
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql.rstrip(" ;")).fetchone()[0]
            plan = plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]
            for node in _walk(plan):
                kind = node.get("Node Type", "")
                if kind == "Seq Scan" and node.get("Relation Name"):
                    rel = (node.get("Schema") or "", node["Relation Name"])
                    if rel not in sizes:
                        sizes[rel] = float(
                            conn.execute(
                                "SELECT greatest(c.reltuples, coalesce(s.n_live_tup, 0)) FROM pg_class c "
                                "LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(%s)",
                                [f'"{rel[0]}"."{rel[1]}"' if rel[0] else f'"{rel[1]}"'],
                            ).fetchone()[0]
                            or 0
                        )
                    if sizes[rel] >= t.large_table_rows:
                        seq.setdefault(qname, []).append(f"Seq Scan on {rel[1]} (~{sizes[rel]:,.0f} rows)")
                elif node.get("Index Name"):
                    used.setdefault(qname, []).append(f"{kind} on {node['Index Name']}")
    problems = (
        [f"missing index {m}" for m in missing]
        + [f"invalid index {i}" for i in invalid]
        + [f"{q}: {', '.join(s)}" for q, s in seq.items()]
    )
    observed: dict[str, Any] = {
        "required_indexes": f"{len(t.required) - len(missing) - len(invalid)}/{len(t.required)} present and valid",
        "plans": {q: (seq.get(q) or used.get(q) or ["no index needed (small tables)"]) for q in t.queries},
    }
    if problems:
        observed["problems"] = problems
    example = next(iter(t.queries.values()), "SELECT 1")
    evidence = (
        f"connected to {dsn_for_evidence(pg)}; pg_index for {len(t.required)} required index(es); "
        f"EXPLAIN (FORMAT JSON) of {len(t.queries)} query(ies), never executed; re-run: "
        f"`{psql(pg, 'EXPLAIN ' + example)}` and `{psql(pg, chr(92) + 'di')}`"
    )
    expected = (
        f"all {len(t.required)} required indexes present and valid; no Seq Scan on a table of >= "
        f"{t.large_table_rows:,} rows"
    )
    return failed_if(problems, observed, expected, evidence, missing=missing, seq_scans=seq)
