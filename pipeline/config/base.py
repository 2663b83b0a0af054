"""The error every bad input becomes, and the strict base every config section derives from."""
from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class ConfigError(ValueError):
    """Bad experiment input; its message is one line naming the field or the cause."""


def _kinds(annotation: Any) -> set[Any]:
    """The types a field's annotation allows (`int | None` -> {int, NoneType})."""
    if get_origin(annotation) in (Union, types.UnionType):
        return set(get_args(annotation))
    return {annotation}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_silent_casts(cls, value: Any, info: ValidationInfo) -> Any:
        """Pydantic's lax mode turned `epochs: true` into 1, `num_samples: "1"` into 1 and
        `nesterov: "yes"` into True without a word. Strings stay numbers for float fields:
        YAML 1.1 reads `1e-3` (no dot) as a string."""
        kinds = _kinds(cls.model_fields[info.field_name].annotation)
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise ValueError(f"expected a number, got {str(value).lower()}")
        if isinstance(value, str) and str not in kinds and (int in kinds or bool in kinds) \
                and float not in kinds:
            raise ValueError(f"expected {'true or false' if bool in kinds else 'a whole number'}"
                             f", got the string {value!r}")
        return value
