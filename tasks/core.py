"""The check framework: declaring checks, one result model, and the runner.

A *check* probes one fact (`section.subject.fact`). Its body is a plain function
``body(target, ctx) -> Observation`` that measures and says how it measured; the
runner turns that into a :class:`CheckResult`, enforcing the timeout, turning any
exception into ERROR, skipping dependents of a failed check with the cause, and
redacting secrets from everything it returns.

Nothing here imports Prefect: the plain runner (:func:`run_plain`) is what the tests
and the overhead benchmark use, and the readiness flow wraps :func:`execute` in a
Prefect task.
"""

from __future__ import annotations

import asyncio
import base64
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr

T = TypeVar("T")


class Status(str, Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    ERROR = "ERROR"  # the probe itself could not run (timeout, refused connection)
    SKIPPED = "SKIPPED"  # a dependency did not pass; `cause` names it
    NOT_APPLICABLE = "NOT_APPLICABLE"  # the target is not configured / does not apply; `cause` says why


class Severity(str, Enum):
    BLOCKING = "blocking"
    ADVISORY = "advisory"


OK_STATUSES = frozenset({Status.PASS, Status.WARN})
SECTIONS: dict[str, str] = {
    "infrastructure": "1. Infrastructure Validation",
    "dependencies": "2. Service Dependencies",
    "data": "3. Database & Data Integrity",
    "application": "4. Application Deployment",
    "security": "5. Security Verification",
    "performance": "6. Performance & Load Testing",
    "monitoring": "7. Monitoring & Alerting",
    "backup": "8. Backup & Disaster Recovery",
    "team": "9. Team Readiness & Communication",
}


class Observation(BaseModel):
    """What a check body measured. `evidence` says how (command, endpoint, query)."""

    status: Status
    observed: Any = None
    expected: Any = None
    evidence: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


#: a check body: `body(target, ctx, **other_sections) -> Observation` (see `check`)
Body = TypeVar("Body", bound=Callable[..., Observation])


def passed(observed: Any, expected: Any, evidence: str, **details: Any) -> Observation:
    return Observation(status=Status.PASS, observed=observed, expected=expected, evidence=evidence, details=details)


def failed(observed: Any, expected: Any, evidence: str, **details: Any) -> Observation:
    return Observation(status=Status.FAIL, observed=observed, expected=expected, evidence=evidence, details=details)


def warned(observed: Any, expected: Any, evidence: str, **details: Any) -> Observation:
    return Observation(status=Status.WARN, observed=observed, expected=expected, evidence=evidence, details=details)


def passed_if(ok: Any, observed: Any, expected: Any, evidence: str, /, **details: Any) -> Observation:
    """PASS when `ok` is truthy, else FAIL."""
    return (passed if ok else failed)(observed, expected, evidence, **details)


def failed_if(problems: Any, observed: Any, expected: Any, evidence: str, /, **details: Any) -> Observation:
    """FAIL when `problems` (the failing items, a message, a flag) is truthy, else PASS: the verdict of a check that
    judges many things and lists the bad ones (`details` usually names them)."""
    return (failed if problems else passed)(observed, expected, evidence, **details)


def skipped(
    cause: str, blocked_by: str, observed: Any = None, expected: Any = None, evidence: str = "", **details: Any
) -> Observation:
    """A prerequisite the body found broken (a table of many, one of them missing): SKIPPED with the cause, pointing
    at the check that reports it (`blocked_by`), like a dependency the runner found broken; what the body could
    judge besides may come along (`observed`, ...)."""
    return Observation(
        status=Status.SKIPPED,
        observed=observed,
        expected=expected,
        evidence=evidence or cause,
        details={**details, "reason": cause, "blocked_by": blocked_by},
    )


# --------------------------------------------------------------------------- services other checks reach
# One root cause, one failure, across sections: a check that reaches a service another check reports on (the latency
# to the database, a firewall port, a Prometheus scrape target, a runbook on the web host) and finds it down is
# SKIPPED naming that check. The reporting checks register their addresses (`tasks` modules import nothing of each
# other's); `service_down` tells the others.

#: reachability check id -> the (host, port) addresses it reports on, derived from the config (none when unset)
SERVICES: dict[str, Callable[[Any], Iterable[tuple[str | None, int | None]]]] = {}
_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "redis": 6379,
    "rediss": 6379,
    "postgresql": 5432,
    "postgres": 5432,
    "smtp": 25,
}


def register_service(check_id: str, addresses: Callable[[Any], Iterable[tuple[str | None, int | None]]]) -> None:
    """`check_id` reports whether the service at `addresses(config)` answers (() when its section is unset)."""
    SERVICES[check_id] = addresses


def url_address(url: Any) -> tuple[str | None, int | None]:
    """(host, port) of a URL, the scheme's default port when it names none; (None, None) when it has neither."""
    try:
        u = urlsplit(str(url))
        return u.hostname, u.port or _DEFAULT_PORTS.get(u.scheme.lower())
    except ValueError:  # a port that is not a number, an unclosed [IPv6 address
        return None, None


def _host(h: str) -> str:
    return h.strip("[]").rstrip(".").lower()


def _addresses(check_id: str, config: Any) -> list[tuple[str, int]]:
    try:
        return [(_host(h), int(p)) for h, p in SERVICES[check_id](config) if h and p]
    except Exception:  # noqa: BLE001 - a section this config lacks or cannot express: nobody's address
        return []


def service_at(config: Any, host: str, port: int, *, but: str | None = None) -> str | None:
    """The check (not `but`) that reports on the service at host:port in this config, else None."""
    return next((cid for cid in SERVICES if cid != but and (_host(host), int(port)) in _addresses(cid, config)), None)


def tcp_state(host: str, port: int, timeout: float) -> str:
    """'open', 'refused' or 'filtered' (no answer within the timeout), or 'unreachable (why)'."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "filtered"
    except OSError as e:
        return f"unreachable ({e.strerror or e})"


PROBE_S = 2.0  # the TCP probe of a service another check reports on: one budget for every caller (its result is shared)


def service_down(
    ctx: RunContext, host: str | None, port: int | None, *, but: str | None = None, own: str = ""
) -> Observation | None:
    """SKIPPED naming the check that reports on host:port when a TCP connect there (once per run, `PROBE_S`, whatever
    the caller has left: a shared answer must not depend on who asked first) does not open: the failure is that
    check's. None when the address is nobody's (the caller's failure is its own) or opens. `own`: what the caller
    saw, kept in the evidence (`unreached`); the report turns the SKIPPED back into the caller's ERROR when the named
    check passed or was not in the run (`flows/report.py`), so the blame is never put where nothing failed."""
    if not host or not port:
        return None
    owner = service_at(ctx.config, host, port, but=but)
    if owner is None:
        return None
    state = ctx.memo(("tcp-state", _host(host), int(port)), lambda: tcp_state(host.strip("[]"), int(port), PROBE_S))
    if state == "open":
        return None
    cause = f"{host}:{port} is {state} ({owner} reports it)"
    return skipped(cause, owner, evidence=f"{cause}; this check saw: {own}" if own else "", unreached=True)


def _connect_failure(exc: BaseException) -> bool:
    """A connection that could not be made (refused, reset, timed out; httpx's ConnectError / ConnectTimeout)."""
    for _ in range(8):
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in ("ConnectError", "ConnectTimeout"):
            return True
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)  # `from None`: the body's word
        if nxt is None:
            return False
        exc = nxt
    return False


def unreached(spec: CheckSpec, exc: BaseException, ctx: RunContext) -> Observation | None:
    """A body that raised because it could not connect: SKIPPED naming the check that reports on the service it
    tried (the address of an httpx request; else the services of the check's own config section) when that service
    is down; None otherwise (the exception is the check's ERROR)."""
    if spec.id in SERVICES or not _connect_failure(exc):  # a check reporting on a service is its one failure
        return None
    try:
        url = exc.request.url  # type: ignore[attr-defined]  # httpx: the request that failed
    except (AttributeError, RuntimeError):
        url = None
    own = f"{type(exc).__name__}: {exc}"
    if url is not None:
        return service_down(ctx, *url_address(url), but=spec.id, own=own)
    for cid in SERVICES:
        other = REGISTRY.get(cid)
        if (
            cid != spec.id
            and spec.target is not None
            and other is not None
            and other.target_section == spec.target_section
        ):
            for host, port in _addresses(cid, ctx.config):
                if (obs := service_down(ctx, host, port, but=spec.id, own=own)) is not None:
                    return obs
    return None


def given(value: T | None) -> T:
    """A part of the target the check's `needs` guarantee (the runner checked it is configured before the body
    ran): the value, its type narrowed for the body."""
    if value is None:
        raise LookupError("a config key the check needs is not configured (declare it in `needs`)")
    return value


def not_applicable(reason: str, evidence: str = "") -> Observation:
    return Observation(
        status=Status.NOT_APPLICABLE,
        observed=None,
        expected=None,
        evidence=evidence or reason,
        details={"reason": reason},
    )


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "in": lambda a, b: a in b,
}


def compare(
    observed: Any, op: str, limit: Any, *, evidence: str, unit: str = "", on_fail: Status = Status.FAIL, **details: Any
) -> Observation:
    """Compare a measured value with a threshold; `expected` reads like the condition (Gatus-style)."""
    sfx = f" {unit}" if unit else ""
    return Observation(
        status=Status.PASS if meets(observed, op, limit) else on_fail,
        observed=f"{_fmt(observed)}{sfx}",
        expected=f"{op} {_fmt(limit)}{sfx}",
        evidence=evidence,
        details=details,
    )


def meets(observed: Any, op: str, limit: Any) -> bool:
    """Whether `observed op limit` holds, the test `compare` makes (for a check judging many values at once); a
    missing value (None) never meets a limit."""
    return observed is not None and _OPS[op](observed, limit)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


class CheckResult(BaseModel):
    id: str
    title: str
    section: str
    severity: Severity
    seed: list[str]
    status: Status
    observed: Any = None
    expected: Any = None
    evidence: str = ""
    cause: str | None = None  # why SKIPPED / NOT_APPLICABLE / ERROR
    details: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime
    finished_at: datetime
    duration_s: float

    @property
    def summary(self) -> str:
        if self.status in (Status.SKIPPED, Status.NOT_APPLICABLE, Status.ERROR) and self.cause:
            return self.cause
        exp = f" (expected {self.expected})" if self.expected not in (None, "") else ""
        return f"observed {self.observed}{exp}"


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    seed: tuple[str, ...]
    severity: Severity
    depends_on: tuple[str, ...]
    timeout: float
    #: the config key the body reads, dotted for a part of a section ("observability.grafana"); None: the whole
    #: config. Not configured (absent, or an empty list): NOT_APPLICABLE with the standard reason, the body not run
    target: str | None
    body: Callable[..., Observation]
    description: str = ""
    #: other config keys the check cannot do without (dotted: "web.auth"), each with why (or ""): one not configured
    #: makes it NOT_APPLICABLE, naming it. Each other section named is handed to the body as a keyword argument
    needs: tuple[tuple[str, str], ...] = ()
    #: other sections the body reads when they are configured: handed as keyword arguments, None when absent
    uses: tuple[str, ...] = ()
    #: heavy checks (a restore, data suites) load the machine: they start only once every light check that does
    #: not depend on a heavy one has landed, so their load stays out of the light checks' time budgets (the
    #: millisecond measurements are protected by the quiet window, below)
    heavy: bool = False
    #: timing checks measure a latency (PING, SELECT 1, time to first byte): they run one at a time, in a quiet
    #: window after the checks they depend on and before every other check, because any other work in this
    #: process (TLS context loading, JSON parsing, GIL hand-offs) shows up in a round trip measured in milliseconds
    timing: bool = False
    #: checks of one group share one unit of work (the expectations of one GX suite: one validation of the table):
    #: the readiness flow runs a group as one Prefect task; members must share their dependencies
    group: str | None = None
    #: the body usually takes long (a subprocess that resolves a dependency tree, a restore): among the checks
    #: released together (when the quiet window closes, when the light checks have landed) it starts first, so the
    #: run does not end up waiting for it alone
    slow: bool = False

    @property
    def section(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def target_section(self) -> str | None:
        """The top-level config section of the target ("observability" for "observability.grafana")."""
        return self.target.split(".", 1)[0] if self.target else None


REGISTRY: dict[str, CheckSpec] = {}
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+\.[a-z0-9_]+$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def check(
    id: str,
    *,
    title: str,
    seed: Iterable[str],
    severity: str | Severity = Severity.BLOCKING,
    depends_on: Iterable[str] = (),
    timeout: float = 10.0,
    target: str | None = None,
    heavy: bool = False,
    timing: bool = False,
    slow: bool = False,
    doc: str | None = None,
    needs: Iterable[str] | Mapping[str, str] = (),
    uses: Iterable[str] = (),
) -> Callable[[Body], Body]:
    """Declare a check. The decorated function stays a plain, directly callable function: `body(target, ctx)`, plus
    a keyword argument per other section in `needs` / `uses`. Its description is `doc`, else its docstring (`doc`
    serves a body shared by a table of checks, each described on its own). `needs` may say why each is needed
    ({"web.auth": "the runtime endpoint needs a login"}): the reason then reads `no `web.auth` configured: ...`."""
    needed = tuple(needs.items()) if isinstance(needs, Mapping) else tuple((key, "") for key in needs)

    def deco(fn: Body) -> Body:
        if not _ID_RE.match(id):
            raise ValueError(f"check id {id!r} is not section.subject.fact")
        if id.split(".", 1)[0] not in SECTIONS:
            raise ValueError(f"check id {id!r}: unknown section")
        if id in REGISTRY and _body_name(REGISTRY[id].body) != _body_name(fn):
            raise ValueError(f"check id {id!r} declared twice")
        if timeout <= 0:
            raise ValueError(f"check {id!r}: timeout must be > 0")
        for key in (target, *(k for k, _ in needed), *uses):
            if key is not None and not _KEY_RE.match(key):
                raise ValueError(f"check {id!r}: {key!r} is not a config key (dotted lowercase names)")
        REGISTRY[id] = CheckSpec(
            id=id,
            title=title,
            seed=tuple(seed),
            severity=Severity(severity),
            depends_on=tuple(depends_on),
            timeout=float(timeout),
            target=target,
            body=fn,
            description=(doc or fn.__doc__ or "").strip(),
            heavy=heavy,
            timing=timing,
            slow=slow,
            needs=needed,
            uses=tuple(uses),
        )
        fn.check_id = id  # type: ignore[attr-defined]
        return fn

    return deco


def _body_name(fn: Any) -> str:
    """A body's name, for telling a module imported twice from two checks declared with one id (a body shared by a
    table of checks is a functools.partial: its function's name)."""
    return str(getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", repr(fn)))


def validate_graph(specs: Mapping[str, CheckSpec]) -> None:
    for s in specs.values():
        for d in s.depends_on:
            if d not in specs:
                raise ValueError(f"check {s.id!r} depends on unknown check {d!r}")
    groups: dict[str, CheckSpec] = {}
    for s in specs.values():
        first = groups.setdefault(s.group, s) if s.group else s
        if (first.depends_on, first.heavy, first.timing) != (s.depends_on, s.heavy, s.timing):
            raise ValueError(
                f"check {s.id!r} of group {s.group!r} must have the dependencies, heavy and timing "
                f"flags of {first.id!r} (a declared group is one unit of work: one suite's validation)"
            )
    # cycle detection
    state: dict[str, int] = {}

    def visit(i: str, path: tuple[str, ...]) -> None:
        if state.get(i) == 2:
            return
        if state.get(i) == 1:
            raise ValueError("dependency cycle: " + " -> ".join(path + (i,)))
        state[i] = 1
        for d in specs[i].depends_on:
            visit(d, path + (i,))
        state[i] = 2

    for i in specs:
        visit(i, ())
    # heavy checks wait for the light ones, which wait for the quiet window, which waits for every timing check: a
    # timing check that is heavy, or needs a heavy one, would wait for itself (the run would hang until its deadline)
    needs_heavy = heavy_needed(specs)
    for s in specs.values():
        if s.timing and (h := needs_heavy[s.id]):
            raise ValueError(
                f"timing check {s.id!r} "
                + ("is heavy" if h == s.id else f"needs the heavy check {h!r}")
                + ": heavy checks start after the quiet window that timing checks make, so it would wait for itself"
            )


def heavy_needed(specs: Mapping[str, CheckSpec]) -> dict[str, str | None]:
    """For each check, a heavy check it is or (transitively) depends on, else None. (A dependency outside `specs`
    counts as light; the graph must be acyclic.)"""
    found: dict[str, str | None] = {}

    def below(cid: str) -> str | None:
        if cid not in found:
            spec = specs.get(cid)
            if spec is None:
                found[cid] = None
            elif spec.heavy:
                found[cid] = cid
            else:
                found[cid] = next((h for d in spec.depends_on if (h := below(d))), None)
        return found[cid]

    for cid in specs:
        below(cid)
    return found


def select(
    specs: Mapping[str, CheckSpec],
    *,
    sections: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
    skip: Iterable[str] = (),
) -> dict[str, CheckSpec]:
    """Pick checks by section / id, pulling in their dependencies transitively."""
    unknown = [i for i in (ids or ()) if i not in specs]
    if unknown:
        raise KeyError(f"unknown check id(s): {', '.join(unknown)}")
    want: set[str] = set() if (sections or ids) else set(specs)
    if sections:
        secs = set(sections)
        bad = secs - set(SECTIONS)
        if bad:
            raise KeyError(f"unknown section(s): {', '.join(sorted(bad))}")
        want |= {i for i in specs if specs[i].section in secs}
    want |= set(ids or ())
    want -= set(skip)
    out: set[str] = set()
    stack = list(want)
    while stack:
        i = stack.pop()
        if i in out:
            continue
        out.add(i)
        stack.extend(specs[i].depends_on)
    return {i: specs[i] for i in specs if i in out}


# --------------------------------------------------------------------------- secrets

# a URL's userinfo: `user:password@` keeps the user; one without a colon is a key (a Sentry DSN's
# `https://<key>@host/1`, a token used as the user name): masked whole
_URL_PASSWORD = re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^:/@\s]*:)?)(?P<pw>[^@\s/]+)(?P<at>@)")
# HTTP credentials whoever the user (a server echoing `Authorization: Basic <base64 of user:password>`): a token of 4+
# characters with a digit, a symbol or an inner capital, so that `Basic authentication` stays prose (no leading
# `\b`: it would cost `re` its first-character scan)
_AUTH = re.compile(
    r"([Bb](?:[Aa][Ss][Ii][Cc]|[Ee][Aa][Rr][Ee][Rr]))\s+"
    r"(?=[\w+/.~-]{4})(?=[\w+/.~-]*[\d+/.~_-]|[a-zA-Z]+[A-Z])[\w+/.~-]+=*"
)
_HINT = re.compile(r"[%\\&+]")  # every encoded form of a character holds one of these; without, the literal pass does
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
_URLSAFE = str.maketrans("+/", "-_")
_NAMED = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f", "\v": "v", "\a": "a", "\0": "0"}
_ENTITY = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
MASK = "***"


def _hex(n: int, width: int = 1) -> str:
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{n:0{width}x}")


def _char(c: str) -> str:
    """Every way an encoder writes one character, in any mix and repeated: raw; percent (either case, re-encoded as
    %25..); JSON / Python escapes (`\\/`, `\\x`, `\\u` incl. surrogate pairs, `\\U`, `\\n`, backslashes doubled by
    re-escaping); HTML entities (named, decimal, hex, `&amp;` re-escaped); `+` for a space."""
    o = ord(c)
    esc = [re.escape(c)] + (["x" + _hex(o, 2)] if o < 0x100 else []) + ([_NAMED[c]] if c in _NAMED else [])
    if o < 0x10000:
        esc.append("u" + _hex(o, 4))
    else:
        esc += ["U" + _hex(o, 8), "u" + _hex(0xD7C0 + (o >> 10), 4) + r"\\+u" + _hex(0xDC00 + (o & 0x3FF), 4)]
    ent = [f"#0*{o};", f"#[xX]0*{_hex(o)};"] + ([_ENTITY[c] + ";"] if c in _ENTITY else [])
    pct = "".join(f"%(?:25)*{_hex(b, 2)}" for b in c.encode("utf-8", "surrogatepass"))
    alts = [
        re.escape(c),
        r"\+" * (c == " "),
        pct,
        r"\\+(?:" + "|".join(esc) + ")",
        "&(?:amp;)*(?:" + "|".join(ent) + ")",
    ]
    return "(?:" + "|".join(a for a in alts if a) + ")"


def _b64_cores(s: str) -> set[str]:
    """What every base64 (standard or URL-safe) of a text holding `s` contains, whatever the alignment of `s` in it
    (the `user:` of a Basic header before it): the characters that encode bytes of `s` only."""
    b, out = s.encode("utf-8", "surrogatepass"), set()
    for o in range(3):
        core = base64.b64encode(b"\0" * o + b + b"\0\0").decode()[(o * 8 + 5) // 6 : (o + len(b)) * 8 // 6]
        if core:
            out |= {core, core.translate(_URLSAFE)}
    return out


def _derived(s: str) -> list[str]:
    """A secret URL's parts that also travel alone: the password, a key used as the user, a webhook's secret path."""
    try:
        u = urlsplit(s) if "://" in s else None
    except ValueError:
        return []
    if u is None or not u.netloc:
        return []
    user, colon, pw = u.netloc.rpartition("@")[0].partition(":")
    path = u.path + (f"?{u.query}" if u.query else "")
    return [x for x in (pw if colon else user, path if "@" not in u.netloc and len(path) >= 16 else "") if x]


def _alternation(words: Iterable[str]) -> str:
    """The literals as a trie-shaped regex: `re` would try every branch of a flat alternation at every position."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        out = []
        while len(node) == 1 and "" not in node:  # a chain: no group
            ((k, node),) = node.items()
            out.append(re.escape(k))
        alts = [re.escape(k) + emit(v) for k, v in node.items() if k]
        if alts:
            out.append("(?:" + "|".join(alts) + ")" + "?" * ("" in node))
        return "".join(out)

    return emit(trie)


_KIND = re.compile(r"(?:[a-z]{2,6}[_-]){1,2}")  # a token's public kind: `sk_live_`, `whsec_`, `xoxb-`, `github_pat_`


def _cut_prefix(s: str) -> str:
    """A prefix of `s` that a cut left: its first 4+ characters and one past a URL's scheme or a token's kind (evidence
    names a Stripe key's kind as `sk_live_…`), at most 63 in a row."""
    scheme, kind = s.find("://"), _KIND.match(s)
    n = min(len(s) - 1, max(4, scheme + 4 if scheme > 0 else 0, kind.end() + 1 if kind else 0))
    nested = ""
    for ch in reversed(s[n : min(len(s) - 1, 63)]):
        nested = f"(?:{re.escape(ch)}{nested})?"
    return re.escape(s[:n]) + nested + (r"|" + re.escape(s[:63]) + r"\S*" if len(s) > 64 else "")


class Redactor:
    """Removes every known secret from strings and nested data in every encoding a target or a driver may have applied
    (`_char`, base64 via `_b64_cores`), any password or key in a URL and any HTTP Basic / Bearer credential. Secrets
    of any length (a 1-character one masks that character everywhere: the config refuses short secrets in
    production). Text is cut only once redacted (`clip`): a cut leaves a prefix that no longer matches its secret;
    as a net, a string that ends with a secret's first 4+ characters has them masked."""

    def __init__(self, secrets: Iterable[str] = ()):
        kept = [s for s in secrets if s]
        self._secrets = sorted({*kept, *(d for s in kept for d in _derived(s))}, key=len, reverse=True)
        self._raw: re.Pattern[str] | None = None
        self._enc: re.Pattern[str] | None = None
        self._b64: re.Pattern[str] | None = None
        self._cut: re.Pattern[str] | None = None
        if self._secrets:
            self._raw = re.compile(_alternation(self._secrets))
            # the lookahead lets `re` reject most positions with one test instead of trying every secret there
            first = {s[0] for s in self._secrets} | {"%", "\\", "&", "+"}
            self._enc = re.compile(
                "(?=[%s])(?:%s)"
                % ("".join(map(re.escape, sorted(first))), "|".join("".join(map(_char, s)) for s in self._secrets))
            )
            cores = {c for s in self._secrets for c in _b64_cores(s)}
            self._b64 = re.compile(_alternation(cores))
            # a core is a run of base64 characters: a text without a run that long holds none (most evidence)
            self._b64_run = re.compile(r"(?<![\w+/-])[\w+/-]{%d}" % min(map(len, cores)), re.ASCII)
            heads = [_cut_prefix(s) for s in self._secrets if len(s) > 1]
            self._cut = re.compile(r"(?:%s)(?=(?:…|\.\.\.)?['\")\]}]*\s*$)" % "|".join(heads)) if heads else None

    def add(self, *secrets: str) -> Redactor:
        return Redactor([*self._secrets, *secrets])

    def holds(self, value: str) -> bool:
        """`value` is a known secret (in any encoding `_derived` knows), or holds one of 6 characters or more (a URL
        with the password in it). Shorter secrets count only whole: a 1-character test secret is not in every PATH."""
        return any(s == value or (len(s) >= 6 and s in value) for s in self._secrets)

    def text(self, value: str) -> str:
        value = _AUTH.sub(lambda m: f"{m.group(1)} {MASK}", value)  # first: a secret masked inside it would split it
        if self._raw is not None and self._enc is not None:
            if self._b64_run.search(value):
                value = self._base64(value)
            value = (self._enc if _HINT.search(value) else self._raw).sub(MASK, value)
            m = self._cut.search(value, max(0, len(value) - len(self._secrets[0]) - 8)) if self._cut else None
            if m:
                value = value[: m.start()] + MASK + value[m.end() :]
        if "://" not in value:
            return value
        return _URL_PASSWORD.sub(lambda m: m.group("pre") + MASK + m.group("at"), value)

    def _base64(self, value: str) -> str:
        """Whole base64 tokens that hold a secret (their edge characters encode bits of it too)."""
        out, last = [], 0
        assert self._b64 is not None  # only called once a secret exists
        for m in self._b64.finditer(value):
            a, b = m.span()
            while a > last and value[a - 1] in _B64:
                a -= 1
            while b < len(value) and value[b] in _B64:
                b += 1
            if b > last:  # (a match inside a token already masked adds nothing)
                out += [value[last : max(a, last)], MASK]
                last = b
        return "".join(out) + value[last:] if out else value

    def clip(self, value: Any, limit: int, *, tail: bool = False, one_line: bool = True) -> str:
        """`value` redacted, then on one line, then cut to `limit` characters (its end kept with tail=True)."""
        s = self.text(str(value))
        s = " ".join(s.split()) if one_line else s.strip()
        if len(s) <= limit:
            return s
        return "…" + s[len(s) - limit + 1 :] if tail else s[: limit - 1] + "…"

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, SecretStr):
            return MASK
        if isinstance(obj, BaseModel):
            return self(obj.model_dump(mode="json"))
        if isinstance(obj, Mapping):
            return {self(k) if isinstance(k, str) else k: self(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, set, frozenset)):
            return [self(v) for v in obj]
        if isinstance(obj, (int, float, bool)) or obj is None:
            return obj
        return self.text(str(obj))


def secrets_of(config: Any) -> list[str]:
    """A config's secrets: its own account where it keeps one (the environment config also counts every value read
    from `${VAR}` or a Secret block, whatever field it landed in), else every SecretStr inside it."""
    own = getattr(config, "secrets", None)
    return list(own()) if callable(own) else collect_secrets(config)


def collect_secrets(obj: Any) -> list[str]:
    """Every SecretStr value inside a (nested) pydantic model."""
    found: list[str] = []

    def walk(o: Any) -> None:
        if isinstance(o, SecretStr):
            found.append(o.get_secret_value())
        elif isinstance(o, BaseModel):
            for name in type(o).model_fields:
                walk(getattr(o, name))
        elif isinstance(o, Mapping):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple, set)):
            for v in o:
                walk(v)

    walk(obj)
    return found


# --------------------------------------------------------------------------- running


#: never in a check's child process: Prefect's settings, its API's credentials among them (golive's local server's
#: basic auth, a Prefect Cloud key; a URL or header may carry one). With them a child could act on the API as golive
#: does, e.g. resume a run paused for its sign-off
CHILD_NEVER_PREFIX = "PREFECT_"


class RunContext:
    """What a body gets besides its target: its time budget, a per-run memo for shared probes, and the run's redactor
    (`ctx.redact.clip(text, n)` before cutting what a target said: the runner's redaction comes too late for a cut)."""

    def __init__(
        self, config: Any = None, memo: Memo | None = None, timeout: float = 10.0, redact: Redactor | None = None
    ):
        self.config = config
        self._memo = memo if memo is not None else Memo()
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.redact = redact if redact is not None else Redactor(secrets_of(config))

    def with_timeout(self, timeout: float) -> RunContext:
        return RunContext(self.config, self._memo, timeout, self.redact)

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment of a child process a body starts (git, bash -n, pip-audit, pg_restore): this process's,
        less Prefect's settings (every PREFECT_*: CHILD_NEVER_PREFIX) and every
        variable that holds a secret of the run (the redactor's): a child gets only the secret it is handed in
        `extra` (pg_restore: the restore user's password). Hygiene, not a sandbox: a child running as this user can
        still read this process's environment in /proc."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(CHILD_NEVER_PREFIX) and not self.redact.holds(v)}
        return {**env, **extra}

    @property
    def remaining(self) -> float:
        """Seconds left; bodies pass this (or less) to socket/HTTP timeouts so they end on their own."""
        return max(0.05, self.deadline - time.monotonic())

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        return self._memo.get(key, fn)


class Memo:
    """Run-scoped cache: several checks of one target share one probe (one TLS handshake, one INFO)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Any, tuple[threading.Event, list[Any]]] = {}

    def get(self, key: Any, fn: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._entries.get(key)
            owner = found is None
            entry = found if found is not None else (threading.Event(), [])
            if owner:
                self._entries[key] = entry
        ev, box = entry
        if owner:
            try:
                box.append(("ok", fn()))
            except BaseException as e:  # noqa: BLE001 - re-raised to every waiter
                box.append(("err", e))
            ev.set()
        else:
            ev.wait()
        kind, val = box[0]
        if kind == "err":
            raise val
        return val


def _now() -> datetime:
    return datetime.now(UTC)


def make_result(
    spec: CheckSpec,
    status: Status,
    *,
    started: datetime,
    t0: float,
    observed: Any = None,
    expected: Any = None,
    evidence: str = "",
    cause: str | None = None,
    details: Mapping[str, Any] | None = None,
    redact: Redactor | None = None,
) -> CheckResult:
    r = redact or Redactor()
    return CheckResult(
        id=spec.id,
        title=spec.title,
        section=spec.section,
        severity=spec.severity,
        seed=list(spec.seed),
        status=status,
        observed=r(observed),
        expected=r(expected),
        evidence=r(evidence),
        cause=r(cause) if cause else None,
        details=r(dict(details or {})),
        started_at=started,
        finished_at=_now(),
        duration_s=round(time.monotonic() - t0, 4),
    )


def config_at(config: Any, key: str) -> Any:
    """The value at a dotted config key, None where any part of the path is absent."""
    value = config
    for part in key.split("."):
        value = getattr(value, part, None) if value is not None else None
    return value


def _configured(value: Any) -> bool:
    return value is not None and not (isinstance(value, (list, tuple, dict, set, frozenset, str)) and not value)


def not_configured(key: str, why: str = "") -> str:
    """The standard reason of a check whose target or need is not configured."""
    reason = f"no `{key}` configured" if "." in key else f"no `{key}` section in the environment config"
    return f"{reason}: {why}" if why else reason


def resolve_target(spec: CheckSpec, config: Any) -> tuple[Any, dict[str, Any], str | None]:
    """(target, the other sections for the body's keyword arguments, reason-if-not-applicable)."""
    target = config if spec.target is None else config_at(config, spec.target)
    if spec.target is not None and not _configured(target):
        return None, {}, not_configured(spec.target)
    for key, why in spec.needs:
        if not _configured(config_at(config, key)):
            return None, {}, not_configured(key, why)
    own = spec.target_section
    others = {key.split(".", 1)[0] for key in (*(k for k, _ in spec.needs), *spec.uses)} - {own}
    return target, {name: getattr(config, name, None) for name in sorted(others)}, None


class _BodyThreads:
    """The daemon threads check bodies run in, reused. `Thread.start()` waits until the new thread runs, which on a
    busy 2-core machine is a GIL hand-off away: 273 starts blocked the event loop 0.6-1.5 s of a sandbox run, with
    the bodies let go together waiting behind one another. Here a body is handed to an idle thread (a queue put),
    and where none is idle a spawner thread starts one: the event loop never waits. A body that hangs keeps its
    thread (a daemon: it never holds up the exit); at most IDLE_MAX wait idle. A thread running a body is named
    `check:<id>`, an idle one `golive-check-idle`."""

    IDLE_MAX = 64

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has none of these threads

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Callable[[], None], str]] = queue.SimpleQueue()
        self._spawns: queue.SimpleQueue[None] | None = None
        self._idle = 0  # threads that will take the next body without a new one being started
        self.start_failure = ""  # why the last thread start failed, until one succeeds

    def submit(self, fn: Callable[[], None], name: str) -> None:
        """Hand `fn` to a thread. Raises RuntimeError only when no thread exists yet to start others (the caller
        reports it); a later failure to start a thread is retried by the spawner and kept in `start_failure`."""
        with self._lock:
            if self._spawns is None:
                spawns: queue.SimpleQueue[None] = queue.SimpleQueue()
                threading.Thread(target=self._spawner, args=(spawns,), name="golive-check-spawner", daemon=True).start()
                self._spawns = spawns  # (only once it runs: a spawner that failed to start is tried again)
            self._work.put((fn, name))
            if self._idle:
                self._idle -= 1
                return
            self._spawns.put(None)

    def _spawner(self, spawns: queue.SimpleQueue[None]) -> None:
        while True:
            spawns.get()
            while True:
                try:
                    threading.Thread(target=self._serve, name="golive-check-idle", daemon=True).start()
                    self.start_failure = ""
                    break
                except RuntimeError as e:  # ("can't start new thread": a pids limit) the body waits; its check
                    self.start_failure = str(e)  # says why if its deadline comes first
                    time.sleep(0.1)

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            fn, me.name = self._work.get()
            try:
                fn()
            except BaseException:  # noqa: BLE001, S110 - (the body's own wrapper reports; nothing may end this thread)
                pass
            del fn  # (an idle thread holds no run's context, config or results)
            with self._lock:
                if self._idle >= self.IDLE_MAX:
                    return
                self._idle += 1
            me.name = "golive-check-idle"  # (after it counts as idle: a body handed over now starts no new thread)


_BODIES = _BodyThreads()


async def execute(
    spec: CheckSpec, config: Any, *, redact: Redactor | None = None, memo: Memo | None = None
) -> CheckResult:
    """Run one check body in a daemon thread of its own (`_BodyThreads`), bounded by the check's timeout. Never raises. A body that raised
    because it could not connect to a service another check reports down is SKIPPED naming that check (`unreached`),
    any other exception is its ERROR."""
    redact = redact or Redactor()
    started, t0 = _now(), time.monotonic()
    target, others, na = resolve_target(spec, config)
    if na:
        return make_result(spec, Status.NOT_APPLICABLE, started=started, t0=t0, cause=na, evidence=na)
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[str, Any]] = loop.create_future()
    ctx = RunContext(config, memo, spec.timeout, redact)

    def settle(kind: str, value: Any) -> None:
        if not fut.done():
            fut.set_result((kind, value))

    taken: list[bool] = []  # a thread took the body
    abandoned = threading.Event()  # the check has ended (timed out, cancelled) before a thread took its body

    def worker() -> None:
        if abandoned.is_set():
            return  # (never start a body the run has given up on: a restore long after its check's deadline)
        taken.append(True)
        try:
            obs = spec.body(target, ctx, **others)
            loop.call_soon_threadsafe(settle, "ok", obs)
        except BaseException as e:  # noqa: BLE001 - every failure of a probe is evidence
            try:
                down = unreached(spec, e, ctx) if isinstance(e, Exception) else None
            except Exception:  # noqa: BLE001 - the probe of a derived prerequisite must not hide the body's error
                down = None
            try:
                loop.call_soon_threadsafe(settle, *(("ok", down) if down is not None else ("err", e)))
            except RuntimeError:  # loop closed after a timeout: nobody is waiting any more
                pass

    try:
        _BODIES.submit(worker, f"check:{spec.id}")
    except RuntimeError as e:  # no thread could be started at all
        msg = f"no thread could be started for the check's body: {e}"
        return make_result(spec, Status.ERROR, started=started, t0=t0, cause=msg, evidence=msg, redact=redact)
    try:
        kind, value = await asyncio.wait_for(fut, timeout=spec.timeout)
    except asyncio.CancelledError:
        abandoned.set()
        raise
    except TimeoutError:
        abandoned.set()
        msg = f"timed out after {spec.timeout:g}s: the target did not answer in time"
        if not taken:
            why = _BODIES.start_failure or "every thread busy"
            msg = f"timed out after {spec.timeout:g}s before a thread could run the body ({why})"
        return make_result(
            spec,
            Status.ERROR,
            started=started,
            t0=t0,
            cause=msg,
            evidence=msg,
            expected="an answer within the timeout",
            redact=redact,
        )
    if kind == "err":
        # one line, whatever the driver wrote (redacted first: joining the lines would break a secret holding a newline)
        msg = " ".join(redact.text(f"{type(value).__name__}: {value}").split()).rstrip(":")
        return make_result(spec, Status.ERROR, started=started, t0=t0, cause=msg, evidence=msg, redact=redact)
    obs = value
    if not isinstance(obs, Observation):
        msg = f"check body returned {type(obs).__name__}, not an Observation"
        return make_result(spec, Status.ERROR, started=started, t0=t0, cause=msg, evidence=msg, redact=redact)
    cause = obs.details.get("reason") if obs.status in (Status.NOT_APPLICABLE, Status.SKIPPED) else None
    return make_result(
        spec,
        obs.status,
        started=started,
        t0=t0,
        observed=obs.observed,
        expected=obs.expected,
        evidence=obs.evidence,
        cause=cause,
        details=obs.details,
        redact=redact,
    )


def _heights(specs: Mapping[str, CheckSpec]) -> dict[str, int]:
    """Per check, the length of the longest chain of checks waiting on it in turn (1: nothing waits for it).
    Iterative (Kahn's algorithm, then dependents before the checks they wait for); dependencies outside `specs` are
    ignored, and a cycle's members (validate_graph reports cycles) are left out: they count 1."""
    waiting = {i: {d for d in s.depends_on if d in specs} for i, s in specs.items()}
    below: dict[str, list[str]] = {}
    for i, deps in waiting.items():
        for d in deps:
            below.setdefault(d, []).append(i)
    ready = [i for i, deps in waiting.items() if not deps]
    order: list[str] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in below.get(i, ()):
            waiting[j].discard(i)
            if not waiting[j]:
                ready.append(j)
    height: dict[str, int] = {}
    for c in reversed(order):
        height[c] = 1 + max((height.get(d, 1) for d in below.get(c, ())), default=0)
    return height


class _Turns:
    """Checks held until a moment (the quiet window closing, the last light check landing), then let go together,
    in priority order: the order they resume in is the order they start in."""

    def __init__(self, is_open: bool):
        self.is_open = is_open
        self._held: dict[str, asyncio.Event] = {}
        self.opened = asyncio.Event()
        if is_open:
            self.opened.set()

    async def wait(self, cid: str) -> None:
        if not self.is_open:
            await self._held.setdefault(cid, asyncio.Event()).wait()

    def open(self, priority: Callable[[str], Any]) -> None:
        if not self.is_open:
            self.is_open = True
            for cid in sorted(self._held, key=priority):
                self._held[cid].set()
            self.opened.set()  # last: what waits for the moment itself (the readiness flow's subflows) goes after them


class Board:
    """The shared state of one run: results as they land, and an event per check for its dependents."""

    def __init__(self, specs: Mapping[str, CheckSpec]):
        self.specs = dict(specs)
        self.results: dict[str, CheckResult] = {}
        self._events: dict[str, asyncio.Event] = {}
        self.listeners: list[Callable[[CheckResult], None]] = []
        self._light = self._light_checks()  # (fixed for the run: computed once)
        self._quiet_before: frozenset[str] | None = None
        self._height: dict[str, int] | None = None
        self.quiet = asyncio.Lock()  # one timing check at a time
        self._timing_left = set(self.timing_ids())  # timing checks not yet done with the quiet window
        self._light_left = set(self._light)  # light checks not yet landed (heavy ones wait for them)
        self._after_window = _Turns(is_open=not self._timing_left)
        self._after_light = _Turns(is_open=not self._light_left)

    def _event(self, cid: str) -> asyncio.Event:
        ev = self._events.get(cid)
        if ev is None:
            ev = self._events[cid] = asyncio.Event()
        return ev

    def light_ids(self) -> list[str]:
        """The light checks that heavy ones wait for: those that do not (transitively) need a heavy check."""
        return list(self._light)

    def _light_checks(self) -> list[str]:
        needs_heavy = heavy_needed(self.specs)
        return [cid for cid in self.specs if needs_heavy[cid] is None]

    def timing_ids(self) -> list[str]:
        return [cid for cid, s in self.specs.items() if s.timing]

    def quiet_before(self) -> frozenset[str]:
        """The checks that run before the quiet window: what timing checks (transitively) need, not timing ones."""
        if self._quiet_before is None:
            seen: set[str] = set()
            todo = [d for cid in self.timing_ids() for d in self.specs[cid].depends_on]
            while todo:
                cid = todo.pop()
                if cid not in seen and cid in self.specs:
                    seen.add(cid)
                    todo.extend(self.specs[cid].depends_on)
            self._quiet_before = frozenset(cid for cid in seen if not self.specs[cid].timing)
        return self._quiet_before

    def waits_for_quiet_window(self, cid: str) -> bool:
        """True for every check that starts only once all timing checks have landed."""
        return not self.specs[cid].timing and cid not in self.quiet_before()

    def release(self, cid: str) -> None:
        """The timing check `cid` is done with the quiet window (finished, gated, or past QUIET_HOLD_S)."""
        self._timing_left.discard(cid)
        if not self._timing_left:
            self._after_window.open(self.priority)

    async def wait_quiet_window(self, cid: str) -> None:
        """Until every timing check is done with the quiet window; the checks waiting then go in priority order."""
        await self._after_window.wait(cid)

    async def quiet_window_closed(self) -> None:
        """Until every timing check is done with the quiet window (at once when there is none)."""
        await self._after_window.opened.wait()

    async def wait_light(self, cid: str) -> None:
        """Until every light check has landed (heavy checks wait for that); then in priority order."""
        await self._after_light.wait(cid)

    def priority(self, cid: str) -> tuple[bool, int, str]:
        """Sort key, first first: `slow` checks, then those with the longest chain of checks waiting on them (the
        critical path: a check three others wait for in turn goes before one nothing waits for)."""
        if self._height is None:
            self._height = _heights(self.specs)
        spec = self.specs.get(cid)
        return (not (spec is not None and spec.slow), -self._height.get(cid, 1), cid)

    def post(self, result: CheckResult) -> None:
        """The first result of a check is its result: a late second one (a check still running when its section
        was given up on and landed as ERROR) changes nothing already reported."""
        if result.id in self.results:
            return
        self.results[result.id] = result
        if result.id in self._timing_left:
            self.release(result.id)
        self._light_left.discard(result.id)
        if not self._light_left:
            self._after_light.open(self.priority)
        self._event(result.id).set()
        for fn in self.listeners:  # (display only: the CLI's progress lines)
            try:
                fn(result)
            except Exception:  # noqa: BLE001 - a progress line that cannot be written (a closed pipe) changes no result
                pass

    async def wait(self, ids: Iterable[str]) -> dict[str, CheckResult]:
        ids = list(ids)
        for i in ids:
            await self._event(i).wait()
        return {i: self.results[i] for i in ids}

    def root_cause(self, cid: str) -> CheckResult:
        r, seen = self.results[cid], {cid}
        while r.status == Status.SKIPPED and r.details.get("blocked_by") in self.results.keys() - seen:
            seen.add(r.details["blocked_by"])
            r = self.results[r.details["blocked_by"]]
        return r


Executor = Callable[[CheckSpec], Awaitable[CheckResult]]


def gate(spec: CheckSpec, deps: Mapping[str, CheckResult], board: Board) -> CheckResult | None:
    """The SKIPPED / NOT_APPLICABLE result when a dependency did not pass, else None."""
    bad = [d for d in spec.depends_on if deps[d].status not in OK_STATUSES]
    if not bad:
        return None
    started, t0 = _now(), time.monotonic()
    if all(deps[d].status == Status.NOT_APPLICABLE for d in bad):
        why = f"not applicable because {bad[0]} is: {deps[bad[0]].cause or 'not applicable'}"
        return make_result(spec, Status.NOT_APPLICABLE, started=started, t0=t0, cause=why, evidence=why)
    first = next(d for d in bad if deps[d].status != Status.NOT_APPLICABLE)
    root = board.root_cause(first)
    why = f"skipped: {first} is {deps[first].status.value}"
    if root.id != first:
        why += f" (root cause {root.id} {root.status.value}: {root.summary})"
    else:
        why += f": {deps[first].summary}"
    return make_result(
        spec,
        Status.SKIPPED,
        started=started,
        t0=t0,
        cause=why,
        evidence=why,
        details={"blocked_by": first, "root_cause": root.id},
    )


#: how long one timing check keeps the process to itself (a healthy PING / SELECT 1 / TLS probe takes milliseconds)
QUIET_HOLD_S = 0.5


async def run_checks(
    specs: Iterable[CheckSpec], board: Board, executor: Executor, *, redact: Redactor
) -> list[CheckResult]:
    """Run `specs` as concurrently as their dependencies allow (dependencies may be on other sections).

    Order: what timing checks need, then the timing checks one at a time (the quiet window), then every other
    light check concurrently, then the heavy ones. A timing check
    holds the window for at most QUIET_HOLD_S: one still running after that (a hung or slow target) is far past
    any millisecond threshold, so the rest go on. Never raises but a cancellation: a bug of ours running one check
    (its executor or its gate raised) is that check's ERROR, its cause redacted with `redact`, and the others go on.
    Cancelled or not, nothing it started outlives it: every check still running is cancelled on the way out and
    has ended when it returns (a check body on a thread of its own runs on to its own timeout: `execute`)."""

    async def run(spec: CheckSpec) -> CheckResult:
        if board.waits_for_quiet_window(spec.id):
            await board.wait_quiet_window(spec.id)
        if spec.heavy:
            await board.wait_light(spec.id)
        deps = await board.wait(spec.depends_on)
        res = gate(spec, deps, board)
        if res is None and spec.timing:
            await board.wait(board.quiet_before())
            body: asyncio.Future[CheckResult] | None = None
            try:
                async with board.quiet:
                    body = asyncio.ensure_future(executor(spec))
                    await asyncio.wait({body}, timeout=QUIET_HOLD_S)
            except BaseException:
                if body is not None:  # (cancelled while holding the window: its probe goes too, and is gone
                    body.cancel()  # before this returns)
                    await asyncio.gather(body, return_exceptions=True)
                raise
            finally:
                board.release(spec.id)
            res = await body  # (cancelled while awaiting it, so is the probe: asyncio cancels what a task awaits)
        elif res is None:
            res = await executor(spec)
        return res

    async def one(spec: CheckSpec) -> CheckResult:
        try:
            res = await run(spec)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug of ours is the check's ERROR, never a pass nor a lost verdict
            res = engine_error(spec, e, redact)
        board.post(res)
        return res

    tasks = [asyncio.ensure_future(one(s)) for s in specs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:  # (cancelled, gather ends at its first cancelled check: the others may still be cleaning up)
        for t in tasks:
            if not t.done() and not t.cancelling():  # (once: a second cancel would cut their clean-up short)
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # (gone before it returns)


def engine_error(spec: CheckSpec, e: Exception, redact: Redactor) -> CheckResult:
    """The ERROR of a check golive's own engine failed running (a bug of ours: never a pass, nor a lost verdict),
    naming the exception, redacted and on one line."""
    cause = redact.clip(f"golive's engine failed running it: {exc_text(e)}", 300)
    return make_result(spec, Status.ERROR, started=_now(), t0=time.monotonic(), cause=cause, redact=redact)


def exc_text(e: BaseException) -> str:
    """`Type: message` of an exception whose own str() may itself raise (a bug of ours must not hide the first one)."""
    try:
        return f"{type(e).__name__}: {e}"
    except Exception:  # noqa: BLE001
        return f"{type(e).__name__} (its message could not be rendered)"


def run_plain(
    specs: Mapping[str, CheckSpec],
    config: Any,
    *,
    redact: Redactor | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Run checks without Prefect (tests, the benchmark baseline, `golive check`)."""
    redact = redact or Redactor(secrets_of(config))
    memo = Memo()

    async def main() -> list[CheckResult]:
        board = Board(specs)
        if on_result:
            board.listeners.append(on_result)
        return await run_checks(
            specs.values(), board, lambda s: execute(s, config, redact=redact, memo=memo), redact=redact
        )

    return asyncio.run(main())
