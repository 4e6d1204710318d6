"""Running checks in the tests: one check or several through the real runner, a config with one section changed,
the sandbox's config, and the assertions every check test makes on results (JSON, no secret). No tests in here."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from golive.tasks.catalog import load_catalog
from golive.tasks.core import CheckResult, CheckSpec, Redactor, Status, collect_secrets, execute, run_plain, select

CATALOG = load_catalog()


# --------------------------------------------------------------------------- running checks


def run_one(check_id: str, config: Any, *, timeout: float | None = None, memo: Any = None) -> CheckResult:
    """One check through the real runner (`execute`), optionally with a shorter timeout."""
    spec = CATALOG[check_id]
    if timeout is not None:
        spec = dataclasses.replace(spec, timeout=timeout)
    return asyncio.run(execute(spec, config, redact=Redactor(collect_secrets(config)), memo=memo))


def run_ids(ids: list[str], config: Any, *, timeouts: Mapping[str, float] | None = None) -> dict[str, CheckResult]:
    """Several checks (and nothing else) through `run_plain`, dependencies honoured."""
    specs: dict[str, CheckSpec] = {}
    for i in ids:
        s = CATALOG[i]
        if timeouts and i in timeouts:
            s = dataclasses.replace(s, timeout=timeouts[i])
        specs[i] = s
    return {r.id: r for r in run_plain(specs, config)}


def run_dag(ids: list[str], config: Any, *, timeouts: Mapping[str, float] | None = None) -> dict[str, CheckResult]:
    """`ids` and every check they depend on (e.g. dependencies.postgres.reachable), through `run_plain` (one memo:
    the RTO reads the restore's)."""
    return run_ids(list(select(CATALOG, ids=ids)), config, timeouts=timeouts)


def as_json(results: Any) -> str:
    if isinstance(results, CheckResult):
        results = [results]
    if isinstance(results, Mapping):
        results = list(results.values())
    return json.dumps([r.model_dump(mode="json") for r in results])


def assert_all_passed_with_evidence(res: Mapping[str, CheckResult], ids: list[str]) -> None:
    """Every check of `ids` PASSed, each with its evidence, observed and expected values."""
    bad = {i: f"{res[i].status.value}: {res[i].summary}" for i in ids if res[i].status != Status.PASS}
    assert not bad, bad
    for i in ids:
        r = res[i]
        assert r.evidence and r.expected is not None and r.observed is not None, i


def assert_no_secrets(results: Any, config: Any) -> None:
    blob = as_json(results)
    secrets = [s for s in collect_secrets(config) if s]
    assert secrets, "the config under test carries no secret: the assertion would prove nothing"
    for s in secrets:
        assert s not in blob, "a secret value leaked into a result"


def with_(config: Any, section: str, **changes: Any) -> Any:
    """A copy of the config whose `section` has `changes` (validated again: the models are frozen)."""
    from golive.flows.config import GoliveConfig

    data = _unsecret(config.model_dump())
    data[section] = {**(data.get(section) or {}), **_unsecret(changes)}
    return GoliveConfig.model_validate(data)


def _unsecret(o: Any) -> Any:
    from pydantic import SecretStr

    if isinstance(o, SecretStr):
        return o.get_secret_value()
    if isinstance(o, dict):
        return {k: _unsecret(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_unsecret(v) for v in o]
    return o


# --------------------------------------------------------------------------- the shared sandbox


def sandbox_config(sandbox: Any) -> Any:
    """The sandbox's environment config, loaded like production loads its own (YAML + ${VAR})."""
    from golive.flows.config import load_config

    return load_config(sandbox.config_path, env=sandbox.env)
