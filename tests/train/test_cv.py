"""K-fold cross-validation: the folds, the trial value as the mean of fold values, the pruning
rule, the MLflow curves, export's refit, and a resume with other folds refused."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from mlflow import MlflowClient

from nnsweep.data.folds import fold_indices, make_folds
from nnsweep.data.load import load_dataset
from nnsweep.errors import StorageError
from nnsweep.spec.config import parse_spec
from nnsweep.study.storage import create_or_resume
from nnsweep.track.tracker import Tracker
from nnsweep.train.cv import mean_history
from nnsweep.train.objective import Objective
from nnsweep.train.steps import fit_steps
from tests._tables import write_table
from tests.conftest import CliResult, Stores

K = 3
EPOCHS = 3
SEED = 7


def cv_sweep(tmp_path: Path, table: Path, name: str = "cv", **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": name,
        "dataset": {"path": str(table), "target": "label", "validation": {"folds": K}},
        "trials": 1,
        "seed": SEED,
        "sampler": "random",
        "pruner": "none",
        "train": {"epochs": EPOCHS, "batch_size": 16},
        "space": {"units": 8, "learning_rate": 0.01},
        **changes,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def curve(client: MlflowClient, run_id: str, key: str) -> list[float]:
    points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return [float(m.value) for m in points]


# -- the folds (no training) ----------------------------------------------------------------
def test_folds_are_sklearns_stratified_folds_of_the_training_part(tmp_path: Path) -> None:
    from sklearn.model_selection import StratifiedKFold

    table = write_table(tmp_path, "multiclass", n=150)
    spec = parse_spec(yaml.safe_dump(yaml.safe_load(cv_sweep(tmp_path, table).read_text())))
    data = load_dataset(spec.dataset, seed=SEED)
    assert data.folds == K and data.sizes["val"] == 0 and data.scored_rows == data.sizes["train"]
    assert data.sizes["train"] + data.sizes["test"] == 150
    by_hand = StratifiedKFold(n_splits=K, shuffle=True, random_state=SEED)
    folds = make_folds(data, SEED)
    for fold, (train, val) in zip(
        folds, by_hand.split(np.zeros(len(data.y_train)), data.y_train), strict=True
    ):
        assert np.array_equal(fold.train_index, np.sort(train))
        assert np.array_equal(fold.val_index, np.sort(val))
        assert np.array_equal(fold.data.y_val, data.y_train[np.sort(val)])
    assert sorted(np.concatenate([f.val_index for f in folds]).tolist()) == list(
        range(len(data.y_train))
    )


def test_each_folds_preprocessing_is_fitted_on_its_training_rows_only(tmp_path: Path) -> None:
    table = write_table(tmp_path, "regression", n=120)
    data = load_dataset(parse_spec(cv_sweep(tmp_path, table).read_text()).dataset, seed=SEED)
    numeric = np.asarray(data.x_train["numeric"])
    names = [c.name for c in data.schema.numeric]  # type: ignore[union-attr]
    j = names.index("x1")  # no missing cells: mean and std by hand
    for fold in make_folds(data, SEED):
        rows = numeric[fold.train_index, j].astype(np.float64)
        column = fold.data.schema.numeric[j]  # type: ignore[union-attr]
        assert column.mean == pytest.approx(rows.mean()) and column.std == pytest.approx(rows.std())
        assert column.median == pytest.approx(np.median(rows))
        assert column.mean != pytest.approx(data.schema.numeric[j].mean, abs=1e-9)  # type: ignore[union-attr]
        colour = next(c for c in fold.data.schema.categorical)  # type: ignore[union-attr]
        assert set(colour.vocabulary) <= {"red", "green", "blue"}


def test_regression_folds_are_seeded_kfold() -> None:
    from sklearn.model_selection import KFold

    from nnsweep.tasks import REGRESSION, Task

    y = np.linspace(0, 1, 23)
    ours = fold_indices(y, Task(REGRESSION), 4, seed=3)
    theirs = KFold(n_splits=4, shuffle=True, random_state=3).split(y.reshape(-1, 1))
    for (a, b), (c, d) in zip(ours, theirs, strict=True):
        assert np.array_equal(a, np.sort(c)) and np.array_equal(b, np.sort(d))


def test_mean_history_carries_a_stopped_fold_forward() -> None:
    """A fold that stopped early counts with its last value later (no survivor curve); a
    non-finite value is left out of its epoch's mean."""
    folds = [
        {"val_accuracy": [0.5, 0.7, 0.8]},
        {"val_accuracy": [0.6, 0.9]},  # stopped early: 0.9 at epoch 3 too
        {"val_accuracy": [math.nan, 0.5, 0.6]},
    ]
    mean = mean_history(folds)["val_accuracy"]
    assert mean == pytest.approx([0.55, 0.7, (0.8 + 0.9 + 0.6) / 3])
    # the mean curve's best never exceeds the mean of the folds' bests (the trial's value)
    bests = [max(v for v in f["val_accuracy"] if math.isfinite(v)) for f in folds]
    assert max(mean) <= sum(bests) / len(bests)


def test_a_resume_with_other_folds_or_a_holdout_is_refused(tmp_path: Path, stores: Stores) -> None:
    base = "name: s\ndataset: {path: t.csv, target: y, task: binary, validation: %s}\ntrials: 2\n"
    first = parse_spec(base % "{folds: 3}")
    study = create_or_resume(first, stores.storage, "s")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    create_or_resume(parse_spec(base % "{folds: 3}"), stores.storage, "s")  # same: resumes
    for other, shown in (("{folds: 5}", "'5 folds'"), ("0.2", "0.2")):
        with pytest.raises(StorageError, match=rf"dataset.validation '3 folds' \(now {shown}\)"):
            create_or_resume(parse_spec(base % other), stores.storage, "s")


# -- a cross-validated sweep ---------------------------------------------------------------
@pytest.mark.slow
def test_the_trial_value_is_the_mean_of_the_folds_values_by_hand(
    tmp_path: Path, stores: Stores, cli: Callable[..., CliResult]
) -> None:
    """One trial, 3 folds, on a 150-row table: the value equals the mean over folds of each
    fold's best val_accuracy, read back from the fold curves in MLflow; every fold's accuracy
    counts whole rows of its own validation fold; the reports follow the stated rule."""
    table = write_table(tmp_path, "multiclass", n=150)
    sweep = cv_sweep(tmp_path, table)
    res = cli("run", sweep, *stores.args, "--jobs", "1", "--quiet")
    assert res.code == 0, res.err
    assert f"{K}-fold cross-validation" in res.out
    study = optuna.load_study(study_name="cv", storage=stores.storage)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE"
    client = MlflowClient(stores.tracking_uri)
    run_id = trial.user_attrs["nnsweep.mlflow_run_id"]

    data = load_dataset(parse_spec(sweep.read_text()).dataset, seed=SEED)
    folds = make_folds(data, SEED)
    fold_curves = [curve(client, run_id, f"fold{k}_val_accuracy") for k in range(K)]
    best = []
    for fold, values in zip(folds, fold_curves, strict=True):
        assert len(values) == EPOCHS
        n_val = len(fold.val_index)
        assert all(abs(v * n_val - round(v * n_val)) < 1e-3 for v in values)  # whole rows
        best.append(max(values))
    assert trial.value == pytest.approx(statistics.fmean(best), abs=1e-9)
    assert curve(client, run_id, "cv_val_accuracy") == pytest.approx(best)
    metrics = client.get_run(run_id).data.metrics
    assert metrics["cv_std_val_accuracy"] == pytest.approx(float(np.std(best)))
    assert metrics["cv_folds"] == K and metrics["objective_val_accuracy"] == trial.value
    best_epochs = [c.index(max(c)) + 1 for c in fold_curves]
    assert metrics["weights_epoch"] == max(1, round(statistics.fmean(best_epochs)))
    # the usual key holds the fold mean at each epoch
    mean_curve = curve(client, run_id, "val_accuracy")
    assert mean_curve == pytest.approx(
        [statistics.fmean(c[e] for c in fold_curves) for e in range(EPOCHS)]
    )
    # pruning reports: step fold * E + epoch, the mean over folds so far; the last is the value
    steps = sorted(trial.intermediate_values)
    assert steps == [k * EPOCHS + e for k in range(K) for e in range(1, EPOCHS + 1)]
    for k in range(K):
        for e in range(1, EPOCHS + 1):
            so_far = [*best[:k], max(fold_curves[k][:e])]
            assert trial.intermediate_values[k * EPOCHS + e] == pytest.approx(
                statistics.fmean(so_far)
            )
    assert trial.intermediate_values[steps[-1]] == pytest.approx(trial.value)


@pytest.mark.slow
def test_pruning_a_cross_validated_trial_fires_on_the_folds_so_far(
    tmp_path: Path, stores: Stores
) -> None:
    """A threshold no accuracy reaches prunes at the first report (fold 1, epoch 1); the
    reason names the fold, and the run holds that fold's first epoch only."""
    table = write_table(tmp_path, "binary", n=120)
    spec = parse_spec(cv_sweep(tmp_path, table, name="cvp").read_text())
    data = load_dataset(spec.dataset, seed=SEED)
    tracker = Tracker(stores.tracking_uri, spec.name)
    parent = tracker.start_parent(spec.name, tags={}, params={})
    pruner = optuna.pruners.ThresholdPruner(lower=1.5)  # val_accuracy never reaches 1.5
    study = optuna.create_study(direction="maximize", pruner=pruner)
    objective = Objective(spec.for_task(data.task.kind), data, tracker, parent, fit_steps(tracker))
    study.optimize(objective, n_trials=1)
    tracker.flush()
    (trial,) = study.trials
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [1]
    run = tracker.client.get_run(trial.user_attrs["nnsweep.mlflow_run_id"])
    assert run.data.tags["nnsweep.fit_reason"] == (
        f"pruned at fold 1 of {K}, epoch 1 by the threshold pruner"
    )
    assert len(curve(tracker.client, run.info.run_id, "fold0_val_accuracy")) == 1
    assert not curve(tracker.client, run.info.run_id, "fold1_val_accuracy")
    assert "objective_val_accuracy" not in run.data.metrics


@pytest.mark.slow
def test_export_after_cv_refits_on_the_training_part_and_reads_the_test_split_once(
    tmp_path: Path, stores: Stores, cli: Callable[..., CliResult]
) -> None:
    table = write_table(tmp_path, "binary", n=150)
    sweep = cv_sweep(tmp_path, table, name="cve", trials=2, space={"units": [4, 8]})
    assert cli("run", sweep, *stores.args, "--jobs", "1", "--quiet").code == 0
    out = tmp_path / "export"
    res = cli("export", "cve", "--out", out, *stores.args)
    assert res.code == 0, res.err
    card = json.loads((out / "model_card.json").read_text())
    study = optuna.load_study(study_name="cve", storage=stores.storage)
    best = study.best_trial
    client = MlflowClient(stores.tracking_uri)
    metrics = client.get_run(best.user_attrs["nnsweep.mlflow_run_id"]).data.metrics
    data = load_dataset(parse_spec(sweep.read_text()).dataset, seed=SEED)
    # refit on every non-test row, for the epochs the folds chose
    assert card["retrain"]["data"] == "the whole training part"
    assert card["retrain"]["train_size"] == data.sizes["train"] == 150 - data.sizes["test"]
    assert card["retrain"]["epochs"] == card["weights"]["epoch"] == int(metrics["weights_epoch"])
    cv = card["cross_validation"]
    assert cv["folds"] == K and cv["rows"] == data.sizes["train"] and len(cv["fold_values"]) == K
    assert cv["mean"] == pytest.approx(best.value) and cv["std"] == pytest.approx(
        float(np.std(cv["fold_values"]))
    )
    assert card["test"]["n"] == data.sizes["test"]
    assert card["test_reads"]["count"] == 1  # the ledger: one read of the test split
    page = (out / "MODEL_CARD.md").read_text()
    assert f"± {cv['std']:.4f} (mean ± std over {K} folds" in page
    assert f"scored by {K}-fold cross-validation" in page
    assert "fold0_" not in page  # the folds' curves stay on the run, not in the diagnosis
    # the default export of a small table averages its best trials (here both), each refit on
    # the whole training part for the epochs its folds chose
    assert card["ensemble_choice"]["asked"] == "auto" and card["ensemble"]["k"] == 2
    members = card["ensemble"]["members"]
    assert [m["trial"] for m in members][0] == best.number and len(members) == 2
    assert all(m["source"].startswith("retrained on train+validation") for m in members)
    assert members[0]["epochs"] == card["retrain"]["epochs"]
    assert all(m["epochs"] >= 1 for m in members)
    assert card["ensemble"]["best_single"]["n"] == card["test"]["n"]
