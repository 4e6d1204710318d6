"""The sandbox runs PostgreSQL's binaries from a cache under a fixed, predictable name in the shared temp dir
(/tmp/golive-sandbox): a directory someone else made there first, or can write, could hold planted binaries that
would run as us (as root in CI). Refused, saying why (the review of issue 12's 0700-home change)."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from golive.sandbox.parts.postgres import copy_for_others, own_dir


def test_a_directory_of_ours_that_only_we_write_is_used(tmp_path):
    d = own_dir(tmp_path / "cache")
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o755


def test_a_directory_others_can_write_is_refused(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    d.chmod(0o777)  # /tmp-style: anyone could swap what is inside
    with pytest.raises(PermissionError, match="refusing to use it"):
        own_dir(d)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user owns needs root (CI runs as root)")
def test_a_cache_someone_else_made_first_is_refused_and_nothing_runs_from_it(tmp_path):
    nobody = pwd.getpwnam("nobody").pw_uid
    src = tmp_path / "src"
    (src / "pkg" / "bin").mkdir(parents=True)
    (src / "pkg" / "bin" / "postgres").write_text("#!/bin/sh\necho genuine\n")
    cache = tmp_path / "cache"
    planted = cache / "pg-key" / "pkg" / "bin"
    planted.mkdir(parents=True)
    (planted / "postgres").write_text("#!/bin/sh\necho planted\n")
    for d in (cache, cache / "pg-key"):
        os.chown(d, nobody, -1)
    with pytest.raises(PermissionError, match=f"owner uid {nobody}"):
        copy_for_others(src, cache / "pg-key", ["pkg"])
    os.chown(cache, 0, -1)  # the cache root is ours now, but the entry in it is still someone else's
    with pytest.raises(PermissionError, match=f"owner uid {nobody}"):
        copy_for_others(src, cache / "pg-key", ["pkg"])
    shutil.rmtree(cache / "pg-key")
    out = copy_for_others(src, cache / "pg-key", ["pkg"])  # ours: copied afresh, world-readable
    assert (out / "pkg" / "bin" / "postgres").read_text().endswith("genuine\n")


# --------------------------------------------------------------------------- the cached initdb template


def _bindir():
    from golive.sandbox.parts.postgres import ROOT, pg_install

    return pg_install(ROOT / "cache") / "bin"


@pytest.fixture
def reachable(tmp_path):
    """A directory PostgreSQL's user can reach (as root, pytest's tmp_path is 0700 root's): under the sandbox's root."""
    import tempfile

    from golive.sandbox.parts.postgres import ROOT, own_dir

    d = Path(tempfile.mkdtemp(prefix="test-initdb-", dir=own_dir(ROOT)))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _owner_and_mode(path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_mode & 0o777


def test_clusters_are_copies_of_one_initdb_template_that_only_we_can_change(reachable):
    tmp_path = reachable
    from golive.sandbox.parts.postgres import initdb_cached, run_as

    cache = tmp_path / "cache"
    initdb_cached(_bindir(), tmp_path / "a", tmp_path / "a-sock", cache)
    (template,) = cache.glob("initdb-*")
    assert _owner_and_mode(template) == (os.geteuid(), 0o700)  # root's when root: not `nobody`'s, who runs PostgreSQL
    assert {os.lstat(p).st_uid for p in template.rglob("*")} == {os.geteuid()}
    initdb_cached(_bindir(), tmp_path / "b", tmp_path / "b-sock", cache)
    assert list(cache.glob("initdb-*")) == [template]  # built once, copied twice
    runs_as = pwd.getpwnam(run_as()).pw_uid if run_as() else os.geteuid()
    for cluster in ("a", "b"):
        data = tmp_path / cluster
        assert _owner_and_mode(data) == (runs_as, 0o700)  # what PostgreSQL insists on
        assert {os.lstat(p).st_uid for p in data.rglob("*")} == {runs_as}
        assert (data / "PG_VERSION").read_text() == (template / "PG_VERSION").read_text()
        assert "scram-sha-256" in (data / "pg_hba.conf").read_text()


def test_a_template_others_could_have_changed_is_never_copied(reachable):
    tmp_path = reachable
    from golive.sandbox.parts.postgres import initdb_cached

    cache = tmp_path / "cache"
    initdb_cached(_bindir(), tmp_path / "a", tmp_path / "a-sock", cache)
    (template,) = cache.glob("initdb-*")
    (template / "pg_hba.conf").write_text("host all all 0.0.0.0/0 trust\n")  # planted...
    template.chmod(0o777)  # ...by anyone, through a directory anyone can write
    initdb_cached(_bindir(), tmp_path / "b", tmp_path / "b-sock", cache)
    hba = (tmp_path / "b" / "pg_hba.conf").read_text()
    assert "0.0.0.0/0" not in hba and "scram-sha-256" in hba  # initdb's own, not the planted one
    assert _owner_and_mode(template) == (os.geteuid(), 0o700)  # built again
