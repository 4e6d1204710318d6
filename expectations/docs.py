"""Great Expectations Data Docs of one readiness run, built from the suite runs' results (nothing is re-run).

The validation results kept by the runner carry counts and observed aggregates only: every sample of row values
was removed and the observed values of sensitive columns masked (`runner._without_samples`), so the pages show
no row value. Built into a local folder; optionally copied to S3 (`s3://bucket/prefix`).
"""

from __future__ import annotations

import copy
import mimetypes
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .runner import SuiteRun

SITE = "golive"


def build_data_docs(runs: Iterable[SuiteRun], directory: Path | str, *, run_name: str | None = None) -> Path | None:
    """Render Data Docs for `runs` under `directory`; the path of index.html (None when there is nothing)."""
    runs = [r for r in runs if r.validation]
    if not runs:
        return None
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from . import custom  # noqa: F401  (golive's expectation types must be known to render their pages)
    from .runner import _quiet_gx, ephemeral_context

    _quiet_gx()
    out = Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = ephemeral_context()
    context.add_data_docs_site(
        SITE,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    run_id = RunIdentifier(run_name=run_name or "golive", run_time=datetime.now(UTC))
    for r in runs:
        suite = ExpectationSuite(**_renderable(r.resolved))
        context.suites.add(suite)
        result = ExpectationSuiteValidationResult(**_renderable(r.validation))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(suite.name),
            run_id=run_id,
            batch_identifier=r.suite.table,
        )
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=[SITE])
    index = out / "index.html"
    return index if index.exists() else None


def _renderable(d: dict[str, Any]) -> dict[str, Any]:
    """GX's schemas reject a few keys its own `to_json_dict` writes (ids); drop them."""
    d = copy.deepcopy(d)
    d.pop("id", None)
    for e in d.get("expectations", []):
        e.pop("id", None)
    return d


def upload(directory: Path | str, s3_url: str, *, endpoint_url: str | None = None) -> str:
    """Copy the Data Docs folder to `s3://bucket/prefix/`; the URL of its index.html."""
    import boto3

    if not s3_url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {s3_url!r}")
    bucket, _, prefix = s3_url[5:].partition("/")
    prefix = prefix.strip("/")
    client = boto3.client("s3", endpoint_url=endpoint_url)
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = "/".join(filter(None, [prefix, path.relative_to(root).as_posix()]))
        client.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"ContentType": mimetypes.guess_type(path.name)[0] or "application/octet-stream"},
        )
    return f"s3://{bucket}/{'/'.join(filter(None, [prefix, 'index.html']))}"
