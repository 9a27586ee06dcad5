"""Export a study's best model: a portable, evaluated and optionally registered artifact.

``export_best`` writes to one folder:

* ``model.keras``: Keras 3 native file; plain ``keras.saving.load_model`` (safe mode on)
  loads it in any process, without nnsweep.
* ``saved_model/``: TensorFlow SavedModel from ``model.export()``, for TF Serving.
* ``model.onnx`` (with ``onnx``): the same model for onnxruntime, checked against Keras on the
  test rows (:mod:`nnsweep.export.onnx`).
* ``model_card.json`` and ``MODEL_CARD.md``: where the model comes from, what it reads and
  answers (task, target, feature columns, label mapping: the ``io`` section that
  ``nnsweep predict`` reads), and how good it is.

For a study with two objectives, ``pick`` names the front trial exported instead of the best
one (:mod:`nnsweep.export.pick`); the card states the rule and the front trials passed over.
The model is the one the sweep logged on the best trial's MLflow run (see
:mod:`nnsweep.train.modellog`), or, with ``retrain``, the best params refit on train+validation for
as many epochs as the trial's model saw (:mod:`nnsweep.train.retrain`). The held-out test split is
read here and nowhere else in nnsweep, once, after the model is chosen: the task's test metrics
with 95 % intervals and the trivial baseline's (:func:`nnsweep.export.card.evaluate`) go into the
card
and onto the best trial's run. With ``register``, the model becomes a new version of a registered
model in the MLflow Model Registry, under the alias ``champion``.

Files are written to a staging folder beside ``out`` and moved in at the end, so a failed
export leaves ``out`` as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnsweep.data.features import take_rows
from nnsweep.data.load import sweep_dataset
from nnsweep.data.modelio import ModelIO
from nnsweep.errors import ExportError
from nnsweep.export import ensemble as ens
from nnsweep.export import onnx as onnx_file
from nnsweep.export import pick as picks
from nnsweep.export.baseline import OFF, gradient_boosting
from nnsweep.export.baseline import log_metrics as log_boosting_metrics
from nnsweep.export.builder import KERAS_FILE, SAVED_MODEL_DIR, CardFacts, build_card
from nnsweep.export.card import (
    CARD_FORMAT,
    evaluate,
)
from nnsweep.export.card_md import render_markdown
from nnsweep.export.latency import deployment_figures, log_deployment
from nnsweep.export.ledger import (
    card_section,
    check_unread,
    claim_read,
    record_read,
    scored_what,
    withdraw,
)
from nnsweep.export.registry import log_test_metrics, register_model
from nnsweep.export.source import logged_model, run_of, weights_of
from nnsweep.names import COMPARABLE_ATTR, SPEC_ATTR
from nnsweep.track.tracker import fetch_history, open_reader
from nnsweep.train.model import HyperParams

if TYPE_CHECKING:
    import keras
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
OUTPUTS = (KERAS_FILE, SAVED_MODEL_DIR, CARD_JSON, CARD_MD, onnx_file.ONNX_FILE)


@dataclass
class ExportResult:
    """What :func:`export_best` did."""

    out: Path
    card: dict[str, Any]
    seconds: float


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder without ``force``; with
    ``force``, a non-empty folder that holds no earlier nnsweep export (its model card):
    ``--force`` replaces an export, never whatever else a folder was for.

    Raises:
        ExportError: with the path and the fix.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out}: is a file, not a folder; give a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(
                f"--out {out}: folder is not empty; pass --force to overwrite it or pick another"
            )
        if not _holds_export(out):
            raise ExportError(
                f"--out {out}: --force replaces an earlier nnsweep export only, and this "
                f"non-empty folder has no {CARD_JSON} from one; pick an empty or new folder"
            )
    for parent in out.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"--out {out}: {parent} is a file, not a folder; fix the path")


def _holds_export(folder: Path) -> bool:
    """Whether ``folder`` holds an nnsweep export: a model card in nnsweep's format."""
    card = folder / CARD_JSON
    if card.is_symlink() or not card.is_file() or card.stat().st_size > 1 << 20:
        return False
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    family = CARD_FORMAT.rsplit("/", 1)[0] + "/"  # any version of the card
    return isinstance(data, dict) and str(data.get("format", "")).startswith(family)


def check_registry_name(name: str) -> None:
    """MLflow's rule for registered model names, checked before any work is done."""
    if not name.strip() or any(c in name for c in "/:@"):
        raise ExportError(
            f"--register {name!r}: a registered model name must be non-empty and contain no "
            "'/', ':' or '@'; e.g. --register mnist-mlp"
        )


def export_best(
    study_name: str,
    *,
    out: str | Path,
    storage_url: str,
    tracking_uri: str,
    register: str | None = None,
    retrain: bool = False,
    force: bool = False,
    data_path: str | Path | None = None,
    reread_test: bool = False,
    ensemble: int | str = ens.AUTO,
    baseline: bool = True,
    onnx: bool = False,
    pick: str = "best",
) -> ExportResult:
    """Export the best COMPLETE trial of ``study_name`` to ``out`` (see the module docstring).

    ``data_path`` replaces the sweep's ``dataset.path`` (the file elsewhere, or a relative
    path seen from another folder); the data must be the one the study was swept on. A study
    whose test split was read before (:mod:`nnsweep.export.ledger`) is refused unless
    ``reread_test``. ``ensemble`` > 1 exports the mean of that many best trials' models
    (:mod:`nnsweep.export.ensemble`), ``auto`` 3 on a small table and 1 otherwise
    (:func:`nnsweep.export.ensemble.choose`); ``baseline`` fits gradient boosting beside the
    MLP on a table (:mod:`nnsweep.export.baseline`); ``onnx`` also writes ``model.onnx``
    (:mod:`nnsweep.export.onnx`), refused before the test read for a model it cannot hold.
    ``pick`` names the rule that picks the trial of a study with two objectives
    (:mod:`nnsweep.export.pick`: ``best``, ``smallest-within:POINTS``, ``knee``); a
    single-objective study takes ``best`` only.

    Raises:
        ExportError: bad ``out`` or ``register``, the run or its model is missing, or MLflow
            refuses the registration.
        StudyNotFoundError, NoCompleteTrialError, StorageError, DataError: as they say.
    """
    from mlflow import MlflowClient

    from nnsweep.study.storage import load_study

    start = time.perf_counter()
    out = Path(out)
    check_out_dir(out, force)
    asked = ens.parse_size(ensemble)
    if register is not None:
        check_registry_name(register)
    if onnx:
        onnx_file.require()
    rule = picks.parse_rule(pick)
    open_reader(tracking_uri)  # refuses a missing store before MLflow creates one
    study = load_study(study_name, storage_url)
    best, chosen = _chosen(study, rule)
    check_unread(study, reread_test)
    if isinstance(asked, int) and asked > 1:  # a K the study cannot give: refused before loading
        ens.top_trials(study, asked, best)
    spec = _spec_of(study)
    if data_path is not None:
        spec = spec.with_overrides(data_path=str(data_path))
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run = run_of(client, best, tracking_uri)
    dataset = sweep_dataset(spec)
    _check_same_data(study, dataset)
    choice = ens.choose(asked, study, dataset, multi=chosen is not None)
    trials = ens.top_trials(study, choice.k, best) if choice.k > 1 else [best]
    # cross-validated: no trial model saw every training row; refit on the whole training part
    # for the folds' mean chosen epoch (the run's weights_epoch, nnsweep.train.cv)
    retrain = retrain or bool(dataset.folds)
    hp = HyperParams.from_params(best["params"])
    history = fetch_history(client, run.info.run_id)
    epoch, score = weights_of(run, spec, history)

    io = ModelIO.of(dataset)

    model, retrained = _the_model(best, run, spec, dataset, hp, epoch, retrain, tracking_uri)
    members: list[ens.Member] = []
    if len(trials) > 1:
        source = "retrained on train+validation" if retrain else "the sweep's trial"
        first = ens.Member(
            best["number"], best["value"], run.info.run_id, model, source,
            epoch if retrain else None,
        )  # fmt: skip
        members = ens.load_members(
            trials, first, client=client, spec=spec, data=dataset, tracking_uri=tracking_uri,
            retrain=retrain,
        )  # fmt: skip
        combined = ens.average(members, dataset)
    # converted before the test read: a model ONNX cannot hold is refused with nothing read
    final = combined if members else model
    what = f"trial #{best['number']}'s model" + (" (in an ensemble)" if members else "")
    converted = onnx_file.convert(final, io, what) if onnx else None
    # Every choice (trial, weights, refit) is made: the test split is read now, once; the
    # single model, the ensemble and gradient boosting are all scored in this read.
    claim = claim_read(study, reread_test)  # two exports at once: only the first reads
    try:
        test = evaluate(model, dataset)
    except BaseException:
        withdraw(study, claim)  # no figure came of it
        raise
    ensemble_test = evaluate(combined, dataset) if members else None
    boosting = {"skipped": OFF}
    if baseline:
        boosting = gradient_boosting(dataset, retrained=retrain, seed=spec.seed)
    scored = scored_what(
        best["number"],
        retrain,
        members=[int(t["number"]) for t in trials] if members else None,
        boosting=baseline and "skipped" not in boosting,
    )
    read, every_read = record_read(
        study, trial=best["number"], retrained=retrain, scored=scored, key=claim
    )
    # the rows this read loaded, beside Keras' answers on them: not a second read
    onnx_check = onnx_file.check(converted, final, dataset.x_test) if converted else None

    card = build_card(
        CardFacts(
            study=study, best=best, run=run, client=client, tracking_uri=tracking_uri,
            spec=spec, dataset=dataset, io=io, model=model, hp=hp, history=history,
            epoch=epoch, score=score, retrain=retrain, retrained=retrained,
            n_complete=_n_complete(study), test=test, boosting=boosting,
            test_reads=card_section(read, every_read), onnx=onnx_check,
            pick=picks.card_section(chosen, study) if chosen else None,
        )
    )  # fmt: skip
    card[ens.CHOICE] = choice.as_dict()
    if members and ensemble_test is not None:
        ens.apply(card, members, combined, ensemble_test)
        model = combined
    _write(out, model, card, dataset=dataset, client=client, run=run, register=register,
           ensemble=bool(members), onnx=converted)  # fmt: skip
    return ExportResult(out=out, card=card, seconds=time.perf_counter() - start)


def _chosen(study: optuna.Study, rule: picks.Rule) -> tuple[dict[str, Any], picks.Pick | None]:
    """The trial to export, as :func:`nnsweep.study.storage.best_trial` gives one, and, for a
    study with two objectives, the :class:`~nnsweep.export.pick.Pick` that chose it.

    Raises:
        ExportError: a rule other than ``best`` on a single-objective study.
        NoCompleteTrialError: no COMPLETE trial.
    """
    from nnsweep.results.pareto import metric_of
    from nnsweep.study.objectives import is_multi
    from nnsweep.study.storage import best_trial

    picks.check_rule(rule, study)
    if not is_multi(study):
        return best_trial(study), None
    made = picks.pick_in(study, rule, metric_of(study))
    return picks.trial_info(made.trial), made


def _the_model(
    best: dict[str, Any],
    run: Run,
    spec: SweepSpec,
    dataset: Dataset,
    hp: HyperParams,
    epoch: int,
    retrain: bool,
    tracking_uri: str,
) -> tuple[keras.Model, dict[str, Any] | None]:
    """The best trial's model: refit for ``epoch`` epochs (and what the refit did), or the
    one its run logged (checked to read and answer as the data does)."""
    if retrain:
        from nnsweep.train.retrain import retrain as refit

        return refit(hp, dataset, seed=spec.seed + best["number"], epochs=epoch)
    model = logged_model(run, best["number"], tracking_uri)
    ModelIO.of(dataset).check_model(model, f"best trial #{best['number']}'s logged model")
    return model, None


def _write(
    out: Path,
    model: keras.Model,
    card: dict[str, Any],
    *,
    dataset: Dataset,
    client: MlflowClient,
    run: Run,
    register: str | None,
    ensemble: bool,
    onnx: onnx_file.OnnxModel | None = None,
) -> None:
    """Save, measure, register and log the export in a staging folder, then move it into
    ``out``: a failure leaves ``out`` as it was."""
    io = ModelIO.of(dataset)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name or 'export'}-", dir=out.absolute().parent))
    try:
        model.save(stage / KERAS_FILE)
        card["deployment"] = deployment_figures(stage / KERAS_FILE, io, dataset)
        log_deployment(client, run.info.run_id, card["deployment"])
        model.export(str(stage / SAVED_MODEL_DIR), verbose=False)
        if onnx is not None and (card.get("onnx") or {}).get("file"):
            (stage / onnx_file.ONNX_FILE).write_bytes(onnx.data)
        if register is not None:
            example = take_rows(dataset.x_train, [0, 1] if dataset.sizes["train"] > 1 else [0])
            card["registry"] = register_model(client, register, run, model, card, example, io)
        if ensemble:
            ens.log_metrics(client, run.info.run_id, card)
        else:
            log_test_metrics(client, run.info.run_id, card)
        log_boosting_metrics(client, run.info.run_id, card)
        (stage / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (stage / CARD_MD).write_text(render_markdown(card), encoding="utf-8")
        _move_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# -- where the model and its story come from ------------------------------------------------
def _spec_of(study: optuna.Study) -> SweepSpec:
    from nnsweep.spec.config import SweepSpec

    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise ExportError(
            f"study {study.study_name!r} has no nnsweep.spec attribute (not made by `nnsweep "
            "run`); export needs the sweep's dataset and seed"
        )
    return SweepSpec.model_validate(raw)


def _check_same_data(study: optuna.Study, dataset: Dataset) -> None:
    """Refuse data whose content is not what the study was swept on: its splits would differ,
    so the "test" rows could be rows the model trained on.

    Raises:
        ExportError: both fingerprints (shortened) and the fix.
    """
    from nnsweep.study.comparable import FINGERPRINT

    stored = (study.user_attrs.get(COMPARABLE_ATTR) or {}).get(FINGERPRINT)
    if stored and dataset.fingerprint and stored != dataset.fingerprint:
        raise ExportError(
            f"dataset {dataset.name}: its content (SHA-256 {dataset.fingerprint[:12]}…) is not "
            f"what study {study.study_name!r} was swept on ({str(stored)[:12]}…), so its test "
            "split could hold training rows; pass --data-path to the file the sweep read"
        )


def _n_complete(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# -- the folder --------------------------------------------------------------------------------
def _move_into(stage: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if name == onnx_file.ONNX_FILE and not (stage / name).exists():
            continue  # written with --onnx only; an earlier export's is removed above
        (stage / name).replace(target)
