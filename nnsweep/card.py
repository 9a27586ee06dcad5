"""The model card: what an exported model is, where it comes from, and how well it does.

:func:`evaluate` measures a model on the held-out test split; :func:`validation_summary` and
:func:`diagnosis_of` summarise the trial's MLflow run; :func:`render_markdown` turns the JSON
card that :mod:`nnsweep.export` assembles into ``MODEL_CARD.md``.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from .steps import FIT_REASON_TAG, FIT_TAG, WEIGHTS_PREFIX
from .tracking import EPOCH_METRICS

if TYPE_CHECKING:
    import keras
    from mlflow.entities import Run

    from .config import SweepSpec
    from .model import HyperParams

CARD_FORMAT = "nnsweep.model_card/1"
INPUT_NOTE = (
    "float32 rows of 784 pixels in [0, 1] (28x28 row-major), white digit on black as in MNIST; "
    "output: 10 class probabilities (softmax)"
)
# Run metrics that are not the fit diagnosis: the epoch curves, bookkeeping, and the test ones.
_NOT_DIAGNOSIS = {*EPOCH_METRICS, "trainable_params", "epochs_run", "train_seconds"}


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, cross-entropy loss and confusion matrix of ``model`` on (x, y).

    Loss is Keras' sparse categorical cross-entropy on probabilities (clipped at 1e-7).
    """
    probs = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)
    pred = probs.argmax(axis=1)
    y = np.asarray(y, dtype=np.int64)
    n_classes = probs.shape[1]
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0 - 1e-7)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "split": "test (held out from the sweep; read only by export)",
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "loss": float(-np.log(p_true).mean()),
        "per_class_accuracy": [round(float(a), 4) for a in per_class],
        "confusion_matrix": confusion.tolist(),
    }


def validation_summary(history: dict[str, list[float]], spec: SweepSpec) -> dict[str, Any]:
    """The trial's best validation metrics and the epoch the objective peaked."""
    out: dict[str, Any] = {"epochs_trained": len(history.get("loss", []))}
    if "val_accuracy" in history:
        out["best_val_accuracy"] = max(history["val_accuracy"])
    if "val_loss" in history:
        out["best_val_loss"] = min(history["val_loss"])
    curve = history.get(spec.objective.metric)
    if curve:
        pick = max if spec.objective.direction == "maximize" else min
        epoch = curve.index(pick(curve)) + 1
        out["best_epoch"] = epoch
        out["at_best_epoch"] = {k: v[epoch - 1] for k, v in history.items() if len(v) >= epoch}
    return out


def diagnosis_of(run: Run) -> dict[str, Any]:
    """The fit diagnosis the sweep wrote on the run (see :mod:`nnsweep.diagnosis`), if any.

    ``fit``/``reason`` are the tags ``nnsweep.fit``/``nnsweep.fit_reason``; ``metrics`` are the
    run's summary metrics other than the epoch curves, timing and test metrics.
    """
    metrics = {
        k: v
        for k, v in sorted(run.data.metrics.items())
        if k not in _NOT_DIAGNOSIS
        and not k.startswith(("test_", "retrained_test_", WEIGHTS_PREFIX))
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
    from . import __version__

    found = {"python": sys.version.split()[0], "nnsweep": __version__}
    for dist in ("keras", "tensorflow-cpu", "tensorflow", "mlflow", "optuna", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def architecture(hp: HyperParams) -> str:
    """The MLP in one line, e.g. ``784 → Dense(32, relu) → Dense(10, softmax)``."""
    hidden = " → ".join(f"Dense({u}, {hp.activation})" for u in hp.units)
    drop = f" with Dropout({hp.dropout:.2g})" if hp.dropout > 0 else ""
    return f"784 → {hidden}{drop} → Dense(10, softmax)"


def _weights_line(weights: dict[str, Any], metric: str) -> str:
    """``the sweep's trial (epoch 7, val_accuracy 0.9650)``."""
    score = weights.get(metric)
    scored = f", {metric} {score:.4f}" if score is not None else ""
    return f"{weights['source']} (epoch {weights['epoch']}{scored})"


def render_markdown(card: dict[str, Any]) -> str:
    """``MODEL_CARD.md``: the JSON card as a page."""
    test, val, data = card["test"], card["validation"], card["dataset"]
    obj = card["objective"]
    lines = [
        f"# Model card: {card['study']}, trial #{card['trial']}",
        "",
        f"{card['architecture']}; {card['parameter_count']:,} parameters. "
        f"Weights: {_weights_line(card['weights'], obj['metric'])}.",
        "",
        "## Test (held-out split, measured at export)",
        "",
        f"- accuracy **{test['accuracy']:.4f}**, loss {test['loss']:.4f} on {test['n']:,} images",
        "",
        "## Validation (during the sweep)",
        "",
        f"- objective: {obj['reduce']} {obj['metric']} = {obj['value']:.4f} ({obj['direction']})",
    ]
    for key in ("best_val_accuracy", "best_val_loss", "best_epoch", "epochs_trained"):
        if key in val:
            value = val[key]
            lines.append(
                f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}"
            )
    if card["retrain"]:
        r = card["retrain"]
        lines += [
            "",
            "## Retrained",
            "",
            f"Refit on {r['data']} ({r['train_size']:,} images) for {r['epochs']} epochs, "
            f"seed {r['seed']}: final loss {r['final_loss']:.4f}, "
            f"accuracy {r['final_accuracy']:.4f}.",
        ]
    diag = card["diagnosis"]
    lines += ["", "## Fit diagnosis", ""]
    if diag["fit"] is None and not diag["metrics"]:
        lines.append("No diagnosis was recorded on the run.")
    else:
        reason = f" ({diag['reason']})" if diag["reason"] else ""
        lines.append(f"- fit: **{diag['fit'] or 'not recorded'}**{reason}")
        lines += [f"- {k}: {v:.4g}" for k, v in diag["metrics"].items()]
    lines += ["", "## Parameters", "", "| param | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["params"].items()]
    n = len(test["confusion_matrix"])
    lines += [
        "",
        "## Confusion matrix (rows: true digit, columns: predicted)",
        "",
        "| | " + " | ".join(str(i) for i in range(n)) + " |",
        "|---" * (n + 1) + "|",
    ]
    lines += [
        f"| **{i}** | " + " | ".join(str(c) for c in row) + " |"
        for i, row in enumerate(test["confusion_matrix"])
    ]
    sizes = data["sizes"]
    lines += [
        "",
        "## Data",
        "",
        f"{data['name']} ({data['source']}): {sizes['train']:,} train, {sizes['val']:,} "
        f"validation, {sizes['test']:,} test. Input: {data['input']}.",
    ]
    ml = card["mlflow"]
    lines += [
        "",
        "## Lineage",
        "",
        f"- MLflow run `{ml['run_id']}` (experiment {ml['experiment_id']}, {ml['tracking_uri']})",
        f"- logged model: `{ml['model_uri'] or 'none'}`",
    ]
    if card["registry"]:
        reg = card["registry"]
        lines.append(f"- registry: `{reg['uri']}` (version {reg['version']})")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()))
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import keras",
        f'model = keras.saving.load_model("{card["files"]["keras"]}")',
        "probabilities = model.predict(pixels)  # pixels: (n, 784) float32 in [0, 1]",
        "```",
        "",
        f"or `nnsweep predict DIR images.png`, or TF Serving on `{card['files']['saved_model']}`.",
        "",
    ]
    return "\n".join(lines)
