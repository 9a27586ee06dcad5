"""`nnsweep export --ensemble K` on a real sweep: the exported model.keras is the mean of its K
members' logged models, the card gives the ensemble's and the best trial's own test figures,
K = 1 is the single best model, the default (auto) is 3 on a small table, and a K the study
cannot give is refused before any read."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.export._study import copy_stores, dataset_of, sweep

STUDY = "wine_ens"
TRIALS = 4
K = 3


def _export(stores: Any, out: Path, *args: str) -> tuple[int, str, str]:
    from nnsweep.cli.main import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export", STUDY, "--out", str(out), *args, *stores.args])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 4-trial sweep on wine (every trial logs its model), exported with no --ensemble (on
    this small table, auto: the mean of the 3 best) and, from a copy of the stores (a ledger
    with no read), with --ensemble 1."""
    root = tmp_path_factory.mktemp("ensemble")
    (root / "sweep").mkdir()
    stores, _ = sweep(root / "sweep", STUDY, trials=TRIALS)
    out: dict[str, Any] = {"root": root, "stores": stores}
    for k in (K, 1):
        copy = copy_stores(stores, root / f"k{k}")
        folder = root / f"k{k}" / "out"
        code, stdout, stderr = _export(copy, folder, *(["--ensemble", "1"] if k == 1 else []))
        assert code == 0, stderr
        card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        out[k] = {"stores": copy, "out": folder, "card": card, "stdout": stdout}
    return out


def _member_models(stores: Any, run_ids: list[str]) -> list[Any]:
    """Each run's logged Keras model, fetched from MLflow and loaded in plain Keras."""
    import tempfile

    import keras
    from mlflow import MlflowClient

    from nnsweep.track.models import MODEL_URI_TAG, download_model

    client = MlflowClient(tracking_uri=stores.tracking_uri)
    models = []
    for run_id in run_ids:
        uri = client.get_run(run_id).data.tags[MODEL_URI_TAG]
        with tempfile.TemporaryDirectory() as tmp:
            local = download_model(uri, tmp, stores.tracking_uri)
            models.append(keras.saving.load_model(next(Path(local).rglob("*.keras"))))
    return models


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == y).mean())


@pytest.mark.slow
def test_ensemble_is_the_mean_of_its_members(swept):
    """model.keras (plain Keras, safe mode) answers the mean of the K best trials' logged
    models' answers on the test rows; the members are the K best COMPLETE trials, best first."""
    import keras
    import optuna

    entry = swept[K]
    card = entry["card"]
    members = card["ensemble"]["members"]
    assert card["ensemble"]["k"] == K == len(members)
    study = optuna.load_study(study_name=STUDY, storage=entry["stores"].storage)
    done = sorted(
        (t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
        key=lambda t: (-t.value, t.number),
    )
    assert len(done) == TRIALS
    assert members[0]["trial"] == card["trial"] == study.best_trial.number
    assert {m["trial"] for m in members} == {t.number for t in done[:K]}
    assert all(m["source"] == "the sweep's trial" for m in members)

    data = dataset_of(entry["stores"], STUDY)
    ensemble = keras.saving.load_model(entry["out"] / "model.keras", safe_mode=True)
    answers = [
        np.asarray(m.predict(data.x_test, verbose=0), dtype=np.float64)
        for m in _member_models(entry["stores"], [m["run_id"] for m in members])
    ]
    got = np.asarray(ensemble.predict(data.x_test, verbose=0), dtype=np.float64)
    assert got.shape == answers[0].shape == (len(data.y_test), 3)
    # the members differ, so the mean is not any one of them
    assert max(np.abs(a - answers[0]).max() for a in answers[1:]) > 1e-3
    np.testing.assert_allclose(got, np.mean(answers, axis=0), atol=1e-5, rtol=0)
    assert len([layer for layer in ensemble.layers if isinstance(layer, keras.Model)]) == K


@pytest.mark.slow
def test_card_gives_the_ensembles_and_the_best_models_test_figures(swept):
    """The card's test figures are the ensemble's, ensemble.best_single the best trial's own,
    each equal to a computation from the models' answers; the page and the summary say both."""
    entry = swept[K]
    card = entry["card"]
    data = dataset_of(entry["stores"], STUDY)
    y = np.asarray(data.y_test)
    members = card["ensemble"]["members"]
    answers = [
        np.asarray(m.predict(data.x_test, verbose=0), dtype=np.float64)
        for m in _member_models(entry["stores"], [m["run_id"] for m in members])
    ]
    ens_acc = _accuracy(np.mean(answers, axis=0), y)
    single_acc = _accuracy(answers[0], y)
    assert card["test"]["n"] == len(y)
    assert card["test"]["accuracy"] == pytest.approx(ens_acc, abs=1e-9)
    assert card["ensemble"]["best_single"]["accuracy"] == pytest.approx(single_acc, abs=1e-9)
    # the same best model exported alone scores what the ensemble card calls the best alone
    alone = swept[1]["card"]
    assert "ensemble" not in alone and alone["trial"] == card["trial"]
    for key in ("accuracy", "loss", "n"):
        assert alone["test"][key] == pytest.approx(card["ensemble"]["best_single"][key], rel=1e-5)
    trials = ", ".join(f"#{m['trial']}" for m in members)
    line = (
        f"ensemble of {K} (trials {trials}): accuracy {ens_acc:.4f} vs the best trial alone "
        f"{single_acc:.4f} (same test rows)"
    )
    assert line in entry["stdout"]
    page = (entry["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Ensemble" in page and line in page
    assert f"; {card['parameter_count']:,} parameters in all." in page  # the members together
    assert f"- the best trial alone: accuracy {single_acc:.4f}" in page
    for m in members:
        assert f"| #{m['trial']} | {m['value']:.4f} | the sweep's trial |" in page
    # one read of the test split, recorded once, for both figures
    assert card["test_reads"]["count"] == 1
    assert "the mean of trials " + trials in card["test_reads"]["this"]["scored"]


@pytest.mark.slow
def test_ensemble_1_is_the_single_best_model(swept):
    """--ensemble 1 exports the best trial's own logged model: no ensemble section, the same
    answers as that model."""
    import keras

    entry = swept[1]
    card = entry["card"]
    assert "ensemble" not in card and "ensemble of" not in entry["stdout"]
    page = (entry["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Ensemble" not in page
    data = dataset_of(entry["stores"], STUDY)
    model = keras.saving.load_model(entry["out"] / "model.keras", safe_mode=True)
    (best,) = _member_models(entry["stores"], [card["mlflow"]["run_id"]])
    np.testing.assert_allclose(
        model.predict(data.x_test, verbose=0), best.predict(data.x_test, verbose=0), atol=1e-6
    )


@pytest.mark.slow
def test_the_default_on_a_small_table_is_the_mean_of_the_3_best(swept):
    """No --ensemble on wine (under 2,000 training rows): the mean of the 3 best trials, and
    the card, the page and the summary say that auto chose it and why; --ensemble 1 records
    what was asked."""
    auto = swept[K]["card"]
    assert auto["ensemble_choice"]["asked"] == "auto" and auto["ensemble_choice"]["k"] == K
    assert "training rows, below 2,000" in auto["ensemble_choice"]["why"]
    assert auto["ensemble"]["k"] == K
    assert swept[1]["card"]["ensemble_choice"] == {"asked": "1", "k": 1, "why": "as asked"}
    line = f"--ensemble auto: the mean of the {K} best trials ({auto['ensemble_choice']['why']};"
    assert line in swept[K]["stdout"]
    assert "--ensemble auto" not in swept[1]["stdout"]
    page = (swept[K]["out"] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"- chosen by {line}" in page


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, -1, TRIALS + 1, 21, "three", "2.5", ""])
def test_a_bad_ensemble_size_is_refused_and_nothing_is_written(swept, k, tmp_path):
    """K outside 1..20, above the COMPLETE trials or not a whole number: exit 2, one stderr
    line naming --ensemble and the fix; no folder, no test read recorded, no test metric
    logged."""
    import optuna
    from mlflow import MlflowClient

    from nnsweep.export.ledger import reads
    from nnsweep.names import RUN_ID_ATTR

    stores = copy_stores(swept["stores"], tmp_path / "stores")
    out = tmp_path / "out"
    code, stdout, stderr = _export(stores, out, "--ensemble", str(k))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"--ensemble {k}" in lines[0], stderr
    fix = f"give --ensemble {TRIALS} or fewer" if k == TRIALS + 1 else "--ensemble 5, or 1"
    assert fix in lines[0]
    assert not out.exists()
    study = optuna.load_study(study_name=STUDY, storage=stores.storage)
    assert reads(study) == []
    client = MlflowClient(tracking_uri=stores.tracking_uri)
    for trial in study.trials:
        run = client.get_run(trial.user_attrs[RUN_ID_ATTR])
        assert not any(key.startswith(("test_", "ensemble_test_", "gbm_test_"))
                       for key in run.data.metrics)  # fmt: skip


class _Data:
    """What :func:`nnsweep.export.ensemble.choose` reads of a dataset: its training part's
    size and whether it is a table."""

    def __init__(self, train: int, val: int, table: bool) -> None:
        self.y_train, self.y_val = np.zeros(train), np.zeros(val)
        self.schema = object() if table else None


def _study(complete: int, failed: int = 0) -> Any:
    import optuna

    study = optuna.create_study(direction="maximize")
    for i in range(complete):
        study.add_trial(optuna.trial.create_trial(value=i / 10, params={}, distributions={}))
    for _ in range(failed):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return study


@pytest.mark.parametrize(
    ("train", "val", "table", "multi", "complete", "k"),
    [
        (400, 100, True, False, 20, 3),  # a small table: the mean of the 3 best
        (1999, 0, True, False, 20, 3),  # cross-validated: the whole part is y_train
        (1600, 400, True, False, 20, 1),  # 2,000 training rows: the best alone
        (400, 100, False, False, 20, 1),  # digits: not a table
        (400, 100, True, True, 20, 1),  # two objectives: --pick's trade-off
        (400, 100, True, False, 2, 2),  # as many as there are
        (400, 100, True, False, 1, 1),  # nothing to average
    ],
)
def test_auto_takes_3_on_a_small_table_and_1_otherwise(train, val, table, multi, complete, k):
    from nnsweep.export.ensemble import AUTO, choose

    made = choose(AUTO, _study(complete, failed=3), _Data(train, val, table), multi=multi)  # type: ignore[arg-type]
    assert (made.asked, made.k) == ("auto", k)
    assert made.why and (f"{train + val:,} training rows" in made.why) == (
        table and not multi and complete > 1
    )


@pytest.mark.parametrize(
    ("raw", "want"), [("auto", "auto"), (" AUTO ", "auto"), ("3", 3), ("1", 1), (20, 20)]
)
def test_parse_size_reads_auto_or_a_whole_number(raw, want):
    from nnsweep.export.ensemble import parse_size

    assert parse_size(raw) == want


@pytest.mark.parametrize("raw", ["0", "21", "three", "2.5", "", "-1", 0])
def test_parse_size_refuses_the_rest_with_the_fix(raw):
    from nnsweep.errors import ExportError
    from nnsweep.export.ensemble import parse_size

    with pytest.raises(ExportError, match=r"^--ensemble .*e\.g\. --ensemble 5, or 1"):
        parse_size(raw)


def test_a_size_given_is_taken_as_asked():
    from nnsweep.export.ensemble import choose

    made = choose(3, _study(20), _Data(50_000, 0, True), multi=False)  # type: ignore[arg-type]
    assert made.as_dict() == {"asked": "3", "k": 3, "why": "as asked"}
