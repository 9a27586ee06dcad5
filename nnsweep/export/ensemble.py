"""Ensembles: the K best COMPLETE trials' models averaged into one Keras model.

``nnsweep export STUDY --ensemble K`` takes the K best COMPLETE trials (the best first, then by
objective value in the study's direction), loads each one's model as the sweep logged it on
its MLflow run, or refits it from its params on train+validation where it has none or with
``--retrain`` (:mod:`nnsweep.train.retrain`), and builds one functional Keras model that feeds
the same raw inputs to every member and averages their outputs (class probabilities, or
regression values in the target's units). Each member keeps its preprocessing inside, so the
ensemble has the interface of a single exported model: ``model.keras`` takes raw rows, loads in
plain Keras (safe mode on), and ``nnsweep predict`` reads it with the same card.

``--ensemble auto`` (the default, :func:`choose`) takes :data:`AUTO_K` on a table of fewer
than :data:`AUTO_BELOW` training rows, where picking one trial on a few hundred validation rows
is largely chance and the mean of the best three did better on validation rows
(docs/benchmarks.md, row E), and the best trial alone otherwise. The card's ``ensemble_choice``
says what was asked, what was chosen and why.

The test split is read once: the ensemble and the single best model are scored in the same
read (:func:`nnsweep.export.export.export_best`); the card's ``test`` is the ensemble's (it is
the exported model), ``ensemble.best_single`` the best trial's own figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from nnsweep.errors import ExportError
from nnsweep.export.card import primary_metric, scalar_metrics, test_headline, unit_of
from nnsweep.names import PARAMS_ATTR, RUN_ID_ATTR
from nnsweep.spec.dataset import AUTO_CV_BELOW

if TYPE_CHECKING:
    import keras
    import optuna
    from mlflow import MlflowClient

    from nnsweep.data.load import Dataset
    from nnsweep.spec.config import SweepSpec

MAX_MEMBERS = 20
METRIC_PREFIX = "ensemble_test_"
SECTION = "ensemble"
CHOICE = "ensemble_choice"
AUTO: Final = "auto"
AUTO_K = 3
"""Members of ``--ensemble auto`` on a small table."""
AUTO_BELOW = AUTO_CV_BELOW
"""``--ensemble auto`` averages trials on a table of fewer training rows than this: the size
below which ``validation: auto`` cross-validates, as a one-trial pick is noisy there too."""


@dataclass(frozen=True)
class Member:
    """One trial's model in the ensemble, and where its weights come from."""

    trial: int
    value: float
    run_id: str | None
    model: keras.Model
    source: str
    epochs: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "value": self.value,
            "run_id": self.run_id,
            "source": self.source,
            "epochs": self.epochs,
            "parameter_count": _trainable(self.model),
        }


@dataclass(frozen=True)
class Choice:
    """How many trials' models the export averages: what was asked (``auto`` or K), the K
    chosen, and why, in words for the card and the summary."""

    asked: str
    k: int
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"asked": self.asked, "k": self.k, "why": self.why}


def parse_size(raw: int | str) -> int | str:
    """``--ensemble``'s value: :data:`AUTO`, or a whole number K in 1..:data:`MAX_MEMBERS`.

    Raises:
        ExportError: anything else, with the fix.
    """
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text == AUTO:
            return AUTO
        try:
            raw = int(text)
        except ValueError:
            raise ExportError(
                f"--ensemble {raw}: give auto or a whole number of trials from 1 to "
                f"{MAX_MEMBERS}; e.g. --ensemble 5, or 1 for the single best model"
            ) from None
    check_size(raw)
    return raw


def choose(asked: int | str, study: optuna.Study, data: Dataset, *, multi: bool) -> Choice:
    """The ensemble size for ``asked`` (:func:`parse_size`'s value). ``auto``: :data:`AUTO_K`
    (at most the study's COMPLETE trials) on a table of fewer than :data:`AUTO_BELOW` training
    rows; the best trial alone on a larger table, on images or word vectors (their sweeps
    select on thousands of validation rows), on a study with two objectives (``--pick`` chose a
    trade-off, which a mean of other trials would not keep) or with a single COMPLETE trial."""
    from nnsweep.study.own import ranked

    if asked != AUTO:
        return Choice(str(asked), int(asked), "as asked")
    rows = len(data.y_train) + len(data.y_val)
    if data.schema is None:
        return Choice(AUTO, 1, "not a table; its sweep selects on thousands of validation rows")
    if multi:
        return Choice(AUTO, 1, "two objectives: --pick chose a trade-off; a mean would lose it")
    if rows >= AUTO_BELOW:
        return Choice(
            AUTO, 1, f"{rows:,} training rows (ensembles are the default below {AUTO_BELOW:,})"
        )
    done = len(ranked(study))
    if done < 2:
        return Choice(AUTO, 1, f"{done} COMPLETE trial: nothing to average")
    k = min(AUTO_K, done)
    return Choice(
        AUTO,
        k,
        f"{rows:,} training rows, below {AUTO_BELOW:,}: a single trial picked on so few rows "
        "is partly chance",
    )


def choice_line(card: dict[str, Any]) -> str | None:
    """``--ensemble auto: the mean of the 3 best trials (455 training rows, below 2,000: …)``
    when auto averaged trials; None when a K was given or auto kept the best trial alone (the
    card's ``ensemble_choice`` still says why)."""
    made = card.get(CHOICE)
    if not made or made["asked"] != AUTO or made["k"] < 2:
        return None
    return (
        f"--ensemble auto: the mean of the {made['k']} best trials ({made['why']}; "
        "--ensemble 1 exports the best alone)"
    )


def check_size(k: int) -> None:
    """Refuse an ``--ensemble`` size outside 1..:data:`MAX_MEMBERS`.

    Raises:
        ExportError: the rule, the value and the fix.
    """
    if not 1 <= k <= MAX_MEMBERS:
        raise ExportError(
            f"--ensemble {k}: an ensemble holds 1 to {MAX_MEMBERS} trials' models; e.g. "
            "--ensemble 5, or 1 for the single best model"
        )


def top_trials(study: optuna.Study, k: int, best: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``k`` best COMPLETE trials the study ran itself, ``best`` first, then in the order of
    :func:`nnsweep.study.own.ranked` (the primary value; ties: the smaller second value, then
    the earlier trial).

    Raises:
        ExportError: fewer than ``k`` COMPLETE trials.
    """
    from nnsweep.study.objectives import primary_value
    from nnsweep.study.own import ranked

    done = ranked(study)  # the study's own trials: warm-start history has no model to load
    if len(done) < k:
        raise ExportError(
            f"--ensemble {k}: study {study.study_name!r} has {len(done)} COMPLETE trial(s); "
            f"give --ensemble {len(done)} or fewer, or run more trials"
        )
    rest = [t for t in done if t.number != best["number"]]
    picked = [best]
    for t in rest[: k - 1]:
        picked.append(
            {
                "number": t.number,
                "value": primary_value(t),
                "params": t.user_attrs.get(PARAMS_ATTR, t.params),
                "run_id": t.user_attrs.get(RUN_ID_ATTR),
            }
        )
    return picked


def load_members(
    trials: list[dict[str, Any]],
    first: Member,
    *,
    client: MlflowClient,
    spec: SweepSpec,
    data: Dataset,
    tracking_uri: str,
    retrain: bool,
) -> list[Member]:
    """The members: ``first`` (the best trial's model, already loaded by the export), then each
    other trial's logged model, or its params refit on train+validation for as many epochs as
    its weights saw, when ``retrain`` or when its run holds no model."""
    from nnsweep.data.modelio import ModelIO
    from nnsweep.export.source import logged_model, run_of, weights_of
    from nnsweep.track.models import model_uri_of
    from nnsweep.track.tracker import fetch_history
    from nnsweep.train.model import HyperParams
    from nnsweep.train.retrain import retrain as refit

    io = ModelIO.of(data)
    members = [first]
    for trial in trials[1:]:
        number = trial["number"]
        run = run_of(client, trial, tracking_uri)
        if not retrain and model_uri_of(run) is not None:
            model = logged_model(run, number, tracking_uri)
            io.check_model(model, f"trial #{number}'s logged model")
            member = Member(number, trial["value"], run.info.run_id, model, "the sweep's trial")
        else:
            epoch, _ = weights_of(run, spec, fetch_history(client, run.info.run_id))
            hp = HyperParams.from_params(trial["params"])
            model, _ = refit(hp, data, seed=spec.seed + number, epochs=epoch)
            why = "" if retrain else " (its run holds no model)"
            source = f"retrained on train+validation{why}"
            member = Member(number, trial["value"], run.info.run_id, model, source, epoch)
        members.append(member)
    return members


def average(members: list[Member], data: Dataset) -> keras.Model:
    """One functional model: the same inputs to every member, their outputs averaged.

    Compiled with the members' loss (and the regression loss weight), so ``model.evaluate``
    gives the card's loss as for a single model.

    Raises:
        ExportError: members whose inputs differ (names, shapes or dtypes).
    """
    import keras

    reference = _signature(members[0].model)
    for m in members[1:]:
        if _signature(m.model) != reference:
            raise ExportError(
                f"--ensemble: trial #{m.trial}'s model takes {_describe(_signature(m.model))}, "
                f"but trial #{members[0].trial}'s takes {_describe(reference)}; the trials "
                "were not trained on the same data; export them one by one"
            )
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=_name(t)),
        members[0].model.input,
    )
    outputs = []
    for i, m in enumerate(members):
        m.model.name = f"member_{i}_trial_{m.trial}"  # nested models need unique names
        outputs.append(m.model(inputs))
    mean = keras.layers.Average(name="mean_of_members")(outputs)
    model = keras.Model(inputs, mean, name=f"ensemble_of_{len(members)}")
    task = data.task
    scale = data.target_scale
    model.compile(
        optimizer="adam",  # never trained; the members are
        loss=task.loss,
        loss_weights=1.0 / scale[1] ** 2 if scale is not None else None,
        metrics=task.keras_metrics(),
    )
    return model


def _name(tensor: Any) -> str:
    return str(tensor.name).split(":")[0]


def _signature(model: keras.Model) -> list[tuple[str, tuple[Any, ...], str]]:
    return sorted((_name(t), tuple(t.shape[1:]), str(t.dtype)) for t in model.inputs)


def _describe(signature: list[tuple[str, tuple[Any, ...], str]]) -> str:
    return ", ".join(f"{n} {shape} {dtype}" for n, shape, dtype in signature)


def _trainable(model: keras.Model) -> int:
    from nnsweep.export.card import trainable_count

    return trainable_count(model)


def apply(
    card: dict[str, Any], members: list[Member], model: keras.Model, ensemble_test: dict[str, Any]
) -> None:
    """Make ``card`` (assembled for the best trial) the ensemble's: ``test`` becomes the
    ensemble's figures, the best trial's own move to ``ensemble.best_single``."""
    best_single = card["test"]
    card["test"] = ensemble_test
    card["parameter_count"] = _trainable(model)
    card["architecture"] = (
        f"mean of {len(members)} MLPs' outputs (trials "
        + ", ".join(f"#{m.trial}" for m in members)
        + f"); the best: {card['architecture']}"
    )
    card[SECTION] = {
        "k": len(members),
        "combine": "mean of the members' outputs (probabilities, or values in target units)",
        "members": [m.as_dict() for m in members],
        "best_single": best_single,
    }


def summary_line(card: dict[str, Any]) -> str | None:
    """``ensemble of 3 (trials #4, #1, #7): accuracy 0.9600 vs the best trial alone 0.9500``."""
    ens = card.get(SECTION)
    if not ens:
        return None
    metric = primary_metric(card["test"])
    trials = ", ".join(f"#{m['trial']}" for m in ens["members"])
    fmt = ".4f" if metric == "accuracy" else ".4g"
    return (
        f"ensemble of {ens['k']} (trials {trials}): {metric} {card['test'][metric]:{fmt}} vs "
        f"the best trial alone {ens['best_single'][metric]:{fmt}} (same test rows)"
    )


def markdown(card: dict[str, Any]) -> list[str]:
    """The ``MODEL_CARD.md`` section on the ensemble (empty for a single model)."""
    ens = card.get(SECTION)
    if not ens:
        return []
    lines = [
        "",
        "## Ensemble",
        "",
        f"- {summary_line(card)}",
        f"- the best trial alone: {test_headline(ens['best_single'], unit_of(card))}",
        f"- combined as the {ens['combine']}",
        *([f"- chosen by {chosen}"] if (chosen := choice_line(card)) else []),
        "",
        "| trial | objective value | weights | parameters |",
        "|---|---|---|---|",
    ]
    for m in ens["members"]:
        epochs = f", {m['epochs']} epochs" if m.get("epochs") else ""
        lines.append(
            f"| #{m['trial']} | {m['value']:.4f} | {m['source']}{epochs} | "
            f"{m['parameter_count']:,} |"
        )
    return lines


def log_metrics(client: MlflowClient, run_id: str, card: dict[str, Any]) -> None:
    """Log the ensemble's test figures (``ensemble_test_*``, linked to the registered ensemble
    if any) and the best trial's own (``test_*``, or ``retrained_test_*`` after a refit, linked
    to its logged model) on the best trial's run."""
    import time

    from mlflow.entities import Metric

    ens = card.get(SECTION)
    if not ens:
        return
    now = int(time.time() * 1000)
    retrained = card.get("retrain") is not None
    single = "retrained_test_" if retrained else "test_"
    single_uri = None if retrained else card["mlflow"].get("model_uri")
    ensemble_uri = (card.get("registry") or {}).get("source")
    metrics = [
        Metric(METRIC_PREFIX + k, v, now, 0, model_id=_model_id(ensemble_uri))
        for k, v in scalar_metrics(card["test"]).items()
    ]
    metrics += [
        Metric(single + k, v, now, 0, model_id=_model_id(single_uri))
        for k, v in scalar_metrics(ens["best_single"]).items()
    ]
    client.log_batch(run_id, metrics=[m for m in metrics if m.value == m.value])


def _model_id(uri: str | None) -> str | None:
    return uri.removeprefix("models:/") if uri else None
