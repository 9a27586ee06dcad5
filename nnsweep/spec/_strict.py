"""The base of a sweep-file section: unknown keys are an error that lists the allowed ones.

Every section derives from it: those of :mod:`nnsweep.spec.config` and those defined in
modules of their own (``diagnosis``, ``stop``, ``warm_start``), which config imports.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from nnsweep.spec.space import short_repr


class Strict(BaseModel):
    """A section of the sweep file: frozen, finite numbers, no unknown keys."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key {short_repr(unknown[0])}; allowed keys: {allowed}")
        return data


def shorthand(key: str) -> BeforeValidator:
    """Let ``section: value`` stand for ``section: {key: value}``."""
    return BeforeValidator(lambda v: {key: v} if isinstance(v, str | int | float) else v)
