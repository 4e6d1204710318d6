"""Great Expectations Data Docs of a readiness run, linked from the Prefect run as a link artifact.

Only when the environment sets `postgres.data_docs_dir` (and, to copy them to S3, `postgres.data_docs_s3_url`).
Built from the results the data checks already have (the suite runs in the run's memo): nothing is re-run, and the
pages hold counts and aggregates only, never a row value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from golive.tasks.core import CheckSpec, Memo, Redactor

from . import artifacts
from .config import GoliveConfig


def _suite_runs(specs: Mapping[str, CheckSpec], memo: Memo, cfg: GoliveConfig) -> list[Any]:
    from golive.expectations import suite_names, suite_run_key
    from golive.expectations.runner import SuiteRun

    runs: list[Any] = []
    if cfg.postgres is None:  # no suite runs without a database (each lookup would fail: none is kept)
        return runs
    for name in sorted(suite_names(specs)):
        try:
            run = memo.get(suite_run_key(name, cfg.postgres), lambda: None)  # None: the suite did not run
        except Exception:  # noqa: BLE001 - the suite failed to run: its checks already say why
            continue
        if isinstance(run, SuiteRun):
            runs.append(run)
    return runs


async def publish_data_docs(cfg: GoliveConfig, specs: Mapping[str, CheckSpec], memo: Memo, stamp: str) -> str | None:
    """Build the run's Data Docs under <data_docs_dir>/<environment>/<stamp>/ and link them; the URL or None."""
    pg = cfg.postgres
    if pg is None or not pg.data_docs_dir:
        return None
    logger = get_run_logger()
    runs = _suite_runs(specs, memo, cfg)
    if not runs:
        return None
    from golive.expectations.docs import build_data_docs, upload

    directory = Path(pg.data_docs_dir) / cfg.environment / stamp
    try:
        index = await asyncio.to_thread(build_data_docs, runs, directory, run_name=f"golive-{cfg.environment}")
        if index is None:
            return None
        url = index.as_uri()
        if pg.data_docs_s3_url:
            url = await asyncio.to_thread(
                upload, directory, f"{pg.data_docs_s3_url.rstrip('/')}/{cfg.environment}/{stamp}"
            )
    except Exception as e:  # noqa: BLE001 - Data Docs are extra evidence: the verdict stands without them
        logger.warning("Data Docs were not built: %s", Redactor(cfg.secrets()).clip(f"{type(e).__name__}: {e}", 300))
        return None
    await artifacts.publish(
        "data-docs",
        cfg.environment,
        f"[Data Docs: {len(runs)} suites]({url})",
        "Great Expectations Data Docs of the data-integrity suites (section 3)",
    )
    logger.info("Data Docs of %d suites: %s", len(runs), url)
    return url
