"""Imports every check module so `tasks.core.load_catalog()` sees the whole catalog (import for side effects)."""
from __future__ import annotations

from . import postgres, prometheus, recovery, rediscache, restore, s3backup, smtp, team, tls, web  # noqa: F401
