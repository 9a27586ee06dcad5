"""What makes two trials' scores comparable, so that resuming a study never mixes them.

A trial's score depends on the data it was trained and validated on (the dataset section of
the sweep file, and the data's content), how it was validated (``dataset.validation``: a
holdout fraction or ``"K folds"``, as ``auto`` resolved it), the seed (which draws the
validation split or the folds), the
objective (metric, reduction over epochs, direction, and the second objective
``objective.also`` of a multi-objective study) and the epoch budget. A study stores
these settings when it is created; a resume with any of them changed is refused with the
field, both values and the fix. Everything else (more trials, a timeout, a wider space,
another sampler or pruner) keeps trials comparable: such changes are allowed and recorded on
the resuming invocation's parent run.

The dataset section is taken whole, so keys added to it later are covered without a change
here; only ``path`` is left out (and ``test_path`` kept only as "given"): it says where the
data is (it differs between machines and mounts), the content's fingerprint says what it is.
The task the data was trained as joins them (a table's task may be inferred, so the section
alone does not say it); the objective is stored as the task resolved it (``val_accuracy``
or ``val_mae`` when the file names none).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nnsweep.errors import StorageError
from nnsweep.tasks import TASK_KIND  # the key of the stored task

if TYPE_CHECKING:
    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec

FINGERPRINT = "dataset.fingerprint"
_SHOWN = 40  # characters of a value shown in a message


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _as_stored(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as it reads back from a store (JSON: tuples become lists)."""
    return dict(json.loads(json.dumps(data, default=str)))


def comparable_settings(spec: SweepSpec, dataset: Dataset | None = None) -> dict[str, Any]:
    """The settings trials must share to be compared, flat (``{"dataset.name": …, "seed": …}``).

    Args:
        spec: the sweep.
        dataset: the loaded data; its content fingerprint joins the settings when given.
    """
    section = spec.dataset.model_dump(mode="json")
    section.pop("path", None)  # where the data is; the fingerprint says what it is
    if section.get("test_path") is not None:  # likewise; that a test file is given (so no
        section["test_path"] = "given"  # test split is drawn from path) changes the rows
    if isinstance(section.get("validation"), dict):  # {folds: K} as one value, so that a holdout
        section["validation"] = f"{section['validation']['folds']} folds"  # and folds compare
    settings = {
        **_flat({"dataset": section}),
        "seed": spec.seed,
        **_flat({"objective": spec.objective.model_dump(mode="json")}),
        "max_epochs": spec.max_epochs,
    }
    if dataset is not None:
        settings[TASK_KIND] = dataset.task.kind
        if dataset.fingerprint:
            settings[FINGERPRINT] = dataset.fingerprint
    return _as_stored(settings)


def settings_of_spec(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The comparable settings of a stored spec (studies made before they were stored), or {}
    when there is none or it no longer validates."""
    if not raw:
        return {}
    from pydantic import ValidationError

    from nnsweep.errors import NnsweepError
    from nnsweep.spec.config import SweepSpec

    try:
        return comparable_settings(SweepSpec.model_validate(raw))
    except (ValidationError, NnsweepError, ValueError):
        return {}


def differences(stored: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (stored value, current value)}`` for every field both hold and that differs.

    The fingerprint is reported only when no other dataset setting differs: another split of
    the same data changes it too, and the setting is the better explanation.
    """
    diff = {
        key: (stored[key], current[key])
        for key in stored
        if key in current and stored[key] != current[key]
    }
    if FINGERPRINT in diff and any(k.startswith("dataset.") and k != FINGERPRINT for k in diff):
        diff.pop(FINGERPRINT)
    if FINGERPRINT in diff and "seed" in diff:
        diff.pop(FINGERPRINT)
    return diff


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def check_resume(study_name: str, stored: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume study ``study_name`` with settings that make its trials incomparable.

    Raises:
        StorageError: a setting differs; the message names each field with both values, and
            the fix.
    """
    diff = differences(stored, current)
    if not diff:
        return
    changed = ", ".join(
        f"{key} {_shown(old)} (now {_shown(new)})" for key, (old, new) in diff.items()
    )
    raise StorageError(
        f"study {study_name!r} was run with {changed}; its trials would not be comparable with "
        "new ones. Resume it with the same settings, or start a new study with --study NEW_NAME"
    )


def spec_changes(stored_spec: dict[str, Any] | None, spec: SweepSpec) -> dict[str, tuple[Any, Any]]:
    """What ``spec`` changes against the spec the study was created with (fields that keep
    trials comparable, since the others are refused): ``{"trials": (20, 30), …}``."""
    if not stored_spec:
        return {}
    old = _flat(_as_stored(stored_spec))
    new = _flat(_as_stored(spec.model_dump(mode="json")))
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """``"trials 20 → 30; pruner.name 'none' → 'median'"`` for a parent run's tag."""
    return "; ".join(f"{key} {_shown(old)} → {_shown(new)}" for key, (old, new) in changes.items())
