"""The catalog's contract, pinned: every check's id, section, severity, seed items, dependencies, target and needs, as
`golive catalog --format json` gives them (`catalog_rows`), equal a committed snapshot (tests/data/catalog-snapshot.json).

A refactor (issue 13: modules named by the config key they read, one run engine) must not change what is checked or
how it gates; a deliberate change of the catalog updates the snapshot in the same commit, reviewed like code:
`python -m tests.test_catalog_snapshot` rewrites it.
"""

from __future__ import annotations

import json
from pathlib import Path

from golive.flows.catalog import catalog_rows

SNAPSHOT = Path(__file__).parent / "data" / "catalog-snapshot.json"
PINNED = ("section", "severity", "seed", "depends_on", "target", "needs")


def contract() -> dict[str, dict]:
    return {c["id"]: {k: c[k] for k in PINNED} for c in catalog_rows()}


def test_the_catalog_equals_its_snapshot():
    now, pinned = contract(), json.loads(SNAPSHOT.read_text())
    assert now.keys() == pinned.keys(), (
        f"checks added {sorted(now.keys() - pinned.keys())}, removed {sorted(pinned.keys() - now.keys())}"
    )
    changed = {
        cid: {k: (pinned[cid][k], now[cid][k]) for k in PINNED if pinned[cid][k] != now[cid][k]}
        for cid in now
        if now[cid] != pinned[cid]
    }
    assert changed == {}, "changed (snapshot, now); if deliberate: python -m tests.test_catalog_snapshot"
    assert len(now) > 250 and all(c["seed"] for c in now.values())


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(contract(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} ({len(contract())} checks)")


def test_the_catalog_piped_into_a_reader_that_leaves_early_ends_quietly():
    """`golive catalog --format json | head`: no 'the gate itself failed: BrokenPipeError', exit 141 as a shell tool."""
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "golive.deployments.cli", "catalog", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout.read(10).startswith(b"[")
    p.stdout.close()  # the reader leaves: the rest of the catalog meets a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == "", err
