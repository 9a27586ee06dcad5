"""The fit diagnosis of tasks without accuracy (regression): the loss rules, edges, thresholds."""

from __future__ import annotations

import pytest

from nnsweep.spec.config import DiagnosisSpec
from nnsweep.train.diagnosis import FIT_TAGS, diagnose
from tests.train.test_diagnosis import check_section_refused, check_thresholds_apply

NAN = float("nan")
RULES = DiagnosisSpec()


BASELINE = 80.0  # the training mean's mse on the train-eval rows


def reg(
    train: list[float], val: list[float], baseline: float | None = BASELINE, key: str = "train_eval"
) -> dict[str, list[float]]:
    """A regression history; ``key="keras"``: only Keras' (dropout-on) training loss."""
    n = len(train)
    out = {"val_loss": val, "val_mae": [v**0.5 * 0.8 for v in val]}
    if key == "keras":
        out.update(loss=train, mae=[t**0.5 * 0.8 for t in train])
    else:
        out.update(
            loss=[t * 1.6 for t in train],  # dropout on: higher
            mae=[t**0.5 for t in train],
            train_eval_loss=train,
            train_eval_mae=[t**0.5 * 0.8 for t in train],
        )
        if baseline is not None:
            out["train_eval_baseline_loss"] = [baseline] * n
    return out


REG_GOOD = reg([30, 15, 12, 11, 10.5, 10.3], [35, 18, 15, 14, 13.8, 13.9])
REG_CASES = {
    "good: converged, val_loss 35 % above train": (REG_GOOD, "good", "val_loss/loss 1.35"),
    "overfit: val_loss over twice the train loss": (
        reg([20, 8, 4, 2.5, 2, 1.8], [25, 12, 9, 8.5, 8.4, 8.3]),
        "overfit",
        "val_loss stayed over 2x the training loss by train_eval_loss (dropout off)",
    ),
    "overfit: val_loss rose while train loss fell": (
        reg([20, 8, 4, 2, 1, 0.5], [25, 12, 10, 12, 13, 14]),
        "overfit",
        "val_loss_rise",
    ),
    "underfit: explains a third of the mean predictor's loss": (
        reg([70, 60, 55, 54, 53.5, 53.4], [72, 62, 57, 56, 55.8, 55.9]),
        "underfit",
        "explains 0.33 of the trivial predictor's loss",
    ),
    "underfit: still improving": (
        reg([60, 40, 30, 22, 16], [62, 42, 32, 24, 18]),
        "underfit",
        "still_improving",
    ),
    "no baseline (old run): the R² rule is skipped": (
        reg([70, 60, 55, 54, 53.5, 53.4], [72, 62, 57, 56, 55.8, 55.9], baseline=None),
        "good",
        "no rule fired",
    ),
    "Keras' loss only: R² rule skipped, ratio read on it": (
        reg([70, 60, 55, 54, 53.5, 53.4], [72, 62, 57, 56, 55.8, 55.9], key="keras"),
        "good",
        "Keras' loss (dropout on)",
    ),
    "Keras' loss only, twice below val_loss: overfit": (
        reg([20, 8, 4, 2.5, 2, 1.8], [25, 12, 9, 8.5, 8.4, 8.3], key="keras"),
        "overfit",
        "by Keras' loss (dropout on)",
    ),
    "one epoch, far apart: overfit": (reg([1.0], [5.0]), "overfit", "overfit_loss_ratio"),
    "one epoch, close: good": (reg([10.0], [12.0]), "good", "no rule fired"),
    "a ratio over the limit at the last epoch only is no trend: good": (
        reg([30, 15, 12, 11, 10.5, 6.0], [35, 18, 15, 14, 13.8, 13.9]),
        "good",
        "no rule fired",
    ),
}


@pytest.mark.parametrize(("history", "fit", "why"), REG_CASES.values(), ids=list(REG_CASES))
def test_loss_rules(history: dict[str, list[float]], fit: str, why: str) -> None:
    diag = diagnose(history, RULES)
    assert diag is not None
    assert diag.fit == fit, diag.reason
    assert why in diag.reason, diag.reason
    assert diag.score == "val_loss"


def test_the_loss_rules_reach_every_tag() -> None:
    assert sorted({fit for _, fit, _ in REG_CASES.values()}) == sorted(FIT_TAGS)


def test_dropout_hides_a_regression_gap_too() -> None:
    # Keras' dropout-on loss is 1.6 x the dropout-off one: 2.9 vs 4.6 reads as a small gap
    history = reg([3.0, 2.5, 2.0, 1.9, 1.8], [6.0, 4.75, 4.7, 4.65, 4.6])
    assert diagnose(history, RULES).fit == "overfit"  # type: ignore[union-attr]
    old = {k: v for k, v in history.items() if not k.startswith("train_eval_")}
    assert diagnose(old, RULES).fit == "good"  # type: ignore[union-attr]


def test_metrics_of_a_regression_history() -> None:
    diag = diagnose(REG_GOOD, RULES)
    assert diag is not None
    assert diag.metrics() == pytest.approx(
        {
            "best_epoch": 5.0,
            "best_val_loss": 13.8,
            "final_val_loss": 13.9,
            "loss_ratio": 13.9 / 10.3 - 1,
            "train_r2": 1 - 10.3 / BASELINE,
            "gap_loss": 13.9 - 10.3,
            "val_loss_rise": 13.9 / 13.8 - 1,
        }
    )
    no_baseline = diagnose(reg([30, 15, 12], [35, 18, 15], baseline=None), RULES)
    assert no_baseline is not None and "train_r2" not in no_baseline.metrics()


def test_nan_epochs_of_a_regression_history_are_skipped() -> None:
    history = reg([30, 15, 12, NAN], [35, 18, 15, NAN])
    diag = diagnose(history, RULES)
    assert diag is not None and diag.epochs == 3 and diag.final_score == 15
    assert diagnose(reg([NAN], [NAN]), RULES) is None


@pytest.mark.parametrize(
    ("history", "changes", "before", "after"),
    [
        (REG_GOOD, {"overfit_loss_ratio": 0.2}, "good", "overfit"),
        (REG_GOOD, {"underfit_r2": 0.9}, "good", "underfit"),
        (
            REG_CASES["overfit: val_loss over twice the train loss"][0],
            {"overfit_loss_ratio": 5},
            "overfit",
            "underfit",  # no gap rule now, and val_loss still falls 2.6 % per epoch
        ),
    ],
    ids=["overfit_loss_ratio", "underfit_r2", "overfit_loss_ratio raised"],
)
def test_loss_thresholds_come_from_the_sweep_file(
    history: dict[str, list[float]], changes: dict[str, float], before: str, after: str
) -> None:
    check_thresholds_apply(history, changes, before, after)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("overfit_loss_ratio: 0", "diagnosis.overfit_loss_ratio"),
        ("underfit_r2: 1", "diagnosis.underfit_r2"),
    ],  # fmt: skip
)
def test_bad_loss_thresholds_name_the_field(section: str, message: str) -> None:
    check_section_refused(section, message)
