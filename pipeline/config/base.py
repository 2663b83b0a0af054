"""The error every bad input becomes, and the strict base every config section derives from."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """Bad experiment input; its message is one line naming the field or the cause."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

