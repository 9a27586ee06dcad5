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
    "good: converged, val_loss 31 % above train": (REG_GOOD, "good", "val_loss/loss 1.31"),
    "generalisation_gap: val_loss over twice the train loss, 8 % of the trivial loss apart": (
        reg([20, 8, 4, 2.5, 2, 1.8], [25, 12, 9, 8.5, 8.4, 8.45]),
        "generalisation_gap",
        "against train_eval_loss (dropout off) 1.8: 4.10x (mean of 3 epochs)",
    ),
    "underfit: still improving, gap or not": (
        reg([20, 8, 4, 2.5, 2, 1.8], [25, 12, 9, 8.5, 8.4, 8.3]),
        "underfit",
        "still_improving",
    ),
    "overfit: val_loss rose while train loss fell": (
        reg([20, 8, 4, 2, 1, 0.5], [25, 12, 10, 12, 14, 16]),
        "overfit",
        "val_loss_rise",
    ),
    "a third of the mean predictor's loss removed, converged: good (no fixed R² bar)": (
        reg([70, 60, 55, 54, 53.5, 53.4], [72, 62, 57, 56, 55.8, 55.9]),
        "good",
        "skill 0.33",
    ),
    "underfit: removes under a tenth of the mean predictor's loss": (
        reg([79, 76, 75, 74.5, 74.4, 74.3], [80, 77, 76, 75.6, 75.5, 75.6]),
        "underfit",
        "train_eval_loss (dropout off) is 74.3 against the trivial predictor's 80",
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
    "Keras' loss only, twice below val_loss: the ratio alone decides": (
        reg([20, 8, 4, 2.5, 2, 1.8], [25, 12, 9, 8.5, 8.4, 8.45], key="keras"),
        "generalisation_gap",
        "against Keras' loss (dropout on) 1.8: 4.10x (mean of 3 epochs) > 1 + diagnosis.overfit_"
        "loss_ratio=1; validation is still at its best",
    ),
    "one epoch, far apart: generalisation_gap": (
        reg([1.0], [9.0]),
        "generalisation_gap",
        "0.100 of the trivial predictor's loss > diagnosis.loss_gap=0.05",
    ),
    "one epoch, 5x apart but 5 % of the trivial loss: good": (
        reg([1.0], [5.0]),
        "good",
        "val_loss/loss 5.00",
    ),
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
    history = reg([3.0, 2.5, 2.0, 1.9, 1.8], [6.0, 4.75, 4.7, 4.65, 4.6], baseline=20)
    assert diagnose(history, RULES).fit == "generalisation_gap"  # type: ignore[union-attr]
    old = {k: v for k, v in history.items() if not k.startswith("train_eval_")}
    assert diagnose(old, RULES).fit == "good"  # type: ignore[union-attr]


def test_metrics_of_a_regression_history() -> None:
    diag = diagnose(REG_GOOD, RULES)
    assert diag is not None
    train, val = [11, 10.5, 10.3], [14, 13.8, 13.9]  # the last 3 epochs
    ratio = sum(v / t - 1 for t, v in zip(train, val, strict=True)) / 3
    gap = sum(v - t for t, v in zip(train, val, strict=True)) / 3
    assert diag.metrics() == pytest.approx(
        {
            "best_epoch": 5.0,
            "judged_epoch": 6.0,
            "best_val_loss": 13.8,
            "final_val_loss": 13.9,
            "loss_ratio": ratio,
            "train_r2": 1 - 10.3 / BASELINE,
            "gap_baseline": gap / BASELINE,
            "gap_loss": gap,
            "val_loss_rise": 0.0,  # the last 3 epochs are the lowest level
            "fit_figure": ratio,
        }
    )
    assert diag.fit == "good" and diag.rule == f"loss_ratio {ratio:.3f}"
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
        (REG_GOOD, {"overfit_loss_ratio": 0.2, "loss_gap": 0.01}, "good", "generalisation_gap"),
        (REG_GOOD, {"overfit_loss_ratio": 0.2}, "good", "good"),  # 4.5 % of the trivial loss
        (REG_GOOD, {"underfit_skill": 0.9}, "good", "underfit"),
        (
            REG_CASES[
                "generalisation_gap: val_loss over twice the train loss, 8 % of the trivial "
                "loss apart"
            ][0],
            {"overfit_loss_ratio": 5},
            "generalisation_gap",
            "good",
        ),
    ],
    ids=["overfit_loss_ratio", "loss_gap", "underfit_skill", "overfit_loss_ratio raised"],
)
def test_loss_thresholds_come_from_the_sweep_file(
    history: dict[str, list[float]], changes: dict[str, float], before: str, after: str
) -> None:
    check_thresholds_apply(history, changes, before, after)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("overfit_loss_ratio: 0", "diagnosis.overfit_loss_ratio"),
        ("underfit_skill: 1", "diagnosis.underfit_skill"),
        ("loss_gap: 0", "diagnosis.loss_gap"),
    ],  # fmt: skip
)
def test_bad_loss_thresholds_name_the_field(section: str, message: str) -> None:
    check_section_refused(section, message)
