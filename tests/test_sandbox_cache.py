"""The sandbox runs PostgreSQL's binaries from a cache under a fixed, predictable name in the shared temp dir
(/tmp/golive-sandbox): a directory someone else made there first, or can write, could hold planted binaries that
would run as us (as root in CI). Refused, saying why (the review of issue 12's 0700-home change)."""

from __future__ import annotations

import os
import pwd
import shutil

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
