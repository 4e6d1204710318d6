"""Redis: ping, memory, eviction, persistence, replication (section 2.1)."""

from __future__ import annotations

import shlex
import statistics
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from .core import Observation, RunContext, check, compare, failed, failed_if, passed, register_service, url_address
from .models import CaFile, Target


def _redis_url(v: str) -> str:
    if not v.startswith(("redis://", "rediss://")):
        raise ValueError("not a redis:// or rediss:// URL")
    try:
        host = urlsplit(v).hostname
    except ValueError:  # e.g. an unclosed [IPv6 address
        host = None
    if not host:
        raise ValueError("no host in the URL (redis-py would connect to localhost)")
    return v


class RedisTarget(Target):
    url: str = Field(description="redis://host:port/db (no password in the URL: use `password`)")
    password: SecretStr | None = None
    replica_urls: list[str] = Field(default_factory=list)
    ca_file: CaFile | None = Field(
        None, description="extra trust anchor (PEM) for rediss:// URLs (a private CA), besides the system store"
    )
    max_ping_ms: float = Field(5.0, gt=0, description="seed 2.1: PING < 5 ms")
    max_memory_ratio: float = Field(0.8, gt=0, le=1, description="seed 2.1: used < 80% of maxmemory")
    eviction_policy: str = "allkeys-lru"
    require_aof: bool = True
    max_replication_lag_ms: float = Field(100.0, ge=0)
    ping_samples: int = Field(10, ge=1, le=100, description="PINGs whose median is compared with max_ping_ms")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _redis_url(v)

    @field_validator("replica_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_redis_url(u) for u in v]


# --------------------------------------------------------------------------- probes

PING = "dependencies.redis.ping"


def safe_url(url: str) -> str:
    """The URL with any password masked (the model forbids one, but be safe)."""
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = f"{u.username or ''}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def cli(url: str, t: RedisTarget, *args: str) -> str:
    """A redis-cli command that re-runs the probe (password prompted, never inline)."""
    tls = ["--tls", "--cacert", shlex.quote(str(t.ca_file))] if t.ca_file and url.startswith("rediss://") else []
    return " ".join(
        ["redis-cli", "-u", shlex.quote(safe_url(url)), *tls] + (["--askpass"] if t.password else []) + list(args)
    )


def client(url: str, t: RedisTarget, ctx: RunContext):
    """A client whose connect and read timeouts are the check's remaining budget, with no retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    tls = {"ssl_ca_certs": str(t.ca_file)} if t.ca_file and url.startswith("rediss://") else {}
    return redis.Redis.from_url(
        url,
        password=t.password.get_secret_value() if t.password is not None else None,
        socket_timeout=ctx.remaining,
        socket_connect_timeout=ctx.remaining,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        client_name="golive-check",
        **tls,
    )


def info(url: str, t: RedisTarget, ctx: RunContext) -> dict[str, Any]:
    """`INFO` (default sections: server, memory, persistence, replication, ...) once per URL and run."""

    def fetch() -> dict[str, Any]:
        r = client(url, t, ctx)
        try:
            return r.info()
        finally:
            r.close()

    return ctx.memo(("redis-info", url), fetch)


# --------------------------------------------------------------------------- checks


@check(
    PING,
    title="Redis answers PING quickly",
    seed=["2.1 Redis Cache: Redis Server Online"],
    timeout=10,
    target="redis",
    timing=True,
)
def redis_ping(t: RedisTarget, ctx: RunContext) -> Observation:
    """Median of `ping_samples` PING round trips on one connection (after connecting) < max_ping_ms."""
    r = client(t.url, t, ctx)
    try:
        r.ping()  # connect (and AUTH) first: the samples time the round trip only
        samples = []
        for _ in range(t.ping_samples):
            t0 = time.perf_counter()
            if not r.ping():
                raise RuntimeError("PING did not answer PONG")
            samples.append(round((time.perf_counter() - t0) * 1000, 3))
    finally:
        r.close()
    med = statistics.median(samples)
    evidence = f"{t.ping_samples} x PING on one connection to {safe_url(t.url)}; re-run: `{cli(t.url, t, '--latency')}`"
    obs = compare(round(med, 3), "<", t.max_ping_ms, unit="ms", evidence=evidence, samples_ms=samples)
    obs.observed = f"PONG, median {med:.3g} ms of {samples}"
    return obs


@check(
    "dependencies.redis.memory",
    title="Redis memory is bounded, below the ratio, with the right eviction policy",
    seed=["2.1 Redis Cache: Redis Memory"],
    depends_on=[PING],
    timeout=10,
    target="redis",
)
def redis_memory(t: RedisTarget, ctx: RunContext) -> Observation:
    """used_memory / maxmemory < max_memory_ratio and maxmemory_policy == eviction_policy (maxmemory 0 fails)."""
    i = info(t.url, t, ctx)
    used, limit, policy = int(i["used_memory"]), int(i.get("maxmemory", 0)), i.get("maxmemory_policy")
    expected = f"maxmemory set, used/maxmemory < {t.max_memory_ratio:g}, policy == {t.eviction_policy}"
    evidence = (
        f"INFO memory on {safe_url(t.url)}: used_memory, maxmemory, maxmemory_policy; re-run: "
        f"`{cli(t.url, t, 'INFO', 'memory')}`"
    )
    observed: dict[str, Any] = {"used_memory": used, "maxmemory": limit, "maxmemory_policy": policy}
    problems = []
    if limit == 0:
        problems.append("no limit (maxmemory 0)")
    else:
        ratio = used / limit
        observed["ratio"] = round(ratio, 4)
        if ratio >= t.max_memory_ratio:
            problems.append(f"ratio {ratio:.3g} >= {t.max_memory_ratio:g}")
    if policy != t.eviction_policy:
        problems.append(f"eviction policy {policy} != {t.eviction_policy}")
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


@check(
    "dependencies.redis.persistence",
    title="Redis persists (AOF on, last writes and saves OK)",
    seed=["2.1 Redis Cache: Redis Persistence"],
    depends_on=[PING],
    timeout=10,
    target="redis",
)
def redis_persistence(t: RedisTarget, ctx: RunContext) -> Observation:
    """aof_enabled (when require_aof), aof_last_write_status ok, rdb_last_bgsave_status ok."""
    i = info(t.url, t, ctx)
    keys = [
        "aof_enabled",
        "aof_last_write_status",
        "aof_last_bgrewrite_status",
        "rdb_last_bgsave_status",
        "rdb_changes_since_last_save",
        "aof_rewrite_in_progress",
    ]
    observed = {k: i.get(k) for k in keys}
    want: dict[str, Any] = {"aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"}
    if t.require_aof:
        want = {"aof_enabled": 1, **want}
    bad = {k: observed[k] for k, v in want.items() if observed.get(k) != v}
    evidence = f"INFO persistence on {safe_url(t.url)}; re-run: `{cli(t.url, t, 'INFO', 'persistence')}`"
    expected = " and ".join(f"{k} == {v}" for k, v in want.items())
    return failed_if(bad, observed, expected, evidence, wrong=bad)


def _replica_state(r: Any, ctx: RunContext, master_offset: int, t0: float, window_s: float) -> dict[str, Any]:
    """Poll one (already connected) replica's INFO replication until it has applied `master_offset` (the
    primary's offset read at `t0`): the time that takes is its measured lag. Unreachable -> reported, not raised."""
    import redis

    try:
        while True:
            rep = r.info("replication")
            now_ms = (time.perf_counter() - t0) * 1000
            state = {
                "role": rep.get("role"),
                "master_link_status": rep.get("master_link_status"),
                "master_last_io_seconds_ago": rep.get("master_last_io_seconds_ago"),
                "slave_repl_offset": rep.get("slave_repl_offset"),
            }
            offset = rep.get("slave_repl_offset")
            if rep.get("role") != "slave" or rep.get("master_link_status") != "up":
                return {**state, "caught_up": False}
            if offset is not None and int(offset) >= master_offset:
                return {**state, "caught_up": True, "lag_ms": round(now_ms, 1)}
            if now_ms / 1000 > window_s or ctx.remaining < 0.2:
                return {
                    **state,
                    "caught_up": False,
                    "behind_bytes": master_offset - int(offset or 0),
                    "lag_ms": f"> {now_ms:.0f}",
                }
            time.sleep(0.01)
    except (redis.ConnectionError, redis.TimeoutError) as e:
        return {"unreachable": f"{type(e).__name__}: {e}", "caught_up": False}


def _primary_offset(t: RedisTarget, ctx: RunContext) -> tuple[int, float]:
    r = client(t.url, t, ctx)
    try:
        return int(r.info("replication").get("master_repl_offset", 0)), time.perf_counter()
    finally:
        r.close()


def _connect_replica(url: str, t: RedisTarget, ctx: RunContext) -> tuple[Any, str | None]:
    """Connect (and authenticate) before the primary's offset is read, so connection set-up is not counted as lag."""
    import redis

    r = client(url, t, ctx)
    try:
        r.ping()
        return r, None
    except (redis.ConnectionError, redis.TimeoutError) as e:
        r.close()
        return None, f"{type(e).__name__}: {e}"


@check(
    "dependencies.redis.replication",
    title="Redis primary has live replicas with small lag",
    seed=["2.1 Redis Cache: Redis Replication"],
    depends_on=[PING],
    timeout=10,
    target="redis",
    timing=True,
    needs={"redis.replica_urls": "no replication to verify"},
)
def redis_replication(t: RedisTarget, ctx: RunContext) -> Observation:
    """Primary: role master with >= 1 connected replica. Each replica_url: link up and it reaches the
    primary's current replication offset within max_replication_lag_ms (lag measured from offsets)."""
    conns = {u: _connect_replica(u, t, ctx) for u in t.replica_urls}
    r = client(t.url, t, ctx)
    try:
        prim = r.info("replication")
        t0 = time.perf_counter()
    finally:
        r.close()
    master_offset = int(prim.get("master_repl_offset", 0))
    linked = [
        f"{v.get('ip')}:{v.get('port')} {v.get('state')} offset {v.get('offset')}"
        for k, v in sorted(prim.items())
        if k.startswith("slave") and isinstance(v, dict)
    ]
    observed: dict[str, Any] = {
        "role": prim.get("role"),
        "connected_slaves": prim.get("connected_slaves"),
        "master_repl_offset": master_offset,
        "replicas_seen_by_primary": linked,
    }
    expected = (
        f"role master, connected_slaves >= 1; each replica link up and caught up with the primary's offset "
        f"within {t.max_replication_lag_ms:g} ms"
    )
    evidence = (
        f"INFO replication on {safe_url(t.url)} (master_repl_offset), then INFO replication on each replica "
        f"polled until slave_repl_offset >= it; re-run: `{cli(t.url, t, 'INFO', 'replication')}` and "
        + ", ".join(f"`{cli(u, t, 'INFO', 'replication')}`" for u in t.replica_urls)
    )
    problems = []
    if prim.get("role") != "master":
        problems.append(f"primary role is {prim.get('role')}")
    if int(prim.get("connected_slaves", 0)) < 1:
        problems.append("0 connected replicas")
    window = max(t.max_replication_lag_ms / 1000 * 2, 0.5)
    replicas = {}
    for u, (rc, err) in conns.items():
        try:
            st = _replica_state(rc, ctx, master_offset, t0, window) if rc else {"unreachable": err, "caught_up": False}
            for _ in range(2):  # a busy machine can delay one poll: the best of three measurements is the lag
                if not (st.get("caught_up") and st["lag_ms"] >= t.max_replication_lag_ms) or ctx.remaining < 1:
                    break
                offset, t1 = _primary_offset(t, ctx)
                again = _replica_state(rc, ctx, offset, t1, window)
                if again.get("caught_up") and again["lag_ms"] < st["lag_ms"]:
                    st = {**again, "attempts": _ + 2}
        finally:
            if rc:
                rc.close()
        replicas[safe_url(u)] = st
        if not st.get("caught_up"):
            problems.append(
                f"{safe_url(u)}: " + (st.get("unreachable") or f"link {st.get('master_link_status')}, not caught up")
            )
        elif st["lag_ms"] >= t.max_replication_lag_ms:
            problems.append(f"{safe_url(u)}: lag {st['lag_ms']} ms")
    observed["replicas"] = replicas
    if problems:
        observed["problems"] = problems
        return failed(observed, expected, evidence)
    return passed(observed, expected, evidence)


# the primary's and the replicas' addresses, for the checks that reach them otherwise (firewall, scrape targets)
register_service(PING, lambda c: [url_address(r.url)] if (r := getattr(c, "redis", None)) else [])
register_service(
    "dependencies.redis.replication",
    lambda c: [url_address(u) for u in r.replica_urls] if (r := getattr(c, "redis", None)) else [],
)
