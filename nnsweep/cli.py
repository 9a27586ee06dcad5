"""The ``nnsweep`` command. The only place errors become a stderr line and an exit status.

Exit status: 0 ok, 1 runtime failure, 2 bad input (sweep file, data, storage, arguments),
130 interrupted. Tracebacks only with ``--debug``. TensorFlow is imported only by the commands
that train or load a model, so ``nnsweep --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import NnsweepError
from .urls import forget_secrets, known_secrets, mask_url, remember_secrets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    name="nnsweep",
    help="Hyperparameter sweeps for Keras MLPs: Optuna samples, Keras trains, MLflow tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"debug": False}

Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="NNSWEEP_STORAGE",
        help="Optuna storage URL [default: sqlite:///optuna.db beside the MLflow SQLite file].",
        show_envvar=True,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI [default: sqlite:///mlflow.db].",
        show_envvar=True,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead.")]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _stores(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    from .stores import resolve

    return resolve(storage, tracking_uri)


@app.command()
def run(
    sweep: Annotated[
        Path, typer.Argument(metavar="SWEEP", help="Sweep file, e.g. sweeps/quickstart.yaml.")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Trials wanted in total, COMPLETE ones unless the file says "
            "trials_count: all (overrides file).",
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Stop starting trials after S seconds.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name [default: the sweep's name].")
    ] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    data_path: Annotated[
        Path | None, typer.Option(help="Local dataset: an .npz or a folder of the 4 IDX files.")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (overrides file).")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log lines only, no live bar.")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes on this machine sharing the study (needs a journal:/// or "
            "PostgreSQL storage). Workers on other machines: run the same command there.",
        ),
    ] = 1,
) -> None:
    """Run a sweep, or resume it: trials run until the study has TRIALS COMPLETE trials
    (or TRIALS finished ones, pruned included, with `trials_count: all` in the sweep file).

    Any number of `nnsweep run` processes with the same sweep file and --storage work on one
    study together, on one machine (--jobs N) or many, and stop at exactly TRIALS.
    """
    from .config import load_spec
    from .progress import SweepProgress
    from .sweep import run_sweep

    spec = load_spec(sweep).with_overrides(
        trials=trials, timeout=timeout, seed=seed, data_path=data_path
    )
    storage_url, uri = _stores(storage, tracking_uri)
    _interrupt_on_signals()
    if jobs > 1:
        from .workers import run_jobs

        done = run_jobs(
            sweep,
            spec,
            jobs=jobs,
            storage_url=storage_url,
            tracking_uri=uri,
            study_name=study,
            overrides={"trials": trials, "timeout": timeout, "data_path": data_path, "seed": seed},
            echo=lambda line: typer.echo(line, err=True),
        )
        states = ", ".join(f"{n} {s}" for s, n in done.states.items())
        typer.echo(f"study {done.study_name}: {states or 'no trials'} ({jobs} workers)")
        if done.code:
            raise typer.Exit(done.code)
        return
    progress = SweepProgress(quiet=quiet, metric=spec.objective.metric, count=spec.trials_count)
    try:
        result = run_sweep(
            spec,
            storage_url=storage_url,
            tracking_uri=uri,
            study_name=study,
            spec_text=sweep.read_text(encoding="utf-8"),
            hooks=[progress],
            on_start=progress.on_start,
        )
    finally:
        progress.stop()
    if result.parent_run_id is None:
        typer.echo(
            f"study {result.study_name} already has its target of {result.target} trials "
            f"({result.n_complete} COMPLETE); raise --trials to run more"
        )
    ran = ", ".join(f"{n} {s}" for s, n in sorted(result.ran.items())) or "no trials"
    if result.parent_run_id is not None:
        typer.echo(f"study {result.study_name}: ran {ran}; {result.n_complete} COMPLETE in total")
    if result.best is not None:
        typer.echo(
            f"best trial #{result.best['number']}: {spec.objective.metric}="
            f"{result.best['value']:.4f}  params={json.dumps(result.best['params'])}"
        )
    typer.echo(
        f"browse: nnsweep ui{_uri_flag(tracking_uri)}   export: nnsweep export "
        f"{result.study_name} --out exports/{result.study_name}"
    )


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM stop a sweep cleanly (trial and run marked), even when the shell
    started us with SIGINT ignored, as non-interactive shells do for background jobs."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _uri_flag(tracking_uri: str | None) -> str:
    return f" --tracking-uri {mask_url(tracking_uri)}" if tracking_uri else ""


@app.command()
def status(
    study: Annotated[
        str | None, typer.Argument(metavar="[STUDY]", help="Study name [default: all studies].")
    ] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Trial counts by state and the best value, for one study or all of them."""
    from .statusdb import study_summaries

    storage_url, _ = _stores(storage, tracking_uri)
    summaries = study_summaries(storage_url, [study] if study else None)
    if as_json:
        typer.echo(json.dumps(summaries[0] if study else summaries, indent=2))
        return
    if not summaries:
        typer.echo(f"no studies in {mask_url(storage_url)}; start one with `nnsweep run SWEEP`")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("study", "COMPLETE", "PRUNED", "FAIL", "RUNNING", "best", "metric")
    for s in summaries:
        st = s["states"]
        best = f"{s['best']['value']:.4f} (#{s['best']['number']})" if s["best"] else "—"
        table.add_row(
            s["study"],
            str(st["COMPLETE"]),
            str(st["PRUNED"]),
            str(st["FAIL"]),
            str(st["RUNNING"]),
            best,
            s["metric"],
        )
    Console().print(table)


@app.command()
def best(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """The best COMPLETE trial: number, value, params and MLflow run id."""
    from .study import best_trial, load_study

    storage_url, _ = _stores(storage, tracking_uri)
    info = best_trial(load_study(study, storage_url))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"trial #{info['number']}  value {info['value']:.6g}  run {info['run_id']}")
    for key, value in info["params"].items():
        typer.echo(f"  {key:<14} {value}")


@app.command()
def report(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write [default: reports/STUDY].")
    ] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Write a study's trials table and comparison plots to a folder.

    trials.csv and trials.md (every trial's fit diagnosis, best first), Optuna's
    optimization-history, parallel-coordinate and param-importance plots (HTML), train vs
    validation accuracy of the top and the worst-fitting trials (PNG), runs by fit tag.
    `nnsweep run` logs the same files under report/ on its parent run."""
    from .report import study_report

    storage_url, uri = _stores(storage, tracking_uri)
    folder = out if out is not None else Path("reports") / study
    result = study_report(study, storage_url, uri, folder)
    typer.echo(f"study {study}: report of {result.n_trials} trials written to {folder}")
    for name in result.files:
        typer.echo(f"  {folder / name}")
    for note in result.notes:
        typer.echo(f"  not drawn: {note}")
    typer.echo("fit: " + ", ".join(f"{n} {tag}" for tag, n in result.counts.items()))


@app.command()
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
            help="Sort by a trials.csv column or param name: value (best first), trial, fit, "
            "gap_accuracy, duration_s, learning_rate, …",
        ),
    ] = "value",
    reverse: Annotated[bool, typer.Option("--reverse", help="Flip the sort order.")] = False,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Print a study's trials table, best trial first.

    One row per trial: state, the params that vary, best and final val accuracy, train minus
    validation accuracy (gap), fit tag, duration and MLflow run id."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .report import display_frame, fit_counts, sort_trials, study_table

    storage_url, uri = _stores(storage, tracking_uri)
    direction, frame = study_table(study, storage_url, uri)
    try:
        ordered = sort_trials(frame, sort, direction=direction, reverse=reverse)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--sort'") from None
    shown = display_frame(ordered).head(top) if top else display_frame(ordered)
    styles = {"overfit": "red", "underfit": "yellow", "good": "green", "pruned": "dim"}
    table = Table(title=f"study {study}: {len(shown)} of {len(frame)} trials by {sort}")
    numbers = {"trial", "best val_acc", "final val_acc", "val n", "gap", "duration"}
    for col in shown.columns:
        justify = "right" if col.split(" (n=")[0] in numbers else "left"
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col != "params")
    for row in shown.itertuples(index=False):
        cells = dict(zip(shown.columns, row, strict=True))
        table.add_row(
            *(
                Text(str(v), style=styles.get(str(v), "")) if c == "fit" else str(v)
                for c, v in cells.items()
            )
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: print whole rows, not an 80-column squeeze
        console = Console(width=max(console.width, 200))
    console.print(table)
    typer.echo("fit: " + ", ".join(f"{n} {tag}" for tag, n in fit_counts(frame).items()))


@app.command()
def ui(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
    host: Annotated[
        str, typer.Option(help="Address to bind; 127.0.0.1 keeps the UI private to this machine.")
    ] = "127.0.0.1",
    study: Annotated[
        str | None, typer.Option(help="Sweep or study to open [default: the newest sweep].")
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI on the tracking store, print the URL of the sweep's runs table, and
    serve until Ctrl-C."""
    from .stores import resolve_tracking_uri
    from .ui import serve

    code = serve(
        resolve_tracking_uri(tracking_uri),
        host=host,
        port=port,
        experiment=study,
        echo=typer.echo,
        warn=lambda line: typer.echo(line, err=True),
    )
    raise typer.Exit(code)


@app.command()
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
        typer.Option("--force", help="Write into a non-empty --out (replaces the 4 outputs)."),
    ] = False,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the best trial's model: model.keras (Keras 3), saved_model/ (TF Serving),
    model_card.json and MODEL_CARD.md with its accuracy on the held-out test split, which
    nothing else in nnsweep reads. The test metrics are also logged to the trial's run."""
    from .export import export_best

    storage_url, uri = _stores(storage, tracking_uri)
    result = export_best(
        study,
        out=out,
        storage_url=storage_url,
        tracking_uri=uri,
        register=register,
        retrain=retrain,
        force=force,
    )
    card = result.card
    if as_json:
        typer.echo(
            json.dumps(
                {"out": str(out), "seconds": round(result.seconds, 2), "card": card}, indent=2
            )
        )
        return
    test, obj = card["test"], card["objective"]
    typer.echo(
        f"exported study {card['study']}, trial #{card['trial']} (run "
        f"{card['mlflow']['run_id']}) to {out} in {result.seconds:.1f}s"
    )
    retrained = f"; retrained {card['retrain']['epochs']} epochs" if card["retrain"] else ""
    typer.echo(
        f"  test accuracy {test['accuracy']:.4f}, loss {test['loss']:.4f} on {test['n']:,} "
        f"held-out images (sweep: {obj['reduce']} {obj['metric']} {obj['value']:.4f}{retrained})"
    )
    if card["registry"]:
        reg = card["registry"]
        typer.echo(f"  registered {reg['uri']} (version {reg['version']})")
    typer.echo(f"  predict: nnsweep predict {out} IMAGE.png")


@app.command()
def predict(
    model: Annotated[
        str,
        typer.Argument(metavar="MODEL", help="Export folder, .keras file, or models:/NAME@alias."),
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="INPUT...", help=".npy/.npz arrays or .png/.jpg images."),
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
    """Predict the digit of each input: prints its class and probability.

    Arrays (.npy/.npz) hold one 28x28 image or 784-vector, or a stack of them; pixel values
    0-255 (integers, or floats above 1) or 0-1 (floats). Images (.png/.jpg) are made
    grayscale, padded to a square and resized to 28x28. The model expects MNIST polarity, a
    white digit on black: with --background auto an input whose border is mostly light (a
    dark digit on white paper, or a transparent background) is inverted first."""
    from .errors import ExportError
    from .predict import predict as run_predict
    from .stores import resolve_tracking_uri

    if as_json and as_csv:
        raise ExportError("--json and --csv: pick one output format")
    results = run_predict(
        model, inputs, tracking_uri=resolve_tracking_uri(tracking_uri), background=background
    )
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    elif as_csv:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["input", "class", "probability", "inverted", *(f"p{i}" for i in range(10))]
        )
        for r in results:
            writer.writerow(
                [
                    r.input,
                    r.digit,
                    f"{r.probability:.6f}",
                    str(r.inverted).lower(),
                    *(f"{p:.6f}" for p in r.probabilities),
                ]
            )
        typer.echo(buffer.getvalue(), nl=False)
    else:
        width = max(len("input"), *(len(r.input) for r in results))
        typer.echo(f"{'input':<{width}}  class  probability")
        for r in results:
            note = "  (inverted)" if r.inverted else ""
            typer.echo(f"{r.input:<{width}}  {r.digit:>5}  {r.probability:>11.4f}{note}")


def show_usage_error(exc: typer.TyperException) -> int:
    """Print a command-line error as Typer does in standalone mode; return its exit status.

    Typer raises its parsing errors (its own copy of Click's) as :class:`typer.TyperException`
    subclasses whose ``exit_code`` is 2 for usage errors; those also have ``show()``, which
    prints the usage line and a hint before ``Error: …``.
    """
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to one stderr line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    remember_secrets(known_secrets(args))  # scrubbed from every message and log line
    command = typer.main.get_command(app)
    try:
        # Typer's non-standalone mode returns the code of typer.Exit, and 130 for Ctrl-C
        rv = command.main(args=args, prog_name="nnsweep", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 130:
            raise KeyboardInterrupt
        return code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("nnsweep: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # bad arguments, as Typer's parser words them
        return show_usage_error(exc)
    except NnsweepError as exc:
        if _state["debug"]:
            print(mask_url(traceback.format_exc()), end="", file=sys.stderr)
        print(f"nnsweep: error: {mask_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = (
            "; the current trial was marked FAIL. Run the same command again to resume the study."
            if "run" in args
            else ""
        )
        print(f"nnsweep: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        if _state["debug"]:
            print(mask_url(traceback.format_exc()), end="", file=sys.stderr)
        message = mask_url(f"{type(exc).__name__}: {exc}".splitlines()[0])
        print(f"nnsweep: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        forget_secrets()
