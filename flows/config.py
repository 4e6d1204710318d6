"""Environment config: one YAML file per environment, composed of the target models that live beside their checks.

- `${VAR}` / `${VAR:-default}` are read from the environment (a missing variable is an error naming the key);
- `{{ prefect.blocks.secret.NAME }}` is read from a Prefect Secret block (Prefect's own template syntax);
- secrets are `SecretStr`: they print as `**********`, and the run's Redactor removes them from everything;
- every value read from the environment or a Secret block is a secret wherever it lands (a token inside a URL too);
- production (`production: true`): a secret field must be a reference, and no secret is shorter than 8 characters;
- unknown keys, duplicate keys are errors; every problem is reported as one line `key.path: message`, redacted;
- the file is bounded: 1 MiB of UTF-8, 100 YAML aliases, 100,000 values once aliases expand, 64 levels deep.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from golive.tasks.app import AppTarget
from golive.tasks.backups import BackupTarget
from golive.tasks.containers import ContainersTarget
from golive.tasks.core import Redactor
from golive.tasks.hosts import HostsTarget
from golive.tasks.indexes import IndexesTarget
from golive.tasks.loadbalancer import LoadBalancerTarget
from golive.tasks.loadtest import LoadTestTarget
from golive.tasks.monitoring.prometheus import MonitoringTarget
from golive.tasks.network import NetworkTarget
from golive.tasks.observability import ObservabilityTarget
from golive.tasks.pgbouncer import PgBouncerTarget
from golive.tasks.postgres import PostgresTarget
from golive.tasks.redis import RedisTarget
from golive.tasks.restore.target import RestoreTarget
from golive.tasks.saas import SaasTarget
from golive.tasks.security.target import SecurityTarget
from golive.tasks.smtp import SmtpTarget
from golive.tasks.team import TeamTarget
from golive.tasks.web import WebTarget
from golive.tasks.workers import WorkersTarget

from .policies import ApprovalPolicy, DeployPolicy

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # LibYAML: ~10x faster, same safe subset


class ChecksPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    skip: list[str] = Field(default_factory=list, description="check ids not run in this environment (reported)")
    advisory: list[str] = Field(default_factory=list, description="check ids downgraded to advisory here")


class NotifyPolicy(BaseModel):
    """Rehearsal mode: what counts as "slower", and where the "what changed since last night" message goes; every
    mode: where the run's metrics go (flows/metrics.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    webhook_url: SecretStr | None = Field(
        None,
        description="Slack-compatible incoming webhook (a secret: the "
        "URL is the credential); absent: the diff is only in "
        "the report",
    )
    only_on_change: bool = Field(
        False,
        description="post only when something changed (default: every night, so "
        "silence means the rehearsal did not run)",
    )
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="the webhook POST's and the Pushgateway PUT's whole budget each; no retries"
    )
    slow_factor: float = Field(1.5, gt=1, description="slower: the duration grew more than this factor ...")
    slow_min_seconds: float = Field(1.0, ge=0, description="... and by more than this many seconds")
    # history and trend (flows/history.py, flows/trend.py)
    history_runs: int = Field(
        14,
        ge=2,
        le=100,
        description="rehearsal mode: the trend picture and the flaky-check window cover this many rehearsals "
        "(tonight's included)",
    )
    flaky_changes: int = Field(
        2,
        ge=1,
        le=99,
        description="a check whose status changed more than this many times in the last `history_runs` "
        "rehearsals, with no config change in between, is flagged flaky (it still counts)",
    )

    pushgateway_url: SecretStr | None = Field(
        None,
        description="every run (any mode) pushes its metrics to this Prometheus Pushgateway, group "
        'job="golive", environment=<env> (a secret: the URL may carry credentials, http(s)://user:pass@host:9091); '
        "a failed push is a warning and a report note, never the run's failure",
    )
    metrics_textfile: Path | None = Field(
        None,
        description="every run (any mode) writes its metrics to this *.prom file in node_exporter's "
        "--collector.textfile.directory (to a temporary name, then renamed: never read half-written)",
    )

    @field_validator("metrics_textfile")
    @classmethod
    def _prom(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix != ".prom":
            raise ValueError("must end in .prom (node_exporter's textfile collector reads only *.prom files)")
        return v

    @field_validator("webhook_url", "pushgateway_url")
    @classmethod
    def _http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v.get_secret_value()):
            raise ValueError("must be an http(s):// URL")
        return v


class GoliveConfig(BaseModel):
    """The whole environment. Sections that are absent make their checks NOT_APPLICABLE, with the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="name; also the artifact key suffix (lowercase, digits, dashes)",
    )
    description: str = ""
    production: bool = Field(
        False,
        description="true for the production environment: stricter checks, and every "
        "secret field must be a ${VAR} or Secret block reference of at least "
        "8 characters; required when the environment is named prod/production",
    )
    web: WebTarget | None = None
    postgres: PostgresTarget | None = None
    redis: RedisTarget | None = None
    smtp: SmtpTarget | None = None
    backups: BackupTarget | None = None
    restore: RestoreTarget | None = None
    monitoring: MonitoringTarget | None = None
    team: TeamTarget | None = None
    hosts: HostsTarget | None = Field(None, description="servers (1.1): LB / DB reach, backend Python, link speed")
    network: NetworkTarget | None = Field(None, description="network (1.2): DNS, firewall, bastion, CDN")
    loadbalancer: LoadBalancerTarget | None = Field(
        None, description="load balancer pool, health checks, auto-scaling (1.1, 6.2)"
    )
    loadtest: LoadTestTarget | None = Field(None, description="the last load test's results (6.1)")
    pgbouncer: PgBouncerTarget | None = Field(None, description="the connection pool's admin console (2.1)")
    indexes: IndexesTarget | None = Field(
        None, description="critical indexes and queries (2.1); connects with the `postgres` section's credentials"
    )
    saas: SaasTarget | None = Field(None, description="Twilio, Stripe, Sentry, Google Analytics (2.2)")
    containers: ContainersTarget | None = Field(None, description="Docker Engine and Kubernetes APIs (2.3)")
    observability: ObservabilityTarget | None = Field(
        None, description="Grafana, Alertmanager, Elasticsearch/Kibana logging (7.1)"
    )
    app: AppTarget | None = Field(
        None,
        description="the deployed app (4.1, 4.2): env var names, packages vs the "
        "lock file, frontend bundle; URL and login from `web`",
    )
    workers: WorkersTarget | None = Field(
        None, description="the scheduler's job store (4.3); connects with the `postgres` section's credentials"
    )
    security: SecurityTarget | None = Field(
        None, description="sessions, hashes, secrets, access control, audit log, dependencies (5.1-5.4)"
    )
    checks: ChecksPolicy = Field(default_factory=ChecksPolicy)
    notify: NotifyPolicy | None = Field(
        None, description="rehearsal diff thresholds and webhook (rehearsal mode); metrics export (every mode)"
    )
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    deploy: DeployPolicy | None = None
    _ref_secrets: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _named_production(self) -> GoliveConfig:
        if self.environment in ("prod", "production") and not self.production:
            raise ValueError(f"environment {self.environment!r} must set `production: true` (its rules apply to it)")
        return self

    def secrets(self) -> list[str]:
        """Every secret value of this config: SecretStr fields, and every value read from the environment or a
        Prefect Secret block, whatever field it landed in."""
        return [s.get_secret_value() for _, s in _secret_fields(self)] + list(self._ref_secrets)


def _secret_fields(obj: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], SecretStr]]:
    """(key path, value) of every SecretStr inside a (nested) model; the path is the YAML's (no field aliases)."""
    if isinstance(obj, SecretStr):
        yield loc, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _secret_fields(getattr(obj, name), loc + (name,))
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _secret_fields(v, loc + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _secret_fields(v, loc + (i,))


class ConfigError(Exception):
    """One or more problems, each `key.path: message`."""

    def __init__(self, problems: list[str], source: str = ""):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(problems))


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BLOCK = re.compile(r"\{\{\s*prefect\.blocks\.secret\.([a-z0-9][a-z0-9-]*)\s*\}\}")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_SECRET = 8  # production: shorter is guessable, and too short to redact without shredding other text
MAX_BYTES = 1 << 20  # an environment config is a few KiB
MAX_ALIASES = 100  # YAML `*name` references in one document ...
MAX_VALUES = 100_000  # ... and the values it may hold once they expand ("billion laughs": 552 bytes -> 2.8 GB)
MAX_DEPTH = 64
#: (key path, kind, name, value) of each substitution; kind: "env", "default" (written in the file) or "block"
Ref = tuple[tuple[Any, ...], str, str, str]


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:  # a list index; any other key quoted and bounded (a space, a dot, an escape code, 1 MiB of key)
            out += f"[{part}]" if type(part) is int else f"[{part!r:.80}]"
    return out or "(top)"


def _interpolate(
    node: Any,
    loc: tuple[Any, ...],
    env: dict[str, str],
    problems: list[str],
    secret_loader: Callable[[str], str],
    refs: list[Ref],
) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, loc + (k,), env, problems, secret_loader, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, loc + (i,), env, problems, secret_loader, refs) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def var(m: re.Match[str]) -> str:
        name: str = m.group(1)
        default: str | None = m.group(2)
        if name in env:
            refs.append((loc, "env", name, env[name]))
            return env[name]
        if default is not None:
            refs.append((loc, "default", name, default))
            return default
        problems.append(f"{_path(loc)}: environment variable {name} is not set")
        return ""

    def block(m: re.Match[str]) -> str:
        try:
            value = secret_loader(m.group(1))
            refs.append((loc, "block", m.group(1), value))
            return value
        except Exception as e:  # noqa: BLE001 - reported as a config problem
            why = str(e) if isinstance(e, NoPrefectApi) else type(e).__name__
            problems.append(f"{_path(loc)}: Prefect Secret block {m.group(1)!r} could not be read ({why})")
            return ""

    return _BLOCK.sub(block, _VAR.sub(var, node))


def _production_problems(cfg: GoliveConfig, refs: list[Ref]) -> list[str]:
    """Each secret field is a reference (not written in the file, nor a `${VAR:-default}`'s default), and each value
    read into one, like each Secret block value wherever it lands, has at least MIN_SECRET characters."""
    problems: list[str] = []
    secret_locs = set()
    for loc, _ in _secret_fields(cfg):
        secret_locs.add(loc)
        kinds = {kind for at, kind, _, _ in refs if at == loc}
        if not kinds or "default" in kinds:
            problems.append(f"{_path(loc)}: a secret written inline; use ${{VAR}} or a Prefect Secret block")
    for loc, kind, name, value in refs:
        if len(value) < MIN_SECRET and (kind == "block" or (kind == "env" and loc in secret_locs)):
            what = f"environment variable {name}" if kind == "env" else f"Prefect Secret block {name!r}"
            problems.append(
                f"{_path(loc)}: {what} holds a secret shorter than {MIN_SECRET} characters (refused in production)"
            )
    return problems


class NoPrefectApi(Exception):
    def __str__(self) -> str:
        return "no Prefect API configured: set PREFECT_API_URL"


def _prefect_secret(name: str) -> str:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # never start a throwaway ephemeral server just to find no block in it
        raise NoPrefectApi()
    from prefect.blocks.system import Secret

    # `_sync=True` makes Prefect's async_dispatch run the sync implementation: a Secret, never a coroutine (its types
    # know neither the flag nor that it decides the return type)
    block = cast("Secret[Any]", Secret.load(name, _sync=True))  # type: ignore[call-arg]
    value = block.get()
    return value if isinstance(value, str) else str(value)


def _friendly(err: ErrorDetails) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    msg = msg.removeprefix("Value error, ")
    return f"{_path(err['loc'])}: {msg}"


def parse_config(
    data: Any,
    *,
    env: dict[str, str] | None = None,
    source: str = "<config>",
    secret_loader: Callable[[str], str] = _prefect_secret,
) -> GoliveConfig:
    if not isinstance(data, dict):
        raise ConfigError([f"(top): expected a mapping of sections, got {type(data).__name__}"], source)
    problems: list[str] = []
    refs: list[Ref] = []
    resolved = _interpolate(data, (), dict(os.environ if env is None else env), problems, secret_loader, refs)
    secrets = [value for _, kind, _, value in refs if kind != "default" and value]
    if not problems:
        try:
            cfg = GoliveConfig.model_validate(resolved)
            problems = _production_problems(cfg, refs) if cfg.production else []
        except ValidationError as e:
            problems = [_friendly(err) for err in e.errors()]
    if problems:  # redacted: a validator may quote the value it refused
        redact = Redactor(secrets)
        raise ConfigError([redact.text(p) for p in problems], source)
    cfg._ref_secrets.extend(secrets)
    return cfg


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config must not be: a duplicate key, an alias bomb."""


def _bounded(root: yaml.Node) -> None:
    """Refuse a node graph nested deeper than MAX_DEPTH, with more than MAX_ALIASES aliases, an alias inside its own
    anchor, or more than MAX_VALUES values once its aliases expand (they are shared while loading, copied later)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    aliases = 0

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        if id(node) in sizes or id(node) in open_:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Refused(problem=f"more than {MAX_ALIASES} aliases; refused", problem_mark=node.start_mark)
            if id(node) in open_:
                raise _Refused(problem="an alias inside its own anchor; refused", problem_mark=node.start_mark)
            return sizes[id(node)]
        if depth > MAX_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels; refused", problem_mark=node.start_mark)
        open_.add(id(node))
        kids = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else []
        )
        n = 1 + sum(size(k, depth + 1) for k in kids)
        if n > MAX_VALUES:
            raise _Refused(
                problem=f"more than {MAX_VALUES:,} values once aliases expand; refused", problem_mark=node.start_mark
            )
        open_.discard(id(node))
        sizes[id(node)] = n
        return n

    size(root, 0)


class _Loader(_YAML_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, bounded (`_bounded`), refusing duplicate keys (YAML keeps the last one, silently)."""

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _bounded(node)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as e:  # a date that is no date, `!!int 0x`: not a traceback
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this {tag} ({e})", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)  # a scalar, hashable; memoized for super()
                if key in lines:
                    raise _Refused(
                        problem=f"duplicate key {key!r:.80} (also on line {lines[key]}); refused",
                        problem_mark=key_node.start_mark,
                    )
                lines[key] = key_node.start_mark.line + 1
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def load_config(
    path: str | Path, *, env: dict[str, str] | None = None, secret_loader: Callable[[str], str] = _prefect_secret
) -> GoliveConfig:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # bounded: a FIFO or /dev/zero is refused too
    except (OSError, ValueError) as e:
        raise ConfigError([f"(file): cannot read {p}: {getattr(e, 'strerror', None) or e}"], str(p)) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError([f"(file): larger than {MAX_BYTES >> 20} MiB; refused (a config is a few KiB)"], str(p))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"(file): not UTF-8 text (byte offset {e.start})"], str(p)) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader (LibYAML's when built in)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        what = getattr(e, "problem", None) or str(e).splitlines()[0]  # a ReaderError has no `problem`
        raise ConfigError(
            [f"{where}: {what}" if isinstance(e, _Refused) else f"{where}: not valid YAML ({what})"], str(p)
        ) from None
    return parse_config(data, env=env, source=str(p), secret_loader=secret_loader)


def json_schema() -> dict[str, Any]:
    return GoliveConfig.model_json_schema()
