"""Fuzz (issue #10 acceptance): the config loader and `golive config validate` on generated documents.

Documents follow the config's own models (section and field names drawn from `GoliveConfig`, so validators are
reached) with random scalars, `${VAR}` references to variables holding a known secret (set, unset, with defaults),
Secret block references, anchors and aliases, duplicate keys, and byte damage (invalid UTF-8, control characters,
truncation). Whatever comes in: a config or one `file: key.path: message` line per problem, exit 0 or 3, never a
traceback or exit 4, and the secret in no output, in any of its simple encodings. Bounded to a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import typing
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from golive.deployments.cli import main
from golive.flows.config import ConfigError, GoliveConfig, load_config
from golive.tasks.core import Redactor

SECRET = 'Fz-S3cr3t/"&<:%41+x'  # quotes, URL and HTML metacharacters: each encoding differs from the raw form
ENV = {"FUZZ_SECRET": SECRET, "FUZZ_HOST": "cache.fuzz.example", "FUZZ_SHORT": "abc"}
FORMS = {
    SECRET,
    quote(SECRET, safe=""),
    quote(SECRET),
    quote_plus(SECRET),
    json.dumps(SECRET)[1:-1],
    html.escape(SECRET),
    base64.b64encode(SECRET.encode()).decode(),
    SECRET.encode().hex(),
}


def block_secret(name: str) -> str:
    if name == "fuzz":
        return SECRET
    if name == "short":
        return "abc"
    raise KeyError(name)


def models_in(annotation: typing.Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field's annotation (`X | None`, `list[X]`, `dict[str, X]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


REFS = [
    "${FUZZ_SECRET}",
    "http://${FUZZ_SECRET}@h.example:1",
    "${FUZZ_HOST}",
    "${FUZZ_SHORT}",
    "${FUZZ_UNSET:-fallback-value}",
    "{{ prefect.blocks.secret.fuzz }}",
    "{{ prefect.blocks.secret.short }}",
    "pre-${FUZZ_SECRET}-post",
    "${FUZZ_SECRET",
    "redis://${FUZZ_HOST}:6379/0",
    "https://${FUZZ_SECRET}.example",
]
_SCALARS = [  # references that cannot resolve are rarer: they stop a document before validation
    st.sampled_from(REFS),
    st.integers(-2, 70000),
    st.one_of(st.booleans(), st.none()),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.sampled_from(
        [
            "",
            " ",
            "127.0.0.1",
            "https://a.example",
            "redis://:1/0",
            "10.0.0.1:53",
            "x" * 9,
            "~",
            "2001-13-01",
            "!!int 0x",
            "[/oops]",
            "&a",
            "*a",
            "<<",
            "${FUZZ_UNSET}",
            "{{ prefect.blocks.secret.missing }}",
        ]
    ),
]
SCALARS = st.integers(-4, len(_SCALARS) - 1).flatmap(lambda i: _SCALARS[max(i, 0)])  # half of them references
JUNK_KEYS = st.sampled_from(["<<", "", "${FUZZ_SECRET}", "x y", "1", "host", "password", "url"])


def value_for(model: type[BaseModel] | None, depth: int) -> st.SearchStrategy:
    """A node: a scalar, a list, or a mapping shaped like `model`: its required fields, some others, some junk keys,
    as (key, value) pairs so that keys may repeat."""
    if depth > 3:
        return SCALARS
    fields = dict(model.model_fields) if model else {}
    required = [name for name, f in fields.items() if f.is_required()]

    def pair(key: str) -> st.SearchStrategy:
        inner = models_in(fields[key].annotation) if key in fields else []
        return st.tuples(st.just(key), value_for(inner[0] if inner else None, depth + 1))

    some = (
        st.integers(0, 4)
        .flatmap(lambda i: JUNK_KEYS if i == 0 or not fields else st.sampled_from(list(fields)))
        .flatmap(pair)
    )
    mapping = st.tuples(
        st.tuples(*map(pair, required)),
        st.one_of(st.lists(some, max_size=5, unique_by=lambda p: p[0]), st.lists(some, max_size=3)),
    ).map(lambda rs: ("map", [*rs[0], *rs[1]]))  # mostly distinct keys, sometimes a duplicate
    if model is None:
        return st.one_of(SCALARS, st.lists(SCALARS, max_size=4).map(lambda xs: ("seq", xs)), mapping)
    return st.integers(0, 7).flatmap(lambda i: SCALARS if i == 0 else mapping)  # mostly shaped like the model


class Render:
    """Flow-style YAML; some collections get an anchor, some later values become its alias."""

    def __init__(self, draw_alias: list[bool]):
        self.anchors: list[str] = []
        self.draw_alias = iter(draw_alias)

    def __call__(self, node: typing.Any) -> str:
        if next(self.draw_alias, False) and self.anchors:
            return f"*{self.anchors[-1]}"
        if isinstance(node, tuple) and node[0] in ("map", "seq"):
            body = (
                ", ".join(f"{self.scalar(k)}: {self(v)}" for k, v in node[1])
                if node[0] == "map"
                else ", ".join(self(x) for x in node[1])
            )
            text = "{" + body + "}" if node[0] == "map" else "[" + body + "]"
            if next(self.draw_alias, False):
                self.anchors.append(f"a{len(self.anchors)}")
                return f"&{self.anchors[-1]} {text}"
            return text
        return self.scalar(node)

    @staticmethod
    def scalar(x: typing.Any) -> str:
        if isinstance(x, str) and x in ("!!int 0x", "2001-13-01", "~"):
            return x  # plain: a tag, a bad date, null
        return json.dumps(x, ensure_ascii=False) if not isinstance(x, float) or x == x else ".nan"


@st.composite
def documents(draw) -> bytes:
    top = dict(GoliveConfig.model_fields)
    render = Render(draw(st.lists(st.sampled_from([False] * 6 + [True]), max_size=60)))
    lines = [f"environment: {draw(st.sampled_from(['fuzz'] * 4 + ['production', 'Bad!', '${FUZZ_SECRET}']))}"]
    if draw(st.booleans()):
        lines.append(f"production: {draw(st.sampled_from(['true', 'true', 'false', 'maybe']))}")
    names = st.sampled_from([k for k in top if k not in ("environment", "production")])
    for name in draw(st.one_of(st.lists(names, max_size=5, unique=True), st.lists(names, max_size=3))):
        inner = models_in(top[name].annotation)
        lines.append(f"{name}: {render(draw(value_for(inner[0] if inner else None, 1)))}")
    data = "\n".join(lines).encode() + b"\n"
    damage = draw(st.sampled_from(["none", "none", "none", "none", "insert", "truncate"]))
    if damage != "none":
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\x1b[31m", b"\t", b": ", b"- "])) + data[at:]
            if damage == "insert"
            else data[:at]
        )
    return data


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with pytest.MonkeyPatch.context() as mp, temporary_settings(restore_defaults={PREFECT_API_URL}):
        for k, v in ENV.items():
            mp.setenv(k, v)
        mp.delenv("FUZZ_UNSET", raising=False)
        mp.delenv("PREFECT_API_URL", raising=False)  # Secret blocks: "no Prefect API configured", never a server
        yield tmp_path_factory.mktemp("fuzz") / "env.yaml"


def leaked(text: str) -> list[str]:
    return [f for f in FORMS if f in text]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_fuzzed_config_never_crashes_nor_leaks(fuzz_env: Path, doc: bytes):
    fuzz_env.write_bytes(doc)
    try:
        cfg = load_config(fuzz_env, env=ENV, secret_loader=block_secret)
    except ConfigError as e:
        assert e.problems and all("\n" not in p and p for p in e.problems), e.problems
        assert not leaked(str(e)), e.problems
    else:  # wherever a referenced secret landed, the run's Redactor knows it
        assert not leaked(Redactor(cfg.secrets()).text(repr(cfg))), repr(cfg)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["config", "validate", str(fuzz_env)])
        except SystemExit as e:
            code = e.code
    text = out.getvalue() + err.getvalue()
    assert code in (0, 3), (code, text, doc)
    assert "Traceback" not in text and not leaked(text), text
    lines = (out if code == 0 else err).getvalue().splitlines()
    assert lines and all(line.startswith(f"{fuzz_env}: ") for line in lines), text  # one line per problem
