"""`golive expectations scaffold`: starter suite files written from a live schema, for a team to review.

It reads the catalog (never a row): tables, columns, types, NOT NULL, primary keys, declared foreign keys (also
NOT VALID ones) and relations that exist only by naming convention (`customer_id` next to a `customers` table with
an `id`), and writes one suite per table:

- `<col>_not_null` for every NOT NULL column (a dropped or NOT VALID constraint no longer protects it);
- `<col>_format` for columns named like email, phone (E.164), url/website;
- `password_format` for password columns: a bcrypt/argon2 LIKE pattern (cheap; no regex over every row);
- `created_at_not_future`, `updated_at_not_future`, `created_before_updated`, and `recent_rows` (the max of
  updated_at, or of created_at when only that one is indexed: an index lookup instead of a scan);
- `<col>_fk` for every foreign key, declared or by convention: no orphaned rows.

Password, token, key and secret columns are listed as sensitive. The result is a starting point: windows,
severities and required columns are for the reviewers to set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golive.tasks.core import RunContext
from golive.tasks.postgres import PostgresTarget, connect

from .suites import SENSITIVE_NAME_RE, dump_suite

QUALITY, TIMESTAMPS, INTEGRITY = "3.1 Data Quality Checks", "3.1 Timestamp Consistency", "3.1 Referential Integrity"
EMAIL_REGEX = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
PHONE_REGEX = r"^\+[1-9][0-9]{7,14}$"
URL_REGEX = r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$"
#: bcrypt ($2a$/$2b$/$2y$, cost, 53 characters: 60 in all) and argon2 (PHC string) hashes, as LIKE patterns:
#: a prefix/length test PostgreSQL evaluates far faster than a regular expression
PASSWORD_LIKE = ["$2_$__$" + "_" * 53, "$argon2id$v=%", "$argon2i$v=%", "$argon2d$v=%"]
NOT_FUTURE = "now() + timedelta(minutes=5)"  # 5 minutes of clock skew between the database and golive
RECENT = "now() - timedelta(days=7)"
_SKIP_TABLES = {"schema_migrations", "alembic_version", "flyway_schema_history"}
_TEXT_TYPES = {"text", "character varying", "character", "citext", "varchar"}

_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%%'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY(%(schemas)s::text[]))
ORDER BY n.nspname, c.relname
"""
_COLUMNS_SQL = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, NULL) AS type, a.attnotnull,
       coalesce(a.attnum = ANY(pk.conkey), false) AS is_pk
FROM pg_attribute a
LEFT JOIN pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_INDEXED_SQL = """
SELECT i.indrelid, a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = ANY(%s) AND i.indpred IS NULL
"""
_FKS_SQL = """
SELECT con.conrelid, con.conname, con.convalidated, ch.attname, pn.nspname, pc.relname, pa.attname
FROM pg_constraint con
JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
JOIN pg_attribute ch ON ch.attrelid = con.conrelid AND ch.attnum = con.conkey[1]
JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = con.confkey[1]
WHERE con.contype = 'f' AND con.conrelid = ANY(%s) AND cardinality(con.conkey) = 1
ORDER BY con.conrelid, con.conname
"""


@dataclass
class Column:
    name: str
    type: str
    not_null: bool
    is_pk: bool


@dataclass
class Table:
    oid: int
    schema: str
    name: str
    columns: list[Column] = field(default_factory=list)
    fks: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # column, schema, table, col, how
    indexed: set[str] = field(default_factory=set)  # columns that lead an index (max() is an index lookup)

    @property
    def qualified(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def inspect_schema(
    t: PostgresTarget, *, tables: Iterable[str] = (), schemas: Iterable[str] = (), timeout: float = 60.0
) -> list[Table]:
    """The tables (all user tables, or the ones named), their columns and foreign keys, from the catalog."""
    wanted = set(tables)
    with connect(t, RunContext(timeout=timeout), read_only=True) as conn:
        found = [
            Table(oid, s, n) for oid, s, n in conn.execute(_TABLES_SQL, {"schemas": list(schemas) or None}).fetchall()
        ]
        found = [
            x for x in found if ((x.name in wanted or x.qualified in wanted) if wanted else x.name not in _SKIP_TABLES)
        ]
        by_oid = {x.oid: x for x in found}
        oids = list(by_oid)
        for oid, name, typ, not_null, is_pk in conn.execute(_COLUMNS_SQL, [oids]).fetchall():
            by_oid[oid].columns.append(Column(name, typ, not_null, is_pk))
        for oid, col in conn.execute(_INDEXED_SQL, [oids]).fetchall():
            by_oid[oid].indexed.add(col)
        for oid, conname, valid, col, pschema, ptable, pcol in conn.execute(_FKS_SQL, [oids]).fetchall():
            how = f"declared FOREIGN KEY {conname}" + ("" if valid else " (NOT VALID: existing rows unchecked)")
            by_oid[oid].fks.append((col, pschema, ptable, pcol, how))
        everything = {(s, n) for _, s, n in conn.execute(_TABLES_SQL, {"schemas": None}).fetchall()}
        pks = {
            (s, n): c
            for s, n, c in conn.execute(
                "SELECT n.nspname, c.relname, a.attname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = k.conrelid "
                "AND a.attnum = k.conkey[1] WHERE k.contype = 'p' AND cardinality(k.conkey) = 1"
            ).fetchall()
        }
    for x in found:  # relations by convention: <thing>_id with a table <thing>s / <thing> keyed by one column
        declared = {fk[0] for fk in x.fks}
        for c in x.columns:
            if not c.name.endswith("_id") or c.name in declared or c.is_pk:
                continue
            stem = c.name[:-3]
            for cand in (stem + "s", stem + "es", stem[:-1] + "ies" if stem.endswith("y") else None, stem):
                if cand and (x.schema, cand) in everything and (x.schema, cand) in pks:
                    x.fks.append(
                        (
                            c.name,
                            x.schema,
                            cand,
                            pks[(x.schema, cand)],
                            "by naming convention (no FOREIGN KEY declared)",
                        )
                    )
                    break
    return found


def _exp(typ: str, kwargs: dict[str, Any], fact: str, title: str, seed: str, **meta: Any) -> dict[str, Any]:
    return {"type": typ, "kwargs": kwargs, "meta": {"golive": {"fact": fact, "title": title, "seed": [seed], **meta}}}


def _fact(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "column"


def suite_for(table: Table) -> dict[str, Any]:
    """The starter suite dict of one table."""
    exps: list[dict[str, Any]] = []
    sensitive = [c.name for c in table.columns if SENSITIVE_NAME_RE.search(c.name)]
    t = table.qualified
    for c in table.columns:
        if c.not_null and not c.is_pk:
            exps.append(
                _exp(
                    "expect_column_values_to_not_be_null",
                    {"column": c.name},
                    f"{_fact(c.name)}_not_null",
                    f"{t}.{c.name} has no NULLs",
                    QUALITY,
                )
            )
    for c in table.columns:
        name, is_text = c.name.lower(), c.type in _TEXT_TYPES
        if not is_text:
            continue
        if re.search(r"(^|_)e?mail(_address)?$", name):
            exps.append(
                _exp(
                    "expect_column_values_to_match_regex",
                    {"column": c.name, "regex": EMAIL_REGEX},
                    f"{_fact(c.name)}_format",
                    f"{t}.{c.name} holds valid email addresses",
                    QUALITY,
                )
            )
        elif re.search(r"(^|_)(phone|mobile|phone_number|msisdn)$", name):
            exps.append(
                _exp(
                    "expect_column_values_to_match_regex",
                    {"column": c.name, "regex": PHONE_REGEX},
                    f"{_fact(c.name)}_format",
                    f"{t}.{c.name} holds E.164 phone numbers",
                    QUALITY,
                )
            )
        elif re.search(r"(^|_)(url|uri|website|homepage|link)$", name):
            exps.append(
                _exp(
                    "expect_column_values_to_match_regex",
                    {"column": c.name, "regex": URL_REGEX},
                    f"{_fact(c.name)}_format",
                    f"{t}.{c.name} holds http(s) URLs",
                    QUALITY,
                )
            )
        elif re.search(r"(^|_)(password|passwd|pwd)(_|$)", name):
            exps.append(
                _exp(
                    "expect_column_values_to_match_like_pattern_list",
                    {"column": c.name, "like_pattern_list": PASSWORD_LIKE, "match_on": "any"},
                    "password_format" if name.startswith("password") else f"{_fact(c.name)}_format",
                    f"{t}.{c.name} holds bcrypt/argon2 hashes (no plaintext, MD5 or SHA1)",
                    QUALITY,
                )
            )
    ts = [c.name for c in table.columns if c.name in ("created_at", "updated_at") and c.type.startswith("timestamp")]
    for col in ts:
        exps.append(
            _exp(
                "expect_column_values_to_be_between",
                {"column": col, "max_value": {"$PARAMETER": NOT_FUTURE}},
                f"{col}_not_future",
                f"No {t}.{col} in the future",
                TIMESTAMPS,
            )
        )
    if len(ts) == 2:
        exps.append(
            _exp(
                "expect_column_pair_values_a_to_be_greater_than_b",
                {"column_A": "updated_at", "column_B": "created_at", "or_equal": True},
                "created_before_updated",
                f"{t}: created_at <= updated_at in every row",
                TIMESTAMPS,
            )
        )
    if ts:  # an indexed column answers max() from the index instead of a scan
        col = next(
            (c for c in ("updated_at", "created_at") if c in ts and c in table.indexed),
            "updated_at" if "updated_at" in ts else ts[0],
        )
        what = "created" if col == "created_at" else "written"
        exps.append(
            _exp(
                "expect_column_max_to_be_between",
                {"column": col, "min_value": {"$PARAMETER": RECENT}},
                "recent_rows",
                f"{t} has rows {what} in the last 7 days",
                TIMESTAMPS,
                severity="advisory",
            )
        )
    for col, pschema, ptable, pcol, how in table.fks:
        kwargs: dict[str, Any] = {"column": col, "parent_table": ptable, "parent_column": pcol}
        if pschema != "public":  # unqualified names resolve through the search_path
            kwargs["parent_schema"] = pschema
        exps.append(
            _exp(
                "expect_column_values_to_exist_in_parent_table",
                kwargs,
                f"{_fact(col)}_fk",
                f"Every {t}.{col} has its {ptable} row (no orphans; {how})",
                INTEGRITY,
            )
        )
    keys = [c.name for c in table.columns if c.is_pk]
    meta: dict[str, Any] = {
        "table": t,
        "title": t.replace("_", " ").capitalize(),
        "severity": "blocking",
        "key_columns": keys if len(keys) == 1 and keys[0] not in sensitive else [],
        "sensitive_columns": sensitive,
        "timeout": 30,
    }
    return {
        "name": _fact(table.name if table.schema == "public" else f"{table.schema}_{table.name}"),
        "meta": {"golive": meta},
        "expectations": exps,
    }


def scaffold(
    t: PostgresTarget,
    out_dir: Path | str,
    *,
    tables: Iterable[str] = (),
    schemas: Iterable[str] = (),
    force: bool = False,
) -> tuple[list[Path], list[Path]]:
    """Write one starter suite per table into `out_dir`; (written, skipped because they exist)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for table in inspect_schema(t, tables=tables, schemas=schemas):
        suite = suite_for(table)
        if not suite["expectations"]:
            continue
        path = out / f"{suite['name']}.json"
        if path.exists() and not force:
            skipped.append(path)
            continue
        path.write_text(dump_suite(suite), encoding="utf-8")
        written.append(path)
    return written, skipped
