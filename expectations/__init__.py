"""Checklist section 3 as Great Expectations suites kept as reviewed files (`expectations/suites/*.json`).

- `catalog_specs(suites_dir)`: one golive check per expectation, `data.<suite>.<fact>` (no GX import: plan time);
- `suites`: the suite file format, loading and the linter (`golive expectations lint`);
- `runner`: one suite run against PostgreSQL (GX imported there), its results as golive observations;
- `docs`: Data Docs built from the runs' results (no samples of row values in them);
- `scaffold`: starter suites written from a live schema (`golive expectations scaffold`).

Depends on `tasks` (the result model, the PostgreSQL target) and never on Prefect or `flows`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from golive.tasks.core import CheckSpec, Observation, RunContext
from golive.tasks.postgres import REACHABLE, PostgresTarget, dsn_for_evidence, register_table_source, table_prerequisite

from .suites import SUITES_DIR, Expect, Suite, SuiteError, load_suites

__all__ = [
    "SUITES_DIR",
    "Suite",
    "SuiteError",
    "catalog_specs",
    "load_suites",
    "prestart_worker",
    "suite_names",
    "suite_run_key",
]


def suite_run_key(suite_name: str, t: PostgresTarget) -> tuple[str, str, str]:
    """The run memo's key of one suite run (the DSN without its password)."""
    return ("gx", suite_name, dsn_for_evidence(t))


def suite_names(specs: Mapping[str, CheckSpec]) -> set[str]:
    """The suites behind the suite checks among `specs`."""
    return {
        s.body.args[0].name
        for s in specs.values()
        if isinstance(s.body, functools.partial) and s.body.func is _check_body
    }


def _check_body(suite: Suite, fact: str, t: PostgresTarget, ctx: RunContext) -> Observation:
    from .worker import run_suite

    missing = table_prerequisite(t, ctx, suite.table)  # one failure (dependencies.postgres.tables), not one per fact
    if missing is not None:
        return missing
    run = ctx.memo(
        suite_run_key(suite.name, t),
        lambda: run_suite(suite, t, timeout=ctx.remaining, sensitive_columns=t.sensitive_columns, ctx=ctx),
    )
    return run.observation(fact)


def prestart_worker(specs: Mapping[str, CheckSpec], ctx: RunContext) -> None:
    """Start the suite worker process now if `specs` will validate suites (a data check, or the restore test's
    suites on its copy): it imports Great Expectations while the run's light checks go on (expectations/worker.py)."""
    from golive.tasks.restore.target import TEST

    if suite_names(specs) or TEST in specs:
        from .worker import prestart

        prestart(ctx)


def suite_tables(t: PostgresTarget) -> list[str]:
    """The tables the environment's suites read (`postgres.suites_dir`, else the shipped suites)."""
    return [s.table for s in load_suites(t.suites_dir)]


def _description(suite: Suite, e: Expect) -> str:
    from .runner import expected_text

    return (
        f"Great Expectations `{e.type}` on `{suite.table}`: {expected_text(e, e.kwargs)} "
        f"(suite file `{suite.path.name}`)."
    )


def catalog_specs(suites_dir: str | Path | None = None) -> dict[str, CheckSpec]:
    """One check per expectation of every suite file: id `data.<suite>.<fact>`, target `postgres`, after
    `dependencies.postgres.reachable`. All checks of a suite share one suite run per readiness run (memo).
    Raises SuiteError (one line naming the file and the field) for a malformed file."""
    specs: dict[str, CheckSpec] = {}
    register_table_source("the data-integrity suites", suite_tables)
    for suite in load_suites(suites_dir):
        for e in suite.expectations:
            cid = f"data.{suite.name}.{e.fact}"
            specs[cid] = CheckSpec(
                id=cid,
                title=e.title,
                seed=e.seed,
                severity=e.severity,
                depends_on=(REACHABLE,),
                timeout=suite.timeout,
                target="postgres",
                body=functools.partial(_check_body, suite, e.fact),
                description=_description(suite, e),
                heavy=True,
                group=f"data.{suite.name}",
            )
    return specs
