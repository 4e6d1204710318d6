"""golive's local Prefect server (issue 16, point 1): with no PREFECT_API_URL, `golive run` uses a PostgreSQL-backed
Prefect server that golive starts once (detached), reuses, and stops with `golive server stop`.

Every test runs `golive` as a user does (a subprocess) with its own temporary XDG directories (never the real
user's), and stops (and purges) whatever server it started in its teardown. The migrated template of Prefect's
database is built once for the module (its own temporary cache), as a user's first start builds it once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from golive.sandbox import procs
from tests.support.cli import REPO, golive

SMALL = "environment: small\n"  # every check NOT_APPLICABLE: a GO in a few seconds, all through Prefect


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def env(tmp_path, cache_home):
    """The environment of a user with no PREFECT_API_URL, whose XDG data directory is this test's own."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GOLIVE_PG_", "XDG_"))}
    e |= {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(cache_home),
        "PREFECT_HOME": str(tmp_path / "prefect-client-home"),
    }
    yield e
    golive("server", "stop", "--purge", env=e, timeout=60)


def server_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "golive" / "server"


def state(env: dict[str, str]) -> dict:
    return json.loads((server_dir(env) / "server.json").read_text())


def run_ci(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    return golive("run", "--mode", "ci", "--config", str(config), "--out", str(tmp_path / "reports"), env=env)


def ok(p: subprocess.CompletedProcess, code: int = 0) -> str:
    assert p.returncode == code, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p.stdout


def server_line(out: str) -> str:
    [line] = [ln for ln in out.splitlines() if ln.startswith("golive: Prefect server:")]
    return line


def test_start_status_run_reuse_stop(env, tmp_path):
    out = ok(golive("server", "start", env=env))
    first = state(env)
    ui = first["ui_url"]
    assert ui.startswith("http://127.0.0.1:") and f"pid {first['pid']}" in out and str(server_dir(env)) in out
    d = server_dir(env)
    assert d.stat().st_mode & 0o777 == 0o700 and d.parent.stat().st_mode & 0o777 == 0o700
    assert (d / "server.json").stat().st_mode & 0o777 == 0o600
    # detached: it outlived the command that started it, in a session of its own
    assert procs.proc_identity(first["pid"]) == (first["pid"], first["pid_start"])
    assert os.getsid(first["pid"]) == first["pid"]
    # bound to the loopback only
    assert all(addr == "127.0.0.1" for addr in listening_addresses(first["port"]))

    page = httpx.get(ui, timeout=30)
    assert page.status_code == 200 and "<html" in page.text  # the UI the run's line points at
    status = ok(golive("server", "status", env=env))
    for what in (f"pid {first['pid']}", ui, str(d), "uptime"):
        assert what in status

    # its API asks for basic auth: the string is in a 0600 file of the 0700 data directory
    auth = (d / "api-auth").read_text().strip()
    assert (d / "api-auth").stat().st_mode & 0o777 == 0o600 and len(auth) > 40
    body = {"flow_runs": {}, "limit": 1}
    assert httpx.post(f"{first['api_url']}/flow_runs/filter", json=body, timeout=10).status_code == 401
    forged = httpx.post(f"{first['api_url']}/flow_runs/filter", json=body, auth=("golive", "guess"), timeout=10)
    assert forged.status_code == 401
    assert auth not in status  # said where it is, never printed

    run1 = ok(run_ci(env, tmp_path))
    line = server_line(run1)
    assert "golive's local server" in line and "reused" in line and f"UI {ui}" in line
    assert f"on {first['api_url']}" in run1 and "VERDICT: GO" in run1
    # the run is recorded on that server (its PostgreSQL), for the UI
    assert [r["state"]["type"] for r in readiness_runs(first["api_url"], env)] == ["COMPLETED"]

    run2 = ok(run_ci(env, tmp_path))
    assert "reused" in server_line(run2) and state(env)["pid"] == first["pid"]
    assert len(readiness_runs(first["api_url"], env)) == 2
    # the client commands read the server the runs used (with no PREFECT_API_URL, not a throwaway one of Prefect's)
    hist = json.loads(ok(golive("history", "--environment", "small", "--format", "json", env=env)))
    assert [r["verdict"] for r in hist["runs"]] == ["GO", "GO"], hist
    # and an acknowledgement lands on it, where the deploy flow reads it (it went to a throwaway ephemeral server of
    # Prefect's, imported before the local server's URL was exported, and the command said "acknowledged")
    by, why = "Ada Ops: SRE lead", "the p95 alert is a known false positive"
    said = ok(golive("ack", "--environment", "small", "--release", "r1", "--by", by, "--reason", why, env=env))
    assert said.startswith("acknowledged every HIGH criterion for release r1")
    var = httpx.get(f"{first['api_url']}/variables/name/golive-ack-small", auth=creds(env), timeout=10)
    assert var.status_code == 200 and var.json()["value"]["by"] == by, var.text
    ok(golive("ack", "--environment", "small", "--clear", env=env))
    gone = httpx.get(f"{first['api_url']}/variables/name/golive-ack-small", auth=creds(env), timeout=10)
    assert gone.status_code == 404

    stopped = ok(golive("server", "stop", env=env))
    assert f"stopped (pid {first['pid']})" in stopped
    assert procs.proc_identity(first["pid"]) is None and procs.proc_identity(first["server_pid"]) is None
    assert not (d / "server.json").exists()
    gone = golive("server", "status", env=env)
    assert gone.returncode == 1 and "not running" in gone.stdout
    nowhere = golive("history", "--environment", "small", env=env)  # (never starts one to read an empty database)
    assert nowhere.returncode == 3 and "local Prefect server is not running" in nowhere.stderr, nowhere.stderr

    # started again by a run: the data (both runs) kept, on the same port
    run3 = ok(run_ci(env, tmp_path))
    assert "started in" in server_line(run3) and state(env)["port"] == first["port"]
    assert len(readiness_runs(first["api_url"], env)) == 3
    purged = ok(golive("server", "stop", "--purge", env=env))
    assert "removed its data" in purged and not (d / "prefect-home").exists()


def creds(env: dict[str, str]) -> tuple[str, str]:
    """The local server's API credentials (basic auth) of the user whose environment `env` is."""
    user, _, password = (server_dir(env) / "api-auth").read_text().strip().partition(":")
    return user, password


def readiness_runs(api: str, env: dict[str, str]) -> list[dict]:
    """The server's top-level flow runs (a readiness run's sections are subflow runs), with its API auth."""
    body = {"flow_runs": {"parent_task_run_id": {"is_null_": True}}}
    return httpx.post(f"{api}/flow_runs/filter", json=body, auth=creds(env), timeout=10).json()


def listening_addresses(port: int) -> list[str]:
    out = []
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = row.split()
        addr, p = cols[1].split(":")
        if cols[3] == "0A" and int(p, 16) == port:
            out.append(".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    assert out, f"nothing listens on {port}"
    return out


def test_two_concurrent_starts_make_one_server(env):
    cmd = [sys.executable, "-m", "golive.deployments.cli", "server", "start"]
    a, b = (subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2))
    outs = [p.communicate(timeout=300)[0] for p in (a, b)]
    assert a.returncode == b.returncode == 0, outs
    pid = state(env)["pid"]
    assert all(f"(pid {pid})" in out for out in outs)
    assert sorted("already running" in out for out in outs) == [False, True]
    supervisors = [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and str(server_dir(env)) in cmdline(int(p.name))
    ]
    assert [int(p.name) for p in supervisors] == [pid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_server_of_other_versions_is_replaced(env):
    ok(golive("server", "start", env=env))
    old = state(env)
    (server_dir(env) / "server.json").write_text(json.dumps({**old, "prefect": "3.0.0"}))  # before an upgrade
    out = ok(golive("server", "start", env=env))
    assert "started in" in out and state(env)["pid"] != old["pid"] and procs.proc_identity(old["pid"]) is None


@pytest.mark.parametrize("where", ["environment", "profile"])
def test_configured_prefect_api_url_wins(env, tmp_path, where):
    """A Prefect server the user configured (here: golive's server of another user directory) always wins, set in
    the environment or in Prefect's active profile (as `prefect config set PREFECT_API_URL=...` and `prefect cloud
    login` leave it: golive used to start its local server over it)."""
    other = {**env, "XDG_DATA_HOME": str(tmp_path / "other-data")}
    try:
        ok(golive("server", "start", env=other))
        api = json.loads((server_dir(other) / "server.json").read_text())["api_url"]
        auth = (server_dir(other) / "api-auth").read_text().strip()
        if where == "environment":  # (its credentials in the URL too: never printed)
            user, _, password = auth.partition(":")
            api = api.replace("http://", f"http://{user}:{password}@")
            theirs = {**env, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": auth}
        else:
            home = Path(env["PREFECT_HOME"])
            home.mkdir(parents=True, exist_ok=True)
            profile = (
                f'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "{api}"\nPREFECT_API_AUTH_STRING = "{auth}"\n'
            )
            (home / "profiles.toml").write_text(profile)
            theirs = env
        out = ok(run_ci(theirs, tmp_path))
        [said] = [ln for ln in out.splitlines() if ln.startswith("golive: readiness of")]
        assert said.startswith("golive: readiness of small (ci) on http://") and said.endswith(api.split("@")[-1])
        assert "golive: Prefect server:" not in out and "unavailable" not in out and auth.partition(":")[2] not in out
        assert not (server_dir(env) / "server.json").exists()  # nothing started for this user
        assert len(readiness_runs(api, other)) == 1
        if where == "profile":  # the client commands: `ack` through Prefect's own client, the readers refuse
            by, why = "Ada Ops: SRE lead", "the p95 alert is a known false positive"
            ok(golive("ack", "--environment", "small", "--release", "r1", "--by", by, "--reason", why, env=env))
            var = httpx.get(f"{api}/variables/name/golive-ack-small", auth=creds(other), timeout=10)
            assert var.status_code == 200 and var.json()["value"]["by"] == by, var.text
            hist = golive("history", "--environment", "small", env=env)
            assert hist.returncode == 3 and "Prefect's own settings (its active profile" in hist.stderr
    finally:
        golive("server", "stop", "--purge", env=other, timeout=60)


def test_a_bad_value_in_prefects_profile_is_one_line_naming_it(env, tmp_path):
    """Reading Prefect's own settings (where a configured API URL may be) meets whatever its profile holds: a value
    it refuses is exit 3 and one line of golive's naming the setting, without the value (it was golive's multi-line
    "the gate itself failed", exit 4, the value echoed; Prefect's own import still prints its error on stderr)."""
    home = Path(env["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "profiles.toml").write_text(
        'active = "team"\n\n[profiles.team]\nPREFECT_API_REQUEST_TIMEOUT = "s3cr3t-ish"\n'
    )
    p = run_ci(env, tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("golive:")]
    assert p.returncode == 3 and lines == [lines[0]] and "Prefect's settings (profile" in lines[0], p.stderr
    assert "request_timeout" in lines[0] and "s3cr3t-ish" not in lines[0]  # (Prefect's own import prints it)
    assert not (server_dir(env) / "server.json").exists()


@pytest.fixture
def impostor(tmp_path):
    """Another program on a port, answering /api/health 200 (a static file server): never to be talked to."""
    root = tmp_path / "www"
    (root / "api").mkdir(parents=True)
    (root / "api" / "health").write_text("true")
    port = procs.free_ports(1)[0]
    log = open(tmp_path / "impostor.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)],
        stdout=log,
        stderr=log,
    )
    procs.wait_until("impostor", lambda: procs.port_open(port), 30)
    assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
    seen = len((tmp_path / "impostor.log").read_bytes())  # that request's log line

    def asked() -> str:
        """What the impostor was asked since."""
        return (tmp_path / "impostor.log").read_bytes()[seen:].decode(errors="replace")

    yield port, asked
    proc.terminate()
    proc.wait(10)
    log.close()
    procs.release_ports([port])


def dead_pid() -> tuple[int, int]:
    p = subprocess.Popen(["true"])
    ident = procs.proc_identity(p.pid) or (p.pid, 1)
    p.wait()
    return ident


def test_a_stale_state_file_is_removed_and_its_port_never_trusted(env, tmp_path, impostor):
    port, asked = impostor
    d = server_dir(env)
    d.mkdir(parents=True, mode=0o700)
    (d.parent).chmod(0o700)
    pid, start = dead_pid()
    stale = {
        "pid": pid,
        "pid_start": start,
        "server_pid": pid,
        "server_start": start,
        "port": port,
        "api_url": f"http://127.0.0.1:{port}/api",
        "ui_url": f"http://127.0.0.1:{port}",
        "started_at": time.time() - 60,
    }
    (d / "server.json").write_text(json.dumps(stale))
    # while another golive holds the lock (starting the server: about to write this file), status only says so
    fd = os.open(d / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = golive("server", "status", env=env)
    finally:
        os.close(fd)
    assert busy.returncode == 1 and "starting or stopping it right now" in busy.stdout, busy.stdout
    assert (d / "server.json").exists()
    status = golive("server", "status", env=env)
    assert status.returncode == 1 and "removed a stale state file" in status.stdout
    assert not (d / "server.json").exists()

    (d / "server.json").write_text(json.dumps(stale))
    out = ok(run_ci(env, tmp_path))
    assert "started in" in server_line(out) and f":{port}" not in server_line(out)
    assert state(env)["port"] != port
    assert "/api/" not in asked()  # the impostor was never asked anything


def test_a_live_server_whose_port_is_another_programs_is_not_trusted(env, tmp_path, impostor):
    port, asked = impostor
    ok(golive("server", "start", env=env))
    real = state(env)
    forged = {**real, "port": port, "api_url": f"http://127.0.0.1:{port}/api", "ui_url": f"http://127.0.0.1:{port}"}
    (server_dir(env) / "server.json").write_text(json.dumps(forged))
    status = golive("server", "status", env=env)
    assert status.returncode == 1 and f"port {port} is not held by its Prefect server" in status.stdout
    # a run replaces the server it cannot verify (ours by pid and start time) with a new one
    out = ok(run_ci(env, tmp_path))
    assert "started in" in server_line(out)
    new = state(env)
    assert new["pid"] != real["pid"] and new["port"] != port
    assert procs.proc_identity(real["pid"]) is None
    assert "/api/" not in asked()


@pytest.mark.e2e  # a second start after a crash; stale state files are covered above
def test_a_server_killed_hard_is_found_stale_and_restarted(env, tmp_path):
    ok(golive("server", "start", env=env))
    old = state(env)
    os.kill(old["pid"], signal.SIGKILL)  # its PostgreSQL and Prefect server die with it
    procs.wait_until("the server's death", lambda: procs.proc_identity(old["server_pid"]) is None, 30)
    out = ok(run_ci(env, tmp_path))
    assert "started in" in server_line(out) and state(env)["pid"] != old["pid"]


@pytest.mark.e2e  # slow: a whole run on Prefect's ephemeral server
def test_without_the_embedded_postgresql_one_line_then_prefects_own_server(env, tmp_path):
    out = ok(run_ci({**env, "GOLIVE_PG_INSTALL": str(tmp_path / "no-such-postgresql")}, tmp_path))
    lines = [ln for ln in out.splitlines() if "unavailable" in ln]
    assert lines == [
        f"golive: the local Prefect server is unavailable (no executable {tmp_path}/no-such-postgresql/bin/initdb "
        f"(GOLIVE_PG_INSTALL={tmp_path}/no-such-postgresql)); using Prefect's ephemeral SQLite server (slower)"
    ]
    assert "on an ephemeral Prefect server" in out and "VERDICT: GO" in out
    assert not (server_dir(env) / "server.json").exists()


def test_an_initdb_that_fails_is_said_in_one_line(env, tmp_path, request):
    # where PostgreSQL's user (nobody, when the tests run as root) can run it from, as from any installation
    base = Path(tempfile.mkdtemp(prefix="golive-test-broken-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    fake = base / "bin"
    fake.mkdir(mode=0o755)
    for exe in ("initdb", "postgres"):
        (fake / exe).write_text(
            "#!/bin/sh\necho 'initdb: error: could not create directory: No space left' >&2\nexit 1\n"
        )
        (fake / exe).chmod(0o755)
    own_cache = {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), "GOLIVE_PG_INSTALL": str(fake.parent)}
    p = golive("server", "start", env=own_cache)
    assert p.returncode == 4
    assert p.stderr.strip() == (
        "golive: the local Prefect server could not start: initdb failed: exit 1: initdb: error: could not create "
        "directory: No space left"
    )
    assert not (server_dir(env) / "server.json").exists()
    assert [c.name for c in (tmp_path / "cache" / "golive").iterdir() if not c.name.endswith(".lock")] == []


@pytest.mark.e2e  # the same path as `golive run` (proven above), with `golive serve`'s deployments on it
def test_golive_serve_serves_its_deployments_on_the_local_server(env, tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "golive.deployments.cli", "serve", "--config", str(config)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            if not (server_dir(env) / "server.json").exists():
                return False
            token = (server_dir(env) / "api-auth").read_text().strip()
            deployments = httpx.post(
                f"{state(env)['api_url']}/deployments/filter", json={}, auth=tuple(token.split(":", 1)), timeout=10
            ).json()
            return {d["name"] for d in deployments if d["status"] == "READY"} >= {"go-live", "nightly-rehearsal", "ci"}

        procs.wait_until("golive serve", ready, 180, alive=lambda: serve.poll() is None, log=log)
        assert "golive's local server" in server_line(log.read_text())
    finally:
        serve.terminate()
        serve.wait(30)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)


def test_every_server_golive_starts_batches_its_task_run_recorder(prefect_api, sandbox, tmp_path, monkeypatch):
    """The recorder's default (one transaction per task-run event) cost the server 3.9 CPU-s per readiness run,
    batched 2.0; its default database pool opened and closed ~10 PostgreSQL sessions a run: golive's servers run with
    SERVER_TUNING, and an operator's own value in the environment wins."""
    from golive.deployments.prefect_server import SERVER_TUNING, PrefectServer

    env = _environ(prefect_api.proc.pid)
    assert SERVER_TUNING and all(env.get(k) == v for k, v in SERVER_TUNING.items()), env
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "7")
    with PrefectServer(sandbox.prefect_database_url(), tmp_path / "home") as other:
        env = _environ(other.proc.pid)
    assert env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "7"
    assert env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"] == "1"
    # an operator's setting under Prefect's older name of it wins too (Prefect reads its own name first)
    monkeypatch.setenv("PREFECT_SQLALCHEMY_POOL_SIZE", "3")
    with PrefectServer(sandbox.prefect_database_url(), tmp_path / "home2") as other:
        env = _environ(other.proc.pid)
    assert "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE" not in env and env["PREFECT_SQLALCHEMY_POOL_SIZE"] == "3"
    read = "from prefect.settings import get_current_settings as s; print(s().server.database.sqlalchemy.pool_size)"
    seen = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, timeout=60)
    assert seen.stdout.strip() == "3", seen  # what that server's own settings made of its environment


def test_the_server_tuning_knows_every_older_name_prefect_reads_and_any_case():
    """`OLDER_NAMES` is golive's copy of Prefect's aliases for the tuned settings (prefect_server must not import
    prefect: next test), checked here against Prefect's settings model so an upgrade that adds or renames one
    fails here, not silently on an operator's server; and an operator's setting wins in any case, as in Prefect."""
    from prefect.settings.models.root import Settings
    from pydantic import AliasChoices, BaseModel

    from golive.deployments.prefect_server import OLDER_NAMES, SERVER_TUNING, server_tuning

    def fields(model):  # (each setting's environment name, and the field)
        for n, f in model.model_fields.items():
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
                yield from fields(f.annotation)
            else:
                yield (model.model_config.get("env_prefix", "") + n).upper(), f

    names, settings = {}, set()
    for name, f in fields(Settings):
        settings.add(name)
        va = f.validation_alias
        choices = [c.upper() for c in va.choices if isinstance(c, str)] if isinstance(va, AliasChoices) else []
        for c in choices:
            names[c] = choices
    assert set(SERVER_TUNING) <= settings, set(SERVER_TUNING) - settings  # (each a setting of this Prefect's)
    for key in SERVER_TUNING:
        assert set(names.get(key, [key])) == {key, *OLDER_NAMES.get(key, ())}, key
        assert names.get(key, [key])[0] == key  # (Prefect's own name is read first: why an older one must win here)
    assert "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE" not in server_tuning({"prefect_sqlalchemy_pool_size": "4"})
    assert "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE" not in server_tuning(
        {"prefect_server_services_task_run_recorder_batch_size": "4"}
    )
    assert server_tuning({"PATH": "/bin"}) == SERVER_TUNING


def test_the_local_server_gets_the_operators_tuning_and_nothing_else_of_theirs(monkeypatch):
    """The local server's supervisor keeps of the starting command's environment only what it needs: an operator's
    tuning of the server reaches it, under any name Prefect reads it by and in any case (the pool size never did),
    and nothing else of theirs (a database URL, a config's secrets)."""
    from golive.deployments.local_server import _supervisor_env

    for k, v in {
        "prefect_sqlalchemy_pool_size": "4",
        "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "6",
        "Prefect_Server_Services_Scheduler_Enabled": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql://u:hunter2@db/prefect",
        "SANDBOX_DB_PASSWORD": "hunter2",
        "LC_ALL": "C.UTF-8",
    }.items():
        monkeypatch.setenv(k, v)
    kept = _supervisor_env()
    for k in ("prefect_sqlalchemy_pool_size", "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE", "LC_ALL"):
        assert k in kept, k
    assert kept["Prefect_Server_Services_Scheduler_Enabled"] == "false"
    assert "hunter2" not in json.dumps(kept)


def test_starting_a_server_leaves_prefects_settings_to_the_caller(sandbox, tmp_path):
    """The demo and the benchmarks start a PrefectServer, then export its URL, then run flows: a server start that
    imported prefect froze Prefect's settings with no API URL, and every flow ran on Prefect's ephemeral SQLite
    server instead (bench/overhead.py's no-op floor 1.0 -> 7-16 s, and nothing said so)."""
    code = f"""
import os, sys
from pathlib import Path
from golive.deployments.prefect_server import PrefectServer
with PrefectServer({sandbox.prefect_database_url()!r}, Path({str(tmp_path / "home")!r})) as srv:
    before = "prefect" in sys.modules
    os.environ.update(srv.client_env())
    from prefect.settings import get_current_settings
    print(before, get_current_settings().api.url == srv.api_url)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out


def test_stop_never_waits_for_ever_for_a_supervisor_that_outlives_sigkill(monkeypatch, tmp_path):
    """A process in uninterruptible sleep ignores SIGKILL for as long as it sleeps: `stop` gives up after
    KILL_WAIT_S and says so instead of hanging (a stand-in process that cannot be made to die: its signals are
    intercepted here, since a real D-state process cannot be made on demand)."""
    from golive.deployments import local_server

    sent: list[int] = []
    monkeypatch.setattr(local_server, "_alive", lambda pid, start: True)
    monkeypatch.setattr(local_server.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(local_server, "KILL_WAIT_S", 0.3)
    t0 = time.monotonic()
    with pytest.raises(local_server.ServerError, match="did not exit 0.3 s after SIGKILL"):
        local_server._stop_supervisor({"pid": 4242, "pid_start": 1}, local_server.Paths(tmp_path), grace=0.2)
    assert sent == [signal.SIGTERM, signal.SIGKILL] and time.monotonic() - t0 < 5
