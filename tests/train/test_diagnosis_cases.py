"""The four fit cases of issue 21 on crafted histories: exact verdict, deciding rule, reason.

A constant majority-class predictor, a task capped at 0.72 accuracy, a regression with
validation R² 0.9975, and a run whose best epoch comes before its overfitting, each judged
by :func:`nnsweep.train.diagnosis.diagnose` with the default thresholds. The histories carry
the dropout-off ``train_eval_*`` curves and the trivial predictor's loss, as a fit with
:class:`nnsweep.train.traineval.TrainEval` logs them.
"""

from __future__ import annotations

import math

import pytest

from nnsweep.spec.config import DiagnosisSpec
from nnsweep.train.diagnosis import diagnose

RULES = DiagnosisSpec()
NAN = float("nan")


def entropy(p: float) -> float:
    """The log loss of predicting the class frequencies ``(p, 1 - p)`` on rows drawn from them."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def classification(
    loss: list[float],
    acc: list[float],
    val_loss: list[float],
    val_acc: list[float],
    baseline: float,
) -> dict[str, list[float]]:
    """A classification history: dropout-off training curves ``loss``/``acc``, Keras' own
    (dropout on: a little worse), validation, and the trivial predictor's loss ``baseline``."""
    n = len(loss)
    return {
        "loss": [v * 1.1 for v in loss],
        "accuracy": [a - 0.01 for a in acc],
        "val_loss": val_loss,
        "val_accuracy": val_acc,
        "train_eval_loss": loss,
        "train_eval_accuracy": acc,
        "train_eval_baseline_loss": [baseline] * n,
    }


def test_majority_class_predictor_on_90_10_task_is_underfit_not_good() -> None:
    # Predicting the class frequencies (0.9, 0.1) for every row: 0.90 accuracy on both sides,
    # a loss equal to the trivial predictor's after the first epochs, flat.
    b = entropy(0.9)  # 0.3251
    history = classification(
        loss=[0.40, 0.34, 0.328, b, b, b],
        acc=[0.90] * 6,
        val_loss=[0.37, 0.33, 0.326, b, b, b],
        val_acc=[0.90] * 6,
        baseline=b,
    )
    d = diagnose(history, RULES)
    assert d is not None
    assert d.fit == "underfit"
    assert d.rule == "train_skill 0.000 < 0.1"
    assert d.figure == pytest.approx(0.0, abs=1e-12)
    assert d.judged_epoch == 6
    assert "is 0.3251 against the trivial predictor's 0.3251 (class frequencies)" in d.reason
    assert "skill 0.000 on its own training rows, 0.000 on validation" in d.reason
    assert "limit diagnosis.underfit_skill=0.1" in d.reason
    assert "more capacity" in d.reason
    assert d.metrics()["train_skill"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("final_loss", "skill"),
    [
        # posteriors spread around 0.72: most of the gain over ln 2 the task allows
        (0.557, "0.20"),
        # a calibrated model sure of 0.72 on every row: the most loss a calibrated model of
        # 0.72 accuracy can have (entropy is concave), still 14 % of ln 2 removed
        (entropy(0.72), "0.14"),
    ],
    ids=["spread-posteriors", "constant-posterior-0.72"],
)
def test_task_capped_at_072_accuracy_converged_is_good_not_underfit(
    final_loss: float, skill: str
) -> None:
    # Balanced binary task (trivial loss ln 2) whose best achievable accuracy is about 0.72;
    # the model reached it on both sides and stopped moving.
    end = final_loss
    history = classification(
        loss=[0.68, 0.62, 0.59, end + 0.008, end + 0.003, end + 0.001, end],
        acc=[0.58, 0.66, 0.70, 0.713, 0.718, 0.72, 0.72],
        val_loss=[0.68, 0.625, 0.60, end + 0.018, end + 0.014, end + 0.013, end + 0.014],
        val_acc=[0.57, 0.65, 0.69, 0.705, 0.712, 0.716, 0.715],
        baseline=math.log(2),
    )
    d = diagnose(history, RULES)
    assert d is not None
    assert d.fit == "good"
    assert d.rule == "gap_accuracy 0.005"
    assert d.figure == pytest.approx(0.005)
    assert d.figures.train_skill is not None
    assert d.figures.train_skill > RULES.underfit_skill
    assert d.reason.startswith("no rule fired at epoch 7: gap +0.005 by train_eval_accuracy")
    assert f"skill {skill}" in d.reason
    assert "overfit after" not in d.reason


# Regression in variance-weighted MSE units: the training mean's loss is about 1, so
# 1 - loss is the R². Train 0.001 (R² 0.999), validation 0.0025 (R² 0.9975), converged.
R2_09975 = {
    "loss": [v * 1.6 for v in (0.2, 0.02, 0.004, 0.0015, 0.0011, 0.00102, 0.001)],
    "val_loss": [0.22, 0.03, 0.006, 0.0028, 0.00255, 0.0025, 0.00252],
    "train_eval_loss": [0.2, 0.02, 0.004, 0.0015, 0.0011, 0.00102, 0.001],
    "train_eval_baseline_loss": [1.0] * 7,
}


def test_regression_r2_09975_is_good_not_gap_or_overfit() -> None:
    d = diagnose(R2_09975, RULES)
    assert d is not None
    assert d.fit == "good"
    # val_loss is 2.4x the training loss, over 1 + overfit_loss_ratio, but the gap is 0.15 %
    # of the trivial predictor's loss, under loss_gap: not a gap worth the name
    assert d.rule == "loss_ratio 1.430"
    assert d.figure == pytest.approx(1.43, abs=1e-3)
    assert d.figure > RULES.overfit_loss_ratio
    assert d.figures.gap_baseline == pytest.approx(0.00148, abs=1e-5)
    assert d.figures.gap_baseline < RULES.loss_gap
    assert d.figures.val_skill == pytest.approx(0.9975, abs=1e-4)
    assert d.metrics()["train_r2"] == pytest.approx(0.999)
    assert d.reason == (
        "no rule fired at epoch 7: val_loss/loss 2.43 by train_eval_loss (dropout off), "
        "val_loss level 0% above its lowest, 0.1% of the trivial predictor's loss apart, "
        "skill 1.00"
    )
    # the absolute gap is what keeps it good: with a loss_gap under 0.15 % it is a gap
    strict = diagnose(R2_09975, DiagnosisSpec(loss_gap=0.001))
    assert strict is not None
    assert strict.fit == "generalisation_gap"
    assert strict.rule == "loss_ratio 1.430 > 1"
    assert "0.001 of the trivial predictor's loss > diagnosis.loss_gap=0.001" in strict.reason


# val_loss bottoms out at epoch 5 and climbs for seven epochs while the training loss keeps
# falling; validation accuracy stays flat at 0.90. Ten classes: trivial loss ln 10.
BEST_BEFORE_OVERFIT = classification(
    loss=[1.2, 0.6, 0.40, 0.30, 0.25, 0.20, 0.16, 0.12, 0.09, 0.07, 0.05, 0.04],
    acc=[0.70, 0.84, 0.885, 0.905, 0.915, 0.935, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99],
    val_loss=[1.0, 0.55, 0.42, 0.36, 0.34, 0.35, 0.37, 0.40, 0.43, 0.46, 0.49, 0.52],
    val_acc=[0.74, 0.85, 0.88, 0.895, 0.90, 0.90, 0.899, 0.90, 0.898, 0.897, 0.898, 0.896],
    baseline=math.log(10),
)


def test_kept_weights_before_the_overfit_are_not_overfit() -> None:
    d = diagnose(BEST_BEFORE_OVERFIT, RULES, weights_epoch=5)
    assert d is not None
    assert d.fit == "good"
    assert d.judged_epoch == 5
    assert d.best_epoch == 5
    assert d.rule == "gap_accuracy 0.010"
    assert d.figure == pytest.approx(0.01)
    assert d.figures.rise == 0.0
    assert d.reason.startswith("no rule fired at epoch 5: gap +0.010")
    assert (
        "the run went on to epoch 12, where its val_loss level was 31% above the kept "
        "weights' lowest: it overfit after them, and they are the ones kept"
    ) in d.reason


def test_same_run_judged_at_its_last_epoch_is_overfit() -> None:
    d = diagnose(BEST_BEFORE_OVERFIT, RULES, weights_epoch=12)
    assert d is not None
    assert d.fit == "overfit"
    assert d.judged_epoch == 12
    assert d.best_epoch == 5
    assert d.rule == "val_loss_rise 0.400 > 0.15"
    assert d.figure == pytest.approx(0.40)
    # the lowest 3-epoch level is epochs 4-6, so the reason names epoch 6
    assert d.reason == (
        "at epoch 12 the val_loss level (mean of 3 epochs) is 40% above its lowest, at epoch "
        "6, while train_eval_loss kept falling (0.2 -> 0.04); limit diagnosis.val_loss_rise="
        "0.15; stop earlier or regularise"
    )
    assert "overfit after them" not in d.reason


def test_without_weights_epoch_the_last_usable_epoch_is_judged() -> None:
    # a 13th epoch whose val_loss is not finite is not usable: the last usable one is 12
    history = {k: [*v, NAN if k == "val_loss" else v[-1]] for k, v in BEST_BEFORE_OVERFIT.items()}
    d = diagnose(history, RULES)
    assert d is not None
    assert d.epochs == 12
    assert d.judged_epoch == 12
    assert d == diagnose(history, RULES, weights_epoch=12)
    assert d == diagnose(BEST_BEFORE_OVERFIT, RULES)
    assert d.fit == "overfit"
    assert d.rule == "val_loss_rise 0.400 > 0.15"
    # kept weights on the unusable epoch: the last usable one at or before it is judged
    at_13 = diagnose(history, RULES, weights_epoch=13)
    assert at_13 is not None
    assert at_13.judged_epoch == 12
