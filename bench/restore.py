"""golive's streamed restore (S3 -> pg_restore stdin) against pg_restore from a local file of the same dump.

    .venv/bin/python bench/restore.py [--size-mb 1024] [--runs 2] [--compress gzip:1]

Starts its own processes (nothing of the sandbox stack): a source PostgreSQL with a table of incompressible rows
(about --size-mb of pg_dump -Fc output), a restore PostgreSQL, and moto's S3 server as a subprocess. The dump is made
once, uploaded to S3 (multipart, SSE), then restored --runs times each way, alternating which goes first:
- golive: the real check `backup.restore.test` in a child process that runs nothing else (config built in memory):
  GetObject streamed in 1 MiB chunks into `pg_restore --no-owner --no-acl --exit-on-error -d <scratch>`; its
  `restore_seconds` is pg_restore's start to exit, and the child's peak RSS is `getrusage(RUSAGE_SELF).ru_maxrss`
  (pg_restore, a separate process, is not in it);
- file: `pg_restore` with the same flags from the local dump file into a fresh database, start to exit.
Prints the medians, the throughput ratio (golive / file; target >= 0.8) and golive's peak RSS (target < 300 MB),
also for a small dump (same table, 20k rows) to show the memory does not grow with the dump.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUCKET = "golive-bench"
SOURCE_DB = "benchsrc"
RESTORE_USER = "golive_restore"
PASSWORDS = {"source": "bench-source-pw-1", "restore": "bench-restore-pw-2", "s3": "bench-s3-secret-3"}
FLAGS = ["--no-owner", "--no-acl", "--exit-on-error"]
SMALL_ROWS = 20_000


# --------------------------------------------------------------------------- the golive side (child process)


def child(spec_path: str) -> int:
    """Run only `backup.restore.test` and report its measurement and this process's peak RSS."""
    import asyncio

    from golive.flows.config import parse_config
    from golive.tasks.catalog import load_catalog
    from golive.tasks.core import Redactor, collect_secrets, execute

    spec = json.loads(Path(spec_path).read_text())
    cfg = parse_config(spec["config"], env={})
    check = load_catalog()["backup.restore.test"]
    res = asyncio.run(execute(check, cfg, redact=Redactor(collect_secrets(cfg))))
    obs = res.observed if isinstance(res.observed, dict) else {}
    print(
        json.dumps(
            {
                "status": res.status.value,
                "summary": res.summary[:500],
                "restore_seconds": obs.get("restore_seconds"),
                "bytes": obs.get("dump_bytes"),
                "check_seconds": res.duration_s,
                "rows": obs.get("rows"),
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )
    return 0


def golive_restore(spec_path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_path)], capture_output=True, text=True, timeout=3600, cwd=REPO
    )
    if out.returncode != 0:
        raise RuntimeError(f"golive child failed: {out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["status"] != "PASS":
        raise RuntimeError(f"golive restore did not pass: {r['summary']}")
    return r


# --------------------------------------------------------------------------- the stack


class Stack:
    def __init__(self, base: Path):
        from golive.sandbox import procs
        from golive.sandbox.parts import postgres
        from golive.sandbox.stack import ROOT

        self.base, self.pg, self.procs = base, postgres, procs
        self.bindir = postgres.pg_install(ROOT / "cache") / "bin"
        self.ports = dict(zip(("source", "restore", "s3"), procs.free_ports(3)))
        self.children: list = []

    def dirs(self, name: str) -> tuple[Path, Path]:
        return self.base / f"{name}-data", self.base / f"{name}-sock"

    def start(self) -> None:
        pg, procs = self.pg, self.procs
        settings = [
            "-c",
            "maintenance_work_mem=256MB",
            "-c",
            "max_wal_size=4GB",
            "-c",
            "checkpoint_timeout=30min",
            "-c",
            "shared_buffers=256MB",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.children.append(
            procs.spawn(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.ports["s3"])],
                log=self.base / "moto.log",
                env=env,
            )
        )
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: pg.initdb(self.bindir, *self.dirs(n)), ("source", "restore")))
        for name in ("source", "restore"):
            data, sock = self.dirs(name)
            argv = pg.server_argv(self.bindir, data, sock, self.ports[name]) + settings
            self.children.append(procs.spawn(argv, log=self.base / f"{name}.log", user=pg.run_as()))
        for name in ("source", "restore"):
            sock = self.dirs(name)[1]
            procs.wait_until(name, lambda s=sock, p=self.ports[name]: pg.accepting(s, p), 60)
        procs.wait_until("s3", lambda: procs.port_open(self.ports["s3"]), 60)
        pg.create_database(
            self.dirs("source")[1], self.ports["source"], PASSWORDS["source"], "bench", PASSWORDS["source"], SOURCE_DB
        )
        pg.create_restore_role(
            self.dirs("restore")[1], self.ports["restore"], PASSWORDS["restore"], PASSWORDS["restore"], RESTORE_USER
        )

    def stop(self) -> None:
        self.procs.stop(self.children, {p.pid: self.pg.STOP_SIGNAL for p in self.children[1:]})

    def admin(self, name: str, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(self.pg.admin_conninfo(self.dirs(name)[1], self.ports[name], dbname), autocommit=True)

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.ports['s3']}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key=PASSWORDS["s3"],
        )


def payload_sql(lo: int, hi: int, table: str) -> str:
    """Rows with 1 KiB of incompressible bytes each (16 x SHA-512), a text label, a timestamp, an int."""
    terms = " || ".join(f"sha512(int8send(i * 16 + {k}))" for k in range(16))
    return (
        f"INSERT INTO {table} SELECT i, timestamptz '2025-01-01' + i * interval '1 second', i % 17, md5(i::text), "
        f"{terms} FROM generate_series({lo}, {hi}) i"
    )


def make_data(st: Stack, size_mb: int, compress: str | None) -> tuple[Path, Path, int]:
    """(big dump, small dump, rows): the row count is calibrated on the small table's dump size."""
    ddl = (
        "CREATE TABLE {t} (id bigint NOT NULL, created_at timestamptz NOT NULL, kind int NOT NULL, "
        "label text NOT NULL, payload bytea NOT NULL)"
    )
    with st.admin("source", SOURCE_DB) as c:
        for t in ("blobs", "blobs_small"):
            c.execute(ddl.format(t=t) + f"; ALTER TABLE {t} OWNER TO bench")
        c.execute(payload_sql(1, SMALL_ROWS, "blobs_small") + "; ALTER TABLE blobs_small ADD PRIMARY KEY (id)")
    small = dump(st, "small.dump", compress, ["-t", "blobs_small"])
    per_row = small.stat().st_size / SMALL_ROWS
    rows = int(size_mb * 1024 * 1024 / per_row)
    half = rows // 2

    def fill(lo_hi: tuple[int, int]) -> None:
        with st.admin("source", SOURCE_DB) as c:
            c.execute(payload_sql(*lo_hi, "blobs"))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(fill, [(1, half), (half + 1, rows)]))
    with st.admin("source", SOURCE_DB) as c:
        c.execute("ALTER TABLE blobs ADD PRIMARY KEY (id); ANALYZE")
    big = dump(st, "bench.dump", compress, ["-t", "blobs"])
    return big, small, rows


def dump(st: Stack, name: str, compress: str | None, extra: list[str]) -> Path:
    path = st.base / name
    argv = [
        str(st.bindir / "pg_dump"),
        "-Fc",
        "-h",
        str(st.dirs("source")[1]),
        "-p",
        str(st.ports["source"]),
        "-U",
        "postgres",
        "-d",
        SOURCE_DB,
        "-f",
        str(path),
        *extra,
    ] + (["-Z", compress] if compress else [])
    subprocess.run(argv, check=True, capture_output=True, timeout=3600)
    return path


def upload(st: Stack, path: Path, key: str) -> None:
    from boto3.s3.transfer import TransferConfig

    st.s3().upload_file(
        str(path),
        BUCKET,
        key,
        ExtraArgs={"ServerSideEncryption": "AES256"},
        Config=TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20),
    )


def golive_config(st: Stack, prefix: str, table: str) -> dict:
    return {
        "environment": "bench",
        "postgres": {
            "host": "127.0.0.1",
            "port": st.ports["source"],
            "dbname": SOURCE_DB,
            "user": "bench",
            "password": PASSWORDS["source"],
            "sslmode": "disable",
            "required_tables": [table],
        },
        "backups": {
            "endpoint_url": f"http://127.0.0.1:{st.ports['s3']}",
            "bucket": BUCKET,
            "prefix": prefix,
            "wal_prefix": None,
            "access_key_id": "bench",
            "secret_access_key": PASSWORDS["s3"],
        },
        "restore": {
            "host": "127.0.0.1",
            "port": st.ports["restore"],
            "user": RESTORE_USER,
            "password": PASSWORDS["restore"],
            "sslmode": "disable",
            "pg_restore": str(st.bindir / "pg_restore"),
            "rto_minutes": 60,
            "dump_dbname": SOURCE_DB,
        },
    }


def file_restore(st: Stack, path: Path, n: int) -> float:
    """pg_restore from the local file, same flags, into a fresh database; seconds from start to exit."""
    db = f"bench_file_{n}"
    with st.admin("restore") as c:
        c.execute(f"CREATE DATABASE {db} TEMPLATE template0 OWNER {RESTORE_USER}")
    try:
        env = {**os.environ, "PGPASSWORD": PASSWORDS["restore"]}
        target = f"host=127.0.0.1 port={st.ports['restore']} dbname={db} user={RESTORE_USER} sslmode=disable"
        t0 = time.monotonic()
        subprocess.run(
            [str(st.bindir / "pg_restore"), *FLAGS, "-d", target, str(path)],
            check=True,
            env=env,
            capture_output=True,
            timeout=3600,
        )
        return time.monotonic() - t0
    finally:
        with st.admin("restore") as c:
            c.execute(f"DROP DATABASE {db} WITH (FORCE)")


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem = next(
        (
            int(ln.split()[1]) // 1024
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        ),
        0,
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="target size of the pg_dump -Fc file")
    ap.add_argument("--runs", type=int, default=2, help="restores each way")
    ap.add_argument("--compress", default=None, help="pg_dump -Z value (default: pg_dump's own, gzip)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    from golive.sandbox.stack import ROOT

    ROOT.mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-restore-", dir=ROOT))
    base.chmod(0o755)
    st = Stack(base)
    t_all = time.monotonic()
    try:
        st.start()
        t = time.monotonic()
        big, small, rows = make_data(st, args.size_mb, args.compress)
        size = big.stat().st_size
        z = f" -Z {args.compress}" if args.compress else ""
        print(
            f"# dump: {size / 1048576:,.0f} MiB ({rows:,} rows, pg_dump -Fc{z}), made in {time.monotonic() - t:.0f} s",
            flush=True,
        )
        st.s3().create_bucket(Bucket=BUCKET)
        t = time.monotonic()
        upload(st, big, "big/benchsrc.dump")
        upload(st, small, "small/benchsrc.dump")
        print(f"# uploaded to moto S3 in {time.monotonic() - t:.0f} s", flush=True)
        specs = {}
        for name, table in (("big", "blobs"), ("small", "blobs_small")):
            specs[name] = base / f"{name}.json"
            specs[name].write_text(json.dumps({"config": golive_config(st, f"{name}/", table)}))
        small_run = golive_restore(specs["small"])
        golive, files, rss = [], [], []
        for i in range(args.runs):
            order = ("golive", "file") if i % 2 == 0 else ("file", "golive")
            for which in order:
                if which == "golive":
                    r = golive_restore(specs["big"])
                    assert r["bytes"] == size, (r["bytes"], size)
                    golive.append(r["restore_seconds"])
                    rss.append(r["maxrss_mb"])
                    mib_s = size / 1048576 / r["restore_seconds"]
                    print(
                        f"# run {i + 1} golive  {r['restore_seconds']:7.1f} s  {mib_s:6.1f} MiB/s  peak RSS "
                        f"{r['maxrss_mb']:.0f} MB  (rows {r['rows']})",
                        flush=True,
                    )
                else:
                    s = file_restore(st, big, i)
                    files.append(s)
                    print(f"# run {i + 1} file    {s:7.1f} s  {size / 1048576 / s:6.1f} MiB/s", flush=True)
        g, f = statistics.median(golive), statistics.median(files)
        ratio = f / g
        result = {
            "machine": machine(),
            "dump_mib": round(size / 1048576),
            "rows": rows,
            "runs": args.runs,
            "golive_s": [round(x, 1) for x in golive],
            "file_s": [round(x, 1) for x in files],
            "golive_mib_s": round(size / 1048576 / g, 1),
            "file_mib_s": round(size / 1048576 / f, 1),
            "throughput_ratio": round(ratio, 3),
            "golive_peak_rss_mb": round(max(rss)),
            "golive_peak_rss_small_dump_mb": round(small_run["maxrss_mb"]),
            "small_dump_mib": round(small.stat().st_size / 1048576, 1),
            "total_s": round(time.monotonic() - t_all),
        }
        print(json.dumps(result, indent=2))
        print(
            f"\n| dump | golive streamed (median) | pg_restore from file (median) | ratio (target >= 0.8) | "
            f"golive peak RSS (target < 300 MB) |\n|---|---|---|---|---|\n"
            f"| {result['dump_mib']:,} MiB | {g:.1f} s ({result['golive_mib_s']} MiB/s) | {f:.1f} s "
            f"({result['file_mib_s']} MiB/s) | {ratio:.2f} | {result['golive_peak_rss_mb']} MB "
            f"({result['golive_peak_rss_small_dump_mb']} MB for a {result['small_dump_mib']} MiB dump) |"
        )
        print(f"\nmachine: {result['machine']}")
        ok = ratio >= 0.8 and max(rss) < 300
        return 0 if ok else 1
    finally:
        st.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
