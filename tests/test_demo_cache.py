"""The cache of Prefect's migrated database (issue 16, point 3: deployments/prefect_db.py), which `golive demo` and
golive's local server copy instead of migrating: per user (0700), keyed by the versions, built atomically, and a
corrupted or partial entry is never used but rebuilt."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from golive.deployments import prefect_db
from golive.sandbox.parts import postgres as pg
from golive.sandbox.stack import run_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A user's cache directory of their own, with the template built once (a first demo)."""
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        bindir = prefect_db.sandbox_bindir()
        entry, was_cached = prefect_db.template(bindir)
        assert not was_cached
        yield bindir, entry


def test_the_template_is_keyed_by_versions_private_and_reused(cache):
    bindir, entry = cache
    from importlib import metadata

    key = prefect_db.template_key(bindir)
    assert entry.name == key and f"prefect-{metadata.version('prefect')}-" in key and "-golive-" in key
    assert (entry.parent.stat().st_mode & 0o777) == 0o700  # $XDG_CACHE_HOME/golive
    assert json.loads((entry / prefect_db.MARKER).read_text())["key"] == key
    assert prefect_db.template(bindir) == (entry, True)
    assert prefect_db.cached_template(bindir) == entry
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]  # nothing half-built left


def test_a_copy_holds_prefects_migrated_database(cache):
    bindir, entry = cache
    base = run_dir()
    try:
        db = prefect_db.Cluster(bindir, base, base / "postgres.log")
        assert db.ensure_data(entry) and not db.ensure_data(entry)  # cloned once
        assert (db.data.stat().st_mode & 0o777) == 0o700
        db.start()
        try:
            with psycopg.connect(pg.admin_conninfo(db.sock, prefect_db.SOCKET_PORT, "prefect", "prefect")) as conn:
                [(version,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
                blocks = conn.execute("SELECT count(*) FROM block_type").fetchone()[0]
            assert version and blocks > 0  # migrated and its block types registered: nothing left to do at start
            assert "listen_addresses=" in prefect_db.argv(bindir, db.data, db.sock)  # the socket only, no TCP
        finally:
            db.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    "damage",
    ["no marker", "another key", "no pg_control", "no cluster"],
)
def test_a_corrupted_or_partial_entry_is_not_used(cache, damage, tmp_path):
    bindir, entry = cache
    saved = tmp_path / "saved"
    shutil.copytree(entry, saved, symlinks=True)
    try:
        if damage == "no marker":
            (entry / prefect_db.MARKER).unlink()
        elif damage == "another key":
            (entry / prefect_db.MARKER).write_text(json.dumps({"key": "prefect-0.0.0-golive-0-pg-x-f1"}))
        elif damage == "no pg_control":
            (entry / "pgdata" / "global" / "pg_control").unlink()
        else:
            shutil.rmtree(entry / "pgdata")
        assert prefect_db.cached_template(bindir) is None
    finally:
        shutil.rmtree(entry, ignore_errors=True)
        shutil.copytree(saved, entry, symlinks=True)
    assert prefect_db.cached_template(bindir) == entry


def test_a_partial_entry_is_rebuilt_atomically(cache):
    bindir, entry = cache
    (entry / prefect_db.MARKER).unlink()  # as a build that died before its marker
    stale = entry.parent / f"{entry.name}.abc.tmp"  # and a build's staging directory left by a crash
    stale.mkdir()
    rebuilt, was_cached = prefect_db.template(bindir)
    assert (rebuilt, was_cached) == (entry, False)
    assert prefect_db.cached_template(bindir) == entry and not stale.exists()
