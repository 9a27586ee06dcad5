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

try:  # Typer 0.2x vendors its own Click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older Typer uses Click itself
    from click import exceptions as click_exc  # type: ignore[no-redef]

from .errors import NnsweepError
from .urls import mask_url

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
    from .study import resolve_storage, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    return resolve_storage(storage, uri), uri


@app.command()
def run(
    sweep: Annotated[Path, typer.Argument(metavar="SWEEP", help="Sweep file, e.g. sweeps/quickstart.yaml.")],
    trials: Annotated[
        int | None, typer.Option(min=1, help="COMPLETE trials wanted in total (overrides file).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=1, help="Stop starting trials after S seconds.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study name [default: the sweep's name].")] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    data_path: Annotated[
        Path | None, typer.Option(help="Local dataset: an .npz or a folder of the 4 IDX files.")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (overrides file).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines only, no live bar.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes on this machine sharing the study (needs a journal:/// or "
            "PostgreSQL storage). Workers on other machines: run the same command there.",
        ),
    ] = 1,
) -> None:
    """Run a sweep, or resume it: trials run until the study has TRIALS COMPLETE trials.

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
    if jobs > 1:
        _run_jobs(sweep, spec, jobs, storage_url, uri, trials=trials, timeout=timeout,
                  study=study, data_path=data_path, seed=seed)
        return
    progress = SweepProgress(quiet=quiet, metric=spec.objective.metric)
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
            f"study {result.study_name} already has {result.n_complete} COMPLETE trials "
            f"(target {result.target}); raise --trials to run more"
        )
    ran = ", ".join(f"{n} {s}" for s, n in sorted(result.ran.items())) or "no trials"
    if result.parent_run_id is not None:
        typer.echo(f"study {result.study_name}: ran {ran}; {result.n_complete} COMPLETE in total")
    if result.best is not None:
        typer.echo(
            f"best trial #{result.best['number']}: {spec.objective.metric}="
            f"{result.best['value']:.4f}  params={json.dumps(result.best['params'])}"
        )
    typer.echo(f"browse: nnsweep ui{_uri_flag(tracking_uri)}   export: nnsweep export "
               f"{result.study_name} --out exports/{result.study_name}")


def _run_jobs(
    sweep: Path, spec: Any, jobs: int, storage_url: str, uri: str, **overrides: Any
) -> None:
    """Validate once here, then start JOBS worker processes and wait for them."""
    from .data import load_raw
    from .study import check_storage, create_or_resume, load_study, summarize
    from .tracking import check_tracking_uri
    from .workers import check_concurrent_storage, run_workers

    check_concurrent_storage(storage_url, jobs)
    load_raw(spec.dataset.name, str(spec.dataset.path) if spec.dataset.path else None)
    check_storage(storage_url, uri)
    check_tracking_uri(uri)
    name = overrides["study"] or spec.name
    create_or_resume(spec, storage_url, name)  # once, before the workers race to create it
    args = [str(sweep)]
    for key, value in overrides.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    code = run_workers(args, jobs=jobs, storage_url=storage_url, tracking_uri=uri,
                       echo=lambda line: typer.echo(line, err=True))
    summary = summarize(load_study(name, storage_url))
    states = ", ".join(f"{n} {s}" for s, n in summary["states"].items() if n)
    typer.echo(f"study {name}: {states or 'no trials'} ({jobs} workers)")
    if code:
        raise typer.Exit(code)


def _uri_flag(tracking_uri: str | None) -> str:
    return f" --tracking-uri {mask_url(tracking_uri)}" if tracking_uri else ""


@app.command()
def status(
    study: Annotated[str | None, typer.Argument(metavar="[STUDY]", help="Study name [default: all studies].")] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Trial counts by state and the best value, for one study or all of them."""
    from .study import list_studies, load_study, summarize

    storage_url, _ = _stores(storage, tracking_uri)
    names = [study] if study else list_studies(storage_url)
    summaries = [summarize(load_study(n, storage_url)) for n in names]
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
        table.add_row(s["study"], str(st["COMPLETE"]), str(st["PRUNED"]), str(st["FAIL"]),
                      str(st["RUNNING"]), best, s["metric"])
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
    from .study import resolve_tracking_uri
    from .ui import serve

    code = serve(
        resolve_tracking_uri(tracking_uri), host=host, port=port, experiment=study,
        echo=typer.echo, warn=lambda line: typer.echo(line, err=True),
    )
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to one stderr line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="nnsweep", standalone_mode=False)
        return 0
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("nnsweep: aborted", file=sys.stderr)
        return 130
    except click_exc.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click_exc.UsageError) else int(exc.exit_code)
    except NnsweepError as exc:
        if _state["debug"]:
            traceback.print_exc()
        print(f"nnsweep: error: {mask_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "nnsweep: interrupted; the current trial was marked FAIL. Run the same command "
            "again to resume the study.",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if _state["debug"]:
            traceback.print_exc()
        message = mask_url(f"{type(exc).__name__}: {exc}".splitlines()[0])
        print(f"nnsweep: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1
