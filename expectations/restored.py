"""The data-integrity suites run on the restored copy of the newest backup (seed 3.3 "Backup Recovery Test":
"verify data integrity after restore").

`backup.restore.test` restores the newest dump into a scratch database and calls every registered integrity suite
before it drops it (`tasks.restore.suites.register_restored_db_suite`). `gx_on_restored_copy` is that suite for the Great
Expectations files the readiness run already validates against production: the same files (the source target's
`suites_dir`), the same sensitive-column masking. A blocking expectation that fails on the copy fails the restore
test; an advisory one makes it a warning in the evidence. The flows register it (`flows.catalog`), so `tasks/`
never imports this package.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from golive.tasks.core import RunContext, Severity, Status
from golive.tasks.postgres import TABLES, table_status
from golive.tasks.restore.suites import RestoredDatabase, SuiteOutcome

from .suites import Suite, load_suites

NAME = "great-expectations"


def gx_on_restored_copy(db: RestoredDatabase, ctx: RunContext) -> SuiteOutcome:
    """Every suite file against the scratch database, side by side, within the restore test's remaining time."""
    from .runner import SuiteRun
    from .worker import run_suite

    target = db.as_target()
    on_source = table_status(db.source, ctx) if db.source is not None else {}
    not_run = {
        s.name: f"table {s.table} {on_source[s.table]} on the source ({TABLES})"
        for s in load_suites(target.suites_dir)
        if on_source.get(s.table, "ok") != "ok"
    }
    suites = [s for s in load_suites(target.suites_dir) if s.name not in not_run]
    t0 = time.monotonic()
    blocking: list[str] = []
    advisory: list[str] = []
    per_suite: dict[str, Any] = {}
    checked = 0
    if suites and ctx.remaining < 1.0:
        return SuiteOutcome(Status.ERROR, f"no time left for the {len(suites)} suites", {"suites": not_run})
    deadline = time.monotonic() + max(1.0, ctx.remaining - 0.5)  # one deadline for all of them

    def one(suite: Suite) -> SuiteRun:
        left = max(0.05, deadline - time.monotonic())
        return run_suite(suite, target, timeout=left, sensitive_columns=target.sensitive_columns, ctx=ctx)

    # side by side (the suite worker's slots bound how many validate at once); their results in file order
    with ThreadPoolExecutor(max_workers=max(1, len(suites)), thread_name_prefix="restored-suite") as pool:
        futures = [pool.submit(one, suite) for suite in suites]
    for suite, fut in zip(suites, futures):
        run = fut.result()  # (a suite that could not run: the restore test says why, tasks.restore.checks)
        bad = []
        for e in suite.expectations:
            out = run.outcomes[e.fact]
            checked += 1
            status = Status.ERROR if isinstance(out, Exception) else out.status
            if status in (Status.PASS, Status.NOT_APPLICABLE):
                continue
            line = f"data.{suite.name}.{e.fact} {status.value}"
            (advisory if e.severity == Severity.ADVISORY else blocking).append(line)
            bad.append(line)
        per_suite[suite.name] = "PASS" if not bad else bad
    took = round(time.monotonic() - t0, 2)
    details = {"suites": {**per_suite, **not_run}, "expectations": checked, "seconds": took}
    what = f"{checked} expectations of {len(suites)} suites on the restored copy in {took}s" + (
        f" (not run, their table missing on the source: {', '.join(not_run)})" if not_run else ""
    )
    if blocking:
        return SuiteOutcome(
            Status.FAIL,
            f"{len(blocking)} blocking expectation(s) fail on the restored copy: " + "; ".join(blocking[:5]),
            details,
        )
    if advisory:
        return SuiteOutcome(Status.WARN, f"{what}; advisory: " + "; ".join(advisory[:5]), details)
    return SuiteOutcome(Status.PASS, what, details)
