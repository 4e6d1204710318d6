"""The runtime fault file shared by the sandbox and its servers: `{"faults": [...]}` in the base directory.

The sandbox replaces it atomically; the web app and the monitoring server re-read it when its inode or mtime changes,
so a fault takes effect on the next request (no control endpoint on the product's port).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def write_faults(path: Path, faults: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"faults": sorted(faults)}))
    os.replace(tmp, path)


class FaultFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._faults: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._faults = None, frozenset()
            return self._faults
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._stamp:
            self._faults = frozenset(json.loads(self.path.read_text()).get("faults", []))
            self._stamp = stamp
        return self._faults

    def __contains__(self, name: str) -> bool:
        return name in self.current()
