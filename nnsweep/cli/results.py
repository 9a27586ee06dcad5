"""``nnsweep report``, ``compare``, ``ui``, ``export`` and ``predict``: a sweep's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from nnsweep.cli.learned import SaveSweep, save_next
from nnsweep.cli.options import JsonFlag, Storage, TrackingUri, resolve_stores


def report(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write [default: reports/STUDY].")
    ] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    save_sweep: SaveSweep = None,
) -> None:
    """Write a study's trials table and comparison plots to a folder.

    trials.csv and trials.md (every trial's fit diagnosis, best first by the objective),
    Optuna's optimization-history, parallel-coordinate and param-importance plots (HTML), train
    vs validation curves of the task's metric (accuracy, or mae for regression) for the top and
    the worst-fitting trials (PNG), runs by fit tag; with two objectives (objective.also), the
    Pareto front as pareto_front.png and pareto_front.html (each trial's MLflow run link).
    `nnsweep run` logs the same files under report/ on its parent run."""
    from nnsweep.paths import child_dir
    from nnsweep.results.report import study_report

    storage_url, uri = resolve_stores(storage, tracking_uri)
    folder = out if out is not None else child_dir(Path("reports"), study)
    result = study_report(study, storage_url, uri, folder)
    typer.echo(f"study {study}: report of {result.n_trials} trials written to {folder}")
    for name in result.files:
        typer.echo(f"  {folder / name}")
    for note in result.notes:
        typer.echo(f"  not drawn: {note}")
    typer.echo("fit: " + ", ".join(f"{n} {tag}" for tag, n in result.counts.items()))
    if result.front is not None:  # two objectives: pareto_front.png / .html above
        front = result.front
        typer.echo(
            f"Pareto front of {front.metric} and {front.also}: {len(front.points)} trials, "
            + " ".join(f"#{n}" for n in front.numbers)
        )
    if result.learned is not None:  # importances, the best ranges and bound warnings
        for line in result.learned.lines():
            typer.echo(line)
        if save_sweep is not None:
            from nnsweep.study.storage import load_study

            save_next(load_study(study, storage_url), result.learned, save_sweep)


def compare(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    top: Annotated[
        int | None, typer.Option("--top", min=1, metavar="K", help="Show the first K rows only.")
    ] = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort",
            metavar="COL",
            help="Sort by a trials.csv column or param name: value (the objective, best "
            "first), trial, fit, gap_accuracy, final_val_mae, duration_s, learning_rate, …",
        ),
    ] = "value",
    reverse: Annotated[bool, typer.Option("--reverse", help="Flip the sort order.")] = False,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Print a study's trials table, best trial first.

    One row per trial, ranked by the value the objective scored it with: state, the params
    that vary, the task's validation scores (classification: best and final val accuracy and
    the train minus validation gap; regression: the objective, val_mae, val_loss, loss ratio
    and training R²), fit tag, duration and MLflow run id. A study with a second objective
    (objective.also) is ranked by its primary value and adds that second value and a front
    column: ✓ marks the trials on the Pareto front. With --json: an object with study, task,
    metric, reduce, direction (also, for two objectives), sort, n_trials, fit_counts and trials
    (every trials.csv column, params nested, in the printed order; missing numbers are null;
    also and pareto for two objectives)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from nnsweep.results.report import (
        TEXT_COLUMNS,
        display_frame,
        fit_counts,
        sort_trials,
        study_table,
    )
    from nnsweep.results.trials import json_rows, resolve_column

    storage_url, uri = resolve_stores(storage, tracking_uri)
    scoring, frame = study_table(study, storage_url, uri)
    try:
        ordered = sort_trials(frame, sort, direction=scoring.direction, reverse=reverse)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--sort'") from None
    if as_json:
        rows = json_rows(ordered.head(top) if top else ordered)
        summary = {"study": study, **scoring.as_dict(), "sort": sort, "reverse": reverse}
        summary |= {"n_trials": len(frame), "fit_counts": fit_counts(frame), "trials": rows}
        typer.echo(json.dumps(summary, indent=2))
        return
    shown = display_frame(ordered, scoring)
    shown = shown.head(top) if top else shown
    styles = {"overfit": "red", "underfit": "yellow", "good": "green", "pruned": "dim",
              "generalisation_gap": "magenta"}  # fmt: skip
    # user text (study name, param values, columns) as Text or escaped: never Rich markup
    order = sort
    if resolve_column(frame, sort) == "value":  # say what the value is, and which end is best
        best = "lowest" if (scoring.direction == "minimize") != reverse else "highest"
        order = f"value ({scoring.value_label}, {best} first)"
    table = Table(title=escape(f"study {study}: {len(shown)} of {len(frame)} trials by {order}"))
    for col in shown.columns:
        justify: Literal["left", "right"] = "left" if col in TEXT_COLUMNS else "right"
        table.add_column(escape(col), justify=justify, overflow="fold", no_wrap=col != "params")
    for row in shown.itertuples(index=False):
        cells = dict(zip(shown.columns, row, strict=True))
        table.add_row(
            *(
                Text(str(v), style=styles.get(str(v), "") if c == "fit" else "")
                for c, v in cells.items()
            )
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: print whole rows, never a squeeze
        from rich.measure import Measurement

        whole = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console = Console(width=max(console.width, 200, whole))
    console.print(table)
    typer.echo("fit: " + ", ".join(f"{n} {tag}" for tag, n in fit_counts(frame).items()))
    if scoring.also is not None:
        front = ordered[ordered["pareto"]]["trial"].tolist()
        typer.echo(
            f"Pareto front (✓) of {scoring.metric} and {scoring.also}: {len(front)} trials, "
            + " ".join(f"#{n}" for n in front)
        )


def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps the UI private to this machine.")
    ] = "127.0.0.1",
    study: Annotated[
        str | None, typer.Option(help="Sweep or study to open [default: the newest sweep].")
    ] = None,
    tracking_uri: TrackingUri = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Require a login: MLflow's basic-auth app (needs nnsweep[auth] and "
            "MLFLOW_FLASK_SERVER_SECRET_KEY; see docs/ui.md).",
        ),
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a non-loopback --host without --auth."),
    ] = False,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            metavar="HOSTS",
            help="Host headers the server answers, comma-separated (MLflow's --allowed-hosts).",
        ),
    ] = None,
    cors_allowed_origins: Annotated[
        str | None,
        typer.Option(
            metavar="ORIGINS",
            help="Origins allowed cross-site requests (MLflow's --cors-allowed-origins).",
        ),
    ] = None,
) -> None:
    """Start the MLflow UI on the tracking store, print the URL of the sweep's runs table, and
    serve until Ctrl-C. A --host other than loopback needs --auth or --insecure."""
    from nnsweep.stores import resolve_tracking_uri
    from nnsweep.ui.server import serve

    code = serve(
        resolve_tracking_uri(tracking_uri),
        host=host,
        port=port,
        experiment=study,
        echo=typer.echo,
        warn=lambda line: typer.echo(line, err=True),
        allowed_hosts=allowed_hosts,
        cors_allowed_origins=cors_allowed_origins,
        auth=auth,
        insecure=insecure,
    )
    raise typer.Exit(code)


def export(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (created if missing).")],
    register: Annotated[
        str | None,
        typer.Option(
            "--register",
            metavar="NAME",
            help="Also add a version of registered model NAME with alias 'champion'.",
        ),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option("--retrain", help="Refit the best params on train+validation first."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a non-empty --out (replaces an earlier export)."),
    ] = False,
    data_path: Annotated[
        Path | None,
        typer.Option(
            "--data-path",
            help="The sweep's data file, if it is elsewhere now (or the sweep's path was "
            "relative to another folder); it must hold the data the study was swept on.",
        ),
    ] = None,
    reread_test: Annotated[
        bool,
        typer.Option(
            "--reread-test",
            help="Export a study whose test split was read before; the card says how many "
            "times it has been read (a figure chosen among several reads is optimistic).",
        ),
    ] = False,
    ensemble: Annotated[
        str,
        typer.Option(
            "--ensemble",
            metavar="K|auto",
            help="Export the mean of the K best trials' models as one model.keras (refit "
            "where a trial has no logged model); the card also gives the best trial alone. "
            "auto: 3 on a table of fewer than 2,000 training rows, else 1.",
        ),
    ] = "auto",
    no_baseline: Annotated[
        bool,
        typer.Option(
            "--no-baseline",
            help="Skip gradient boosting beside the MLP (for very large tables).",
        ),
    ] = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx",
            help="Also write model.onnx (preprocessing inside) for onnxruntime, checked against "
            "Keras on the test rows already read. Needs `pip install 'nnsweep[onnx]'`.",
        ),
    ] = False,
    pick: Annotated[
        str,
        typer.Option(
            "--pick",
            metavar="RULE",
            help="Which Pareto-front trial a study with two objectives (objective.also) "
            "exports: best (the best primary value), smallest-within:POINTS (the smallest "
            "second value within POINTS of the best: accuracy points, or the metric's units "
            "for a loss or error), or knee. A single-objective study takes best only.",
        ),
    ] = "best",
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the best trial's model: model.keras (Keras 3, preprocessing inside, so it takes
    raw feature rows), saved_model/ (TF Serving), model_card.json and MODEL_CARD.md (task,
    target, feature columns, label mapping) with its test metrics, their 95% intervals and
    the trivial baseline's on the held-out test split, which nothing else in nnsweep reads.
    The test metrics are also logged to the trial's run. On a table, gradient boosting with
    scikit-learn's defaults is fit on the same rows and scored beside it (--no-baseline
    skips it); --ensemble K exports the mean of the K best trials' models (by default 3 on a
    table of fewer than 2,000 training rows, else the best alone). Each read of the
    test split is recorded on the study; a second export is refused without --reread-test.
    A study with two objectives exports the Pareto-front trial --pick names; the card states
    the rule and the front trials it passed over."""
    from nnsweep.export.baseline import comparison_line
    from nnsweep.export.card import test_headline, unit_of, validation_line
    from nnsweep.export.ensemble import choice_line
    from nnsweep.export.ensemble import summary_line as ensemble_line
    from nnsweep.export.export import export_best
    from nnsweep.export.latency import deployment_line
    from nnsweep.export.onnx import summary_line as onnx_summary
    from nnsweep.export.pick import summary_line as pick_line
    from nnsweep.export.provenance import test_lines

    storage_url, uri = resolve_stores(storage, tracking_uri)
    result = export_best(
        study,
        out=out,
        storage_url=storage_url,
        tracking_uri=uri,
        register=register,
        retrain=retrain,
        force=force,
        data_path=data_path,
        reread_test=reread_test,
        ensemble=ensemble,
        baseline=not no_baseline,
        onnx=onnx,
        pick=pick,
    )
    card = result.card
    if as_json:
        typer.echo(
            json.dumps(
                {"out": str(out), "seconds": round(result.seconds, 2), "card": card}, indent=2
            )
        )
        return
    typer.echo(
        f"exported study {card['study']}, trial #{card['trial']} (run "
        f"{card['mlflow']['run_id']}) to {out} in {result.seconds:.1f}s"
    )
    if picked := pick_line(card):  # two objectives: the rule that chose this front trial
        typer.echo(f"  {picked}")
    retrained = f" (retrained {card['retrain']['epochs']} epochs)" if card["retrain"] else ""
    typer.echo(f"  test{retrained}: {test_headline(card['test'], unit_of(card))}")
    for line in (choice_line(card), ensemble_line(card), comparison_line(card)):
        if line:
            typer.echo(f"  {line}")
    for line in test_lines(card, brief=True):
        typer.echo(f"  {line}")
    typer.echo(f"  sweep: {validation_line(card)}")
    if deployment := deployment_line(card.get("deployment")):
        typer.echo(f"  {deployment}")
    if onnx_line := onnx_summary(card):
        typer.echo(f"  {onnx_line}")
    if card["registry"]:
        reg = card["registry"]
        typer.echo(f"  registered {reg['uri']} (version {reg['version']})")
    example = "IMAGE.png" if unit_of(card) == "images" else "ROWS.csv --csv"
    if unit_of(card) != "images" and not card["io"].get("features"):
        example = "ROWS.npz --csv"
    typer.echo(f"  predict: nnsweep predict {out} {example}")


def predict(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help="Export folder, .keras file, or models:/NAME@alias."),
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="Rows (.csv/.parquet/.npz/.npy) or, for a digit model, .npy/.npz arrays or "
            ".png/.jpg images.",
        ),
    ],
    background: Annotated[
        str,
        typer.Option(
            metavar="[auto|dark|light]",
            help="Input background: auto (decide by the border), dark (MNIST-like, kept) or "
            "light (inverted first).",
        ),
    ] = "auto",
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV with a header.")] = False,
) -> None:
    """Predict each input: the original label and its probability (classification) or the
    value (regression) of every row; for a digit model, the digit of every image.

    Rows: a CSV/Parquet with the feature columns the model card names (extra columns, such as
    the target, are ignored; a missing one is an error naming it), or .npz/.npy arrays of
    rows. --csv prints a header and one line per row: input, row, prediction[, probability];
    --json the same with every label's probability.

    Digits: arrays (.npy/.npz) hold one 28x28 image or 784-vector, or a stack of them; pixel values
    0-255 (integers, or floats above 1) or 0-1 (floats). Images (.png/.jpg) are made
    grayscale, padded to a square and resized to 28x28. The model expects MNIST polarity, a
    white digit on black: with --background auto an input whose border is mostly light (a
    dark digit on white paper, or a transparent background) is inverted first."""
    from nnsweep.errors import ExportError
    from nnsweep.predict.predict import write_predictions
    from nnsweep.stores import resolve_tracking_uri

    if as_json and as_csv:
        raise ExportError("--json and --csv: pick one output format")
    write_predictions(
        model,
        inputs,
        tracking_uri=resolve_tracking_uri(tracking_uri),
        background=background,
        fmt="json" if as_json else "csv" if as_csv else "text",
        write=lambda text: typer.echo(text, nl=False),
    )
