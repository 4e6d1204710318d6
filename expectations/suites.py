"""Suite files: Great Expectations suites kept as reviewed JSON files, with golive's metadata inside GX's `meta`.

A suite file is a GX 1.x suite dict (what `ExpectationSuite.to_json_dict()` writes and `ExpectationSuite(**d)`
reads), one per table, named like the suite (`users.json` holds suite `users`):

    {"name": "users",
     "meta": {"golive": {"table": "users", "title": "Users", "key_columns": ["id"],
                         "sensitive_columns": ["password_hash"], "severity": "blocking", "timeout": 30}},
     "expectations": [
       {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"},
        "meta": {"golive": {"fact": "email_not_null", "title": "...", "seed": ["3.1 Data Quality Checks"]}}}]}

Each expectation becomes one golive check `data.<suite>.<fact>`. Run-time values are GX suite parameters,
`{"$PARAMETER": "now()"}` or `{"$PARAMETER": "now() - timedelta(days=7)"}`, resolved by golive (not by GX's
expression parser, which is not thread-safe) before any suite runs.

This module reads and checks files without importing Great Expectations (the catalog needs it at plan time);
`lint` adds the checks only GX can make (the expectation type exists, every argument is one it takes, the values
validate) and imports GX inside the function.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from golive.tasks.core import Severity

SUITES_DIR = Path(__file__).with_name("suites")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FACT_RE = re.compile(r"^[a-z0-9_]+$")
TABLE_RE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$")
DEFAULT_TIMEOUT = 30.0
#: column names treated as sensitive in every table (never sampled, observed values masked), besides the
#: suite's own `sensitive_columns` and the environment's `postgres.sensitive_columns`
SENSITIVE_NAME_RE = re.compile(
    r"(^|_)(password|passwd|pwd|pass|secret|token|api_?key|private_?key|salt|otp|"
    r"credentials?|pin)(_|$)",
    re.I,
)

_SUITE_KEYS = {"name", "expectations", "meta", "notes", "id"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "id", "description", "severity"}
_SUITE_META_KEYS = {"table", "title", "severity", "sensitive_columns", "key_columns", "timeout", "notes"}
_EXPECTATION_META_KEYS = {"fact", "title", "seed", "severity", "notes"}
#: fields of every GX Expectation model that are not arguments of the expectation itself
_NOT_ARGUMENTS = {
    "id",
    "meta",
    "notes",
    "description",
    "rendered_content",
    "result_format",
    "catch_exceptions",
    "severity",
    "windows",
    "batch_id",
}


class SuiteError(ValueError):
    """One problem in one suite file: `str()` is the one line `<file>: <field path>: <message>`."""

    def __init__(self, path: Path | str, where: str, message: str):
        self.path = Path(path)
        self.where = where
        self.message = message
        super().__init__(f"{display_path(self.path)}: {self.problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # (it crosses from the suite worker process: expectations/worker.py)
        return (type(self), (self.path, self.where, self.message))

    @property
    def source(self) -> str:
        return display_path(self.path)

    @property
    def problem(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def display_path(path: Path) -> str:
    """The path relative to the working directory when it is below it (`expectations/suites/users.json`)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


@dataclass(frozen=True)
class Expect:
    """One expectation of a suite file, with its golive metadata."""

    index: int
    type: str
    kwargs: Mapping[str, Any]
    fact: str
    title: str
    seed: tuple[str, ...]
    severity: Severity

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns this expectation reads (for masking sensitive values)."""
        kw = self.kwargs
        cols = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]
        return tuple(c for c in cols if isinstance(c, str))


@dataclass(frozen=True)
class Suite:
    """A loaded suite file. `raw` is the file's GX suite dict, exactly as reviewed."""

    path: Path
    name: str
    table: str
    title: str
    severity: Severity
    key_columns: tuple[str, ...]
    sensitive_columns: tuple[str, ...]
    timeout: float
    expectations: tuple[Expect, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def schema_name(self) -> str | None:
        return self.table.rpartition(".")[0] or None

    @property
    def table_name(self) -> str:
        return self.table.rpartition(".")[2]

    def is_sensitive(self, column: str, extra: Iterable[str] = ()) -> bool:
        return column in self.sensitive_columns or column in set(extra) or bool(SENSITIVE_NAME_RE.search(column))

    def expectation(self, fact: str) -> Expect:
        return next(e for e in self.expectations if e.fact == fact)


# --------------------------------------------------------------------------- loading (no GX)


def _require(cond: bool, path: Path, where: str, message: str) -> None:
    if not cond:
        raise SuiteError(path, where, message)


def _unknown_keys(d: Mapping[str, Any], allowed: set[str], path: Path, where: str) -> None:
    for k in d:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), sorted(allowed), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (allowed: {', '.join(sorted(allowed))})"
            raise SuiteError(path, f"{where}.{k}" if where else str(k), f"unknown key{hint}")


def _severity(value: Any, default: Severity, path: Path, where: str) -> Severity:
    if value is None:
        return default
    try:
        return Severity(value)
    except ValueError:
        raise SuiteError(path, where, f"must be one of {', '.join(s.value for s in Severity)}, not {value!r}") from None


def parse_suite(data: Any, path: Path) -> Suite:
    """Check the structure and golive's metadata of one suite dict (no GX import)."""
    _require(isinstance(data, dict), path, "", "a suite file holds one JSON object (a GX suite dict)")
    _unknown_keys(data, _SUITE_KEYS, path, "")
    name = data.get("name")
    _require(
        isinstance(name, str) and bool(NAME_RE.match(name)),
        path,
        "name",
        "required: lowercase letters, digits and _ (it names the checks data.<name>.<fact>)",
    )
    _require(name == path.stem, path, "name", f"must equal the file name ({path.stem!r}), not {name!r}")
    meta = data.get("meta") or {}
    _require(
        isinstance(meta, dict) and isinstance(meta.get("golive"), dict),
        path,
        "meta.golive",
        "required: golive's metadata (table, title, ...)",
    )
    g = meta["golive"]
    _unknown_keys(g, _SUITE_META_KEYS, path, "meta.golive")
    table = g.get("table")
    _require(
        isinstance(table, str) and bool(TABLE_RE.match(table)),
        path,
        "meta.golive.table",
        "required: the table the suite checks (`table` or `schema.table`)",
    )
    for key in ("key_columns", "sensitive_columns"):
        v = g.get(key, [])
        _require(
            isinstance(v, list) and all(isinstance(c, str) and c for c in v),
            path,
            f"meta.golive.{key}",
            "must be a list of column names",
        )
    timeout = g.get("timeout", DEFAULT_TIMEOUT)
    _require(
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 300,
        path,
        "meta.golive.timeout",
        "seconds, > 0 and <= 300",
    )
    severity = _severity(g.get("severity"), Severity.BLOCKING, path, "meta.golive.severity")
    sensitive = tuple(g.get("sensitive_columns", []))
    keys = tuple(g.get("key_columns", []))
    bad_key = [k for k in keys if k in sensitive or SENSITIVE_NAME_RE.search(k)]
    _require(
        not bad_key,
        path,
        "meta.golive.key_columns",
        f"{bad_key[0] if bad_key else ''!r} is sensitive: example ids would expose it",
    )
    exps = data.get("expectations")
    _require(isinstance(exps, list) and bool(exps), path, "expectations", "required: a non-empty list")
    out: list[Expect] = []
    facts: set[str] = set()
    for i, e in enumerate(exps):
        where = f"expectations[{i}]"
        _require(isinstance(e, dict), path, where, "must be an object {type, kwargs, meta}")
        _unknown_keys(e, _EXPECTATION_KEYS, path, where)
        typ = e.get("type")
        _require(isinstance(typ, str) and bool(typ), path, f"{where}.type", "required: the GX expectation type")
        kwargs = e.get("kwargs", {})
        _require(isinstance(kwargs, dict), path, f"{where}.kwargs", "must be an object")
        for k, v in kwargs.items():
            _check_parameter(v, path, f"{where}.kwargs.{k}")
        em = (e.get("meta") or {}).get("golive")
        _require(isinstance(em, dict), path, f"{where}.meta.golive", "required: fact, title and seed of the check")
        _unknown_keys(em, _EXPECTATION_META_KEYS, path, f"{where}.meta.golive")
        fact = em.get("fact")
        _require(
            isinstance(fact, str) and bool(FACT_RE.match(fact)),
            path,
            f"{where}.meta.golive.fact",
            "required: lowercase letters, digits and _ (the check id is data.<suite>.<fact>)",
        )
        _require(fact not in facts, path, f"{where}.meta.golive.fact", f"{fact!r} is used twice in this suite")
        facts.add(fact)
        title = em.get("title")
        _require(isinstance(title, str) and bool(title.strip()), path, f"{where}.meta.golive.title", "required")
        seed = em.get("seed")
        _require(
            isinstance(seed, list) and bool(seed) and all(isinstance(s, str) and s for s in seed),
            path,
            f"{where}.meta.golive.seed",
            'required: the seed checklist item(s) it covers, e.g. ["3.1 Data Quality Checks"]',
        )
        out.append(
            Expect(
                index=i,
                type=typ,
                kwargs=kwargs,
                fact=fact,
                title=title.strip(),
                seed=tuple(seed),
                severity=_severity(em.get("severity"), severity, path, f"{where}.meta.golive.severity"),
            )
        )
    return Suite(
        path=path,
        name=name,
        table=table,
        title=str(g.get("title") or table),
        severity=severity,
        key_columns=keys,
        sensitive_columns=sensitive,
        timeout=float(timeout),
        expectations=tuple(out),
        raw=data,
    )


def read_suite(path: Path) -> Suite:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SuiteError(path, "", f"cannot read: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(path, f"line {e.lineno}", f"not valid JSON ({e.msg})") from None
    return parse_suite(data, path)


def suite_files(suites_dir: Path | str | None = None) -> list[Path]:
    d = Path(suites_dir) if suites_dir else SUITES_DIR
    if not d.is_dir():
        raise SuiteError(d, "", "not a directory of suite files")
    return sorted(d.glob("*.json"))


def load_suites(suites_dir: Path | str | None = None) -> list[Suite]:
    """Every `*.json` suite of the directory (default: the suites shipped for the sandbox's schema)."""
    return [read_suite(p) for p in suite_files(suites_dir)]


def dump_suite(data: Mapping[str, Any]) -> str:
    """A suite dict as its reviewed file: one line per expectation (a change reads as a one-line diff)."""
    head = {k: v for k, v in data.items() if k != "expectations"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + ['  "expectations": [']
    exps = [f"    {json.dumps(e)}" for e in data.get("expectations", [])]
    return "\n".join(lines + [",\n".join(exps), "  ]", "}"]) + "\n"


# --------------------------------------------------------------------------- suite parameters

PARAM = "$PARAMETER"
_NOW_RE = re.compile(r"^now\(\)(?:\s*([+-])\s*timedelta\((.*)\))?$")
_DELTA_ARG_RE = re.compile(r"^\s*(weeks|days|hours|minutes|seconds)\s*=\s*(\d+(?:\.\d+)?)\s*$")


def _is_param(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {PARAM}


def _check_parameter(v: Any, path: Path, where: str) -> None:
    if isinstance(v, dict) and PARAM in v:
        _require(_is_param(v) and isinstance(v[PARAM], str), path, where, f'a suite parameter is {{"{PARAM}": "..."}}')
        try:
            evaluate(v[PARAM], datetime.now(UTC))
        except ValueError as e:
            raise SuiteError(path, where, str(e)) from None


def evaluate(expr: str, now: datetime) -> datetime:
    """`now()` or `now() +/- timedelta(days=N, hours=N, ...)`. A pure function: thread-safe, unlike GX's parser."""
    m = _NOW_RE.match(expr.strip())
    if not m:
        raise ValueError(
            f"unknown suite parameter {expr!r} (supported: now(), now() - timedelta(days=N), "
            "now() + timedelta(minutes=N))"
        )
    if not m.group(1):
        return now
    parts: dict[str, float] = {}
    for arg in filter(None, (a.strip() for a in m.group(2).split(","))):
        am = _DELTA_ARG_RE.match(arg)
        if not am:
            raise ValueError(f"suite parameter {expr!r}: timedelta takes weeks/days/hours/minutes/seconds=N")
        parts[am.group(1)] = float(am.group(2))
    delta = timedelta(**parts)
    return now + delta if m.group(1) == "+" else now - delta


def resolve_parameters(raw: Mapping[str, Any], now: datetime) -> dict:
    """A copy of the suite dict with every `{"$PARAMETER": expr}` replaced by its value (GX never parses)."""
    out = copy.deepcopy(dict(raw))
    for e in out.get("expectations", []):
        kw = e.get("kwargs") or {}
        for k, v in list(kw.items()):
            if _is_param(v):
                kw[k] = evaluate(v[PARAM], now)
    return out


# --------------------------------------------------------------------------- lint (imports GX)


def lint_suite(suite: Suite, resolved: Mapping[str, Any] | None = None) -> Any:
    """The checks only GX can make; returns the `ExpectationSuite` built from the (resolved) dict.

    Raises SuiteError naming the field: an unknown expectation type, an argument the expectation does not take
    (with the closest one it does), a missing or invalid value."""
    from great_expectations.compatibility import pydantic
    from great_expectations.core import ExpectationSuite
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    from . import custom  # noqa: F401  (registers golive's own expectation types)

    data = resolved if resolved is not None else resolve_parameters(suite.raw, datetime.now(UTC))
    path = suite.path
    for e, raw_e in zip(suite.expectations, data["expectations"]):
        where = f"expectations[{e.index}]"
        try:
            cls = get_expectation_impl(e.type)
        except ExpectationNotFoundError:
            near = difflib.get_close_matches(e.type, _known_types(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SuiteError(path, f"{where}.type", f"unknown expectation type {e.type!r}{hint}") from None
        args = set(cls.__fields__) - _NOT_ARGUMENTS
        kwargs = dict(raw_e.get("kwargs") or {})
        for k in kwargs:
            if k not in args:
                near = difflib.get_close_matches(k, sorted(args), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise SuiteError(path, f"{where}.kwargs.{k}", f"unknown argument of {e.type}{hint}")
        try:
            cls(**kwargs)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = "required argument is missing" if first["type"] == "value_error.missing" else first["msg"]
            raise SuiteError(path, f"{where}.kwargs.{loc}", msg) from None
        except Exception as err:  # noqa: BLE001 - GX validators raise their own types
            raise SuiteError(path, f"{where}.kwargs", " ".join(str(err).split())) from None
    return ExpectationSuite(**copy.deepcopy(dict(data)))


def _known_types() -> list[str]:
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    return list(list_registered_expectation_implementations())


def lint_dir(suites_dir: Path | str | None = None) -> tuple[list[Suite], list[SuiteError]]:
    """Lint every suite file of a directory; (the good suites, one error per bad file)."""
    good: list[Suite] = []
    errors: list[SuiteError] = []
    for p in suite_files(suites_dir):
        try:
            s = read_suite(p)
            lint_suite(s)
        except SuiteError as e:
            errors.append(e)
            continue
        good.append(s)
    return good, errors
