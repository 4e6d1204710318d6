"""Row counts of the key tables: on the restored copy, and on the source in a READ ONLY transaction."""

from __future__ import annotations

import math
from typing import Any

from ..core import RunContext
from ..postgres import PostgresTarget, table_access
from ..postgres import connect as source_connect
from .target import RestoreTarget, restore_connect

# --------------------------------------------------------------------------- row counts


def _ident(name: str) -> Any:
    from psycopg import sql

    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def restored_counts(t: RestoreTarget, dbname: str, tables: list[str], timeout: float) -> dict[str, int | str]:
    from psycopg import sql

    out: dict[str, int | str] = {}
    with restore_connect(t, dbname, timeout) as conn:
        for name in tables:
            qualified = _ident(name)
            if conn.execute("SELECT to_regclass(%s)", [qualified.as_string(conn)]).fetchone()[0] is None:
                out[name] = "missing"
                continue
            out[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified)).fetchone()[0]
    return out


def source_counts(
    src: PostgresTarget, tables: list[str], ctx: RunContext
) -> tuple[dict[str, int | str], dict[str, str]]:
    """Row counts on the source in one READ ONLY transaction: count(*) below src.exact_count_limit estimated rows,
    the pg_class estimate above (never a write)."""
    from psycopg import sql

    counts: dict[str, int | str] = {}
    method: dict[str, str] = {}
    with source_connect(src, ctx) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        access = table_access(conn, tables)
        for name in tables:
            if access[name] != "ok":
                counts[name] = access[name]
                continue
            est = conn.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [_ident(name).as_string(conn)]
            ).fetchone()[0]
            if est is not None and est >= src.exact_count_limit:
                counts[name], method[name] = int(est), "estimate"
            else:
                counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_ident(name))).fetchone()[0]
                method[name] = "count(*)"
    return counts, method


def compare_counts(
    t: RestoreTarget, source: dict[str, int | str], restored: dict[str, int | str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, s in source.items():
        r = restored.get(name, "missing")
        if isinstance(s, str) or isinstance(r, str):
            rows[name] = {"source": s, "restored": r}
            problems.append(f"{name}: {'source ' + s if isinstance(s, str) else 'restored copy ' + r}")
            continue
        diff = s - r
        allowed = t.row_tolerance_rows + math.ceil(s * t.row_tolerance_pct / 100)
        rows[name] = {"source": s, "restored": r, "diff": diff}
        if abs(diff) > allowed or (s > 0 and r == 0):
            problems.append(f"{name}: {r:,} restored vs {s:,} in the source (allowed difference {allowed:,})")
    return rows, problems
