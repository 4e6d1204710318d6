"""A production-like environment built from Debian's own server packages with their stock configuration (issue #11).

Unlike the sandbox (which was built alongside the checks), every server golive probes here is the distribution's:
PostgreSQL 15 (`postgresql`) with TLS from a private CA (root -> intermediate -> leaf, the chain served by the
server with an extra root cross-signed by an expired legacy root, only the root trusted), a second PostgreSQL 15
cluster as the restore server, PgBouncer 1.18, Redis 7 primary + replica, nginx as a TLS load balancer
(`least_conn`) over two instances of the product API, Prometheus 2.42 with a rules file (alerts with `for:`,
recording rules, memory written on the share left), Alertmanager 0.25 and node exporter. Each starts from the
package's own config file (/etc/...), copied and edited only where the checklist asks for a value or a path must be
ours, as an operator would (`set_conf`: one line per key, everything else as shipped). Only the checklist's
non-server pieces come from the project or wheels: the product API (sandbox/app.py) and its schema (seed.sql), moto
as S3 (over HTTPS here, with 30 daily `pg_dump -Fc` backups made by Debian's pg_dump, the oldest 29.x days old),
aiosmtpd as SMTP, and the team's APScheduler worker (tests/stock/worker.py).

Layout differs from the sandbox wherever it can: names (`localhost`, not 127.0.0.1, for the web), S3 on
127.0.0.3 over HTTPS with bucket-default KMS encryption, TLS on PostgreSQL/PgBouncer, the LB terminating TLS, key
prefixes, a lightweight release tag, a `pip freeze` lock file, a JSON-lines rehearsal log, the interval job.

`StockEnv.start()` brings it up (servers start concurrently) and `stop()` tears it down; every child is spawned with
`sandbox.procs.spawn` (PR_SET_PDEATHSIG), nginx runs without a master process so no worker outlives the test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml

from golive.sandbox import procs
from golive.sandbox.parts.s3_server import write_clock

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_ETC = Path("/etc/postgresql/15/main")
DEBIAN = {
    "postgres": PG_BIN / "postgres",
    "pgbouncer": Path("/usr/sbin/pgbouncer"),
    "nginx": Path("/usr/sbin/nginx"),
    "redis": Path("/usr/bin/redis-server"),
    "prometheus": Path("/usr/bin/prometheus"),
    "alertmanager": Path("/usr/bin/prometheus-alertmanager"),
    "node_exporter": Path("/usr/bin/prometheus-node-exporter"),
}
PG_USER = "postgres"  # Debian's PostgreSQL and PgBouncer run as this system user
S3_HOST = "127.0.0.3"  # the backup store: its own address, off the database server
DBNAME, APP_USER, STATS_USER, RESTORE_USER = "merchants_prod", "app_user", "golive_stats", "golive_restore"
BUCKET, BACKUP_PREFIX, WAL_PREFIX, CONFIG_PREFIX = "swipesavvy-pg-backups", "pg/merchants_prod/", "pg/wal/", "etc/"
RELEASE_TAG = "v2.4.0"
BACKUPS_KEPT, BACKUP_AT = 30, dt.time(3, 15)  # daily at 03:15 UTC, 30 kept (lifecycle: expire after 30 days)
SMTP_USER = "alerts@swipesavvy.test"  # sandbox/smtp.py's account
WEB_USER = "ops@swipesavvy.test"  # sandbox/app.py's smoke-test account
ENV = {
    "web": "STOCK_WEB_PASSWORD",
    "db": "STOCK_DB_PASSWORD",
    "redis": "STOCK_REDIS_PASSWORD",
    "smtp": "STOCK_SMTP_PASSWORD",
    "s3": "STOCK_S3_SECRET",
    "restore": "STOCK_RESTORE_PASSWORD",
    "pgbouncer": "STOCK_PGBOUNCER_PASSWORD",
}
PORTS = [
    "pg",
    "pg_restore",
    "pgbouncer",
    "redis",
    "redis_replica",
    "s3",
    "smtp",
    "https",
    "http",
    "api1",
    "api2",
    "prometheus",
    "alertmanager",
    "node",
]
READY_S = 60.0


def missing_packages() -> list[str]:
    """The Debian server binaries this environment needs that are not installed."""
    return [str(p) for p in DEBIAN.values() if not p.exists()]


def set_conf(text: str, settings: dict[str, str], sep: str = " = ", section: str | None = None) -> str:
    """An operator's edit of a stock config file: replace each key's active line, else add it (after `section`'s
    header when given, else at the end). Comments and everything else stay as the package shipped them."""
    for key, value in settings.items():
        line = f"{key}{sep}{value}"
        pat = re.compile(rf"^{re.escape(key)}\s*=.*$" if "=" in sep else rf"^{re.escape(key)}\s.*$", re.M)
        if pat.search(text):
            text = pat.sub(lambda _, line=line: line, text, count=1)  # no backslash escapes in `line`
        elif section:
            text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
        else:
            text += f"\n{line}\n"
    return text


@dataclass
class StockEnv:
    base: Path
    ports: dict[str, int]
    secrets: dict[str, str]  # environment variable -> value: what the operator exports
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    config_path: Path | None = None
    dump: bytes = b""
    backup_keys: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ paths
    @property
    def pki(self) -> Path:
        return self.base / "pki"

    @property
    def ca_file(self) -> Path:
        """The private root CA: the only trust anchor a client is given (the servers send the intermediate)."""
        return self.pki / "root-ca.pem"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def pg_dirs(self, name: str) -> tuple[Path, Path]:
        return self.base / name / "data", self.base / name / "run"

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls) -> StockEnv:
        base = Path(tempfile.mkdtemp(prefix="golive-stock-"))
        base.chmod(0o755)  # Debian's PostgreSQL and PgBouncer run as `postgres` below it
        env = cls(
            base, dict(zip(PORTS, procs.free_ports(len(PORTS)))), {v: secrets.token_urlsafe(24) for v in ENV.values()}
        )
        try:
            env._start()
        except BaseException:
            env.stop()
            raise
        return env

    def stop(self) -> None:
        """Every server (its graceful signal, then SIGKILL), then the temp dir."""
        sig = {p.pid: signal.SIGINT for n, p in self.procs.items() if n.startswith("pg")}  # PostgreSQL: fast
        procs.stop(list(self.procs.values()), sig)
        self.procs.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> StockEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(
        self,
        name: str,
        argv: list[str],
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.procs[name] = procs.spawn(
            [str(a) for a in argv], log=self.logs / f"{name}.log", user=user, env=env, cwd=cwd or self.base
        )

    def _wait(self, name: str, port: str, host: str = "127.0.0.1") -> None:
        proc = self.procs[name]
        procs.wait_until(
            name,
            lambda: procs.port_open(self.ports[port], host),
            READY_S,
            alive=lambda: proc.poll() is None,
            log=self.logs / f"{name}.log",
        )

    def _start(self) -> None:
        self.logs.mkdir()
        self._make_pki()
        with ThreadPoolExecutor(4) as pool:
            inits = [pool.submit(self._initdb, n) for n in ("pg", "pg_restore")]
            repo = pool.submit(self._make_release_repo)
            py_env = _child_env({})
            self._start_redis()
            self._spawn(
                "s3",
                [
                    sys.executable,
                    "-m",
                    "golive.sandbox.parts.s3_server",
                    "--clock",
                    self.base / "s3-clock.json",
                    "-H",
                    S3_HOST,
                    "-p",
                    self.ports["s3"],
                    "-c",
                    self.pki / "chain.pem",
                    "-k",
                    self.pki / "key.pem",
                ],
                env=py_env,
            )
            self._spawn(
                "smtp",
                [
                    sys.executable,
                    "-m",
                    "golive.sandbox.parts.smtp",
                    "--port",
                    self.ports["smtp"],
                    "--cert",
                    self.pki / "chain.pem",
                    "--key",
                    self.pki / "key.pem",
                ],
                env={**py_env, "GOLIVE_SANDBOX_SMTP_PASSWORD": self.secrets[ENV["smtp"]]},
            )
            self._start_monitoring()
            for f in inits:
                f.result()
            for name in ("pg", "pg_restore"):
                self._spawn(name, [DEBIAN["postgres"], "-D", self.pg_dirs(name)[0]], user=PG_USER)
            write_clock(self.base / "s3-clock.json", 0)
            for name in ("pg", "pg_restore"):
                procs.wait_until(
                    name,
                    lambda n=name: self._pg_ready(n),
                    READY_S,
                    alive=lambda n=name: self.procs[n].poll() is None,
                    log=self.logs / f"{name}.log",
                )
            self._seed_databases()
            self._start_app()  # the two API instances and nginx in front of them
            self._start_pgbouncer()
            self._spawn(
                "worker",
                [sys.executable, "-m", "tests.stock.worker"],
                env=_child_env({"STOCK_WORKER_DB_URL": self._sqlalchemy_url()}),
            )
            backups = pool.submit(self._fill_bucket)
            for name, port in (
                ("redis", "redis"),
                ("redis_replica", "redis_replica"),
                ("smtp", "smtp"),
                ("prometheus", "prometheus"),
                ("alertmanager", "alertmanager"),
                ("node_exporter", "node"),
                ("api1", "api1"),
                ("api2", "api2"),
                ("nginx", "https"),
                ("pgbouncer", "pgbouncer"),
            ):
                self._wait(name, port)
            backups.result()
            repo.result()
            procs.wait_until("replica link", self._replica_linked, READY_S)
            procs.wait_until(
                "worker jobs",
                self._jobs_stored,
                READY_S,
                alive=lambda: self.procs["worker"].poll() is None,
                log=self.logs / "worker.log",
            )
            procs.wait_until("prometheus targets", self._targets_up, READY_S)
        self.config_path = self.base / "golive-stock.yaml"
        self.config_path.write_text(render_config(self))

    # ------------------------------------------------------------------ PKI
    def _make_pki(self) -> None:
        """root CA -> intermediate -> server leaf for every name the servers answer on (90 days, as ACME issues)."""
        import trustme

        self.pki.mkdir()
        root = trustme.CA(organization_name="SwipeSavvy Internal", organization_unit_name="Root CA")
        inter = root.create_child_ca()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        leaf = inter.issue_cert(
            "localhost",
            "127.0.0.1",
            S3_HOST,
            common_name="localhost",
            organization_name="SwipeSavvy",
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=89),
        )
        root.cert_pem.write_to_path(str(self.ca_file))
        with open(self.pki / "chain.pem", "wb") as f:  # the "long chain": leaf, intermediate, root cross-signed
            for pem in leaf.cert_chain_pems:
                f.write(pem.bytes())
            f.write(_cross_signed(root, now))
        leaf.private_key_pem.write_to_path(str(self.pki / "key.pem"))
        (self.pki / "key.pem").chmod(0o600)

    def _own_copy(self, src: Path, dest: Path) -> Path:
        """A copy of a PKI file owned by `postgres` (PostgreSQL refuses a key others can read)."""
        shutil.copyfile(src, dest)
        shutil.chown(dest, PG_USER, PG_USER)
        dest.chmod(0o600)
        return dest

    # ------------------------------------------------------------------ PostgreSQL 15 (Debian)
    def _initdb(self, name: str) -> None:
        data, run = self.pg_dirs(name)
        for d in (data.parent, run):
            d.mkdir(mode=0o700)
            shutil.chown(d, PG_USER, PG_USER)
        pwfile = self._own_copy_text(data.parent / "pw", self.secrets[ENV["db"]] + "\n")
        # what Debian's pg_createcluster runs: peer on the socket, scram-sha-256 on TCP
        procs.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            user=PG_USER,
            timeout=60,
        )
        pwfile.unlink()
        conf = set_conf(
            (PG_ETC / "postgresql.conf").read_text(),
            {
                "data_directory": f"'{data}'",
                "hba_file": f"'{data}/pg_hba.conf'",
                "ident_file": f"'{data}/pg_ident.conf'",
                "external_pid_file": f"'{run}/15-{name}.pid'",
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.ports[name]),
                "unix_socket_directories": f"'{run}'",
                "ssl": "on",
                "ssl_cert_file": f"'{self._own_copy(self.pki / 'chain.pem', data / 'server.crt')}'",
                "ssl_key_file": f"'{self._own_copy(self.pki / 'key.pem', data / 'server.key')}'",
                "cluster_name": f"'15/{name}'",
                "fsync": "off",
            },
        )  # fsync: a test box, not a durability claim
        (data / "conf.d").mkdir()
        shutil.chown(data / "conf.d", PG_USER, PG_USER)
        # the operator's one edit of pg_hba.conf: TCP clients must use TLS (hostssl)
        hba = re.sub(r"^host(\s)", r"hostssl\1", (PG_ETC / "pg_hba.conf").read_text(), flags=re.M)
        for fname, text in (("postgresql.conf", conf), ("pg_hba.conf", hba)):
            self._own_copy_text(data / fname, text)

    def _own_copy_text(self, dest: Path, text: str) -> Path:
        dest.write_text(text)
        shutil.chown(dest, PG_USER, PG_USER)
        dest.chmod(0o600)
        return dest

    def pg_conninfo(
        self, name: str = "pg", dbname: str = "postgres", user: str = "postgres", password: str | None = None
    ) -> str:
        import psycopg

        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1",
            port=self.ports[name],
            dbname=dbname,
            user=user,
            password=password or self.secrets[ENV["db"]],
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
            connect_timeout=3,
        )

    def _pg_ready(self, name: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.pg_conninfo(name)):
                return True
        except psycopg.OperationalError:
            return False

    def _seed_databases(self) -> None:
        """The product's roles and schema (sandbox/seed.sql, run as its owner), PgBouncer's stats user, the
        restore server's CREATEDB role; then the first backup, with Debian's pg_dump."""
        import psycopg
        from psycopg import sql

        db_pw = self.secrets[ENV["db"]]
        with psycopg.connect(self.pg_conninfo(), autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP_USER), db_pw))
            c.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DBNAME), sql.Identifier(APP_USER)))
        with psycopg.connect(self.pg_conninfo(dbname=DBNAME, user=APP_USER), autocommit=True) as c:
            c.execute((REPO / "sandbox" / "seed.sql").read_text())
        with psycopg.connect(self.pg_conninfo("pg_restore"), autocommit=True) as c:
            c.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(RESTORE_USER), self.secrets[ENV["restore"]]
                )
            )
        self.dump = procs.run(
            [str(PG_BIN / "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(self.ports["pg"]), "-U", APP_USER, DBNAME],
            timeout=60,
            env={**os.environ, "PGPASSWORD": db_pw, "PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(self.ca_file)},
        )

    def _sqlalchemy_url(self) -> str:
        return (
            f"postgresql+psycopg://{APP_USER}:{quote(self.secrets[ENV['db']], safe='')}@127.0.0.1:"
            f"{self.ports['pg']}/{DBNAME}?sslmode=verify-full&sslrootcert={quote(str(self.ca_file))}"
        )

    def _jobs_stored(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.pg_conninfo(dbname=DBNAME, user=APP_USER)) as c:
                return c.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0] == 5
        except psycopg.Error:
            return False

    # ------------------------------------------------------------------ PgBouncer (Debian)
    def _start_pgbouncer(self) -> None:
        d = self.base / "pgbouncer"
        d.mkdir()
        shutil.chown(d, PG_USER, PG_USER)
        conf = set_conf(
            (Path("/etc/pgbouncer/pgbouncer.ini")).read_text(),
            {
                "logfile": f"{d}/pgbouncer.log",
                "pidfile": f"{d}/pgbouncer.pid",
                "listen_addr": "127.0.0.1",
                "listen_port": str(self.ports["pgbouncer"]),
                "unix_socket_dir": str(d),
                "auth_type": "scram-sha-256",
                "auth_file": f"{d}/userlist.txt",
                "stats_users": STATS_USER,
                "client_tls_sslmode": "require",
                "client_tls_cert_file": str(self._own_copy(self.pki / "chain.pem", d / "chain.pem")),
                "client_tls_key_file": str(self._own_copy(self.pki / "key.pem", d / "key.pem")),
                "server_tls_sslmode": "verify-full",
                "server_tls_ca_file": str(self._own_copy(self.ca_file, d / "ca.pem")),
            },
            section="pgbouncer",
        )
        conf = conf.replace(
            "[databases]\n", f"[databases]\n{DBNAME} = host=127.0.0.1 port={self.ports['pg']} dbname={DBNAME}\n", 1
        )
        self._own_copy_text(d / "pgbouncer.ini", conf)
        self._own_copy_text(
            d / "userlist.txt",
            f'"{APP_USER}" "{self.secrets[ENV["db"]]}"\n"{STATS_USER}" "{self.secrets[ENV["pgbouncer"]]}"\n',
        )
        self._spawn("pgbouncer", [DEBIAN["pgbouncer"], d / "pgbouncer.ini"], user=PG_USER)

    # ------------------------------------------------------------------ Redis 7 (Debian)
    def _redis_conf(self, name: str, port: int, primary: int | None) -> Path:
        d = self.base / name
        d.mkdir()
        settings = {
            "port": str(port),
            "daemonize": "no",
            "pidfile": f"{d}/redis.pid",
            "logfile": f"{d}/redis.log",
            "dir": str(d),
            "requirepass": self.secrets[ENV["redis"]],
            "appendonly": "yes",
            # the checklist's values where the stock default is unhealthy (noeviction, no limit)
            "maxmemory": "256mb",
            "maxmemory-policy": "allkeys-lru",
        }
        if primary:
            settings |= {"replicaof": f"127.0.0.1 {primary}", "masterauth": self.secrets[ENV["redis"]]}
        (d / "redis.conf").write_text(set_conf(Path("/etc/redis/redis.conf").read_text(), settings, sep=" "))
        return d / "redis.conf"

    def _start_redis(self) -> None:
        p = self.ports
        self._spawn("redis", [DEBIAN["redis"], self._redis_conf("redis", p["redis"], None)])
        self._spawn(
            "redis_replica", [DEBIAN["redis"], self._redis_conf("redis_replica", p["redis_replica"], p["redis"])]
        )

    def _replica_linked(self) -> bool:
        import redis

        try:
            r = redis.Redis(port=self.ports["redis_replica"], password=self.secrets[ENV["redis"]], socket_timeout=1)
            return r.info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    # ------------------------------------------------------------------ the product behind Debian's nginx
    def _start_app(self) -> None:
        p, s = self.ports, self.secrets
        app_env = _child_env(
            {
                "GOLIVE_SANDBOX_WEB_PASSWORD": s[ENV["web"]],
                "APP_ENV": "production",
                "DATABASE_URL": f"postgresql://{APP_USER}:{quote(s[ENV['db']], safe='')}@127.0.0.1:{p['pgbouncer']}/"
                f"{DBNAME}?sslmode=verify-full",
                "REDIS_URL": f"redis://:{quote(s[ENV['redis']], safe='')}@127.0.0.1:{p['redis']}/0",
                "SECRET_KEY": secrets.token_urlsafe(32),
                "SMTP_URL": f"smtp://localhost:{p['smtp']}",
            }
        )
        for name in ("api1", "api2"):
            self._spawn(name, [sys.executable, "-m", "tests.stock.app_instance", "--port", p[name]], env=app_env)
        d = self.base / "nginx"
        (d / "sites-enabled").mkdir(parents=True)
        conf = (Path("/etc/nginx/nginx.conf")).read_text()
        conf = set_conf(conf, {"pid": f"{d}/nginx.pid;", "error_log": f"{d}/error.log;"}, sep=" ")
        conf = re.sub(r"access_log\s+\S+;", f"access_log {d}/access.log;", conf)
        conf = conf.replace("/etc/nginx/sites-enabled/*", f"{d}/sites-enabled/*")
        (d / "nginx.conf").write_text(conf)
        # The API keeps sessions in process memory, so a session must stay on the instance that opened it
        # (seed 6.2 "Stickiness: if needed"): logins and requests carrying a session go by client address, anonymous
        # traffic by least connections. nginx OSS has passive health checks only (max_fails / fail_timeout).
        servers = "".join(f"    server 127.0.0.1:{p[n]} max_fails=3 fail_timeout=30s;\n" for n in ("api1", "api2"))
        (d / "sites-enabled" / "swipesavvy").write_text(f"""\
upstream swipesavvy_api {{
    least_conn;
{servers}}}
upstream swipesavvy_api_sticky {{
    hash $remote_addr consistent;
{servers}}}
map "$http_authorization$cookie_session:$uri" $api_pool {{
    "~^:/api/auth/"  swipesavvy_api_sticky;
    "~^:"            swipesavvy_api;
    default          swipesavvy_api_sticky;
}}
server {{
    listen 127.0.0.1:{p["http"]};
    server_name localhost;
    return 301 https://localhost:{p["https"]}$request_uri;
}}
server {{
    listen 127.0.0.1:{p["https"]} ssl;
    server_name localhost;
    ssl_certificate {self.pki / "chain.pem"};
    ssl_certificate_key {self.pki / "key.pem"};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
        proxy_pass http://$api_pool;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
""")
        # no master process: the one nginx process is the child that dies with us (a master's workers would not)
        self._spawn("nginx", [DEBIAN["nginx"], "-c", d / "nginx.conf", "-g", "daemon off; master_process off;"])

    # ------------------------------------------------------------------ Prometheus, Alertmanager, node exporter
    def _start_monitoring(self) -> None:
        p, d = self.ports, self.base / "monitoring"
        d.mkdir()
        prom = yaml.safe_load(Path("/etc/prometheus/prometheus.yml").read_text())
        prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"localhost:{p['alertmanager']}"]
        prom["rule_files"] = ["swipesavvy.rules.yml"]
        prom["scrape_configs"][0]["static_configs"][0]["targets"] = [f"localhost:{p['prometheus']}"]
        prom["scrape_configs"][1]["static_configs"][0]["targets"] = [f"localhost:{p['node']}"]
        (d / "prometheus.yml").write_text(yaml.safe_dump(prom, sort_keys=False))
        (d / "swipesavvy.rules.yml").write_text(RULES)
        am = yaml.safe_load(Path("/etc/prometheus/alertmanager.yml").read_text())
        am["global"] |= {
            "smtp_smarthost": f"localhost:{p['smtp']}",
            "smtp_from": "alertmanager@swipesavvy.test",
            "smtp_auth_username": SMTP_USER,
            "smtp_auth_password": self.secrets[ENV["smtp"]],
            "slack_api_url": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXX",
        }
        am["route"] = {
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "3h",
            "receiver": "ops-email",
            "routes": [
                {"matchers": ['severity=~"critical|warning"'], "receiver": "slack-production", "continue": True}
            ],
        }
        am["receivers"] = [
            {"name": "ops-email", "email_configs": [{"to": "oncall@swipesavvy.test"}]},
            {"name": "slack-production", "slack_configs": [{"channel": "#alerts-production", "send_resolved": True}]},
        ]
        am.pop("templates", None)
        (d / "alertmanager.yml").write_text(yaml.safe_dump(am, sort_keys=False))
        self._spawn(
            "prometheus",
            [
                DEBIAN["prometheus"],
                f"--config.file={d / 'prometheus.yml'}",
                f"--storage.tsdb.path={d / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{p['prometheus']}",
            ],
        )
        self._spawn(
            "alertmanager",
            [
                DEBIAN["alertmanager"],
                f"--config.file={d / 'alertmanager.yml'}",
                f"--storage.path={d / 'am'}",
                "--cluster.listen-address=",
                f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            ],
        )
        self._spawn("node_exporter", [DEBIAN["node_exporter"], f"--web.listen-address=127.0.0.1:{p['node']}"])

    def _targets_up(self) -> bool:
        """Every target up, and two node scrapes (the stock 15 s interval) so that a rate over 5 min has data, as on
        a Prometheus that has run for days."""
        import httpx

        api = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1"
        try:
            active = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            cpu = httpx.get(
                f"{api}/query", params={"query": 'rate(node_cpu_seconds_total{mode="idle"}[5m])'}, timeout=2
            ).json()["data"]["result"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return bool(active) and all(t["health"] == "up" for t in active) and bool(cpu)

    # ------------------------------------------------------------------ the release: git, rollback script, rehearsal
    @property
    def repo(self) -> Path:
        return self.base / "srv" / "swipesavvy"

    def _make_release_repo(self) -> None:
        """The app's repository as a team keeps it: history, a lightweight release tag pushed to a bare origin, the
        lock file from `pip freeze` (its editable line included); the rollback script and a JSON-lines rehearsal
        log (two rehearsals, the last one wins)."""
        repo, origin = self.repo, self.base / "srv" / "swipesavvy.git"
        repo.mkdir(parents=True)
        freeze = procs.run([sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"], timeout=60)
        git = lambda *a: procs.run(["git", "-C", str(repo), *a], env=_GIT_ENV, timeout=30)  # noqa: E731
        git("init", "-q", "-b", "main")
        (repo / "README.md").write_text("# SwipeSavvy API\n")
        git("add", "-A")
        git("commit", "-q", "-m", "Initial import")
        (repo / "requirements.lock").write_bytes(freeze)
        (repo / ".env.example").write_text("APP_ENV=\nDATABASE_URL=\nREDIS_URL=\nSECRET_KEY=\nSMTP_URL=\n")
        git("add", "-A")
        git("commit", "-q", "-m", "Release 2.4.0: lock the dependencies")
        git("tag", RELEASE_TAG)  # lightweight, as `git tag v2.4.0` makes it
        procs.run(["git", "init", "-q", "--bare", str(origin)], env=_GIT_ENV, timeout=30)
        git("push", "-q", str(origin), "main", "--tags")
        git("remote", "add", "origin", str(origin))
        git("fetch", "-q", "origin")
        script = self.base / "scripts" / "rollback_production.sh"
        script.parent.mkdir()
        script.write_text(
            "#!/usr/bin/env bash\n# Roll production back to the previous release tag.\n"
            'set -euo pipefail\nprevious="$(git -C /srv/swipesavvy describe --tags --abbrev=0 HEAD^)"\n'
            'echo "rolling back to ${previous}"\n'
        )
        script.chmod(0o755)
        import hashlib
        import json

        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        now = dt.datetime.now(dt.UTC)
        (self.base / "scripts" / "rehearsals.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "finished_at": (now - dt.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "status": "ok",
                        "duration_seconds": secs,
                        "script_sha256": digest,
                    }
                )
                + "\n"
                for d, secs in ((12, 700), (3, 480))
            )
        )

    # ------------------------------------------------------------------ S3 (moto over HTTPS)
    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"https://{S3_HOST}:{self.ports['s3']}",
            region_name="eu-west-1",
            aws_access_key_id="AKIASTOCKBACKUPWRITER",
            aws_secret_access_key="unused",
            verify=str(self.ca_file),
        )

    def _fill_bucket(self) -> None:
        """30 daily backups at 03:15 UTC (oldest 29.x days), WAL segments of the last hours, config backups."""
        procs.wait_until(
            "s3",
            lambda: procs.port_open(self.ports["s3"], S3_HOST),
            READY_S,
            alive=lambda: self.procs["s3"].poll() is None,
            log=self.logs / "s3.log",
        )
        s3, clock = self.s3_client(), self.base / "s3-clock.json"
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}]
            },
        )
        s3.put_bucket_lifecycle_configuration(
            Bucket=BUCKET,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "pg-backups-30d",
                        "Filter": {"Prefix": "pg/"},
                        "Status": "Enabled",
                        "Expiration": {"Days": BACKUPS_KEPT},
                    }
                ]
            },
        )
        now = dt.datetime.now(dt.UTC)
        newest = dt.datetime.combine(now.date(), BACKUP_AT, dt.UTC)
        if newest > now - dt.timedelta(minutes=10):
            newest -= dt.timedelta(days=1)
        days = [newest - dt.timedelta(days=i) for i in range(BACKUPS_KEPT)]
        puts = [(d, f"{BACKUP_PREFIX}{DBNAME}_{d:%Y%m%d_%H%M}.dump", self.dump) for d in days]
        puts += [
            (now - dt.timedelta(minutes=m), f"{WAL_PREFIX}0000000100000000000000{i:02X}", os.urandom(16384))
            for i, m in enumerate((300, 180, 60, 5), start=1)
        ]
        nginx_conf = (self.base / "nginx" / "sites-enabled" / "swipesavvy").read_bytes()
        puts += [
            (now - dt.timedelta(days=2), f"{CONFIG_PREFIX}{n}", body)
            for n, body in (
                ("nginx.conf", nginx_conf),
                (".env.production", b"APP_ENV=production\n"),
                ("database.yml", b"production:\n  adapter: postgresql\n"),
            )
        ]
        for when, key, body in sorted(puts):
            write_clock(clock, (now - when).total_seconds())
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            if key.startswith(BACKUP_PREFIX):
                self.backup_keys.append(key)
        write_clock(clock, 0)


RULES = """\
groups:
  - name: swipesavvy-recording
    rules:
      - record: job:http_requests_errors:ratio_rate5m
        expr: sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))
      - record: instance:node_cpu_utilisation:rate5m
        expr: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))
  - name: swipesavvy-critical
    rules:
      - alert: ApiDown
        expr: up{job="api"} == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: "API instance {{ $labels.instance }} is down"}
      - alert: PostgresDown
        expr: pg_up == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: "PostgreSQL is down"}
      - alert: HighErrorRate
        expr: job:http_requests_errors:ratio_rate5m > 0.05
        for: 5m
        labels: {severity: critical}
        annotations: {summary: "5xx ratio above 5%"}
      - alert: BackupJobFailed
        expr: time() - backup_last_success_timestamp_seconds > 26 * 3600
        for: 10m
        labels: {severity: critical}
  - name: swipesavvy-warning
    rules:
      - alert: HighResponseTime
        expr: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 2
        for: 10m
        labels: {severity: warning}
      - alert: HostMemoryLow
        expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100 < 15
        for: 10m
        labels: {severity: warning}
      - alert: HighCpuUsage
        expr: instance:node_cpu_utilisation:rate5m > 0.8
        for: 10m
        labels: {severity: warning}
"""


def _cross_signed(root, now: dt.datetime) -> bytes:
    """`root` cross-signed by an older root that expired (how Let's Encrypt served ISRG Root X1 under DST Root CA
    X3 until 2024): a client that trusts `root` must build the short path and ignore this certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    old_key = ec.generate_private_key(ec.SECP256R1())
    old_name = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Legacy Trust Services"),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "Legacy Root CA X3"),
        ]
    )
    cross = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(old_name)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=900))
        .not_valid_after(now - dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(old_key, hashes.SHA256())
    )
    return cross.public_bytes(serialization.Encoding.PEM)


_GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "SwipeSavvy CI",
    "GIT_AUTHOR_EMAIL": "ci@swipesavvy.test",
    "GIT_COMMITTER_NAME": "SwipeSavvy CI",
    "GIT_COMMITTER_EMAIL": "ci@swipesavvy.test",
}


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment (minus golive's and this env's secrets) with the repo on PYTHONPATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOCK_", "GOLIVE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


def render_config(e: StockEnv) -> str:
    """The golive config an operator writes for this environment by hand (README, `golive config schema`);
    secrets as ${VAR}. Sections for what this environment does not run (DNS, CDN, SaaS APIs, containers, Grafana,
    logging, team tooling, load tests) are left out: their checks are NOT_APPLICABLE, saying so."""
    p, ca = e.ports, str(e.ca_file)
    web = f"https://localhost:{p['https']}"
    cfg = {
        "environment": "stock-debian",
        "description": "Debian stock servers: nginx LB, PostgreSQL 15 + PgBouncer, Redis 7, Prometheus",
        "production": False,
        "web": {
            "base_url": web,
            "http_url": f"http://localhost:{p['http']}",
            "ca_file": ca,
            "expected_title": "SwipeSavvy",
            "approved_origins": ["https://app.swipesavvy.test", "https://admin.swipesavvy.test"],
            "auth": {"login_path": "/api/auth/login", "username": WEB_USER, "password": f"${{{ENV['web']}}}"},
        },
        "postgres": {
            "host": "127.0.0.1",
            "port": p["pg"],
            "dbname": DBNAME,
            "user": APP_USER,
            "password": f"${{{ENV['db']}}}",
            "sslmode": "verify-full",
            "sslrootcert": ca,
            "schema_version": "20251231080000",
        },
        "redis": {
            "url": f"redis://127.0.0.1:{p['redis']}/0",
            "password": f"${{{ENV['redis']}}}",
            "replica_urls": [f"redis://127.0.0.1:{p['redis_replica']}/0"],
        },
        "smtp": {
            "host": "localhost",
            "port": p["smtp"],
            "username": SMTP_USER,
            "password": f"${{{ENV['smtp']}}}",
            "starttls": True,
            "ca_file": ca,
            "hourly_capacity": 3000,
        },
        "backups": {
            "endpoint_url": f"https://{S3_HOST}:{p['s3']}",
            "ca_file": ca,
            "region": "eu-west-1",
            "bucket": BUCKET,
            "prefix": BACKUP_PREFIX,
            "wal_prefix": WAL_PREFIX,
            "config_prefix": CONFIG_PREFIX,
            "access_key_id": "AKIASTOCKBACKUPREADER",
            "secret_access_key": f"${{{ENV['s3']}}}",
            "min_size_bytes": 100_000,
        },  # this database is small: its -Fc dump is ~0.3 MB
        "restore": {
            "host": "127.0.0.1",
            "port": p["pg_restore"],
            "user": RESTORE_USER,
            "password": f"${{{ENV['restore']}}}",
            "sslmode": "verify-full",
            "sslrootcert": ca,
            "pg_restore": str(PG_BIN / "pg_restore"),
            "git_repo": str(e.repo),
            "git_remote": "origin",
            "release_tag": RELEASE_TAG,
            "rollback_script": str(e.base / "scripts" / "rollback_production.sh"),
            "rehearsal_record": str(e.base / "scripts" / "rehearsals.jsonl"),
        },
        "monitoring": {
            "prometheus_url": f"http://localhost:{p['prometheus']}",
            "roles": {
                "backend": {
                    "instance_regex": f"localhost:{p['node']}",
                    "min_cores": 1,
                    "max_cpu_ratio": 0.95,
                    "min_free_memory_bytes": 256 * 1024**2,
                    "min_free_disk_bytes": 1024**3,
                }
            },
        },
        "hosts": {
            "load_balancer": f"localhost:{p['https']}",
            "database": f"127.0.0.1:{p['pg']}",
            "backend_health_urls": [f"http://127.0.0.1:{p[n]}/health" for n in ("api1", "api2")],
            "link_speed_mbps": 10000,
        },  # a virtual NIC (veth / virtio) reports no speed: the host's uplink
        # nginx OSS: what golive cannot read through an API is declared (reported as declared)
        "loadbalancer": {
            "instances": [f"http://127.0.0.1:{p['api1']}", f"http://127.0.0.1:{p['api2']}"],
            "declared": {
                "algorithm": "least_conn",
                "stickiness": True,
                "health_check_interval_s": 30,
                "health_check_path": "/api/health",
            },
        },
        "pgbouncer": {
            "host": "127.0.0.1",
            "port": p["pgbouncer"],
            "admin_user": STATS_USER,
            "admin_password": f"${{{ENV['pgbouncer']}}}",
            "sslmode": "verify-full",
            "sslrootcert": ca,
        },
        "indexes": {},
        "observability": {"alertmanager": {"url": f"http://localhost:{p['alertmanager']}"}},
        "app": {
            "required_env": ["APP_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SMTP_URL"],
            "expected_environment": "production",
            "lock_file": str(e.repo / "requirements.lock"),
        },
        "workers": {"heartbeat_table": None},  # stock APScheduler keeps no heartbeat
        "security": {
            "sensitive_columns": ["users.totp_secret"],
            "audit_table": "audit_log",
            "app_repo": str(e.repo),
            "must_refuse": [f"127.0.0.2:{p['pg']}"],
        },
        # the "backend server" node_exporter reports is the CI machine running this very test suite: busy by design
        "checks": {"skip": ["infrastructure.backend.cpu"]},
    }
    return "# golive config for the Debian stock-server environment (tests/stock/env.py)\n" + yaml.safe_dump(
        cfg, sort_keys=False
    )
