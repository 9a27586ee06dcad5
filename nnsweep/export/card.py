"""The model card: what an exported model is, where it comes from, and how well it does.

:func:`evaluate` measures a model on the held-out test split with the task's own metrics
(:func:`nnsweep.export.scores.test_metrics`), their 95 % intervals (:mod:`nnsweep.export.intervals`)
and the trivial baseline's scores, and takes the loss from Keras' ``model.evaluate`` so that it
is exactly the figure Keras reports for the same file. :func:`validation_summary` and
:func:`diagnosis_of` summarise the trial's MLflow run; :func:`test_headline` and
:func:`validation_line` are the sentences both ``MODEL_CARD.md`` (:mod:`nnsweep.export.card_md`) and
``nnsweep export`` print.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.data.splits import label_value
from nnsweep.export.intervals import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    auc_interval,
    bootstrap,
    wilson,
)
from nnsweep.export.scores import test_metrics
from nnsweep.names import FIT_REASON_TAG, FIT_TAG
from nnsweep.spec.tabular import MANY_CATEGORIES
from nnsweep.tasks import WEIGHTS_PREFIX
from nnsweep.train.layers import embeds, head_width

if TYPE_CHECKING:
    import keras
    from mlflow.entities import Run

    from nnsweep.data.load import Dataset
    from nnsweep.data.modelio import ModelIO
    from nnsweep.spec.config import SweepSpec
    from nnsweep.tasks import Task
    from nnsweep.train.model import HyperParams

CARD_FORMAT = "nnsweep.model_card/2"
TEST_SPLIT = "test (held out from the sweep; read only by export)"
# Run metrics that are curves or bookkeeping, not the fit diagnosis.
_CURVES = ("loss", "accuracy", "auc", "mae")
_NOT_DIAGNOSIS = {
    *_CURVES,
    *(f"val_{k}" for k in _CURVES),
    *(f"train_eval_{k}" for k in _CURVES),
    "trainable_params",
    "epochs_run",
    "train_seconds",
}


def evaluate(model: keras.Model, data: Dataset) -> dict[str, Any]:
    """The card's ``test`` section: ``model`` on ``data``'s test split, read here only.

    Classification: ``n``, ``accuracy`` with ``accuracy_ci95`` (Wilson), ``loss``,
    ``labels``, ``per_class_accuracy``, ``confusion_matrix`` (rows true, columns predicted,
    in ``labels`` order); binary also ``auc`` with ``auc_ci95`` and ``auc_ci95_method``
    (:func:`~nnsweep.export.intervals.auc_interval`: DeLong). Regression: ``n``, ``mae``, ``rmse``,
    ``r2`` each with a ``*_ci95`` bootstrap interval, and ``loss``: Keras' loss, the mean
    squared error divided by the training target's variance (the mean predictor scores about
    1; see :mod:`nnsweep.tasks`), named in ``loss_definition``.
    ``baseline``: the trivial predictor's scores (majority class, training mean). ``origin``:
    where the test rows come from; ``unseen_labels``: test labels no training row holds, left
    out of the figures (see :mod:`nnsweep.data.splits`).
    """
    x, y = data.x_test, np.asarray(data.y_test)
    output = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    task = data.task
    metrics = score_output(task, y, output, data.class_names, data.y_train)
    # Keras computes cross-entropy from the logits behind a softmax/sigmoid output, not from
    # clipped probabilities: the card reports the loss exactly as model.evaluate does.
    keras_scores = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    metrics["loss"] = float(keras_scores["loss"])
    metrics["loss_definition"] = loss_definition(task)
    origin = {"origin": data.test_origin} if data.test_origin else {}
    unseen = {"unseen_labels": dict(data.unseen_test)} if data.unseen_test else {}
    return {"split": TEST_SPLIT, **origin, **unseen, **metrics}


def score_output(
    task: Task,
    y: np.ndarray,
    output: np.ndarray,
    class_names: tuple[Any, ...] | None,
    y_train: np.ndarray | None,
) -> dict[str, Any]:
    """Any model's ``output`` on the test labels ``y`` scored as the card scores the MLP:
    :func:`~nnsweep.export.scores.test_metrics` with their 95 % intervals (``loss`` is the
    cross-entropy of clipped probabilities; :func:`evaluate` puts Keras' own in its place)."""
    metrics = test_metrics(task, y, output, class_names, y_train)
    n = int(metrics["n"])
    if task.is_classification:
        correct = int(np.trace(np.asarray(metrics["confusion_matrix"])))
        metrics["accuracy_ci95"] = list(wilson(correct, n))
        metrics["labels"] = [label_value(v) for v in metrics["labels"]]
        if "auc" in metrics and np.isfinite(metrics["auc"]):
            _, low, high, method = auc_interval(y, output[:, 0])
            metrics["auc_ci95"], metrics["auc_ci95_method"] = [low, high], method
    else:
        pred = output.reshape(len(y))
        for key, bounds in bootstrap(y, pred).items():
            metrics[f"{key}_ci95"] = list(bounds)
        metrics["ci95_method"] = (
            f"percentile bootstrap over the test rows, {BOOTSTRAP_RESAMPLES} resamples, "
            f"seed {BOOTSTRAP_SEED}"
        )
    if "auc" in metrics and not np.isfinite(metrics["auc"]):
        metrics["auc"] = None  # one class in the test split: no AUC (and JSON has no NaN)
    if "baseline" in metrics:
        metrics["baseline"]["predictor"] = str(metrics["baseline"]["predictor"])
    return metrics


def loss_definition(task: Any) -> str:
    """What the card's ``loss`` is, in words (the regression loss is not a plain MSE)."""
    if task.is_classification:
        return f"{task.loss} as Keras' model.evaluate computes it"
    return (
        "variance-weighted MSE: the mean squared error divided by the training target's "
        "variance (the training-mean predictor scores about 1)"
    )


def primary_metric(test: dict[str, Any]) -> str:
    """The card's headline test metric: ``accuracy``, or ``mae`` for regression."""
    return "accuracy" if "accuracy" in test else "mae"


def scalar_metrics(test: dict[str, Any]) -> dict[str, float]:
    """The test section's single-number metrics (logged to MLflow as ``test_*``)."""
    keys = ("accuracy", "auc", "loss", "mae", "rmse", "r2")
    return {k: float(test[k]) for k in keys if isinstance(test.get(k), int | float)}


def _ci(test: dict[str, Any], key: str, fmt: str = ".4f") -> str:
    bounds = test.get(f"{key}_ci95")
    return f" [{bounds[0]:{fmt}}, {bounds[1]:{fmt}}]" if bounds else ""


def unit_of(card: dict[str, Any]) -> str:
    """What the card's data counts: ``images`` for a digit model, else ``rows``."""
    io = card.get("io") or {}
    return "images" if io.get("input_name") == "pixels" and not io.get("features") else "rows"


def test_headline(test: dict[str, Any], unit: str = "rows") -> str:
    """One line: the test figures with 95 % intervals, size, and the trivial baseline's."""
    n = f"on {test['n']:,} held-out test {unit}"
    base = test.get("baseline") or {}
    if "accuracy" in test:
        line = f"accuracy {test['accuracy']:.4f}{_ci(test, 'accuracy')} (95% Wilson)"
        if test.get("auc") is not None and np.isfinite(test["auc"]):
            line += f", auc {test['auc']:.4f}{_ci(test, 'auc')}"
            if test.get("auc_ci95"):
                line += f" (95% {test.get('auc_ci95_method', 'DeLong')})"
        line += f", loss {test['loss']:.4f} {n}"
        if "accuracy" in base:
            line += f"; trivial baseline (majority class) accuracy {base['accuracy']:.4f}"
        return line
    line = (
        f"mae {test['mae']:.4g}{_ci(test, 'mae', '.4g')}, "
        f"rmse {test['rmse']:.4g}{_ci(test, 'rmse', '.4g')}, "
        f"r2 {test['r2']:.4f}{_ci(test, 'r2')} (95% bootstrap) {n}"
    )
    if "mae" in base:
        line += f"; trivial baseline (training mean) mae {base['mae']:.4g}, rmse {base['rmse']:.4g}"
    return line


def validation_line(card: dict[str, Any]) -> str:
    """The sweep's validation figure, labelled for what it is: the best of many looks."""
    if card.get("cross_validation"):  # mean ± std over folds (nnsweep.export.crossval)
        from nnsweep.export.crossval import cv_line

        return cv_line(card, unit_of(card))
    obj, val = card["objective"], card["validation"]
    best_of_epochs = obj["reduce"] == "best"
    over = f"{val.get('epochs_trained', '?')} epochs and " if best_of_epochs else ""
    pick = "max" if obj["direction"] == "maximize" else "min"
    return (
        f"validation {obj['metric']} {obj['value']:.4f}: the {pick} over {over}"
        f"{val.get('trials', '?')} completed trial(s) on {val.get('n', 0):,} validation "
        f"{unit_of(card)}, an optimistic estimate (the test figure is the unbiased one)"
    )


def validation_summary(
    history: dict[str, list[float]],
    spec: SweepSpec,
    *,
    n_val: int,
    n_trials: int,
    weights_epoch: int | None = None,
) -> dict[str, Any]:
    """The trial's validation scores at one epoch, that of the exported weights
    (``at_weights_epoch``: ``epoch`` and every ``val_*`` value there; the last epoch when
    ``weights_epoch`` is unknown), the epoch the objective peaked (``best_epoch``), and how
    many validation rows and trials the objective value was chosen over.

    Each ``val_*`` curve's own best would come from a different epoch, describing no model
    that exists; the figures here all describe the exported weights (for a refit: the
    trial's weights at the epoch the refit ran to)."""
    epochs = len(history.get("loss", []))
    out: dict[str, Any] = {"epochs_trained": epochs, "n": int(n_val), "trials": int(n_trials)}
    curve = history.get(spec.objective.key)
    if curve:
        pick = max if spec.objective.direction == "maximize" else min
        out["best_epoch"] = curve.index(pick(curve)) + 1
    epoch = weights_epoch or epochs
    if epoch:
        at = {
            k: float(v[epoch - 1])
            for k, v in history.items()
            if k.startswith("val_") and len(v) >= epoch
        }
        out["at_weights_epoch"] = {"epoch": int(epoch), **at}
    return out


def diagnosis_of(run: Run) -> dict[str, Any]:
    """The fit diagnosis the sweep wrote on the run (see :mod:`nnsweep.train.diagnosis`), if any.

    ``fit``/``reason`` are the tags ``nnsweep.fit``/``nnsweep.fit_reason``; ``metrics`` are the
    run's summary metrics other than the epoch curves, timing and test metrics.
    """
    metrics = {
        k: v
        for k, v in sorted(run.data.metrics.items())
        if k not in _NOT_DIAGNOSIS
        and not k.startswith(("test_", "retrained_test_", WEIGHTS_PREFIX, "cv_"))
        and not re.match(r"fold\d+_", k)  # a cross-validated trial's folds: its own section
    }
    tags = run.data.tags
    return {"fit": tags.get(FIT_TAG), "reason": tags.get(FIT_REASON_TAG), "metrics": metrics}


def weights_summary(
    metric: str, epoch: int, score: float | None, *, retrained: bool
) -> dict[str, Any]:
    """The card's ``weights`` section: where the weights come from, their epoch, and their own
    validation score under the objective's ``metric`` (for ``reduce: best`` the objective value;
    ``None`` after a refit on train+validation, which leaves no validation split to score)."""
    return {
        "source": "retrained on train+validation" if retrained else "the sweep's trial",
        "epoch": epoch,
        metric: None if retrained else score,
    }


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that made and can load the model."""
    from nnsweep.version import __version__

    found = {"python": sys.version.split()[0], "nnsweep": __version__}
    for dist in ("keras", "tensorflow-cpu", "tensorflow", "mlflow", "optuna", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def architecture(hp: HyperParams, io: ModelIO) -> str:
    """The MLP in one line, e.g. ``784 → Dense(32, relu) → Dense(10, softmax)`` for digits, or
    ``8 columns → 12 features (numbers standardised) → Dense(16, relu) → Dense(1, linear)``
    for a table: the input stage, batch norm and dropout as the model has them."""
    if io.schema is not None:
        width = head_width(
            io.schema, hp.numeric_embedding, hp.categorical_encoding, hp.embedding_dim
        )
        start = f"{len(io.schema.columns)} columns → {width} features"
        stage = []
        if io.schema.numeric and hp.numeric_embedding == "piecewise_linear":
            # the embedding reads the imputed raw values; input_transform plays no part
            stage.append("numbers as piecewise-linear embeddings of their training-quantile bins")
        elif io.schema.numeric:
            numbers = _INPUT_STAGE.get(hp.input_transform, hp.input_transform)
            periodic = ", then periodic embeddings" if hp.numeric_embedding == "periodic" else ""
            stage.append(f"numbers {numbers}{periodic}")
        embedded = [c for c in io.schema.categorical if embeds(c, hp.categorical_encoding)]
        if embedded:
            stage.append(
                f"{len(embedded)} categorical column(s) of {MANY_CATEGORIES}+ values as "
                f"{hp.embedding_dim}-d embeddings"
            )
        start += f" ({'; '.join(stage)})" if stage else ""
    else:
        start = str(io.input_width)
    norm = ", batch norm" if hp.batch_norm else ""
    hidden = " → ".join(f"Dense({u}, {hp.activation}{norm})" for u in hp.units)
    drop = ""
    if hp.dropout > 0:
        each = "each " if len(hp.units) > 1 else ""
        drop = f" ({each}with Dropout({hp.dropout:.2g}))"
    task = io.task
    return f"{start} → {hidden}{drop} → Dense({task.output_units}, {task.output_activation})"


_INPUT_STAGE = {"standard": "standardised", "quantile": "quantile-normalised"}


def trainable_count(model: keras.Model) -> int:
    """Trainable parameters of a built model (a preprocessing head has none)."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
