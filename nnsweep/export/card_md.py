"""``MODEL_CARD.md``: the JSON model card (:mod:`nnsweep.export.card`) as a page people read."""

from __future__ import annotations

from typing import Any

from nnsweep.export.baseline import markdown as boosting_markdown
from nnsweep.export.card import test_headline, unit_of, validation_line
from nnsweep.export.ensemble import markdown as ensemble_markdown
from nnsweep.export.latency import deployment_line
from nnsweep.export.onnx import markdown as onnx_markdown
from nnsweep.export.pick import markdown as pick_markdown
from nnsweep.export.provenance import test_lines

MAX_MATRIX_CLASSES = 30  # a bigger confusion matrix stays in model_card.json only


def _weights_line(weights: dict[str, Any], metric: str) -> str:
    """``the sweep's trial (epoch 7, val_accuracy 0.9650)``."""
    score = weights.get(metric)
    scored = f", {metric} {score:.4f}" if score is not None else ""
    return f"{weights['source']} (epoch {weights['epoch']}{scored})"


def _cell(value: Any) -> str:
    """A value as a Markdown table cell (pipes and newlines would break the table)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(card: dict[str, Any]) -> str:
    """``MODEL_CARD.md``: the JSON card as a page."""
    test, val, data, task = card["test"], card["validation"], card["dataset"], card["task"]
    obj = card["objective"]
    lines = [
        f"# Model card: {card['study']}, trial #{card['trial']}",
        "",
        f"{card['architecture']}; {card['parameter_count']:,} parameters"
        f"{' in all' if card.get('ensemble') else ''}. "
        f"Weights: {_weights_line(card['weights'], obj['metric'])}.",
        "",
        "## Task",
        "",
        f"- task: **{task['kind']}**"
        + (f" over {task['n_classes']} classes" if task.get("n_classes") else ""),
        f"- target: {_cell(task['target']) if task.get('target') else '(array labels)'}",
        f"- input: {data['input']}",
        f"- output: {data['output']}",
    ]
    if task.get("labels") is not None:
        mapping = ", ".join(f"{i} → {label!r}" for i, label in enumerate(task["labels"][:50]))
        more = f", … ({len(task['labels'])} in all)" if len(task["labels"]) > 50 else ""
        lines.append(f"- label mapping (class index → original label): {_cell(mapping)}{more}")
    features = card["io"].get("features")
    if features:
        lines += [
            "",
            "A missing numeric cell gets the training median; the model then standardises with "
            "the mean and std below, or uses the training quantiles instead (input_transform: "
            "quantile, numeric_embedding: piecewise_linear; see the architecture line). A constant "
            "column's std is stored as 1, so it becomes 0.",
            "",
            "| feature column | kind | training statistics |",
            "|---|---|---|",
        ]
        for column in features[:200]:
            if column["kind"] == "numeric":
                stats = (
                    f"median {column['median']:.4g}, mean {column['mean']:.4g}, "
                    f"std {column['std']:.4g}"
                )
            else:
                stats = f"{len(column['vocabulary'])} categories + unknown"
            lines.append(f"| {_cell(column['name'])} | {column['kind']} | {stats} |")
        if len(features) > 200:
            lines.append(f"| … | | {len(features) - 200} more in model_card.json |")
    lines += [
        "",
        "## Test (held-out split, read once at export, after every choice was made)",
        "",
        f"- {test_headline(test, unit_of(card))}",
    ]
    if "ci95_method" in test:
        lines.append(f"- intervals: {test['ci95_method']}")
    lines += [f"- {line}" for line in test_lines(card)]
    lines += ensemble_markdown(card) + boosting_markdown(card)
    lines += _deployment(card.get("deployment"))
    lines += onnx_markdown(card)
    lines += pick_markdown(card)  # two objectives: the rule and the front it passed over
    lines += [
        "",
        "## Validation (during the sweep)",
        "",
        f"- {validation_line(card)}",
        f"- objective: {obj['reduce']} {obj['metric']} = {obj['value']:.4f} ({obj['direction']})",
    ]
    for key in ("epochs_trained", "best_epoch"):
        if key in val:
            lines.append(f"- {key}: {val[key]}")
    at = dict(val.get("at_weights_epoch") or {})
    if at:
        epoch = at.pop("epoch")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in at.items())
        lines.append(f"- at epoch {epoch}, the exported weights' epoch: {shown}")
    if card["retrain"]:
        r = card["retrain"]
        final = ", ".join(f"{k} {v:.4f}" for k, v in r["final"].items())
        lines += [
            "",
            "## Retrained",
            "",
            f"Refit on {r['data']} ({r['train_size']:,} rows) for {r['epochs']} epochs, "
            f"seed {r['seed']}: final training {final}.",
        ]
        if r.get("schedule"):
            lines += ["", f"Learning rate: {r['schedule']}."]
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
    lines += _confusion(test)
    sizes = data["sizes"]
    lines += [
        "",
        "## Data",
        "",
        f"{_cell(data['name'])} ({_cell(data['source'])}): {sizes['train']:,} train, "
        + (
            f"scored by {cv['folds']}-fold cross-validation, "
            if (cv := card.get("cross_validation"))
            else f"{sizes['val']:,} validation, "
        )
        + f"{sizes['test']:,} test rows.",
    ]
    lines += [f"- {_cell(note)}" for note in data.get("notes") or []]
    lines += _lineage(card)
    lines += _use(card)
    return "\n".join(lines)


def _deployment(section: dict[str, Any] | None) -> list[str]:
    """The deployment figures (:mod:`nnsweep.export.latency`), if the card has them."""
    line = deployment_line(section)
    if section is None or line is None:
        return []
    return [
        "",
        "## Deployment (measured at export, on the exporting machine's CPU)",
        "",
        f"- {line.removeprefix('deployment: ')}",
        f"- timed path: {section['path']}",
        f"- serving: {section['serving']}",
    ]


def _confusion(test: dict[str, Any]) -> list[str]:
    matrix = test.get("confusion_matrix")
    if not matrix:
        return []
    labels = test.get("labels") or list(range(len(matrix)))
    if len(matrix) > MAX_MATRIX_CLASSES:
        return ["", f"Confusion matrix: {len(matrix)} classes, in model_card.json."]
    lines = [
        "",
        "## Confusion matrix (rows: true label, columns: predicted)",
        "",
        "| | " + " | ".join(_cell(n) for n in labels) + " |",
        "|---" * (len(matrix) + 1) + "|",
    ]
    lines += [
        f"| **{_cell(labels[i])}** | " + " | ".join(str(c) for c in row) + " |"
        for i, row in enumerate(matrix)
    ]
    return lines


def _lineage(card: dict[str, Any]) -> list[str]:
    ml = card["mlflow"]
    lines = [
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
    return lines


def _use(card: dict[str, Any]) -> list[str]:
    keras_file = card["files"]["keras"]
    io = card["io"]
    lines = ["", "## Use", "", "```python", "import keras"]
    if io.get("features") and any(c["kind"] != "numeric" for c in io["features"]):
        lines.append("import tensorflow as tf")
    lines.append("")
    lines.append(f'model = keras.saving.load_model("{keras_file}")')
    if io.get("features"):
        numeric = [c["name"] for c in io["features"] if c["kind"] == "numeric"]
        categorical = [(c["name"], c["input"]) for c in io["features"] if c["kind"] != "numeric"]
        lines.append("# rows: a pandas DataFrame holding the feature columns above")
        lines.append("inputs = {")
        if numeric:
            shown = ", ".join(repr(n) for n in numeric[:8]) + (", ..." if len(numeric) > 8 else "")
            lines.append(f'    "numeric": rows[[{shown}]].to_numpy("float32"),  # NaN = missing')
        for name, key in categorical[:8]:
            text = f"rows[[{name!r}]].to_numpy(str)"
            lines.append(f'    "{key}": tf.constant({text}),  # "(missing)" = missing')
        lines += ["}", "output = model.predict(inputs)"]
    else:
        lines.append(f"output = model.predict(x)  # x: {card['dataset']['input']}")
    example = "images.png" if io.get("input_name") == "pixels" and not io.get("features") else ""
    rows = "rows.csv" if io.get("features") else "rows.npz"
    lines += [
        "```",
        "",
        f"or `nnsweep predict DIR {example or rows} --csv` (original labels), or TF "
        f"Serving on `{card['files']['saved_model']}`.",
        "",
    ]
    return lines
