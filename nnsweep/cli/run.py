"""``nnsweep run``, ``status`` and ``best``: run or resume a sweep, and read how it stands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nnsweep.cli.learned import SaveSweep, WarmStartStorage, print_learned, warm_start_override
from nnsweep.cli.options import JsonFlag, Storage, TrackingUri, resolve_stores, uri_flag
from nnsweep.cli.run_options import (
    DataPath,
    Gpus,
    Jobs,
    Quiet,
    Seed,
    StudyOpt,
    SweepArg,
    Timeout,
    Trials,
    WarmStart,
)
from nnsweep.cli.zeroconfig import SaveResolved, Target, load_sweep, show_choices, sweep_text
from nnsweep.study.objectives import also_metric
from nnsweep.urls import mask_url

if TYPE_CHECKING:
    import optuna

    from nnsweep.sweep.prepare import Prepared
    from nnsweep.sweep.progress import SweepProgress
    from nnsweep.sweep.workers import JobsResult
    from nnsweep.train.devices import WorkerPlan


def run(
    sweep: SweepArg,
    trials: Trials = None,
    timeout: Timeout = None,
    study: StudyOpt = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    data_path: DataPath = None,
    seed: Seed = None,
    quiet: Quiet = False,
    jobs: Jobs = "auto",
    gpus: Gpus = "auto",
    warm_start: WarmStart = None,
    warm_start_storage: WarmStartStorage = None,
    save_sweep: SaveSweep = None,
    target: Target = None,
    save_resolved: SaveResolved = None,
) -> None:
    """Run a sweep, or resume it: trials run until the study has TRIALS COMPLETE trials
    (or TRIALS finished ones, pruned included, with `trials_count: all` in the sweep file).

    By default trials run side by side in worker processes (--jobs auto), each given its
    share of the cores (TensorFlow threads) and one GPU if there are any. Any number of
    `nnsweep run` processes with the same sweep file and --storage work on one study
    together, on one machine or many, and stop at exactly TRIALS.
    """
    from nnsweep._proc import interrupt_on_signals
    from nnsweep.sweep.prepare import preflight
    from nnsweep.sweep.progress import SweepProgress
    from nnsweep.sweep.run import run_sweep
    from nnsweep.sweep.workers import choose_gpus, parse_jobs, plan_jobs, use_gpus_here

    n_jobs = parse_jobs(jobs)
    spec = load_sweep(sweep, target).with_overrides(
        trials=trials, timeout=timeout, seed=seed, data_path=data_path,
        warm_start=warm_start_override(warm_start),
    )  # fmt: skip
    chosen = choose_gpus(gpus)  # after the sweep file's checks, before the data loads
    storage_url, uri = resolve_stores(storage, tracking_uri)
    # the one preparation of this process: data loaded, spec fitted to it, stores checked
    prepared = preflight(
        spec, storage_url=storage_url, tracking_uri=uri, study_name=study, jobs=n_jobs or 1,
        warm_storage=warm_start_storage,
    )  # fmt: skip
    spec, dataset = prepared.spec, prepared.dataset
    show_choices(sweep, prepared, save_resolved)  # zero-config: what it chose, once
    plan, note = plan_jobs(spec, dataset, jobs=n_jobs, gpus=chosen, storage_url=storage_url)
    progress = SweepProgress(quiet=quiet, metric=spec.objective.key, count=spec.trials_count)
    progress.heading = f"data: {dataset.describe()}"  # shown once the study has started
    if note and not quiet:
        progress.console.print(note, markup=False)
    if plan.jobs > 1:
        overrides: dict[str, Any] = {
            "trials": trials, "timeout": timeout, "data_path": data_path, "seed": seed
        }  # fmt: skip
        overrides["warm_start"] = warm_start  # applied by this process before they start
        overrides["target"] = target
        with interrupt_on_signals():
            done = _run_jobs(sweep, prepared, plan, overrides, progress)
        _finish(done.study_name, spec.objective.key, done.best, tracking_uri, done.study)
        print_learned(storage_url, done.study_name, save_sweep, study=done.study)
        if done.code:
            typer.echo(
                "a worker stopped before the study reached its target; run the same command "
                "again to finish it",
                err=True,
            )
            raise typer.Exit(done.code)
        return
    use_gpus_here(plan)
    try:
        with interrupt_on_signals():
            result = run_sweep(
                prepared,
                spec_text=sweep_text(sweep, prepared),
                hooks=[progress],
                on_start=progress.on_start,
            )
    finally:
        progress.stop()
    if result.parent_run_id is None:
        _already_done(result.study_name, result.target, result.n_complete)
    ran = ", ".join(f"{n} {s}" for s, n in sorted(result.ran.items())) or "no trials"
    if result.parent_run_id is not None:
        typer.echo(f"study {result.study_name}: ran {ran}; {result.n_complete} COMPLETE in total")
    _finish(result.study_name, spec.objective.key, result.best, tracking_uri, result.study)
    print_learned(storage_url, result.study_name, save_sweep, study=result.study)


def _already_done(study_name: str, target: int | None, n_complete: int) -> None:
    typer.echo(
        f"study {study_name} already has its target of {target} trials "
        f"({n_complete} COMPLETE); raise --trials to run more"
    )


def _finish(
    study_name: str,
    metric: str,
    best: dict[str, Any] | None,
    tracking_uri: str | None,
    study: optuna.Study | None = None,
) -> None:
    if best is not None:
        typer.echo(
            f"best trial #{best['number']}: {metric}="
            f"{best['value']:.4f}  params={json.dumps(best['params'])}"
        )
    if best is not None and study is not None and (also := also_metric(study)) is not None:
        from nnsweep.study.front import own_front

        front = own_front(study)
        typer.echo(
            f"Pareto front ({metric} vs {also}): {len(front)} trial(s), #"
            + ", #".join(str(t.number) for t in front)
            + f"; `nnsweep status {study_name}` lists them"
        )
    typer.echo(
        f"browse: {_browse(study_name, tracking_uri)}   export: nnsweep export "
        f"{study_name} --out exports/{study_name}"
    )


def _browse(study_name: str, tracking_uri: str | None) -> str:
    """Where to look at the runs: on an MLflow server, the runs table's URL sorted by the
    objective (as `nnsweep ui` prints it); on a local store, the `nnsweep ui` command."""
    from nnsweep.stores import resolve_tracking_uri
    from nnsweep.ui.server import server_runs_url

    try:
        url = server_runs_url(resolve_tracking_uri(tracking_uri), study_name)
    except Exception:  # a hint after a finished sweep must not fail it: fall back to the command
        url = None
    return mask_url(url) if url else f"nnsweep ui{uri_flag(tracking_uri)}"


def _run_jobs(
    sweep: Path,
    prepared: Prepared,
    plan: WorkerPlan,
    overrides: dict[str, Any],
    progress: SweepProgress,
) -> JobsResult:
    from nnsweep.sweep.workers import run_jobs

    spec = prepared.spec
    done = run_jobs(
        sweep,
        prepared,
        plan=plan,
        progress=progress,
        overrides=overrides,
        echo=lambda line: typer.echo(line, err=True),
    )
    if done.done_before:
        _already_done(done.study_name, spec.trials, done.states.get("COMPLETE", 0))
    else:
        states = ", ".join(f"{n} {s}" for s, n in done.states.items())
        workers = f"{done.jobs} worker{'s' * (done.jobs != 1)}"
        typer.echo(f"study {done.study_name}: {states or 'no trials'} ({workers})")
    return done


def status(
    study: Annotated[
        str | None, typer.Argument(metavar="[STUDY]", help="Study name [default: all studies].")
    ] = None,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Trial counts by state and the best value, for one study or all of them, with each
    study's task and objective (``minimize val_mae``, ``maximize val_accuracy``). A study with
    a second objective (objective.also) is ranked by its primary value, and a line under the
    table gives its Pareto front: its size and trials, best primary value first."""
    from nnsweep.study.status import study_summaries

    storage_url, _ = resolve_stores(storage, tracking_uri)
    summaries = study_summaries(storage_url, [study] if study else None)
    if as_json:
        typer.echo(json.dumps(summaries[0] if study else summaries, indent=2))
        return
    if not summaries:
        typer.echo(f"no studies in {mask_url(storage_url)}; start one with `nnsweep run SWEEP`")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("study", "task", "COMPLETE", "PRUNED", "FAIL", "RUNNING", "best", "metric")
    for s in summaries:
        st, multi_s = s["states"], "also" in s
        best = "—"
        if s["best"]:
            value = s["best"]["value"]
            shown = f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"
            best = f"{shown} (#{s['best']['number']})"
        table.add_row(
            escape(s["study"]),  # names come from the storage: any text, never markup
            s.get("task") or "—",
            str(st["COMPLETE"]),
            str(st["PRUNED"]),
            str(st["FAIL"]),
            str(st["RUNNING"]),
            best,
            escape(f"{s['direction']} {s['metric']}" + (f", min {s.get('also')}" * multi_s)),
        )
    Console().print(table)
    for s in summaries:  # two objectives: the front under the table, one line per study
        if "also" in s:
            typer.echo(_front_line(s))


def _front_line(summary: dict[str, Any], shown: int = 12) -> str:
    """``mo: Pareto front of val_accuracy and params: 3 trials, #4 #1 #7`` (best primary
    first)."""
    front = summary.get("front") or []
    numbers = " ".join(f"#{p['number']}" for p in front[:shown]) + (" …" * (len(front) > shown))
    return (
        f"{summary['study']}: Pareto front of {summary['metric']} and {summary['also']}: "
        f"{len(front)} trial{'s' * (len(front) != 1)}" + (f", {numbers}" if front else "")
    )


def best(
    study: Annotated[str, typer.Argument(help="Study name.")],
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
    as_json: JsonFlag = False,
) -> None:
    """The best COMPLETE trial: number, value (the objective it was scored with, best in the
    objective's direction), params and MLflow run id. A study with a second objective
    (objective.also) is ranked by its primary value, and its Pareto front follows as a table:
    trial, both values, run id, the best-primary trial marked (--json: also, also_value and
    front)."""
    from nnsweep.results.trials import scoring_of
    from nnsweep.study.status import best_summary
    from nnsweep.study.storage import load_study

    storage_url, _ = resolve_stores(storage, tracking_uri)
    found = load_study(study, storage_url)
    info = best_summary(found)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    scoring = scoring_of(found)
    typer.echo(
        f"trial #{info['number']}  {scoring.value_label} {info['value']:.6g} "
        f"({scoring.direction}, {scoring.kind})  run {info['run_id']}"
    )
    for key, value in info["params"].items():
        typer.echo(f"  {key:<14} {value}")
    if "front" in info:
        for line in _front_lines(info, scoring.metric):
            typer.echo(line)


def _front_lines(info: dict[str, Any], metric: str) -> list[str]:
    """``nnsweep best``'s Pareto-front table: one line per front trial, best primary first."""
    from nnsweep.results.table import fmt_also, fmt_score

    also, front = str(info["also"]), info["front"]
    width = max(len(metric), 10)
    lines = [
        f"Pareto front: {len(front)} trial{'s' if len(front) != 1 else ''} no other beats on "
        f"both {metric} and {also} (* best {metric})",
        f"  {'trial':>7}  {metric:>{width}}  {also:>12}  run",
    ]
    for p in front:
        mark = "*" if p["number"] == info["number"] else " "
        lines.append(
            f"  {mark}{'#' + str(p['number']):>6}  {fmt_score(p['value']):>{width}}  "
            f"{fmt_also(p['also']):>12}  {p['run_id'] or '—'}"
        )
    return lines
