"""Optuna side: storage resolution and checks, samplers, pruners, dead-trial reaping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nnsweep.errors import NoCompleteTrialError, StorageError, StudyNotFoundError
from nnsweep.spec.config import parse_spec
from nnsweep.stores import check_storage, resolve_storage
from nnsweep.study.samplers import grid_space, make_pruner, make_sampler
from nnsweep.study.status import read_summaries, study_summaries
from nnsweep.study.storage import (
    best_trial,
    count_states,
    create_or_resume,
    load_study,
    reap_dead_local_trials,
    summarize,
)

BASE = "name: s\ndataset: mnist_5k\ntrials: 3\n"


def test_default_storage_sits_beside_the_mlflow_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NNSWEEP_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_storage(None, "sqlite:///mlflow.db") == "journal:///optuna.log"
    assert resolve_storage(None, "sqlite:////data/x/mlflow.db") == "journal:////data/x/optuna.log"
    assert resolve_storage(None, "http://mlflow:5000") == "journal:///optuna.log"
    monkeypatch.setenv("NNSWEEP_STORAGE", "sqlite:///env.db")
    assert resolve_storage(None, "sqlite:///mlflow.db") == "sqlite:///env.db"
    assert resolve_storage("sqlite:///flag.db", "sqlite:///mlflow.db") == "sqlite:///flag.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////no/such/dir/optuna.db", "folder /no/such/dir does not exist"),
        ("optuna.db", "not a URL"),
        ("postgresql+psycopg://u:topsecret@127.0.0.1:1/x", "cannot connect"),
        ("nosuchdialect://h/x", "cannot connect"),
    ],
)
def test_bad_storage_is_refused(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as info:
        check_storage(url)
    assert "topsecret" not in str(info.value)


def test_optuna_and_mlflow_never_share_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    with pytest.raises(StorageError, match="Alembic"):
        check_storage(url, url)


@pytest.mark.parametrize(
    ("sampler", "cls"),
    [
        ("tpe", "TPESampler"),
        ("random", "RandomSampler"),
        ("cmaes", "CmaEsSampler"),
        ("qmc", "QMCSampler"),
    ],
)
def test_make_sampler(sampler: str, cls: str) -> None:
    spec = parse_spec(BASE + f"sampler: {sampler}\n")
    assert type(make_sampler(spec)).__name__ == cls


def test_grid_space_expands_units_per_layer() -> None:
    spec = parse_spec(
        BASE
        + "sampler: grid\nspace: {n_layers: [1, 2], units: [8, 16], activation: [relu, tanh]}\n"
    )
    space = grid_space(spec)
    assert space == {
        "n_layers": [1, 2],
        "units_0": [8, 16],
        "units_1": [8, 16],
        "activation": ["relu", "tanh"],
    }
    assert type(make_sampler(spec)).__name__ == "GridSampler"


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [
        ("median", "MedianPruner"),
        ("hyperband", "HyperbandPruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("none", "NopPruner"),
    ],
)
def test_make_pruner(pruner: str, cls: str) -> None:
    assert type(make_pruner(parse_spec(BASE + f"pruner: {pruner}\n"))).__name__ == cls


def test_resume_loads_the_same_study_and_rejects_another_direction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec = parse_spec(BASE)
    study = create_or_resume(spec, url, "s")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    again = create_or_resume(spec, url, "s")
    assert len(again.trials) == 1
    with pytest.raises(StorageError, match="already exists and is maximized"):
        create_or_resume(parse_spec(BASE + "objective: val_loss\n"), url, "s")


def test_load_study_lists_what_exists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    create_or_resume(parse_spec(BASE), url, "alpha")
    with pytest.raises(StudyNotFoundError, match=r"no study 'beta' .* \(studies: alpha\)"):
        load_study("beta", url)


def test_best_trial_needs_a_complete_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = create_or_resume(parse_spec(BASE), url, "s")
    with pytest.raises(NoCompleteTrialError, match="no COMPLETE trial"):
        best_trial(study)
    study.add_trial(
        optuna.trial.create_trial(
            value=0.9,
            params={},
            distributions={},
            user_attrs={"nnsweep.params": {"n_layers": 1}, "nnsweep.mlflow_run_id": "abc"},
        )
    )
    assert best_trial(study) == {
        "number": 0,
        "value": 0.9,
        "params": {"n_layers": 1},
        "run_id": "abc",
    }
    summary = summarize(study)
    assert summary["states"]["COMPLETE"] == 1 and summary["best"]["value"] == 0.9


def test_trial_of_a_dead_local_process_is_failed_and_requeued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = create_or_resume(parse_spec(BASE), url, "s")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr("nnsweep.host", socket.gethostname())
    orphan.set_user_attr("nnsweep.pid", dead.pid)
    alive = study.ask()
    alive.set_user_attr("nnsweep.host", socket.gethostname())
    alive.set_user_attr("nnsweep.pid", os.getpid())
    assert reap_dead_local_trials(study) == [orphan.number]
    states = {t.number: t.state for t in study.trials}
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].params == study.trials[orphan.number].params


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_count_states_matches_the_trials_on_every_storage(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db" if kind == "sqlite" else f"journal:///{tmp_path}/j.log"
    study = create_or_resume(parse_spec(BASE), url, "s")
    other = create_or_resume(parse_spec(BASE), url, "other")
    other.add_trial(optuna.trial.create_trial(value=0.1, params={}, distributions={}))
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    for i, state in enumerate(states):
        value = 0.5 + i / 10 if state == TrialState.COMPLETE else None
        study.add_trial(
            optuna.trial.create_trial(
                state=state, value=value, params={}, distributions={}, intermediate_values={1: 0.3}
            )
        )
    study.ask()
    assert count_states(study) == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 1, "RUNNING": 1}
    summary = summarize(study)
    assert summary["n_trials"] == 5 and summary["states"]["WAITING"] == 0
    assert summary["best"] == {"number": 3, "value": 0.8}


def test_read_summaries_answers_like_optuna_without_loading_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec = parse_spec(BASE)
    for name, values in (("up", [0.2, 0.9, 0.5]), ("empty", [])):
        study = create_or_resume(spec, url, name)
        for v in values:
            study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.PRUNED, params={}, distributions={})
        )
    down = optuna.create_study(study_name="down", storage=url, direction="minimize")
    for v in (0.3, 0.1, float("inf")):
        down.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}))
    fast = read_summaries(url)
    assert fast == [summarize(load_study(n, url)) for n in ("down", "empty", "up")]
    assert fast[2]["best"] == {"number": 1, "value": 0.9} and fast[1]["best"] is None
    assert fast[0]["best"] == {"number": 1, "value": 0.1} and fast[0]["metric"] == "value"
    assert read_summaries(url, ["up"]) == [fast[2]]
    assert read_summaries(url, ["nope"]) is None  # Optuna words the error
    assert read_summaries(f"sqlite:///{tmp_path}/missing.db") is None
    assert read_summaries(f"journal:///{tmp_path}/j.log") is None


def test_study_summaries_takes_sql_when_it_can_and_optuna_otherwise(tmp_path: Path) -> None:
    spec = parse_spec(BASE)
    urls = {kind: f"{kind}:///{tmp_path}/{kind}.x" for kind in ("sqlite", "journal")}
    for url in urls.values():
        study = create_or_resume(spec, url, "s")
        study.add_trial(optuna.trial.create_trial(value=0.7, params={}, distributions={}))
    assert read_summaries(urls["journal"]) is None  # no SQL path: Optuna answers
    for url in urls.values():
        (summary,) = study_summaries(url)
        assert summary == summarize(load_study("s", url))
        assert summary["metric"] == "val_accuracy" and summary["best"]["value"] == 0.7
        assert study_summaries(url, ["s"]) == [summary]
        with pytest.raises(StudyNotFoundError, match="no study 'ghost'"):
            study_summaries(url, ["ghost"])


def test_a_reaped_trial_is_retried_once_even_when_reaped_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = create_or_resume(parse_spec(BASE), url, "s")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr("nnsweep.host", socket.gethostname())
    orphan.set_user_attr("nnsweep.pid", dead.pid)
    other = optuna.load_study(study_name="s", storage=url)  # a second process's view
    assert reap_dead_local_trials(study) == [orphan.number]
    assert reap_dead_local_trials(other) == []
    states = Counter(t.state for t in study.get_trials())
    assert states == {TrialState.FAIL: 1, TrialState.WAITING: 1}


def _with_a_trial(url: str, spec_text: str, name: str = "s") -> optuna.Study:
    study = create_or_resume(parse_spec(spec_text), url, name)
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    return study


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("seed: 7\n", "seed 0 (now 7)"),
        ("dataset: {name: mnist_5k, validation: 0.2}\n", "dataset.validation 0.1 (now 0.2)"),
        (
            "objective: {metric: val_accuracy, reduce: last}\n",
            "objective.reduce 'best' (now 'last')",
        ),
        ("train: {epochs: 20}\n", "max_epochs 10 (now 20)"),
    ],
)
def test_resume_with_incomparable_settings_is_refused_and_writes_nothing(
    tmp_path: Path, change: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = _with_a_trial(url, BASE)
    attrs = dict(study.user_attrs)
    base = "\n".join(line for line in BASE.splitlines() if not line.startswith("dataset"))
    changed = base + "\n" + ("" if change.startswith("dataset") else "dataset: mnist_5k\n") + change
    with pytest.raises(StorageError, match="was run with") as info:
        create_or_resume(parse_spec(changed), url, "s")
    text = str(info.value)
    assert message in text and "--study NEW_NAME" in text and "\n" not in text
    again = optuna.load_study(study_name="s", storage=url)
    assert len(again.trials) == 1 and again.user_attrs == attrs


def test_resume_with_comparable_changes_is_allowed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    _with_a_trial(url, BASE)
    wider = BASE.replace("trials: 3", "trials: 9") + (
        "timeout: 60\nsampler: random\npruner: none\nspace: {units: [8, 16, 32]}\n"
    )
    study = create_or_resume(parse_spec(wider), url, "s")
    assert len(study.trials) == 1
    assert study.user_attrs["nnsweep.spec"]["trials"] == 3  # the first spec stays


def test_a_study_without_trials_takes_the_new_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    create_or_resume(parse_spec(BASE), url, "s")
    study = create_or_resume(parse_spec(BASE + "seed: 7\n"), url, "s")
    assert study.user_attrs["nnsweep.comparable"]["seed"] == 7


def test_a_study_from_before_the_settings_were_stored_is_checked_by_its_spec(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec = parse_spec(BASE)
    old = optuna.create_study(study_name="old", storage=url, direction="maximize")
    old.set_user_attr("nnsweep.spec", spec.model_dump(mode="json"))
    old.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    with pytest.raises(StorageError, match=r"seed 0 \(now 3\)"):
        create_or_resume(parse_spec(BASE + "seed: 3\n"), url, "old")
    assert "nnsweep.comparable" not in optuna.load_study(study_name="old", storage=url).user_attrs
    resumed = create_or_resume(spec, url, "old")
    assert resumed.user_attrs["nnsweep.comparable"]["seed"] == 0  # filled in on a resume


def test_other_data_under_the_same_settings_is_refused_by_its_fingerprint(tmp_path: Path) -> None:
    from dataclasses import replace

    from nnsweep.data.load import sweep_dataset

    url = f"sqlite:///{tmp_path}/optuna.db"
    spec = parse_spec(BASE)
    data = sweep_dataset(spec)
    study = create_or_resume(spec, url, "s", dataset=data)
    assert study.user_attrs["nnsweep.comparable"]["dataset.fingerprint"] == data.fingerprint
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    create_or_resume(spec, url, "s", dataset=data)  # the same data: fine
    with pytest.raises(StorageError, match="dataset.fingerprint"):
        create_or_resume(spec, url, "s", dataset=replace(data, fingerprint="f" * 64))


def _draws(study: optuna.Study, n: int) -> list[float]:
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(trial.suggest_float("lr", 1e-5, 1.0, log=True))
        study.tell(trial, 0.5)
    return out


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes"])
def test_one_process_on_fresh_stores_draws_the_same_trials_every_time(
    tmp_path: Path, sampler: str
) -> None:
    spec = parse_spec(BASE + f"sampler: {sampler}\n")
    first = _draws(create_or_resume(spec, f"sqlite:///{tmp_path}/a.db", "s"), 4)
    again = _draws(create_or_resume(spec, f"sqlite:///{tmp_path}/b.db", "s"), 4)
    assert first == again and len(set(first)) == 4


def test_processes_sharing_a_study_draw_different_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec = parse_spec(BASE + "sampler: random\n")
    one, two = (create_or_resume(spec, url, "s") for _ in range(2))  # as two processes would
    a, b = one.ask(), two.ask()  # both start before either finishes
    assert a.number != b.number
    assert a.suggest_float("lr", 1e-5, 1.0, log=True) != b.suggest_float("lr", 1e-5, 1.0, log=True)
    resumed = create_or_resume(spec, url, "s").ask()  # a resume does not replay trial 0
    assert resumed.suggest_float("lr", 1e-5, 1.0, log=True) not in (
        a.params["lr"],
        b.params["lr"],
    )


def test_a_multi_objective_study_has_directions_and_metric_names(tmp_path: Path) -> None:
    from nnsweep.study.objectives import also_metric, is_multi

    url = f"sqlite:///{tmp_path}/optuna.db"
    study = create_or_resume(parse_spec(BASE + "objective: {also: latency}\n"), url, "s")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "latency_ms"]
    assert is_multi(study) and also_metric(study) == "latency_ms"
    study.add_trial(optuna.trial.create_trial(values=[0.8, 2.0]))
    study.add_trial(optuna.trial.create_trial(values=[0.9, 3.0]))
    again = create_or_resume(parse_spec(BASE + "objective: {also: latency}\n"), url, "s")
    assert len(again.trials) == 2
    # the helpers every layer reads a study with: the best primary value, never best_trial
    assert best_trial(again)["number"] == 1 and best_trial(again)["value"] == 0.9
    summary = summarize(again)
    assert summary["direction"] == "maximize" and summary["best"] == {"number": 1, "value": 0.9}
    (listed,) = study_summaries(url)  # the status command's path answers too
    assert listed["best"] == {"number": 1, "value": 0.9}


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ("objective: {also: params}\n", "", "maximizes val_accuracy and minimizes params"),
        ("", "objective: {also: params}\n", "this sweep maximizes val_accuracy and minimizes"),
        ("objective: {also: params}\n", "objective: {also: latency}\n", "minimizes latency_ms"),
    ],
)
def test_resume_with_other_objectives_is_refused(
    tmp_path: Path, first: str, then: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    create_or_resume(parse_spec(BASE + first), url, "s")
    with pytest.raises(StorageError, match="objective.also") as err:
        create_or_resume(parse_spec(BASE + then), url, "s")
    assert message in str(err.value) and "--study" in str(err.value)


def test_make_sampler_nsga2() -> None:
    spec = parse_spec(BASE + "sampler: nsga2\nobjective: {also: params}\n")
    assert type(make_sampler(spec)).__name__ == "NSGAIISampler"


@pytest.mark.parametrize("also", ["", "objective: {also: params}\n"])
def test_a_grid_sweep_visits_every_point_once(tmp_path: Path, also: str) -> None:
    from nnsweep.study.samplers import sweep_sampler

    spec = parse_spec(
        BASE + also + "sampler: grid\nspace: {units: [3, 16, 64], n_layers: [1, 2]}\n"
    )
    study = optuna.create_study(
        sampler=sweep_sampler(spec), directions=["maximize", "minimize"][: 2 if also else 1]
    )

    def draw(trial: optuna.Trial) -> float | tuple[float, float]:
        trial.suggest_int("n_layers", 1, 2)
        trial.suggest_int("units_0", 3, 64)
        trial.suggest_int("units_1", 3, 64)
        return (0.5, 1.0) if also else 0.5

    study.optimize(draw, n_trials=18)  # 2 * 3 * 3 grid points (units_1 drawn for 1 layer too)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == 18
