"""Shared pieces of the target models (each target model lives beside the checks that read it)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Target(BaseModel):
    """Base of every config section: unknown keys are errors (a typo must not silently disable a check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
