"""Issue #10 items 3 and 8: a secret is a secret wherever it lands, and loading a config cannot be abused.

Each test is an attack on today's behaviour: an interpolated token in a plain field, an inline or short secret in a
production config, a file that is not UTF-8, an alias bomb, a duplicate key, an empty host, an empty smoke-check list.
"""

from __future__ import annotations

import json
import resource
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from golive.deployments.cli import main
from golive.flows.config import ConfigError, load_config, parse_config
from golive.tasks.catalog import load_catalog
from golive.tasks.core import Redactor, Status, run_plain, select

REPO = Path(__file__).resolve().parents[1]
SECRET_FIELDS_MSG = "a secret written inline; use ${VAR} or a Prefect Secret block"


def validate(path: Path, capsys) -> tuple[int, str, str]:
    """`golive config validate` in process: exit code, stdout, stderr."""
    code = main(["config", "validate", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, text: str, name: str = "env.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def prometheus():
    """A Prometheus-API answer to /-/healthy on a real socket."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"Prometheus Server is Healthy.\n" if self.path == "/-/healthy" else b"not found\n"
            self.send_response(200 if self.path == "/-/healthy" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- item 3: secrets outside secret fields


def test_a_token_interpolated_into_a_plain_field_is_redacted_from_a_passing_check(tmp_path, prometheus):
    token = "tok" + secrets.token_hex(12)
    path = write(
        tmp_path,
        f"""\
        environment: staging
        monitoring: {{prometheus_url: "http://${{PROM_TOKEN}}@127.0.0.1:{prometheus}"}}
        """,
    )
    cfg = load_config(path, env={"PROM_TOKEN": token})
    assert token in cfg.secrets()
    specs = select(load_catalog(), ids=["monitoring.prometheus.reachable"])
    (res,) = run_plain(specs, cfg, redact=Redactor(cfg.secrets()))
    assert res.status == Status.PASS, res
    dumped = json.dumps(res.model_dump(mode="json"))
    assert f"127.0.0.1:{prometheus}/-/healthy" in dumped  # the evidence is there: only the token is masked
    assert token not in dumped


def test_a_validator_quoting_the_value_it_refused_does_not_leak_an_interpolated_secret(tmp_path, capsys):
    token = "Tk" + secrets.token_hex(12)
    path = write(
        tmp_path,
        """\
        environment: staging
        hosts: {load_balancer: "${LB_TOKEN}"}
        network: {dns: {name: app.example.test, nameserver: "${LB_TOKEN}"}}
        """,
    )
    with pytest.raises(ConfigError) as e:
        load_config(path, env={"LB_TOKEN": token})
    assert [p.split(":")[0] for p in e.value.problems] == ["hosts.load_balancer", "network.dns.nameserver"]
    assert token not in str(e.value)


def test_production_refuses_a_secret_written_inline_naming_the_field(tmp_path, capsys, monkeypatch):
    inline = "correct-horse-battery-staple"
    text = f"""\
        environment: production
        production: true
        postgres: {{host: db.example.test, dbname: app, user: app, password: "{inline}"}}
        """
    code, out, err = validate(write(tmp_path, text), capsys)
    assert code == 3 and out == ""
    assert err.splitlines() == [f"{tmp_path / 'env.yaml'}: postgres.password: {SECRET_FIELDS_MSG}"]
    assert inline not in err
    # a ${VAR:-default}'s default is written in the file too
    monkeypatch.delenv("GOLIVE_T_UNSET", raising=False)
    code, _, err = validate(write(tmp_path, text.replace(inline, "${GOLIVE_T_UNSET:-" + inline + "}")), capsys)
    assert code == 3 and f"postgres.password: {SECRET_FIELDS_MSG}" in err and inline not in err
    # the same file outside production loads (the rule is production's), and a reference loads in production
    code, out, _ = validate(
        write(
            tmp_path,
            text.replace("production: true", "production: false").replace(
                "environment: production", "environment: staging"
            ),
        ),
        capsys,
    )
    assert code == 0 and "ok (environment staging, not production; sections: postgres)" in out
    monkeypatch.setenv("GOLIVE_T_DB_PASSWORD", inline)
    code, out, _ = validate(write(tmp_path, text.replace(inline, "${GOLIVE_T_DB_PASSWORD}")), capsys)
    assert code == 0 and "production rules" in out and inline not in out


def test_production_refuses_secrets_shorter_than_8_characters(tmp_path):
    doc = {
        "environment": "production",
        "production": True,
        "postgres": {
            "host": "db.example.test",
            "port": "${PGPORT}",
            "dbname": "app",
            "user": "app",
            "password": "${DB_PW}",
        },
        "redis": {"url": "redis://cache.example.test:6379/0", "password": "{{ prefect.blocks.secret.redis-pw }}"},
    }
    with pytest.raises(ConfigError) as e:
        parse_config(doc, env={"DB_PW": "hunter2", "PGPORT": "5432"}, secret_loader=lambda name: "abc12")
    assert e.value.problems == [
        "postgres.password: environment variable DB_PW holds a secret shorter than 8 characters (refused in "
        "production)",
        "redis.password: Prefect Secret block 'redis-pw' holds a secret shorter than 8 characters (refused in "
        "production)",
    ]
    assert "hunter2" not in str(e.value) and "abc12" not in str(e.value)
    # 8 characters pass; a short value in a plain field (a port) is not refused, and is still redacted everywhere
    cfg = parse_config(doc, env={"DB_PW": "hunter22", "PGPORT": "5432"}, secret_loader=lambda name: "abcd1234")
    assert cfg.postgres.port == 5432 and {"hunter22", "abcd1234", "5432"} <= set(cfg.secrets())


def test_an_environment_named_production_must_say_it_is_production():
    with pytest.raises(ConfigError) as e:
        parse_config({"environment": "production"}, env={})
    assert e.value.problems == ["(top): environment 'production' must set `production: true` (its rules apply to it)"]


# --------------------------------------------------------------------------- item 8: config loading


def test_a_file_that_is_not_utf8_is_a_config_error_not_a_crash(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("environment: x\ndescription: caf\u00e9\n".encode("latin-1"))
    code, out, err = validate(path, capsys)
    assert code == 3 and out == ""
    assert err.splitlines() == [f"{path}: (file): not UTF-8 text (byte offset 31)"]


def _validate_bounded(path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`golive config validate` in a child process held to 1 GiB of address space (today's loader needs ~3 GB)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "golive.deployments.cli", "config", "validate", str(path)],
        cwd=REPO,
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r, time.monotonic() - t0


BILLION_LAUGHS = """\
environment: x
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    "text,problem",
    [
        (BILLION_LAUGHS, "line 7: more than 100,000 values once aliases expand; refused"),
        ("environment: x\na: &a [1]\n" + "".join(f"k{i}: *a\n" for i in range(101)), "more than 100 aliases; refused"),
        ("environment: x\na: &a [*a]\n", "line 2: an alias inside its own anchor; refused"),
        ("environment: x\nd: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 64 levels; refused"),
    ],
    ids=["billion-laughs", "aliases", "recursive", "deep"],
)
def test_alias_bombs_and_deep_nesting_are_refused_in_one_line(tmp_path, text, problem):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    r, took = _validate_bounded(path)
    assert r.returncode == 3, r.stderr[-2000:]
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"{path}: ") and line.endswith(problem) and took < 30


def test_a_file_over_1_mib_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("environment: x\ndescription: " + "y" * (1 << 20) + "\n")
    code, _, err = validate(path, capsys)
    assert code == 3 and err.splitlines() == [f"{path}: (file): larger than 1 MiB; refused (a config is a few KiB)"]


def test_a_duplicate_key_is_an_error_naming_the_key_and_its_lines(tmp_path, capsys):
    path = write(
        tmp_path,
        """\
        environment: staging
        restore:
          host: restore.example.test
          user: golive_restore
          host: db.example.test
        """,
    )
    code, out, err = validate(path, capsys)
    assert code == 3 and out == ""
    assert err.splitlines() == [f"{path}: line 5: duplicate key 'host' (also on line 3); refused"]
    # a merge key is not a duplicate: the explicit key wins, as YAML says
    merged = write(
        tmp_path,
        """\
        environment: staging
        postgres:
          <<: {host: a.example.test, dbname: app}
          user: app
          dbname: other
        """,
        "merged.yaml",
    )
    cfg = load_config(merged, env={})
    assert (cfg.postgres.host, cfg.postgres.dbname) == ("a.example.test", "other")


@pytest.mark.parametrize(
    "section,fields,problem",
    [
        ("postgres", {"host": "", "dbname": "app", "user": "app"}, "postgres.host: must not be empty"),
        ("postgres", {"host": "db.example.test", "dbname": " ", "user": "app"}, "postgres.dbname: must not be empty"),
        ("postgres", {"host": "db.example.test", "dbname": "app", "user": ""}, "postgres.user: must not be empty"),
        ("restore", {"host": "", "user": "golive_restore"}, "restore.host: must not be empty"),
        (
            "restore",
            {"host": "r.example.test", "user": "u", "maintenance_dbname": ""},
            "restore.maintenance_dbname: must not be empty",
        ),
        ("smtp", {"host": ""}, "smtp.host: must not be empty"),
        ("pgbouncer", {"host": "", "admin_user": "stats"}, "pgbouncer.host: must not be empty"),
        ("redis", {"url": "redis://:6379/0"}, "redis.url: no host in the URL"),
    ],
)
def test_an_empty_host_or_database_name_is_refused(section, fields, problem):
    with pytest.raises(ConfigError) as e:
        parse_config({"environment": "staging", section: fields}, env={})
    assert len(e.value.problems) == 1 and e.value.problems[0].startswith(problem)


def test_config_validate_lists_every_section_written(tmp_path, capsys):
    code, out, _ = validate(
        write(
            tmp_path,
            """\
        environment: drill
        restore: {host: restore.example.test, user: golive_restore}
        """,
        ),
        capsys,
    )
    assert code == 0 and out.endswith("ok (environment drill, not production; sections: restore)\n")
    code, out, _ = validate(
        write(
            tmp_path,
            """\
        environment: drill
        network: {bastion: {host: bastion.example.test}}
        saas: {}
        deploy: {command: [./deploy.sh]}
        approval: {required_roles: [CTO]}
        """,
        ),
        capsys,
    )
    assert code == 0 and out.endswith("sections: network, saas, approval, deploy)\n")


def test_an_empty_or_unknown_smoke_check_list_is_refused_before_anything_deploys():
    base = {"environment": "staging", "deploy": {"command": ["./deploy.sh"]}}
    with pytest.raises(ConfigError) as e:
        parse_config({**base, "deploy": {**base["deploy"], "smoke_checks": []}}, env={})
    assert e.value.problems == [
        "deploy.smoke_checks: empty: a deploy without a smoke test is refused (name at least one check id)"
    ]
    with pytest.raises(ConfigError) as e:
        parse_config(
            {**base, "deploy": {**base["deploy"], "smoke_checks": ["application.api.helth"], "high_checks": ["nope"]}},
            env={},
        )
    assert e.value.problems == [
        "deploy.smoke_checks: unknown check id(s): application.api.helth (see `golive catalog`)",
        "deploy.high_checks: unknown check id(s): nope (see `golive catalog`)",
    ]
    assert parse_config(base, env={}).deploy.smoke_checks  # the default stays the five smoke checks
