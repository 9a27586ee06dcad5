"""The ``warm_start:`` section: begin a new study from what an earlier one found.

``warm_start: {study: NAME, top: K}`` enqueues the K best configurations of study NAME as the
new study's first trials, each clipped or mapped into the new space (:mod:`nnsweep.study.warm`).
``mode: history`` instead adds the earlier study's finished trials to the new one as history,
so the sampler (TPE) starts informed without training them again; only a study with the same
data, task and objective (:mod:`nnsweep.study.comparable`) may be added so. ``storage`` names
the earlier study's storage when it is not the new study's (a journal file, while the new
study is on PostgreSQL); it may not hold a password, since the sweep file is logged with the
run: give such a URL with ``--warm-start-storage`` instead.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from nnsweep.spec._strict import Strict, shorthand
from nnsweep.spec.limits import MAX_TRIALS

DEFAULT_TOP = 5
_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:[^/@]*@")


class WarmStartSpec(Strict):
    """Where a new study starts from: an earlier study's best trials, or its whole history."""

    study: str = Field(min_length=1, max_length=200)
    top: int = Field(DEFAULT_TOP, ge=1, le=MAX_TRIALS)
    mode: Literal["enqueue", "history"] = "enqueue"
    storage: str | None = Field(None, min_length=1, max_length=2000)

    @field_validator("storage")
    @classmethod
    def _no_password(cls, url: str | None) -> str | None:
        if url is not None and _PASSWORD.match(url):
            raise ValueError(
                "a password in the sweep file would be logged with it; give this URL with "
                "--warm-start-storage (or NNSWEEP_WARM_START_STORAGE) instead"
            )
        return url


def parse_warm_start(text: str) -> WarmStartSpec:
    """``--warm-start NAME[:K]`` as a section. Raises ValueError with the rule."""
    name, sep, top = text.rpartition(":")
    if not sep:
        name, top = text, ""
    if top and not top.isdigit():
        raise ValueError(f"expected NAME or NAME:K with K a whole number, but got {text!r}")
    return WarmStartSpec(study=name, **({"top": int(top)} if top else {}))


WarmStartField = Annotated[WarmStartSpec | None, shorthand("study")]
