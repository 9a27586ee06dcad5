"""The next sweep: this study's space, widened past the edges its best trials crowd.

:func:`next_sweep` writes the study's sweep file back with every bound warning's dimension
widened (:func:`nnsweep.results.bounds.widen`) and a ``warm_start`` section naming the
study, so ``nnsweep run NEXT.yaml`` starts from the study's best trials as it is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.errors import SpecError
from nnsweep.names import SPEC_ATTR
from nnsweep.results.bounds import bounds_of
from nnsweep.results.importance import Learned, current_distributions
from nnsweep.spec.space import dimension_of

if TYPE_CHECKING:
    import optuna


def next_name(name: str) -> str:
    """``quickstart`` → ``quickstart-2``, ``quickstart-2`` → ``quickstart-3``."""
    match = re.fullmatch(r"(.*)-(\d+)", name)
    stem, n = (match.group(1), int(match.group(2)) + 1) if match else (name, 2)
    return f"{stem[: 100 - len(str(n)) - 1]}-{n}"


def _no_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _no_nulls(v) for k, v in data.items() if v is not None}
    return data


def next_sweep(study: optuna.Study, learned: Learned) -> dict[str, Any]:
    """The suggested sweep file (as a dict): the study's spec, its space as the trials drew it
    with every warned dimension widened, a new name and ``warm_start`` from this study.

    Raises:
        SpecError: the study holds no sweep spec (not made by nnsweep).
    """
    from nnsweep.spec.config import SweepSpec

    stored = study.user_attrs.get(SPEC_ATTR)
    if not stored:
        raise SpecError(f"study {study.study_name!r} holds no sweep file to start from")
    data = _no_nulls(dict(stored))
    space = dict(data.get("space") or {})
    for param, dist in current_distributions(study).items():  # the space as it is now
        dim = dimension_of(param)
        found = bounds_of(dist)
        if found is not None:
            space[dim] = found.raw()
        elif hasattr(dist, "choices"):
            space[dim] = list(dist.choices)
    for warning in learned.warnings:
        if warning.widened is not None:
            space[warning.dimension] = warning.widened.raw()
    data["space"] = space
    data["name"] = next_name(str(data["name"]))
    data["warm_start"] = {"study": study.study_name, "top": learned.top or 5}
    try:
        SweepSpec.model_validate(data)
    except ValueError as exc:  # a widened space over limits.max_params: keep the old one
        learned.notes.append(f"the widened space does not validate ({exc}); kept the old one")
        data["space"] = _no_nulls(dict(stored)).get("space", {})
    return data


def save_sweep(study: optuna.Study, learned: Learned, path: str | Path) -> Path:
    """Write :func:`next_sweep` to ``path`` as YAML, with a comment that says where it came
    from; returns the path."""
    import yaml

    data = next_sweep(study, learned)
    widened = ", ".join(w.dimension for w in learned.warnings if w.widened) or "none"
    head = (
        f"# The next sweep after study {study.study_name}: widened {widened}; it starts from\n"
        f"# the study's {data['warm_start']['top']} best trials (warm_start). "
        "Written by nnsweep report --save-sweep.\n"
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out
