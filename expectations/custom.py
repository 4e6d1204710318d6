"""golive's own Great Expectations expectation: no orphaned rows for a (declared or conventional) foreign key.

GX 1.x has no referential-integrity expectation; its generic `unexpected_rows_expectation` runs the query twice
(once to count, once to fetch up to 200 rows), so an orphan check over a million rows costs two anti-joins and
pulls rows into Python. `expect_column_values_to_exist_in_parent_table` runs ONE `count(*)` anti-join
(`NOT EXISTS`, which PostgreSQL plans as a hash anti join) and returns the count; the runner fetches a few example
ids itself, and only when the count is not 0.

Importing this module imports GX and registers the expectation type (the suite linter and the runner do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

ORPHAN_COUNT = "golive.column_values.orphan_count"
FK_TYPE = "expect_column_values_to_exist_in_parent_table"


def orphan_select(
    selectable: Any,
    dialect: Any,
    column: str,
    parent_table: str,
    parent_column: str = "id",
    parent_schema: str | None = None,
    select: Callable[[Callable[[str], Any]], Sequence[Any]] = lambda col: [sa.func.count()],
) -> Any:
    """SELECT <select(col)> FROM <batch> AS golive_child WHERE column IS NOT NULL AND NOT EXISTS (parent row).

    `select` gets a function that names a column of the child row (quoted) and returns the select list."""
    quote = dialect.identifier_preparer.quote
    child = (
        selectable.subquery("golive_child")
        if isinstance(selectable, sa.sql.Select)
        else selectable.alias("golive_child")
    )

    def col(name: str) -> Any:
        return sa.literal_column(f"golive_child.{quote(name)}")

    parent = sa.table(parent_table, sa.column(parent_column), schema=parent_schema).alias("golive_parent")
    orphan = sa.and_(col(column).isnot(None), ~sa.exists().where(parent.c[parent_column] == col(column)))
    return sa.select(*select(col)).select_from(child).where(orphan)


class ColumnValuesOrphanCount(TableMetricProvider):
    """Rows whose non-NULL `column` has no row in `parent_table` with that `parent_column`."""

    metric_name = ORPHAN_COUNT
    value_keys = ("column", "parent_table", "parent_column", "parent_schema")

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict,
        runtime_configuration: dict,
    ) -> int:
        selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        v = metric_value_kwargs
        query = orphan_select(
            selectable,
            execution_engine.engine.dialect,
            v["column"],
            v["parent_table"],
            v.get("parent_column") or "id",
            v.get("parent_schema"),
        )
        return int(execution_engine.execute_query(query).scalar() or 0)


class ExpectColumnValuesToExistInParentTable(BatchExpectation):
    """Expect every non-NULL value of `column` to exist as `parent_table.parent_column` (no orphaned rows).

    Works whether or not a FOREIGN KEY is declared: for relations declared NOT VALID, for constraints disabled
    during a bulk load, and for relations that exist only by naming convention. One `count(*)` anti-join."""

    column: str
    parent_table: str
    parent_column: str = "id"
    parent_schema: str | None = None

    metric_dependencies: ClassVar[tuple[str, ...]] = (ORPHAN_COUNT,)
    domain_keys: ClassVar[tuple[str, ...]] = ("batch_id", "row_condition", "condition_parser")
    success_keys: ClassVar[tuple[str, ...]] = ("column", "parent_table", "parent_column", "parent_schema")
    args_keys: ClassVar[tuple[str, ...]] = ("column", "parent_table", "parent_column")

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine: Any = None) -> dict:
        orphans = metrics[ORPHAN_COUNT]
        return {"success": orphans == 0, "result": {"observed_value": orphans}}
