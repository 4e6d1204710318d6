"""The Sandbox: a local production-like stack of real processes on 127.0.0.1, started and stopped by one call.

Its processes come from its parts (PARTS, each implementing sandbox/part.py's Part): every part's PORTS get a free port
each, every part's services(stack) are the Services the Sandbox starts, waits for, restarts and stops by name. When
each starts is the start sequence below (`_start`); what the parts hold once up (the seed, the backups, the app's
repository) and the golive config that points at them are set up here and in the checklist sections' modules
(infrastructure.py, dependencies.py, application.py).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import application, configfile, dependencies, dr, infrastructure, procs
from .certs import CertFiles, make_certs
from .fakes import package_mirrors, service_apis, team_apis
from .faults import lookup
from .part import Part, Service
from .parts import network_edge, postgres, prometheus_api, redis_pair, s3, scheduler, smtp, web_app
from .parts.postgres import ROOT, prefect_dirs, product_dirs, restore_dirs
from .parts.s3_server import write_clock
from .runtime import write_faults

SCHEMA_VERSION = "20251231080000"
READY_TIMEOUT = 60.0
#: every part of the stack (sandbox/part.py): its services, the fakes' servers, PgBouncer and Alertmanager
PARTS: tuple[Part, ...] = (
    postgres,
    redis_pair,
    s3,
    smtp,
    web_app,
    scheduler,
    prometheus_api,
    network_edge,
    team_apis,
    service_apis,
    package_mirrors,
    dependencies,
)


class Sandbox:
    """A running stack; create it with `Sandbox.start()`.

    Attributes: `config_path` (the golive YAML), `env` (the secrets it references), `urls`, `ports`, `ca_file`,
    `base_dir`, `faults` (active fault names), `services` (name -> Service), `superuser_password` (PostgreSQL).
    `break_`/`repair`/`fault` and `stop` may be called from any thread, one at a time.
    """

    def __init__(self, base_dir: Path, keep: bool, rate_limit: int):
        self.base_dir = base_dir
        self.keep = keep
        self.rate_limit = rate_limit
        self.faults: set[str] = set()
        self.schema_version = SCHEMA_VERSION
        self.dump = b""
        self.backup_key = ""
        self.started_at = dt.datetime.now(dt.UTC)
        self.backup_uploaded_at = self.started_at
        self.unencrypted_key: str | None = None
        self.fault_keys: dict[str, str] = {}  # fault name -> the S3 object it added
        self._wrong_db_dump: bytes | None = None
        self.s3_reader: tuple[str, str] = ("", "")  # the IAM key golive reads the bucket with (id, secret)
        self.repo: Path | None = None
        self.app_lock: Path | None = None  # the app's requirements.lock (in the repo)
        self.app_secret_key = secrets.token_urlsafe(32)  # the API process's SECRET_KEY
        self.saved_password_hash = ""  # the `password-plaintext` fault's original hash
        self.db_exposure = None  # the `db-exposed` fault's forwarder
        self.rollback_script = base_dir / "scripts" / "rollback_production.sh"
        self.rehearsal_record = base_dir / "records" / "rollback-rehearsal.json"
        self.clock_file = base_dir / "s3-clock.json"
        self.mailbox = base_dir / "mailbox"  # what the sandbox's SMTP accepted, one <time_ns>.eml a message
        self.services: dict[str, Service] = {}
        self.certs: CertFiles | None = None
        self.ca_file = base_dir / "ca.pem"
        self._stopped = False
        self._s3 = None
        names = [name for part in PARTS for name in part.PORTS]
        self.ports: dict[str, int] = dict(zip(names, procs.free_ports(len(names))))
        token = lambda: secrets.token_urlsafe(24)  # noqa: E731
        self.env: dict[str, str] = {
            configfile.ENV_WEB: token(),
            configfile.ENV_DB: token(),
            configfile.ENV_REDIS: token(),
            configfile.ENV_SMTP: token(),
            configfile.ENV_S3: token(),
            configfile.ENV_RESTORE: token(),
            team_apis.SLACK_TOKEN_ENV: "xoxb-" + token(),
            team_apis.PAGERDUTY_TOKEN_ENV: token(),
        }
        self.env.update(dependencies.credentials(token))  # the service-API fakes', PgBouncer's admin password
        self.superuser_password = token()
        self._prefect_password = token()
        self._prefect_url: str | None = None
        self.config_path = base_dir / "golive-sandbox.yaml"
        self.fault_file = base_dir / "faults.json"
        self.logs = base_dir / "logs"
        p = self.ports
        self.urls: dict[str, str] = {
            "web": f"https://127.0.0.1:{p['https']}",
            "web_http": f"http://127.0.0.1:{p['http']}",
            "postgres": f"postgresql://{postgres.APP_USER}@127.0.0.1:{p['postgres']}/{postgres.DBNAME}",
            "redis": f"redis://127.0.0.1:{p['redis']}/0",
            "redis_replica": f"redis://127.0.0.1:{p['redis_replica']}/0",
            "s3": f"http://{s3.HOST}:{p['s3']}",
            "smtp": f"smtp://127.0.0.1:{p['smtp']}",
            "prometheus": f"http://127.0.0.1:{p['prometheus']}",
            "postgres_restore": f"postgresql://{postgres.RESTORE_USER}@127.0.0.1:{p['postgres_restore']}/postgres",
        }

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(
        cls,
        faults: Iterable[str] = (),
        base_dir: str | Path | None = None,
        *,
        keep: bool = False,
        rate_limit: int = 600,
    ) -> Sandbox:
        """Start every service, wait until each answers, apply `faults`. Raises (after cleaning up) on failure."""
        wanted = list(dict.fromkeys(faults))
        for name in wanted:
            lookup(name)
        sb = cls(_make_base_dir(base_dir), keep, rate_limit)
        atexit.register(sb.stop)
        try:
            sb._start(wanted)
        except BaseException:
            sb.stop()
            raise
        return sb

    def _start(self, faults: list[str]) -> None:
        base = self.base_dir
        self.logs.mkdir()
        self.certs = make_certs(base)
        # Faults the processes read when they start (fault file, argv) hold from the first start; the others are
        # actions on running services, applied by break_() once everything is up.
        self.faults.update(f for f in faults if lookup(f).restart or not lookup(f).apply)
        write_faults(self.fault_file, self.faults)
        self.pg_bindir = bindir = postgres.pg_install(ROOT / "cache") / "bin"
        pgdata, pgsock = product_dirs(base)
        self.services = {svc.name: svc for part in PARTS for svc in part.services(self)}
        write_clock(self.clock_file, 0)

        for name in ("redis", "redis-replica", "s3", "smtp", "web", "prometheus", "saas"):
            self.start_service(name, wait=False)
        # the two clusters' initdb run side by side, overlapping with the other services starting up
        restore_init = _in_thread(postgres.initdb, bindir, *restore_dirs(base))
        postgres.initdb(bindir, pgdata, pgsock)
        restore_init()
        self.start_service("postgres", wait=False)
        self.start_service("postgres-restore", wait=False)
        bucket_ready = _in_thread(self._setup_bucket)  # while PostgreSQL starts and is seeded
        aws_ready = _in_thread(infrastructure.setup_aws, self)  # load balancer, auto-scaling group, load-test results
        self.start_service("netfakes", wait=False)
        # sections 2 and 7: the service-API fakes; PgBouncer and Alertmanager where their packages are installed
        sections_2_7 = [n for n in ("saas2", "pgbouncer", "alertmanager") if n in self.services]
        for name in sections_2_7:
            self.start_service(name, wait=False)
        dr_ready = _in_thread(self._setup_dr)
        self.wait_service("postgres")
        postgres.seed(pgsock, self.ports["postgres"], self.superuser_password, self.env[configfile.ENV_DB])
        self.dump = postgres.dump(bindir, pgsock, self.ports["postgres"])
        self.wait_service("postgres-restore")
        postgres.create_restore_role(
            restore_dirs(base)[1],
            self.ports["postgres_restore"],
            self.superuser_password,
            self.env[configfile.ENV_RESTORE],
        )
        bucket_ready()
        aws_ready()
        self.wait_service("netfakes")
        for name in sections_2_7:
            self.wait_service(name)
        self.upload_all_backups()
        dr_ready()
        self.start_service("scheduler", wait=False)
        self.start_service("advisories", wait=False)
        for name in ("redis", "redis-replica", "smtp", "web", "prometheus", "saas", "scheduler", "advisories"):
            self.wait_service(name)
        redis_pair.seed(self.ports["redis"], self.env[configfile.ENV_REDIS])

        config = configfile.config(
            ports=self.ports,
            ca_file=self.ca_file,
            schema_version=self.schema_version,
            approved_origins=list(web_app.APPROVED_ORIGINS),
            web_username=web_app.USERNAME,
            smtp_username=smtp.USERNAME,
            s3_endpoint=self.urls["s3"],
            bucket=s3.BUCKET,
            backup_prefix=s3.BACKUP_PREFIX,
            wal_prefix=s3.WAL_PREFIX,
            config_prefix=s3.CONFIG_PREFIX,
            access_key_id=self.s3_reader[0],
            dbname=postgres.DBNAME,
            db_user=postgres.APP_USER,
            restore_user=postgres.RESTORE_USER,
            pg_restore=bindir / "pg_restore",
            repo=self.repo,
            release_tag=dr.RELEASE_TAG,
            rollback_script=self.rollback_script,
            rehearsal_record=self.rehearsal_record,
            saas_urls=team_apis.urls(f"http://127.0.0.1:{self.ports['saas']}"),
        )
        config["monitoring"] |= dependencies.monitoring_config(self)
        config |= application.config(self) | infrastructure.config(self) | dependencies.config(self)
        self.config_path.write_text(configfile.dump(config, dependencies.notes(self)))
        for name in faults:
            self.break_(name)

    def _setup_bucket(self) -> None:
        """The bucket (encryption, lifecycle), golive's IAM reader, WAL and configuration backups."""
        self.wait_service("s3")
        client = self.s3_client()
        s3.create_bucket(client)
        self.s3_reader = s3.create_reader(self.urls["s3"])
        self.env[configfile.ENV_S3] = self.s3_reader[1]
        s3.upload_wal(client)
        s3.upload_config(client)

    def _setup_dr(self) -> None:
        self.repo, _ = dr.make_repo(self.base_dir, files=application.repo_files())
        self.app_lock = self.repo / application.LOCK_NAME
        dr.write_rollback_script(self.base_dir)
        dr.write_rehearsal(self.rehearsal_record, self.rollback_script)

    def stop(self) -> None:
        """Stop every process (its stop signal, then SIGKILL) and remove the base dir unless `keep`. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        services = [s for s in self.services.values() if s.proc is not None]
        procs.stop([s.proc for s in services], {s.proc.pid: s.stop_signal for s in services})
        procs.release_ports(self.ports.values())
        if not self.keep:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def break_(self, name: str) -> None:
        """Turn the fact `name` wrong (see FAULTS). No-op if already broken."""
        fault = lookup(name)
        if name in self.faults:
            return
        self.faults.add(name)
        write_faults(self.fault_file, self.faults)
        try:
            if fault.restart:
                self.restart_service(fault.restart)
            if fault.apply:
                fault.apply(self)
        except BaseException:
            self.faults.discard(name)
            write_faults(self.fault_file, self.faults)
            raise

    def repair(self, name: str) -> None:
        """Turn the fact `name` right again. No-op if not broken."""
        fault = lookup(name)
        if name not in self.faults:
            return
        self.faults.discard(name)
        write_faults(self.fault_file, self.faults)
        if fault.restart:
            self.restart_service(fault.restart)
        if fault.undo:
            fault.undo(self)

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[Sandbox]:
        self.break_(name)
        try:
            yield self
        finally:
            self.repair(name)

    # ------------------------------------------------------------------ services
    def start_service(self, name: str, wait: bool = True) -> None:
        svc = self.services[name]
        if svc.running:
            return
        svc.proc = procs.spawn(svc.argv(), log=self.logs / f"{name}.log", env=svc.env, user=svc.user, cwd=self.base_dir)
        if wait:
            self.wait_service(name)

    def stop_service(self, name: str) -> None:
        svc = self.services[name]
        if svc.proc is not None:
            procs.stop([svc.proc], {svc.proc.pid: svc.stop_signal})
            svc.proc = None

    def restart_service(self, name: str) -> None:
        """Restart with the argv the current faults ask for; a service stopped by a fault stays stopped."""
        if self.services[name].running:
            self.stop_service(name)
            self.start_service(name, wait=True)

    def wait_service(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Until its ports accept and it says it is ready (Service.ready); raises if it exits or the time is up."""
        svc = self.services[name]

        def ready() -> bool:
            return all(procs.port_open(port, svc.host) for port in svc.ports) and (svc.ready is None or svc.ready())

        procs.wait_until(name, ready, timeout, alive=lambda: svc.running, log=self.logs / f"{name}.log")

    def pids(self) -> dict[str, list[int]]:
        """Live pids per service, the service's own first, then its descendants (e.g. postgres backends)."""
        return {
            name: [svc.proc.pid, *procs.descendants(svc.proc.pid)] for name, svc in self.services.items() if svc.running
        }

    def prefect_database_url(self) -> str:
        """A `prefect` database (pg_trgm installed) for Prefect's own server: `postgresql+asyncpg://...`.

        It lives on a second PostgreSQL server, started on the first call, so that the product database's faults
        (`postgres-down`) never take the orchestrator down with it.
        """
        if self._prefect_url is None:
            (data, sock), port = prefect_dirs(self.base_dir), self.ports["prefect_db"]
            postgres.initdb(self.pg_bindir, data, sock)
            self.start_service("prefect-db", wait=True)
            postgres.create_database(
                sock,
                port,
                self.superuser_password,
                "prefect",
                self._prefect_password,
                "prefect",
                extensions=("pg_trgm",),
            )
            self._prefect_url = f"postgresql+asyncpg://prefect:{self._prefect_password}@127.0.0.1:{port}/prefect"
        return self._prefect_url

    # ------------------------------------------------------------------ clients (for faults and tests)
    def s3_client(self):
        if self._s3 is None:
            self._s3 = s3.client(self.urls["s3"], self.env[configfile.ENV_S3])
        return self._s3

    @contextlib.contextmanager
    def s3_clock(self, age: dt.timedelta):
        """Objects put inside get LastModified = now - `age` (moto's S3 clock is set back; see
        sandbox/parts/s3_server.py)."""
        write_clock(self.clock_file, age.total_seconds())
        try:
            yield
        finally:
            write_clock(self.clock_file, 0)

    def upload_backup(self) -> None:
        """The newest full backup, taken two minutes before the stack came up (named at the first upload: a repair
        restores the same object)."""
        age = dt.timedelta(seconds=s3.FRESH_AGE_S)
        self.backup_key = self.backup_key or s3.backup_key(self.started_at - age)
        with self.s3_clock(age):
            s3.upload_backup(self.s3_client(), self.backup_key, self.dump)
        self.backup_uploaded_at = dt.datetime.now(dt.UTC) - age

    def history_keys(self) -> dict[int, str]:
        """Age in days -> key of the full backups kept before the newest one (s3.HISTORY_DAYS: daily for a week,
        then weekly back to 30 days)."""
        return {
            d: s3.backup_key(self.started_at - dt.timedelta(days=d, seconds=s3.FRESH_AGE_S)) for d in s3.HISTORY_DAYS
        }

    def upload_history(self, days: range | None = None) -> None:
        """The older backups (the same dump: the sandbox's data does not change)."""
        client = self.s3_client()
        for d, key in self.history_keys().items():
            if days is None or d in days:
                with self.s3_clock(dt.timedelta(days=d, seconds=s3.FRESH_AGE_S)):
                    s3.upload_backup(client, key, self.dump)

    def upload_all_backups(self) -> None:
        self.upload_history()
        self.upload_backup()

    def wrong_database_dump(self) -> bytes:
        """A pg_dump of another database (made once, on the restore server, then dropped there)."""
        if self._wrong_db_dump is None:
            data, sock = restore_dirs(self.base_dir)
            self._wrong_db_dump = postgres.wrong_database_dump(self.pg_bindir, sock, self.ports["postgres_restore"])
        return self._wrong_db_dump

    def mail(self) -> list:
        """Every message the sandbox's SMTP accepted, oldest first (email.message.EmailMessage)."""
        import email
        import email.policy

        if not self.mailbox.is_dir():
            return []
        files = sorted(self.mailbox.glob("*.eml"), key=lambda f: int(f.stem))
        return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]

    def restore_databases(self) -> list[str]:
        """Databases on the restore server (the tests: no scratch database is ever left behind)."""
        return postgres.databases(restore_dirs(self.base_dir)[1], self.ports["postgres_restore"])

    def redis_client(self, replica: bool = False):
        return redis_pair.client(self.ports["redis_replica" if replica else "redis"], self.env[configfile.ENV_REDIS])

    def wait_aof_rewrite(self, timeout: float = 10.0) -> None:
        r = self.redis_client()

        def done() -> bool:
            info = r.info("persistence")
            return not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled")

        procs.wait_until("redis AOF rewrite", done, timeout)

    @contextlib.contextmanager
    def admin_db(self):
        """A superuser connection over the unix socket (autocommit)."""
        import psycopg

        info = postgres.admin_conninfo(product_dirs(self.base_dir)[1], self.ports["postgres"], postgres.DBNAME)
        with psycopg.connect(info, autocommit=True) as conn:
            yield conn


def _in_thread(fn: Callable, *args):
    """Start fn(*args) in a thread; the returned callable joins it and returns its result (or raises its error)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return fut.result


def run_dir() -> Path:
    """A fresh 0755 run directory beside the sandboxes' (PostgreSQL can run as nobody inside it), removed by the next
    sandbox start once this process is gone (e.g. the demo's Prefect database, when the demo is killed)."""
    return _make_base_dir(None)


def _make_base_dir(base_dir: str | Path | None) -> Path:
    """A fresh 0755 directory (PostgreSQL runs as nobody inside it); stale ones of dead owners are removed."""
    postgres.own_dir(ROOT)  # ours and only ours to write, before anything runs from below it
    ROOT.chmod(0o755)
    _reap_stale(ROOT)
    if base_dir is None:
        path = Path(tempfile.mkdtemp(prefix="run-", dir=ROOT))
    else:
        path = Path(base_dir).absolute()
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise FileExistsError(f"sandbox base_dir must be empty: {path}")
    path.chmod(0o755)
    if postgres.run_as() and not postgres._reachable_by_others(path):
        raise PermissionError(f"{path}: every parent directory must be world-searchable (PostgreSQL runs as nobody)")
    ident = procs.proc_identity(os.getpid())
    (path / "owner").write_text(f"{ident[0]} {ident[1]}\n" if ident else "")
    return path


def _reap_stale(root: Path) -> None:
    """Remove run-* directories whose owning process is gone (left behind by a SIGKILLed parent)."""
    for d in root.glob("run-*"):
        try:
            pid, start = (int(x) for x in (d / "owner").read_text().split())
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime > 300:  # never got an owner file: a crash during creation
                    shutil.rmtree(d, ignore_errors=True)
            continue
        if procs.proc_identity(pid) != (pid, start):
            shutil.rmtree(d, ignore_errors=True)
