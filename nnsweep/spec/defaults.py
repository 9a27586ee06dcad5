"""Zero-config: the search space and budgets a sweep gets when its file names none.

The search space, training budget and trial budget are chosen from the task and the data's
size alone.

Pure functions of (task kind, training rows, input width, whether the data is a table): the
same data gives the same choices in every ``--jobs`` worker and on every resume, so the
resolved spec a study stores compares equal (:mod:`nnsweep.study.comparable`).
:func:`apply_defaults` fills in only what the file left out; the sweep's pre-flight calls it
once the data is loaded (:func:`nnsweep.sweep.prepare.fit_to_data`).

The choices, and the figures behind them, are in docs/sweep-file.md ("Zero-config and the
default space"). In short: 1-4 hidden layers (deeper only with more rows), widths on a log
range scaled to the input width and capped for small tables, relu or gelu, AdamW with a
log-range weight decay and learning rate, dropout 0-0.4, batch sizes that give every epoch
enough steps, and an epoch budget with early stopping (the trial keeps its best epoch's
weights). A table also searches the input transform (standardised or quantile-normal) and
piecewise-linear numeric embeddings.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnsweep.spec.config import SweepSpec

TARGET_STEPS = 2_000
"""Optimizer steps an epoch budget aims at (at the middle batch size); early stopping ends
most trials well before it."""
MIN_EPOCHS, MAX_EPOCHS = 30, 100
DEFAULT_TRIALS = 20
SMALL_TABLE_TIMEOUT = 125.0
"""Seconds, up to 10,000 rows: with the trials running at the deadline and the default export
(on a table under 2,000 rows, three refits averaged: ``export --ensemble auto``), sweep and
export end within 3 minutes on 2 cores (docs/benchmarks.md, row T). It was 150 s while the
export refit one model."""
LARGE_TABLE_TIMEOUT = 600.0
LARGE_TABLE_ROWS = 10_000


def _pow2_at_least(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def default_batch_sizes(n_rows: int) -> list[int]:
    """Three batch sizes, halving and doubling a middle one: 32 under 1,000 rows, 64 under
    5,000, 128 under 20,000, else 256, halved (down to 16) until an epoch has 8 steps."""
    middle = 32 if n_rows < 1_000 else 64 if n_rows < 5_000 else 128 if n_rows < 20_000 else 256
    while middle > 16 and n_rows < middle * 8:
        middle //= 2
    return [middle // 2, middle, middle * 2]


def default_units(n_rows: int, n_features: int) -> tuple[int, int]:
    """The width range ``(low, high)``: high ~4 x the input width within 64-512, and at most
    128 (under 1,000 rows) or 256 (under 5,000), so a small table cannot fit a huge model."""
    high = min(512, max(64, _pow2_at_least(4 * n_features)))
    if n_rows < 1_000:
        high = min(high, 128)
    elif n_rows < 5_000:
        high = min(high, 256)
    return max(16, high // 8), high


def default_layers(n_rows: int) -> int:
    """The most hidden layers searched: 2 under 1,000 rows, 3 under 20,000, else 4."""
    return 2 if n_rows < 1_000 else 3 if n_rows < 20_000 else 4


def default_epochs(n_rows: int) -> tuple[int, int]:
    """(epoch budget, early-stopping patience): about :data:`TARGET_STEPS` optimizer steps at
    the middle batch size, within :data:`MIN_EPOCHS`-:data:`MAX_EPOCHS`; patience 1/8 of it,
    from 8 to 16 epochs."""
    steps = max(1, math.ceil(n_rows / default_batch_sizes(n_rows)[1]))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps)))
    return epochs, min(16, max(8, epochs // 8))


def default_space(kind: str, n_rows: int, n_features: int, *, table: bool) -> dict[str, Any]:
    """The ``space`` section, as a sweep file writes it, for ``n_rows`` training rows of
    ``n_features`` model inputs (``kind``: the task, ``table``: named columns, so the tabular
    techniques apply)."""
    low, high = default_units(n_rows, n_features)
    space: dict[str, Any] = {
        "n_layers": {"low": 1, "high": default_layers(n_rows)},
        "units": {"low": low, "high": high, "log": True},
        "activation": ["relu", "gelu"],
        "optimizer": "adamw",
        "weight_decay": {"low": 1.0e-5, "high": 0.1, "log": True},
        "learning_rate": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
        "dropout": {"low": 0.0, "high": 0.4},
        "batch_size": default_batch_sizes(n_rows),
    }
    if table:
        space["input_transform"] = ["standard", "quantile"]
        space["numeric_embedding"] = ["none", "piecewise_linear"]
    return space


PLAIN_LEARNING_RATE, PLAIN_WEIGHT_DECAY = 1.0e-3, 1.0e-4


def default_start(space: dict[str, Any]) -> list[dict[str, Any]]:
    """The two configurations a zero-config sweep trains first (``start_with``): the plain
    MLPs a user would try before any search, as points of ``space`` (:func:`default_space`).

    Two hidden layers of 64 (the plain Keras MLP of the benchmarks) and one layer of 128
    (the shape of scikit-learn's ``MLPClassifier`` default), widths held inside the space's
    range; relu, AdamW at learning rate 1e-3 with weight decay 1e-4 (scikit-learn's L2
    ``alpha``), no dropout, the middle batch size; a table's inputs standardised, without
    numeric embeddings. The sampler draws every trial after them.
    """
    low, high = space["units"]["low"], space["units"]["high"]
    common: dict[str, Any] = {
        "activation": "relu",
        "learning_rate": PLAIN_LEARNING_RATE,
        "weight_decay": PLAIN_WEIGHT_DECAY,
        "dropout": 0.0,
    }
    if "batch_size" in space:
        sizes = space["batch_size"]
        common["batch_size"] = sizes[len(sizes) // 2]
    if "input_transform" in space:
        common["input_transform"] = "standard"
    if "numeric_embedding" in space:
        common["numeric_embedding"] = "none"
    two = min(max(64, low), high)
    one = min(max(128, low), high)
    return [
        {"n_layers": 2, "units_0": two, "units_1": two, **common},
        {"n_layers": 1, "units_0": one, **common},
    ]


def default_budget(n_rows: int) -> dict[str, Any]:
    """``trials`` and ``timeout`` when the file and the command line give neither."""
    timeout = SMALL_TABLE_TIMEOUT if n_rows <= LARGE_TABLE_ROWS else LARGE_TABLE_TIMEOUT
    return {"trials": DEFAULT_TRIALS, "timeout": timeout}


def apply_defaults(
    spec: SweepSpec, kind: str, n_rows: int, n_features: int, *, table: bool
) -> tuple[SweepSpec, list[str]]:
    """``spec`` with the zero-config defaults filled in where the file (and command line)
    left them out, and one note per choice made, for the start of the run.

    * no ``space``: :func:`default_space`, plus an epoch budget with early stopping in
      ``train`` (``train.epochs``, ``train.batch_size`` and ``train.early_stopping`` as the
      file gives them win);
    * neither ``trials`` nor ``timeout``: :func:`default_budget`;
    * a space with nothing to sample: one trial (see :func:`single_point_budget`).
    """
    notes: list[str] = []
    if "space" not in spec.model_fields_set:
        spec, note = _with_default_space(spec, kind, n_rows, n_features, table=table)
        notes.append(note)
    if spec.trials is None and spec.timeout is None:
        budget = default_budget(n_rows)
        spec = spec.model_copy(update=budget)
        notes.append(
            f"budget: {budget['trials']} trials, no new trial after {budget['timeout']:g} s "
            "(set trials/timeout, or --trials/--timeout, to change it)"
        )
    spec, single = single_point_budget(spec)
    return spec, notes + ([single] if single else [])


def _with_default_space(
    spec: SweepSpec, kind: str, n_rows: int, n_features: int, *, table: bool
) -> tuple[SweepSpec, str]:
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import SpaceSpec, TrainSpec
    from nnsweep.spec.start import start_with_problem

    raw = default_space(kind, n_rows, n_features, table=table)
    given = spec.train.model_fields_set
    if "batch_size" in given:  # the file fixed the batch size: keep it
        raw.pop("batch_size")
    epochs, patience = default_epochs(n_rows)
    train = spec.train.model_dump(mode="json", exclude_none=True)
    if "epochs" not in given:
        train["epochs"] = epochs
    if spec.train.early_stopping is None:
        train["early_stopping"] = {"patience": patience}
    update: dict[str, Any] = {
        "space": SpaceSpec.model_validate(raw),
        "train": TrainSpec.model_validate(train),
    }
    start_note = ""
    if "start_with" not in spec.model_fields_set:
        update["start_with"] = points = default_start(raw)
        shapes = " and ".join(f"{p['n_layers']}x{p['units_0']}" for p in points)
        start_note = (
            f"; first the plain MLPs {shapes} (relu, AdamW lr {PLAIN_LEARNING_RATE:g}, weight "
            f"decay {PLAIN_WEIGHT_DECAY:g}, no dropout), then the sampler"
        )
    spec = spec.model_copy(update=update)
    if problem := start_with_problem(spec):
        raise SpecError(problem)
    if spec.space.batch_size is not None:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"batch_size": None})})
    shown = ", ".join(f"{k}={_short(v)}" for k, v in raw.items())
    stop = spec.train.early_stopping
    patience_note = f", early stopping after {stop.patience} without improvement" if stop else ""
    return spec, (
        f"default space for fits on {n_rows:,} rows of {n_features:,} inputs: {shown}; "
        f"up to {spec.train.epochs} epochs{patience_note} (each trial keeps its best epoch)"
        f"{start_note}"
    )


def _short(value: Any) -> str:
    if isinstance(value, dict):
        log = " log" if value.get("log") else ""
        return f"{value['low']:g}-{value['high']:g}{log}"
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    return str(value)


def single_point_budget(spec: SweepSpec) -> tuple[SweepSpec, str | None]:
    """A space with nothing to sample runs one trial, never N copies of one model.

    Every trial of such a space trains the same model (only the seed differs), so more would
    select on noise and the pruner would cut copies of it at random. The sweep runs it once
    and says so; give a list or a range to search, or run it again with ``--seed`` for
    another draw.
    """
    if any(not dim.is_fixed for dim in spec.grid_dims().values()):
        return spec, None
    if spec.trials == 1 and spec.timeout is None:
        return spec, None
    spec = spec.model_copy(update={"trials": 1, "timeout": None})
    return spec, (
        "space: every entry is fixed, so there is nothing to sample; running 1 trial, not "
        "copies of the same model (give a list or a range to search)"
    )


# -- a data file instead of a sweep file (nnsweep run DATA.csv --target COL) -----------------
def is_data_file(path: Path) -> bool:
    """Whether ``path`` names a table nnsweep reads (by its suffix), not a sweep file."""
    from nnsweep.spec.dataset import table_format

    return table_format(path) is not None


def study_name_for(path: Path) -> str:
    """The study name of a data file: its stem held to the study-name rule (letters, digits,
    ``_``, ``-``, ``.``; up to 100, starting with a letter or digit), e.g. ``my data (v2).csv``
    → ``my_data_v2``."""
    stem = path.name
    for suffix in reversed(path.suffixes):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.-")[:100].strip("_.-")
    return name or "table"


def data_file_spec(path: Path, target: str | None) -> SweepSpec:
    """The zero-config sweep of a data file: its name, its path and target, nothing else.

    Raises:
        SpecError: the file is missing, or a table without ``target`` (``.npz`` needs none).
    """
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import parse_spec
    from nnsweep.spec.dataset import table_format

    if not path.is_file():
        raise SpecError(f"{path}: data file not found; give the path of a .csv, .parquet or .npz")
    if target is None and table_format(path) != "npz":
        raise SpecError(
            f"--target: name the column of {path.name!r} to predict, e.g. "
            f"nnsweep run {path} --target price"
        )
    dataset: dict[str, Any] = {"path": str(path.resolve())}
    if target is not None:
        dataset["target"] = target
    return parse_spec(resolved_yaml({"name": study_name_for(path), "dataset": dataset}), str(path))


def resolved_yaml(data: SweepSpec | dict[str, Any], source: str | None = None) -> str:
    """A sweep file's text for ``data`` (a spec: every field as resolved, ``None`` left out),
    which :func:`nnsweep.spec.config.parse_spec` reads back to the same spec."""
    import yaml

    if not isinstance(data, dict):
        data = data.model_dump(mode="json", exclude_none=True)
    head = f"# resolved by nnsweep from {source}; run it with: nnsweep run THIS_FILE\n"
    return (head if source else "") + yaml.safe_dump(data, sort_keys=False)
