"""Learning tasks: what binary, multiclass and regression mean for the model, sweep and card.

One :class:`Task` answers every task-dependent question, so the other modules ask it instead of
branching on the kind themselves:

============  ======================  ===============================  ====================
kind          output layer            loss                             epoch metrics
============  ======================  ===============================  ====================
binary        Dense(1, sigmoid)       binary_crossentropy              accuracy, auc
multiclass    Dense(n, softmax)       sparse_categorical_crossentropy  accuracy
regression    Dense(1, linear) *      mse                              mae
============  ======================  ===============================  ====================

\\* a regression output is rescaled inside the model by the training target's mean and
standard deviation (see :mod:`nnsweep.train.model`), so the network starts at the mean predictor and
the model answers in the target's own units. Its ``mse`` is weighted by 1 / variance of the
training target (:func:`target_scale`), so the loss is unitless (the mean predictor scores
about 1) and the gradients do not grow with the target's scale: a plain SGD learning rate that
suits one table suits prices in dollars too. ``mae`` stays in the target's units.

Objective metrics (Keras' per-epoch names, the first is the default): binary ``val_accuracy``,
``val_loss``, ``val_auc``; multiclass ``val_accuracy``, ``val_loss``; regression ``val_mae``,
``val_loss``. Accuracy and AUC are maximised, losses and errors minimised.

:func:`infer_task` states the rule that picks the task of a target when the sweep file does
not. Nothing here imports Keras at module level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from nnsweep.errors import DataError, SpecError
from nnsweep.names import COMPARABLE_ATTR, OBJECTIVE_ATTR, SPEC_ATTR

BINARY: Final = "binary"
MULTICLASS: Final = "multiclass"
REGRESSION: Final = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
TaskKind = Literal["binary", "multiclass", "regression"]

# The datasets known by name, and their tasks. Digits are 28x28 images, flattened to 784 inputs.
DIGIT_DATASETS = ("mnist", "fashion_mnist", "mnist_5k")
TEXT_DATASETS = ("imdb", "reuters")
DATASETS = (*DIGIT_DATASETS, *TEXT_DATASETS, "boston_housing")
NAMED_TASKS: dict[str, str] = dict.fromkeys(DIGIT_DATASETS, MULTICLASS) | {
    "imdb": BINARY, "reuters": MULTICLASS, "boston_housing": REGRESSION
}  # fmt: skip
DIGIT_SHAPE = (28, 28)
DIGIT_WIDTH = DIGIT_SHAPE[0] * DIGIT_SHAPE[1]  # 784 pixels
DIGIT_CLASSES = 10
# the key of the stored task in a study's comparable settings (study.comparable)
TASK_KIND = "dataset.task_kind"

# infer_task: an integer-valued target with more distinct values than this is a quantity.
MAX_INFERRED_CLASSES = 20
# A classification target (inferred or asked for) may have at most this many classes.
MAX_CLASSES = 1000

MAXIMIZE, MINIMIZE = "maximize", "minimize"
_OBJECTIVES: dict[str, dict[str, str]] = {
    BINARY: {"val_accuracy": MAXIMIZE, "val_loss": MINIMIZE, "val_auc": MAXIMIZE},
    MULTICLASS: {"val_accuracy": MAXIMIZE, "val_loss": MINIMIZE},
    REGRESSION: {"val_mae": MINIMIZE, "val_loss": MINIMIZE},
}
# every objective metric a sweep file may name, with the direction it is optimised in
OBJECTIVE_DIRECTIONS = {"val_accuracy": MAXIMIZE, "val_auc": MAXIMIZE, "val_loss": MINIMIZE,
                        "val_mae": MINIMIZE}  # fmt: skip
_METRICS = {BINARY: ("accuracy", "auc"), MULTICLASS: ("accuracy",), REGRESSION: ("mae",)}
_LOSSES = {
    BINARY: "binary_crossentropy",
    MULTICLASS: "sparse_categorical_crossentropy",
    REGRESSION: "mse",
}


@dataclass(frozen=True)
class Task:
    """A learning task: its ``kind`` and, for classification, the number of classes.

    ``output_name`` names the output layer (the digit datasets keep their ``digits``).
    """

    kind: TaskKind
    n_classes: int | None = None
    output_name: str = "output"

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"task {self.kind!r} is not one of {', '.join(TASKS)}")
        if self.kind == REGRESSION and self.n_classes is not None:
            raise ValueError("a regression task has no classes")
        if self.kind == BINARY and self.n_classes != 2:
            raise ValueError(f"a binary task has 2 classes, not {self.n_classes}")
        if self.kind == MULTICLASS and (self.n_classes is None or self.n_classes < 2):
            raise ValueError(f"a multiclass task needs 2 or more classes, not {self.n_classes}")

    # -- the model -----------------------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return self.kind != REGRESSION

    @property
    def output_units(self) -> int:
        return int(self.n_classes or 2) if self.kind == MULTICLASS else 1

    @property
    def output_activation(self) -> str:
        return {BINARY: "sigmoid", MULTICLASS: "softmax", REGRESSION: "linear"}[self.kind]

    @property
    def loss(self) -> str:
        return _LOSSES[self.kind]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics Keras logs each epoch besides ``loss`` (training-side names)."""
        return _METRICS[self.kind]

    def keras_metrics(self) -> list[Any]:
        """Fresh metric objects/names for ``model.compile`` (logged under :attr:`metric_names`)."""
        import keras

        if self.kind == BINARY:
            return ["accuracy", keras.metrics.AUC(name="auc")]
        return list(self.metric_names)

    @property
    def curve_keys(self) -> tuple[str, ...]:
        """Every per-epoch key a fit logs: ``loss``, the metrics, and their ``val_`` twins."""
        train = ("loss", *self.metric_names)
        return (*train, *(f"val_{k}" for k in train))

    # -- the objective -------------------------------------------------------------------------
    @property
    def objectives(self) -> dict[str, str]:
        """Allowed objective metrics and the direction each is optimised in."""
        return dict(_OBJECTIVES[self.kind])

    @property
    def default_objective(self) -> str:
        return next(iter(_OBJECTIVES[self.kind]))

    def direction(self, metric: str) -> str:
        """``maximize`` or ``minimize`` for ``metric`` (checked with :meth:`check_objective`)."""
        self.check_objective(metric)
        return _OBJECTIVES[self.kind][metric]

    def check_objective(self, metric: str, direction: str | None = None) -> None:
        """Refuse an objective metric (or direction) this task cannot optimise.

        Raises:
            SpecError: naming ``objective.metric``/``objective.direction``, the task and the
                allowed values.
        """
        check_objective_for(self.kind, metric, direction)

    # -- predictions -----------------------------------------------------------------------------
    def decode(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Model output → (class indices or values, probability of the predicted class).

        Binary: class 1 when the sigmoid output is at least 0.5. Regression: the value, and
        ``None`` for the probability.
        """
        out = np.asarray(output, dtype=np.float64)
        if out.ndim == 1:
            out = out[:, None]
        if self.kind == REGRESSION:
            return out[:, 0], None
        if self.kind == BINARY:
            p1 = out[:, 0]
            pred = (p1 >= 0.5).astype(np.int64)
            return pred, np.where(pred == 1, p1, 1.0 - p1)
        return out.argmax(axis=1), out.max(axis=1)

    def labelled(
        self, output: np.ndarray, class_names: tuple[Any, ...] | None = None
    ) -> tuple[list[Any], list[float] | None]:
        """Model output → (original labels or values, probabilities of those labels or None)."""
        pred, prob = self.decode(output)
        if not self.is_classification:
            return [float(v) for v in pred], None
        names = class_names if class_names is not None else tuple(range(int(self.n_classes or 0)))
        return [names[int(i)] for i in pred], [float(p) for p in np.asarray(prob)]

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.kind, "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Inverse of :meth:`as_dict` (as a card or an MLflow run stores it)."""
        n = data.get("n_classes")
        return cls(data["task"], int(n) if n is not None else None)


DIGITS = Task(MULTICLASS, DIGIT_CLASSES, output_name="digits")

# -- metric keys: the names runs log, written once here ----------------------------------
# every per-epoch key a fit of any task logs (MLflow curves are read back by these names)
ALL_CURVE_KEYS: tuple[str, ...] = tuple(
    dict.fromkeys(
        key
        for kind in TASKS
        for key in (*("loss", *_METRICS[kind]), *(f"val_{m}" for m in ("loss", *_METRICS[kind])))
    )
)
# the dropout-off training-side curves (nnsweep.train.traineval) and their baseline loss
TRAIN_EVAL_PREFIX = "train_eval_"
BASELINE_KEY = TRAIN_EVAL_PREFIX + "baseline_loss"
ALL_TRAIN_EVAL_KEYS: tuple[str, ...] = (
    *dict.fromkeys(TRAIN_EVAL_PREFIX + k for k in ALL_CURVE_KEYS if not k.startswith("val_")),
    BASELINE_KEY,
)
# a COMPLETE trial's objective value (objective_val_accuracy) and its kept weights' epoch
# and score (weights_epoch, weights_val_accuracy)
OBJECTIVE_PREFIX = "objective_"
WEIGHTS_PREFIX = "weights_"
WEIGHTS_EPOCH_METRIC = WEIGHTS_PREFIX + "epoch"  # the epoch (from 1) whose weights were kept


def objective_key(metric: str) -> str:
    """The run metric holding a COMPLETE trial's objective value: ``objective_val_accuracy``
    (the objective ``metric`` reduced over epochs as the sweep file says, best or last)."""
    return OBJECTIVE_PREFIX + metric


def weights_metric(metric: str) -> str:
    """The run metric holding the kept weights' score on ``metric``: ``weights_val_accuracy``."""
    return WEIGHTS_PREFIX + metric


def target_scale(y_train: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of a regression target's training values; the deviation is 1
    when it is 0 or not finite (a constant target, which :func:`check_target` refuses anyway).

    The model rescales its output by both and weights its ``mse`` by ``1 / std**2``.
    """
    y = np.asarray(y_train, dtype=np.float64)
    std = float(y.std())
    return float(y.mean()), std if np.isfinite(std) and std > 1e-12 else 1.0


def check_objective_for(kind: str, metric: str, direction: str | None = None) -> None:
    """Refuse an objective metric (or direction) a ``kind`` of task cannot optimise.

    Raises:
        SpecError: naming ``objective.metric``/``objective.direction``, the task and the
            allowed values.
    """
    allowed = _OBJECTIVES[kind]
    if metric not in allowed:
        raise SpecError(
            f"objective.metric: {metric!r} is not logged for a {kind} task; use one of "
            f"{', '.join(allowed)}"
        )
    natural = allowed[metric]
    if direction is not None and direction != natural:
        raise SpecError(
            f"objective.direction: {metric} should be {natural}d, but direction is "
            f"{direction}; set direction: {natural} or leave it out"
        )


def default_objective_for(kind: str) -> str:
    """The objective metric of a ``kind`` of task when the sweep file names none."""
    return next(iter(_OBJECTIVES[kind]))


def infer_task(y: np.ndarray, field: str = "target") -> TaskKind:
    """The task of a target column, when the sweep file does not say it.

    The rule, over the non-missing target values:

    1. Not numbers (strings, booleans, categories) → classification.
    2. Numbers with any non-integer value (``3.7``) → ``regression``.
    3. Whole numbers (``3`` or ``3.0``) with more than 20 distinct values → ``regression``
       (counts, prices, ages); 20 or fewer → classification.
    4. Classification is ``binary`` with exactly two distinct values, ``multiclass`` with more.

    So ``0/1``, ``1..7`` and ``"good"/"bad"`` are classes, and a float column with many
    distinct values is a quantity. Set ``dataset.task`` to override (e.g. 30 integer classes).

    Raises:
        DataError: fewer than two distinct values (nothing to learn); ``field`` names the
            target in the message.
    """
    values = np.asarray(y)
    distinct = np.unique(values)
    if len(distinct) < 2:
        raise DataError(
            f"{field} has {len(distinct)} distinct value(s) ({_show(distinct)}); a task needs "
            "at least two; pick another target column"
        )
    if values.dtype.kind in "iuf":
        whole = bool(np.all(np.mod(distinct, 1) == 0))
        if not whole or len(distinct) > MAX_INFERRED_CLASSES:
            return REGRESSION
    return BINARY if len(distinct) == 2 else MULTICLASS


def check_target(kind: str, y: np.ndarray, field: str = "dataset.task") -> None:
    """Refuse a task the target cannot have (one line naming ``field``).

    Regression needs numbers; binary exactly two distinct values; multiclass two to
    :data:`MAX_CLASSES`.

    Raises:
        DataError
    """
    values = np.asarray(y)
    distinct = np.unique(values)
    if kind not in TASKS:
        raise DataError(f"{field}: {kind!r} is not one of {', '.join(TASKS)}")
    if len(distinct) < 2:
        raise DataError(
            f"{field}: the target has {len(distinct)} distinct value(s) ({_show(distinct)}); a "
            f"{kind} task needs at least two; pick another target column"
        )
    if kind == REGRESSION and values.dtype.kind not in "iufb":
        raise DataError(
            f"{field}: regression needs a numeric target, but it holds {_show(distinct)}; use "
            "task: binary or multiclass"
        )
    if kind == BINARY and len(distinct) != 2:
        raise DataError(
            f"{field}: binary needs exactly 2 target values, but there are {len(distinct)} "
            f"({_show(distinct)}); use task: multiclass"
        )
    if kind in (BINARY, MULTICLASS) and len(distinct) > MAX_CLASSES:
        fix = "use task: regression" if values.dtype.kind in "iuf" else "pick another target"
        raise DataError(
            f"{field}: {len(distinct)} distinct target values is too many classes (at most "
            f"{MAX_CLASSES}); {fix}"
        )


def _show(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:limit])
    return shown + (", …" if len(values) > limit else "") if len(values) else "none"


_TASK_OF_METRIC = {"val_mae": REGRESSION, "val_auc": BINARY}


def task_of(attrs: Mapping[str, Any]) -> str | None:
    """The task of a study from its user attributes: as the sweep stored it with the comparable
    settings; for studies made before that, ``regression`` for a ``val_mae`` objective,
    ``binary`` for ``val_auc``, ``multiclass`` for a digit dataset; else None (unknown)."""
    kind = (attrs.get(COMPARABLE_ATTR) or {}).get(TASK_KIND)
    if kind in TASKS:
        return str(kind)
    metric = attrs.get(OBJECTIVE_ATTR)
    if metric in _TASK_OF_METRIC:
        return _TASK_OF_METRIC[str(metric)]
    known = attrs.get(SPEC_ATTR) or attrs.get(COMPARABLE_ATTR)
    return MULTICLASS if known and is_digit_study(attrs) else None


def is_digit_study(attrs: Mapping[str, Any]) -> bool:
    """Whether a study trained on digit images (its validation split counts images, not rows):
    a digit dataset by name and no file path; a study that stored no dataset (one made before
    tasks, or by hand) counts as digits unless its stored task is not multiclass."""
    section = (attrs.get(SPEC_ATTR) or {}).get("dataset") or {}
    comparable = attrs.get(COMPARABLE_ATTR) or {}
    name = section.get("name") or comparable.get("dataset.name")
    if section.get("path") or (name is not None and name not in DIGIT_DATASETS):
        return False
    return name is not None or comparable.get(TASK_KIND, MULTICLASS) == MULTICLASS
