"""Environment config: one YAML file per environment, composed of the target models that live beside their checks.

- `${VAR}` / `${VAR:-default}` are read from the environment (a missing variable is an error naming the key);
- `{{ prefect.blocks.secret.NAME }}` is read from a Prefect Secret block (Prefect's own template syntax);
- secrets are `SecretStr`: they print as `**********`, and the run's Redactor removes them from everything;
- unknown keys are errors; every problem is reported as one line `key.path: message`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # LibYAML: ~10x faster, same safe subset
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from tasks.postgres import PostgresTarget
from tasks.prometheus import MonitoringTarget
from tasks.rediscache import RedisTarget
from tasks.restore import RestoreTarget
from tasks.s3backup import BackupTarget
from tasks.smtp import SmtpTarget
from tasks.team import TeamTarget
from tasks.web import WebTarget
from tasks.hosts import HostsTarget
from tasks.loadbalancer import LoadBalancerTarget
from tasks.loadtest import LoadTestTarget
from tasks.network import NetworkTarget
from tasks.containers import ContainersTarget
from tasks.observability import ObservabilityTarget
from tasks.pgbouncer import PgBouncerTarget
from tasks.pgindexes import IndexesTarget
from tasks.saas_deps import SaasTarget
from tasks.app import AppTarget
from tasks.security import SecurityTarget
from tasks.workers import WorkersTarget

from .policies import ApprovalPolicy, DeployPolicy


class ChecksPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    skip: list[str] = Field(default_factory=list, description="check ids not run in this environment (reported)")
    advisory: list[str] = Field(default_factory=list, description="check ids downgraded to advisory here")


class NotifyPolicy(BaseModel):
    """Rehearsal mode: what counts as "slower", and where the "what changed since last night" message goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    webhook_url: SecretStr | None = Field(None, description="Slack-compatible incoming webhook (a secret: the "
                                                            "URL is the credential); absent: the diff is only in "
                                                            "the report")
    only_on_change: bool = Field(False, description="post only when something changed (default: every night, so "
                                                    "silence means the rehearsal did not run)")
    timeout_s: float = Field(5.0, gt=0, le=60, description="the webhook POST's whole budget; no retries")
    slow_factor: float = Field(1.5, gt=1, description="slower: the duration grew more than this factor ...")
    slow_min_seconds: float = Field(1.0, ge=0, description="... and by more than this many seconds")

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v.get_secret_value()):
            raise ValueError("must be an http(s):// URL")
        return v


class GoliveConfig(BaseModel):
    """The whole environment. Sections that are absent make their checks NOT_APPLICABLE, with the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
                             description="name; also the artifact key suffix (lowercase, digits, dashes)")
    description: str = ""
    production: bool = Field(False, description="true for the production environment (stricter checks)")
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
    loadbalancer: LoadBalancerTarget | None = Field(None, description="load balancer pool, health checks, "
                                                                      "auto-scaling (1.1, 6.2)")
    loadtest: LoadTestTarget | None = Field(None, description="the last load test's results (6.1)")
    pgbouncer: PgBouncerTarget | None = Field(None, description="the connection pool's admin console (2.1)")
    indexes: IndexesTarget | None = Field(None, description="critical indexes and queries (2.1); connects with "
                                                           "the `postgres` section's credentials")
    saas: SaasTarget | None = Field(None, description="Twilio, Stripe, Sentry, Google Analytics (2.2)")
    containers: ContainersTarget | None = Field(None, description="Docker Engine and Kubernetes APIs (2.3)")
    observability: ObservabilityTarget | None = Field(None, description="Grafana, Alertmanager, Elasticsearch/"
                                                                       "Kibana logging (7.1)")
    app: AppTarget | None = Field(None, description="the deployed app (4.1, 4.2): env var names, packages vs the "
                                                    "lock file, frontend bundle; URL and login from `web`")
    workers: WorkersTarget | None = Field(None, description="the scheduler's job store (4.3); connects with the "
                                                            "`postgres` section's credentials")
    security: SecurityTarget | None = Field(None, description="sessions, hashes, secrets, access control, audit "
                                                              "log, dependencies (5.1-5.4)")
    checks: ChecksPolicy = Field(default_factory=ChecksPolicy)
    notify: NotifyPolicy | None = Field(None, description="rehearsal diff thresholds and webhook (rehearsal mode)")
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    deploy: DeployPolicy | None = None
    _block_secrets: list[str] = PrivateAttr(default_factory=list)

    def secrets(self) -> list[str]:
        """Every secret value of this config: SecretStr fields, and anything read from a Prefect Secret block."""
        from tasks.core import collect_secrets

        return collect_secrets(self) + list(self._block_secrets)


class ConfigError(Exception):
    """One or more problems, each `key.path: message`."""

    def __init__(self, problems: list[str], source: str = ""):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(problems))


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BLOCK = re.compile(r"\{\{\s*prefect\.blocks\.secret\.([a-z0-9][a-z0-9-]*)\s*\}\}")


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _interpolate(node: Any, loc: tuple[Any, ...], env: dict[str, str], problems: list[str],
                 secret_loader: Callable[[str], str], block_values: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, loc + (k,), env, problems, secret_loader, block_values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, loc + (i,), env, problems, secret_loader, block_values) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def var(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(f"{_path(loc)}: environment variable {name} is not set")
        return ""

    def block(m: re.Match) -> str:
        try:
            value = secret_loader(m.group(1))
            block_values.append(value)
            return value
        except Exception as e:  # noqa: BLE001 - reported as a config problem
            why = str(e) if isinstance(e, NoPrefectApi) else type(e).__name__
            problems.append(f"{_path(loc)}: Prefect Secret block {m.group(1)!r} could not be read ({why})")
            return ""

    return _BLOCK.sub(block, _VAR.sub(var, node))


class NoPrefectApi(Exception):
    def __str__(self) -> str:
        return "no Prefect API configured: set PREFECT_API_URL"


def _prefect_secret(name: str) -> str:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # never start a throwaway ephemeral server just to find no block in it
        raise NoPrefectApi()
    from prefect.blocks.system import Secret

    value = Secret.load(name, _sync=True).get()  # type: ignore[call-arg]
    return value if isinstance(value, str) else str(value)


def _friendly(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    msg = msg.removeprefix("Value error, ")
    return f"{_path(err['loc'])}: {msg}"


def parse_config(data: Any, *, env: dict[str, str] | None = None, source: str = "<config>",
                 secret_loader: Callable[[str], str] = _prefect_secret) -> GoliveConfig:
    if not isinstance(data, dict):
        raise ConfigError([f"(top): expected a mapping of sections, got {type(data).__name__}"], source)
    problems: list[str] = []
    block_values: list[str] = []
    resolved = _interpolate(data, (), dict(os.environ if env is None else env), problems, secret_loader, block_values)
    if problems:
        raise ConfigError(problems, source)
    try:
        cfg = GoliveConfig.model_validate(resolved)
        cfg._block_secrets.extend(block_values)
        return cfg
    except ValidationError as e:
        raise ConfigError([_friendly(err) for err in e.errors()], source) from None


def load_config(path: str | Path, *, env: dict[str, str] | None = None,
                secret_loader: Callable[[str], str] = _prefect_secret) -> GoliveConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError([f"(file): cannot read {p}: {e.strerror}"], str(p)) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader (LibYAML's when built in)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise ConfigError([f"{where}: not valid YAML ({getattr(e, 'problem', e)})"], str(p)) from None
    return parse_config(data, env=env, source=str(p), secret_loader=secret_loader)


def json_schema() -> dict[str, Any]:
    return GoliveConfig.model_json_schema()
