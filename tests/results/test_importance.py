"""Parameter importances on real Optuna storages: the parameter that drives the value ranks
first (Optuna's seeded fANOVA, as :mod:`nnsweep.results.importance` calls it), history copied
from an earlier study is left out, too few trials give a note instead of an error, and the
importances and bound warnings are logged on a parent run in a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution

from nnsweep.names import BOUNDS_TAG, HISTORY_ATTR
from nnsweep.results.importance import (
    IMPORTANCES_CSV,
    IMPORTANCES_PNG,
    LEARNED_MD,
    METRIC_PREFIX,
    importances,
    log_learned,
    what_we_learned,
    write_learned,
)
from nnsweep.study.storage import load_study, open_storage

DISTS = {"driver": FloatDistribution(0.0, 1.0), "noise": FloatDistribution(0.0, 1.0)}


def _study(url: str, n: int, *, name: str = "imp", seed: int = 0) -> optuna.Study:
    """``n`` trials whose value is ``driver`` squared (a peak at 0.6); ``noise`` is drawn but
    plays no part."""
    study = optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize")
    rng = np.random.default_rng(seed)
    for _ in range(n):
        params = {"driver": float(rng.uniform()), "noise": float(rng.uniform())}
        value = 1.0 - (params["driver"] - 0.6) ** 2
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTS, value=value))
    return study


def test_the_parameter_that_drives_the_value_ranks_first(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 'optuna.db'}", 30)
    found, why = importances(study)
    assert why is None
    assert list(found) == ["driver", "noise"]
    assert found["driver"] > 0.9 and found["noise"] < 0.1
    assert sum(found.values()) == pytest.approx(1.0)
    # the same figures as Optuna's own seeded fANOVA on the study
    direct = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    assert found == pytest.approx(dict(direct))
    learned = what_we_learned(study)
    assert learned.n_complete == 30 and learned.importances == found
    assert learned.lines()[1].startswith("  what mattered (fANOVA importance): driver 0.9")


def test_history_from_an_earlier_study_is_left_out(tmp_path: Path) -> None:
    """Copied trials where ``noise`` alone decides must not change what this study found."""
    url = f"journal:///{tmp_path / 'optuna.log'}"
    study = _study(url, 30)
    alone, _ = importances(study)
    rng = np.random.default_rng(1)
    for _ in range(30):
        params = {"driver": float(rng.uniform()), "noise": float(rng.uniform())}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=DISTS,
                value=10 * params["noise"],
                user_attrs={HISTORY_ATTR: "earlier"},
            )
        )
    found, why = importances(load_study("imp", url))  # read back from the journal file
    assert why is None and found == pytest.approx(alone)
    assert what_we_learned(study).n_complete == 30


def test_too_few_trials_give_the_note_not_an_error(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 'optuna.db'}", 1)
    found, why = importances(study)
    assert found == {} and why == "importances need 2 COMPLETE trials, found 1"
    learned = what_we_learned(study)
    assert learned.importances == {} and learned.warnings == [] and learned.top == 0
    assert learned.notes == [
        "importances need 2 COMPLETE trials, found 1",
        "bound warnings need 3 COMPLETE trials, found 1",
    ]
    assert "  note: importances need 2 COMPLETE trials, found 1" in learned.lines()
    _, files = write_learned(study, tmp_path)  # only the block, no table or plot
    assert files == [LEARNED_MD]
    assert not (tmp_path / IMPORTANCES_CSV).exists()
    assert "importances need 2 COMPLETE trials" in (tmp_path / LEARNED_MD).read_text()


def test_written_and_logged_on_the_parent_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    study = _study(f"sqlite:///{tmp_path / 'optuna.db'}", 30)
    learned, files = write_learned(study, tmp_path)
    assert files == [IMPORTANCES_CSV, IMPORTANCES_PNG, LEARNED_MD]
    rows = (tmp_path / IMPORTANCES_CSV).read_text().splitlines()
    assert rows[0] == "param,importance" and rows[1].startswith("driver,0.9")
    assert (tmp_path / IMPORTANCES_PNG).stat().st_size > 1000
    assert "| driver | 0.9" in (tmp_path / LEARNED_MD).read_text()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("imp", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    log_learned(client, run_id, learned)
    data = client.get_run(run_id).data
    assert data.metrics == pytest.approx(
        {f"{METRIC_PREFIX}{p}": v for p, v in learned.importances.items()}
    )
    assert data.metrics[f"{METRIC_PREFIX}driver"] > data.metrics[f"{METRIC_PREFIX}noise"]
    # the peak at 0.6 lies inside driver's range: no warning
    assert learned.warnings == [] and data.tags[BOUNDS_TAG] == "none"


def test_a_flat_objective_gives_a_note_not_an_error(tmp_path: Path) -> None:
    """Every trial scored the same: fANOVA has no variance to share out."""
    study = optuna.create_study(
        storage=open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), direction="maximize"
    )
    for i in range(5):
        params = {"driver": i / 10, "noise": 0.5 + i / 20}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTS, value=0.7))
    found, why = importances(study)
    assert found == {} and why is not None and why.startswith("importances not computed: ")
    learned = what_we_learned(study)
    assert learned.top == 5 and f"  note: {why}" in learned.lines()
