"""The guard: a restore server is used only once PROVEN not to be the production cluster (fail closed)."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from ..core import RunContext
from ..postgres import PostgresTarget, dsn_for_evidence
from ..postgres import connect as source_connect
from .target import RestoreTarget, restore_dsn


def guard_evidence(t: RestoreTarget, src: PostgresTarget) -> str:
    return (
        f"restore server {restore_dsn(t, t.maintenance_dbname)} vs source {dsn_for_evidence(src)}: `SELECT "
        "system_identifier FROM pg_control_system()` on both, else the restore server's pg_stat_activity "
        "searched for the application_name of golive's open READ ONLY session on the source"
    )


# The restore server is accepted only when it is PROVEN not to be the production cluster, by a proof that does not
# depend on the address golive used (a second address of one server, its Unix socket, a DNS alias all look new):
# 1. `system_identifier` (pg_control_system()) on both: different clusters, unless equal (the primary, an alias of
#    it, or one of its physical replicas). Hardened and managed servers revoke it from PUBLIC (pg_monitor does not
#    give it back), so when either side cannot read it:
# 2. the source session carries a random application_name inside a READ ONLY transaction that stays open while the
#    restore server's pg_catalog.pg_stat_activity is read: every backend of a cluster is listed there, with its
#    application_name, to every role (the columns hidden from other roles are query, state, client...), so a
#    restore server that does not list it, while the source still shows it before and after, is another postmaster.
#    A standby on either side is refused (its primary does not list a standby's sessions, and a physical replica has
#    its own pg_stat_activity), read in the same statement so that a load balancer cannot answer one and not the other.
# Nothing proves it: refused, with what to grant. Nothing is ever written to either server by the proof.
_PROBE_SQL = (
    "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity WHERE application_name = %s)"
)
_SYSID_SQL = "SELECT system_identifier::text FROM pg_catalog.pg_control_system()"
GRANT_SYSID = "GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO {}"


def _may_read(conn: Any, query: str, params: list[Any] | None = None) -> tuple[Any, str | None]:
    """The first row, or (None, why not) when a privilege is missing: that only removes a proof (a savepoint keeps
    the surrounding transaction, and with it the source's probe, alive)."""
    from psycopg import errors

    try:
        with conn.transaction():
            return conn.execute(query, params).fetchone(), None
    except errors.InsufficientPrivilege as e:
        return None, " ".join(str(e).split())


def _identity(conn: Any, probe: str) -> dict[str, Any]:
    version, num, standby = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int, pg_is_in_recovery()"
    ).fetchone()
    sysid, sysid_error = _may_read(conn, _SYSID_SQL)
    seen, seen_error = _may_read(conn, _PROBE_SQL, [probe])
    return {
        "system_identifier": sysid and sysid[0],
        "sysid_error": sysid_error,
        "version": version,
        "version_num": num,
        "in_recovery": seen[0] if seen else standby,
        "sees_probe": seen and seen[1],
        "probe_error": seen_error,
    }


@contextlib.contextmanager
def _source_probe(src: PostgresTarget, ctx: RunContext) -> Iterator[dict[str, Any]]:
    """The source's identity, its session marked with a random application_name (SET LOCAL: gone at the rollback)
    in a READ ONLY transaction that stays open while the caller reads the restore server; on leaving, the source
    must still show the mark (a session killed meanwhile would make the restore server's "not listed" mean nothing)."""
    probe = f"golive-identity-{secrets.token_hex(16)}"
    with source_connect(src, ctx, read_only=True) as conn:
        conn.execute("SELECT set_config('application_name', %s, true)", [probe])
        facts = {**_identity(conn, probe), "probe": probe}
        yield facts
        again = _may_read(conn, _PROBE_SQL, [probe])[0]
        facts["sees_probe"] = bool(facts["sees_probe"] and again and again[1])


def prove_not_production(
    t: RestoreTarget, src: PostgresTarget, ctx: RunContext, conn: Any
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(restore server facts, source facts, refusal or None), read on `conn`: the restore server connection that
    then creates the scratch database, so what was proven is where the database is created."""
    with _source_probe(src, ctx) as sf:
        rf = _identity(conn, sf["probe"])
    return rf, sf, identity_refusal(rf, sf, t.user, src.user)


def _addresses(host: str, port: int) -> set[str]:
    try:
        return {ai[4][0] for ai in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        return set()


def address_refusal(t: RestoreTarget, src: PostgresTarget) -> str | None:
    """Why the restore server is the source by address (before any connection), or None. Only an early refusal:
    a different address proves nothing (prove_not_production decides)."""
    if t.port != src.port:
        return None
    if t.host == src.host:
        return f"the restore server {t.host}:{t.port} is the production database server (same host and port)"
    shared = sorted(_addresses(t.host, t.port) & _addresses(src.host, src.port))
    if shared:
        return (
            f"the restore server {t.host}:{t.port} is the production database server {src.host}:{src.port} "
            f"(both resolve to {', '.join(shared)})"
        )
    return None


def identity_refusal(rf: dict[str, Any], sf: dict[str, Any], restore_role: str, source_role: str) -> str | None:
    """Why the restore server is, or cannot be proven not to be, the production cluster (fail closed), or None."""
    rid, sid = rf.get("system_identifier"), sf.get("system_identifier")
    if rid and rid == sid:
        return (
            f"the restore server is the production cluster: same system_identifier {rid} (the primary itself, "
            "an alias of it, or one of its physical replicas)"
        )
    if rf.get("sees_probe"):  # whatever else was read: this is production
        return (
            "the restore server is the production server: its pg_stat_activity lists golive's own session on "
            "the source (the same postmaster reached by another address)"
        )
    if rid and sid:
        return None
    unread = "; ".join(
        f"{side} ({err})"
        for side, err in (("restore server", rf.get("sysid_error")), ("source", sf.get("sysid_error")))
        if err
    )
    grant = " and ".join(
        f"`{GRANT_SYSID.format(role)}` on the {side}"
        for side, role, f in (("restore server", restore_role, rf), ("source", source_role, sf))
        if not f.get("system_identifier")
    )
    why = [
        w
        for w, bad in (
            (f"pg_stat_activity not readable on the restore server ({rf.get('probe_error')})", rf.get("probe_error")),
            (f"pg_stat_activity not readable on the source ({sf.get('probe_error')})", sf.get("probe_error")),
            (
                "the source does not show golive's own session in its pg_stat_activity (a pooler?)",
                not sf.get("probe_error") and sf.get("sees_probe") is not True,
            ),
            ("the source is a standby (its primary does not list its sessions)", sf.get("in_recovery")),
            ("the restore server is a standby (it may replicate production)", rf.get("in_recovery")),
        )
        if bad
    ]
    if why:
        return (
            f"cannot prove the restore server is not the production cluster: system_identifier not readable on "
            f"the {unread}, and {'; '.join(why)}. Grant {grant} (pg_monitor does not include it)"
        )
    return None
