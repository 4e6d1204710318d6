"""Run one suite file against PostgreSQL with Great Expectations 1.x, and turn its results into golive observations.

One suite run = one ephemeral GX context, one PostgreSQL data source built from the environment's `postgres`
config, one whole-table batch, one `validate`, a few example ids for the failed expectations, and the engines
disposed. The readiness flow runs it once per suite through the run's memo; each check of the suite then picks its
own expectation's result (`SuiteRun.observation`).

What keeps it cheap and safe (measured; see docs/architecture.md and expectations/README.md):
- result format BASIC with `partial_unexpected_count: 0`: counts only, no rescans for sample values (GX still
  sends its sample queries, with LIMIT 0: PostgreSQL answers them without scanning);
- example ids are fetched only for failed expectations, and only the key columns (`key_columns`) are selected:
  no value of any column, sensitive or not, ever leaves the database;
- suite parameters are resolved by golive before GX sees the suite (GX's expression parser is not thread-safe);
- every transaction GX opens is READ ONLY with a statement_timeout inside the check's budget; both SQLAlchemy
  engines GX creates are disposed at the end, whatever happened;
- at most `MAX_CONCURRENT_SUITES` suites validate at the same time in one process.

Great Expectations is imported inside the functions: importing it costs 2-3 s. The checks call this runner through
`worker.run_suite`, which runs it in the suite worker process (expectations/worker.py).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from golive.tasks.core import Observation, Status
from golive.tasks.models import libpq_tls
from golive.tasks.postgres import PostgresTarget, dsn_for_evidence

from .suites import Expect, Suite, display_path, lint_suite, resolve_parameters

EXAMPLES = 5
MAX_CONCURRENT_SUITES = 4
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_SUITES)
MASKED = "*** (sensitive column: value not shown)"
#: counts without sample values (GX's default rescans the table per expectation to collect samples)
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
#: result keys that can hold row values: dropped from everything golive keeps (Data Docs included)
_SAMPLE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_index_list",
    "partial_unexpected_counts",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_rows",
    "details",
)


@dataclass
class SuiteRun:
    """The outcome of one suite run: an observation (or the error) per fact, and what Data Docs need."""

    suite: Suite
    outcomes: dict[str, Observation | Exception]
    resolved: dict[str, Any] = field(default_factory=dict)  # the suite dict with parameters resolved
    duration_s: float = 0.0
    gx_version: str = ""
    sensitive: set[str] = field(default_factory=set)
    result: Any = field(default=None, repr=False)  # GX's ExpectationSuiteValidationResult
    _validation: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def validation(self) -> dict[str, Any]:
        """The GX validation result as JSON, every sample of row values removed (built on first use: only Data
        Docs need it)."""
        if self._validation is None:
            self._validation = (
                _without_samples(self.result.to_json_dict(), self.suite, self.sensitive)
                if self.result is not None
                else {}
            )
        return self._validation

    def observation(self, fact: str) -> Observation:
        out = self.outcomes[fact]
        if isinstance(out, Exception):
            raise out
        return out


class SuiteRunError(RuntimeError):
    """The suite could not run at all (connection, missing table, invalid file): every check of it is ERROR."""


def _url(t: PostgresTarget, timeout: float) -> tuple[str, dict[str, Any]]:
    """The SQLAlchemy URL (no password in it) and the engine kwargs that carry the password."""
    from sqlalchemy.engine import URL

    url = URL.create(
        "postgresql+psycopg",
        username=t.user,
        host=t.host,
        port=t.port,
        database=t.dbname,
        query={**libpq_tls(t), "application_name": "golive-gx"},
    )
    connect_args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(timeout))}
    if t.password is not None:
        connect_args["password"] = t.password.get_secret_value()
    return url.render_as_string(hide_password=False), {"connect_args": connect_args}


class _Watchdog:
    """Shuts down the sockets of every connection of the watched engines just after the deadline: a server that
    stops answering mid-query (statement_timeout cannot help there) cannot keep the suite's thread forever
    (psycopg has no read timeout of its own; tasks.postgres.connect does the same for the SQL checks)."""

    def __init__(self, deadline: float):
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()) + 0.25, self._abort)
        self._timer.daemon = True
        self.fired = False

    def watch(self, conn: Any) -> None:
        """Watch this psycopg connection (called at the start of every transaction)."""
        with self._lock:
            if self.fired:
                self._shutdown(conn)
            elif not any(c is conn for c in self._conns):
                self._conns.append(conn)

    def start(self) -> _Watchdog:
        self._timer.start()
        return self

    def _abort(self) -> None:
        with self._lock:
            self.fired = True
            for conn in self._conns:
                self._shutdown(conn)

    @staticmethod
    def _shutdown(conn: Any) -> None:
        from golive.tasks.postgres import shutdown_socket

        shutdown_socket(conn)

    def cancel(self) -> None:
        self._timer.cancel()


def _guard(engine: Any, deadline: float, watchdog: _Watchdog | None = None) -> None:
    """Every transaction on `engine`: READ ONLY, a statement_timeout ending at the check's deadline (both
    transaction-local: safe behind PgBouncer in transaction pooling), and its connection under the watchdog."""
    from sqlalchemy import event

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        driver = conn.connection.driver_connection
        if watchdog is not None:
            watchdog.watch(driver)
        ms = max(1, int((deadline - time.monotonic()) * 1000))
        # one round trip (simple query protocol: no parameters), before anything else in the transaction
        driver.execute(f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '{ms}ms'")


def project_config() -> Any:
    """An in-memory GX project: no docs site (not even a temporary one), no progress bars."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )


def ephemeral_context() -> Any:
    """A GX context that lives in memory only (never a `gx/` folder, whatever the working directory holds)."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral", project_config=project_config())
    # An ephemeral context re-serialises its whole config to YAML (into memory) on every datasource and asset it
    # adds, and nothing reads it back: ~25 ms each, three times per suite run. Skip it on our own instance.
    if hasattr(context, "_save_project_config"):
        context._save_project_config = lambda *args, **kwargs: None
    return context


def _quiet_gx() -> None:
    import logging

    # GX logs a traceback at ERROR for things golive reports itself (a failed metric, a bad config)
    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)


def run_suite(
    suite: Suite,
    t: PostgresTarget,
    *,
    timeout: float = 30.0,
    now: datetime | None = None,
    sensitive_columns: Iterable[str] = (),
) -> SuiteRun:
    """Validate `suite` against the database of `t`. Raises SuiteError / SuiteRunError when it cannot run."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    now = now or datetime.now(UTC)
    resolved = resolve_parameters(suite.raw, now)  # before any GX code runs: no shared parser involved
    if not _SLOTS.acquire(timeout=max(0.05, deadline - time.monotonic())):
        raise TimeoutError(f"no free suite slot within {timeout:g}s ({MAX_CONCURRENT_SUITES} suites at a time)")
    try:
        return _run(suite, t, resolved, deadline, t0, set(sensitive_columns))
    finally:
        _SLOTS.release()


def _run(suite: Suite, t: PostgresTarget, resolved: dict, deadline: float, t0: float, sensitive: set[str]) -> SuiteRun:
    import great_expectations as gx

    _quiet_gx()
    gx_suite = lint_suite(suite, resolved)  # raises SuiteError naming the file and field
    context = ephemeral_context()
    url, engine_kwargs = _url(t, deadline - time.monotonic())
    engines: list[Any] = []
    watchdog = _Watchdog(deadline).start()
    try:
        try:
            ds = context.data_sources.add_postgres(
                name=f"golive-{suite.name}", connection_string=url, kwargs=engine_kwargs
            )
            execution_engine = ds.get_execution_engine()
            engines += [ds.get_engine(), execution_engine.engine]  # GX builds two; both get the guard
            for eng in engines:
                _guard(eng, deadline, watchdog)
            asset = ds.add_table_asset(name=suite.name, table_name=suite.table_name, schema_name=suite.schema_name)
            batch = asset.add_batch_definition_whole_table("whole table").get_batch()
        except Exception as e:  # noqa: BLE001 - connection / table problems: the suite cannot run
            raise SuiteRunError(_one_line(e)) from None
        result_format: dict[str, Any] = dict(RESULT_FORMAT)
        if suite.key_columns:
            result_format.update(
                unexpected_index_column_names=list(suite.key_columns), return_unexpected_index_query=True
            )
        try:
            validation = batch.validate(gx_suite, result_format=result_format)
        except Exception as e:  # noqa: BLE001 - e.g. the statement_timeout: every check of the suite says why
            raise SuiteRunError(f"GX validation of suite {suite.name} failed: {_one_line(e)}") from None
        if watchdog.fired:
            raise SuiteRunError(
                f"timed out: no answer from {t.host}:{t.port} within the suite's budget (connections closed by golive)"
            )
        by_fact = {(r.expectation_config.meta or {}).get("golive", {}).get("fact"): r for r in validation.results}
        run = SuiteRun(
            suite=suite,
            outcomes={},
            resolved=resolved,
            gx_version=gx.__version__,
            sensitive=sensitive,
            result=validation,
        )
        evidence_at = f"table {suite.table} on {dsn_for_evidence(t)}"
        for e in suite.expectations:
            r = by_fact.get(e.fact)
            try:
                if r is None:
                    raise SuiteRunError(f"GX returned no result for {e.type} ({e.fact})")
                examples, example_sql = ([], None) if r.success else _examples_or_none(execution_engine, suite, e, r)
                run.outcomes[e.fact] = _observe(
                    suite, e, r, examples, example_sql, evidence_at, sensitive, gx.__version__
                )
            except Exception as err:  # noqa: BLE001 - one expectation's problem stays with its check
                run.outcomes[e.fact] = err if isinstance(err, SuiteRunError) else SuiteRunError(_one_line(err))
        run.duration_s = round(time.monotonic() - t0, 3)
        return run
    finally:
        watchdog.cancel()
        for eng in engines:
            eng.dispose()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    cut = text.find("[SQL:")  # SQLAlchemy appends the statement and a background link: keep the cause
    return (text[:cut].strip() if cut > 0 else text)[:500] or type(e).__name__


# --------------------------------------------------------------------------- examples of failures

_PY_DATETIME = re.compile(r"datetime\.datetime\((\d+(?:, \d+){2,6})(?:, tzinfo=datetime\.timezone\.utc)?\)")


def _sql_literals(query: str) -> str:
    """GX renders datetime parameters of its unexpected-rows query as Python reprs (`datetime.datetime(2026, ...)`);
    turn them back into SQL literals."""

    def lit(m: re.Match) -> str:
        parts = [int(x) for x in m.group(1).split(", ")]
        tz = UTC if "tzinfo" in m.group(0) else None
        return f"'{datetime(*parts, tzinfo=tz).isoformat()}'"  # type: ignore[misc]

    return _PY_DATETIME.sub(lit, query)


def _examples_or_none(execution_engine: Any, suite: Suite, e: Expect, r: Any) -> tuple[list[Any], str | None]:
    """Example ids are extra evidence: a problem fetching them never changes the expectation's result."""
    try:
        return _examples(execution_engine, suite, e, r)
    except Exception as err:  # noqa: BLE001
        return [], f"(example ids unavailable: {_one_line(err)[:200]})"


def _examples(execution_engine: Any, suite: Suite, e: Expect, r: Any) -> tuple[list[Any], str | None]:
    """Up to EXAMPLES key values of failing rows (never a value of the checked column), and the SQL listing them."""
    if not suite.key_columns:
        return [], None
    from sqlalchemy import table

    dialect = execution_engine.engine.dialect
    quote = dialect.identifier_preparer.quote
    keys = ", ".join(quote(k) for k in suite.key_columns)
    result = r.result or {}
    if e.type == "expect_column_values_to_exist_in_parent_table":
        from .custom import orphan_select

        kw = r.expectation_config.kwargs
        child = table(suite.table_name, schema=suite.schema_name)
        query = orphan_select(
            child,
            dialect,
            kw["column"],
            kw["parent_table"],
            kw.get("parent_column") or "id",
            kw.get("parent_schema"),
            select=lambda col: [col(k) for k in suite.key_columns],
        )
        listing = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        sql = str(query.limit(EXAMPLES).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    elif result.get("unexpected_index_query"):
        listing = _sql_literals(str(result["unexpected_index_query"]).strip().rstrip(";"))
        sql = f"SELECT {keys} FROM ({listing}) AS golive_unexpected LIMIT {EXAMPLES}"
    else:
        return [], None  # an aggregate expectation (max, type, row count): no rows to point at
    with execution_engine.engine.connect() as conn, conn.begin():  # begin: _guard's READ ONLY + statement_timeout
        rows = conn.connection.driver_connection.execute(sql).fetchall()  # no parameters: `%` stays literal
    ids = [
        _clipped(row[0]) if len(suite.key_columns) == 1 else {k: _clipped(v) for k, v in zip(suite.key_columns, row)}
        for row in rows
    ]
    return ids, " ".join(listing.split())


# --------------------------------------------------------------------------- results -> observations


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v.astimezone(UTC) if v.tzinfo else v).isoformat().replace("+00:00", "Z")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x) for x in v]
    return str(v)


def _clipped(v: Any, limit: int = 200) -> Any:
    """A key value as evidence: an id, not a document (a key column could hold megabytes)."""
    v = _jsonable(v)
    return v[:limit] + "..." if isinstance(v, str) and len(v) > limit else v


def _fmt(v: Any) -> str:
    if isinstance(v, Mapping) and set(v) == {"$PARAMETER"}:  # an unresolved suite parameter (the catalog)
        return str(v["$PARAMETER"])
    v = _jsonable(v)
    return v if isinstance(v, str) else json.dumps(v)


def expected_text(e: Expect, kwargs: Mapping[str, Any]) -> str:
    """The condition an expectation holds the data to, readable (`every phone matches ^\\+[1-9]...`)."""
    kw = kwargs
    col = kw.get("column")
    mostly = f" (at least {kw['mostly']:.0%} of rows)" if kw.get("mostly") not in (None, 1, 1.0) else ""

    def between(subject: str) -> str:
        lo, hi = kw.get("min_value"), kw.get("max_value")
        if lo is not None and hi is not None:
            return f"{subject} between {_fmt(lo)} and {_fmt(hi)}"
        if lo is not None:
            return f"{subject} {'>' if kw.get('strict_min') else '>='} {_fmt(lo)}"
        return f"{subject} {'<' if kw.get('strict_max') else '<='} {_fmt(hi)}"

    phrases = {
        "expect_column_values_to_not_be_null": lambda: f"no NULL in {col}",
        "expect_column_values_to_match_regex": lambda: f"every {col} matches {kw.get('regex')}",
        "expect_column_values_to_match_like_pattern_list": lambda: (
            f"every {col} is LIKE {'one of' if kw.get('match_on', 'any') == 'any' else 'all of'} "
            f"{', '.join(kw.get('like_pattern_list') or [])}"
        ),
        "expect_column_values_to_be_between": lambda: between(f"every {col}"),
        "expect_column_max_to_be_between": lambda: between(f"max({col})"),
        "expect_column_min_to_be_between": lambda: between(f"min({col})"),
        "expect_column_values_to_be_of_type": lambda: f"{col} is {kw.get('type_')}",
        "expect_column_pair_values_a_to_be_greater_than_b": lambda: (
            f"{kw.get('column_A')} {'>=' if kw.get('or_equal') else '>'} {kw.get('column_B')} in every row"
        ),
        "expect_column_values_to_be_unique": lambda: f"every {col} is unique",
        "expect_column_values_to_be_in_set": lambda: f"every {col} in {_fmt(kw.get('value_set'))}",
        "expect_table_row_count_to_be_between": lambda: between("row count"),
        "expect_column_values_to_exist_in_parent_table": lambda: (
            f"every {col} exists in {kw.get('parent_table')}.{kw.get('parent_column') or 'id'} (0 orphaned rows)"
        ),
    }
    phrase = phrases.get(e.type)
    if phrase is not None:
        return phrase() + mostly
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in kw.items() if k != "batch_id")
    return f"{e.type}({args})"


def _observe(
    suite: Suite,
    e: Expect,
    r: Any,
    examples: list[Any],
    example_sql: str | None,
    evidence_at: str,
    sensitive: set[str],
    gx_version: str,
) -> Observation:
    info = r.exception_info or {}
    if info.get("raised_exception"):
        raise SuiteRunError(f"GX could not evaluate {e.type}: {_one_line(Exception(info.get('exception_message')))}")
    kwargs = {k: v for k, v in (r.expectation_config.kwargs or {}).items() if k != "batch_id"}
    res = r.result or {}
    masked = any(suite.is_sensitive(c, sensitive) for c in e.columns)
    details: dict[str, Any] = {
        "suite": suite.name,
        "suite_file": display_path(suite.path),
        "table": suite.table,
        "expectation": {"type": e.type, "kwargs": _jsonable(kwargs)},
    }
    if "unexpected_count" in res:
        n, total = res.get("unexpected_count") or 0, res.get("element_count") or 0
        observed = f"{n} of {total} rows unexpected"
        if res.get("missing_count"):
            observed += f" ({res['missing_count']} NULL, not counted)"
        details.update(unexpected_count=n, element_count=total, unexpected_percent=res.get("unexpected_percent"))
    elif e.type == "expect_column_values_to_exist_in_parent_table":
        n = res.get("observed_value") or 0
        observed = f"{n} orphaned row{'s' if n != 1 else ''}"
        details.update(unexpected_count=n)
    else:
        v = res.get("observed_value")
        observed = MASKED if masked and not isinstance(v, (int, float)) else _fmt(v)
        details.update(observed_value=observed if masked else _jsonable(v))
    if examples:
        label = suite.key_columns[0] if len(suite.key_columns) == 1 else "keys"
        observed += f"; e.g. {label} {', '.join(_fmt(x) for x in examples)}"
        details["example_ids"] = examples
    evidence = (
        f"Great Expectations {gx_version} `{e.type}` {json.dumps(_jsonable(kwargs))} "
        f"(suite {suite.name}, {display_path(suite.path)}) on {evidence_at}"
    )
    if example_sql and example_sql.startswith("(example ids unavailable"):
        evidence += f" {example_sql}"
    elif example_sql:
        evidence += f"; failing rows: `{example_sql}`"
        details["unexpected_rows_query"] = example_sql
    status = Status.PASS if r.success else Status.FAIL
    return Observation(
        status=status, observed=observed, expected=expected_text(e, kwargs), evidence=evidence, details=details
    )


def _without_samples(validation: dict[str, Any], suite: Suite, sensitive: set[str]) -> dict[str, Any]:
    """The GX validation result with every sample of row values removed (and sensitive observed values masked):
    what Data Docs are built from."""
    for r in validation.get("results", []):
        res = r.get("result") or {}
        for k in _SAMPLE_KEYS:
            res.pop(k, None)
        kw = (r.get("expectation_config") or {}).get("kwargs") or {}
        cols = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]
        if (
            "observed_value" in res
            and not isinstance(res["observed_value"], (int, float))
            and any(isinstance(c, str) and suite.is_sensitive(c, sensitive) for c in cols)
        ):
            res["observed_value"] = MASKED
        info = r.get("exception_info") or {}
        if info.get("exception_traceback"):
            info["exception_traceback"] = None
    return validation
