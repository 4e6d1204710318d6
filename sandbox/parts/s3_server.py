"""moto's S3 server with a settable clock (the s3 part's process, sandbox/parts/s3.py):
`python -m golive.sandbox.parts.s3_server --clock FILE -H HOST -p PORT`.

S3 sets an object's LastModified itself; no API can backdate it, and moto's server has no time control (moto 5.2's
`/moto-api/` offers none). The sandbox needs real old objects (30 days of backup history, a 3-day-old newest backup,
WAL segments from 8 hours ago), so this wrapper makes moto's S3 clock run `offset_s` seconds behind, as read from a
small JSON file (`{"offset_s": 86400}`) that the sandbox replaces atomically; the file is re-read when its inode or
mtime changes. Everything else is moto's own server (`moto.server.main`), arguments passed through.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path


def write_clock(path: Path, offset_s: float) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"offset_s": offset_s}))
    os.replace(tmp, path)


def _patch_clock(path: str) -> None:
    import moto.s3.models as s3_models

    real = s3_models.utcnow
    state: dict = {"stamp": None, "offset": 0.0}

    def utcnow() -> dt.datetime:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return real()
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != state["stamp"]:
            try:
                state["offset"] = float(json.loads(Path(path).read_text()).get("offset_s", 0))
                state["stamp"] = stamp
            except (OSError, ValueError):  # replaced while we read: keep the previous offset
                pass
        return real() - dt.timedelta(seconds=state["offset"])

    s3_models.utcnow = utcnow


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "--clock":
        raise SystemExit("usage: python -m golive.sandbox.parts.s3_server --clock FILE [moto.server arguments]")
    _patch_clock(argv[1])
    from moto.server import main as moto_main

    moto_main(argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
