"""The fit diagnosis on hand-written classification histories: each rule, its edges, thresholds.

The gap rules read the dropout-off accuracy when it was logged. Tasks without accuracy
(regression) and their loss rules: test_diagnosis_loss.py; the cases the verdicts were
rewritten for (trivial baseline, capped task, judged epoch): test_diagnosis_cases.py.
"""

from __future__ import annotations

import math

import pytest

from nnsweep.errors import SpecError
from nnsweep.spec.config import DiagnosisSpec, parse_spec
from nnsweep.train.diagnosis import FIT_TAGS, PRUNED, diagnose, usable_epochs

NAN = float("nan")
RULES = DiagnosisSpec()


def hist(loss: list[float], acc: list[float], val_loss: list[float], val_acc: list[float]):
    return {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc}


def off(history: dict[str, list[float]], baseline: float = 2.303) -> dict[str, list[float]]:
    """``history`` with dropout-off training curves equal to Keras' and the trivial
    predictor's loss (ten balanced classes: ln 10), so the skill rule can read them."""
    n = len(history["loss"])
    return {
        **history,
        "train_eval_loss": list(history["loss"]),
        "train_eval_accuracy": list(history["accuracy"]),
        "train_eval_baseline_loss": [baseline] * n,
    }


# A model that keeps memorising: val_loss bottoms out at epoch 3 and climbs while loss falls.
OVERFIT_BY_LOSS = hist(
    [0.9, 0.40, 0.20, 0.10, 0.05, 0.02],
    [0.75, 0.88, 0.93, 0.95, 0.96, 0.97],
    [0.50, 0.35, 0.30, 0.36, 0.40, 0.45],
    [0.85, 0.90, 0.92, 0.93, 0.93, 0.935],
)
# Converged: small gap, val_loss flat around its minimum.
GOOD = hist(
    [0.9, 0.35, 0.25, 0.21, 0.20, 0.195],
    [0.75, 0.90, 0.93, 0.94, 0.945, 0.946],
    [0.40, 0.28, 0.24, 0.23, 0.231, 0.232],
    [0.88, 0.92, 0.925, 0.93, 0.93, 0.929],
)
# Still learning fast at the last epoch: both losses fall ~10 % per epoch, new minimum.
STILL_IMPROVING = hist(
    [1.5, 1.0, 0.8, 0.65, 0.55],
    [0.60, 0.78, 0.84, 0.87, 0.89],
    [1.2, 0.9, 0.75, 0.64, 0.56],
    [0.70, 0.80, 0.84, 0.86, 0.88],
)

CASES = {
    "overfit: val_loss rose while loss fell": (OVERFIT_BY_LOSS, "overfit", "val_loss_rise"),
    "generalisation_gap: far more errors on validation, val_loss still at its best": (
        hist(
            [0.5, 0.3, 0.2, 0.15, 0.1],
            [0.85, 0.92, 0.96, 0.98, 0.99],
            [0.40, 0.35, 0.34, 0.335, 0.33],
            [0.86, 0.88, 0.89, 0.90, 0.90],
        ),
        "generalisation_gap",
        "diagnosis.error_ratio",
    ),
    "good: converged": (GOOD, "good", "no rule fired"),
    "underfit: still improving": (STILL_IMPROVING, "underfit", "still_improving"),
    "underfit: low and still improving": (
        hist([2.3, 2.2, 2.1], [0.20, 0.25, 0.30], [2.3, 2.2, 2.1], [0.21, 0.26, 0.31]),
        "underfit",
        "still_improving",
    ),
    "underfit: no better than the class frequencies on its training rows": (
        off(
            hist(
                [2.3, 2.25, 2.2, 2.21],
                [0.2, 0.25, 0.3, 0.3],
                [2.3, 2.2, 2.2, 2.21],
                [0.21, 0.26, 0.31, 0.3],
            )
        ),  # fmt: skip
        "underfit",
        "diagnosis.underfit_skill",
    ),
    "one epoch, high accuracy: good": (hist([0.3], [0.91], [0.25], [0.92]), "good", "no rule"),
    "one epoch, low skill: underfit": (
        off(hist([2.2], [0.3], [2.1], [0.35])),
        "underfit",
        "diagnosis.underfit_skill",
    ),
    "one epoch, low accuracy, no baseline logged: no bar to fail": (
        hist([2.2], [0.3], [2.1], [0.35]),
        "good",
        "no rule fired",
    ),
    "one epoch, large gap: generalisation_gap (one epoch cannot get worse)": (
        hist([0.1], [0.99], [0.6], [0.85]),
        "generalisation_gap",
        "error_ratio",
    ),
    "two epochs still improving: underfit": (
        hist([0.6, 0.3], [0.85, 0.92], [0.4, 0.3], [0.88, 0.91]),
        "underfit",
        "still_improving",
    ),
    "flat curves at chance: underfit": (
        off(hist([2.303] * 4, [0.1] * 4, [2.303] * 4, [0.1] * 4)),
        "underfit",
        "skill 0.000 on its own training rows",
    ),
    "flat curves, trained: good": (
        hist([0.2] * 4, [0.94] * 4, [0.22] * 4, [0.93] * 4),
        "good",
        "no rule fired",
    ),
    "val_loss rose but loss rose too (diverging, not memorising): good": (
        hist(
            [0.30, 0.25, 0.40, 0.50, 0.60],
            [0.92, 0.93, 0.93, 0.93, 0.93],
            [0.30, 0.26, 0.40, 0.50, 0.60],
            [0.92, 0.93, 0.92, 0.92, 0.92],
        ),
        "good",
        "no rule fired",
    ),
    "one noisy val_loss spike at the end is no trend: good": (
        hist(
            [0.9, 0.35, 0.25, 0.21, 0.20, 0.19],
            [0.75, 0.90, 0.93, 0.94, 0.945, 0.95],
            [0.40, 0.28, 0.24, 0.23, 0.24, 0.30],
            [0.88, 0.92, 0.925, 0.93, 0.93, 0.925],
        ),
        "good",
        "no rule fired",
    ),
    "a large gap at the last epoch only is no trend: good": (
        hist(
            [0.9, 0.35, 0.25, 0.21, 0.20, 0.19],
            [0.75, 0.90, 0.93, 0.94, 0.945, 0.95],
            [0.40, 0.28, 0.24, 0.23, 0.231, 0.232],
            [0.88, 0.92, 0.925, 0.93, 0.93, 0.89],
        ),
        "good",
        "no rule fired",
    ),
    "a noisy plateau that ends on a slightly lower val_loss: good": (
        hist(
            [0.40, 0.30, 0.26, 0.24, 0.22, 0.20],
            [0.88, 0.91, 0.925, 0.93, 0.935, 0.94],
            [0.30, 0.27, 0.26, 0.27, 0.254, 0.249],  # a new minimum, but 1.4 % per epoch
            [0.90, 0.915, 0.92, 0.915, 0.925, 0.93],
        ),
        "good",
        "no rule fired",
    ),
    "improving but the last epoch set no val_loss minimum: good": (
        hist(
            [1.5, 1.0, 0.8, 0.65, 0.55],
            [0.80, 0.88, 0.90, 0.91, 0.92],
            [0.60, 0.45, 0.30, 0.31, 0.305],
            [0.84, 0.88, 0.90, 0.905, 0.91],
        ),
        "good",
        "no rule fired",
    ),
}


@pytest.mark.parametrize(("history", "fit", "why"), CASES.values(), ids=list(CASES))
def test_rules(history: dict[str, list[float]], fit: str, why: str) -> None:
    diag = diagnose(history, RULES)
    assert diag is not None
    assert diag.fit == fit, diag.reason
    assert why in diag.reason


def test_the_rule_table_reaches_every_tag_but_pruned() -> None:
    """Each tag has a case above; ``pruned`` is given by the pruner, never by a rule."""
    assert sorted({fit for _, fit, _ in CASES.values()}) == sorted(FIT_TAGS)
    assert PRUNED not in FIT_TAGS


def test_metrics_of_an_overfitting_history() -> None:
    diag = diagnose(OVERFIT_BY_LOSS, RULES)
    assert diag is not None
    assert diag.epochs == 6 and diag.fit == "overfit"
    assert diag.best_epoch == 6  # val_accuracy peaks at the end even as val_loss climbs
    assert diag.score == "val_accuracy"
    # levels: means of 3 epochs; the lowest is epochs 2-4 (0.337), the last epochs 4-6 (0.403)
    rise = (0.36 + 0.40 + 0.45) / (0.35 + 0.30 + 0.36) - 1
    assert diag.metrics() == pytest.approx(
        {
            "best_epoch": 6.0,
            "judged_epoch": 6.0,
            "best_val_accuracy": 0.935,
            "final_val_accuracy": 0.935,
            "gap_accuracy": ((0.95 - 0.93) + (0.96 - 0.93) + (0.97 - 0.935)) / 3,
            "val_accuracy_drop": 0.0,
            "gap_loss": ((0.36 - 0.10) + (0.40 - 0.05) + (0.45 - 0.02)) / 3,
            "val_loss_rise": rise,
            "fit_figure": rise,
        }
    )
    assert diag.rule == f"val_loss_rise {rise:.3f} > 0.15"
    assert "its lowest, at epoch 4" in diag.reason  # the level ending at epoch 4


def test_best_epoch_is_the_first_of_a_tie() -> None:
    diag = diagnose(
        hist([0.3, 0.2, 0.2], [0.9, 0.93, 0.93], [0.3, 0.25, 0.25], [0.9, 0.92, 0.92]), RULES
    )
    assert diag is not None and diag.best_epoch == 2


def test_nan_epochs_are_skipped_and_epoch_numbers_kept() -> None:
    # The loss turned NaN at epoch 4 (Keras stops there): judge epochs 1-3 only.
    history = hist(
        [0.6, 0.3, 0.25, NAN],
        [0.85, 0.92, 0.93, NAN],
        [0.4, 0.3, 0.29, NAN],
        [0.88, 0.91, 0.95, 0.10],
    )
    diag = diagnose(history, RULES)
    assert diag is not None
    assert diag.epochs == 3
    assert diag.final_score == pytest.approx(0.95)
    assert all(math.isfinite(v) for v in diag.metrics().values())
    # A NaN in the middle: epoch numbering stays Keras', so the best epoch is 3, not 2.
    middle = hist([0.6, NAN, 0.3], [0.85, NAN, 0.93], [0.4, NAN, 0.3], [0.88, NAN, 0.92])
    assert usable_epochs(middle) == [0, 2]
    diag = diagnose(middle, RULES)
    assert diag is not None and diag.best_epoch == 3 and diag.epochs == 2


@pytest.mark.parametrize(
    "history",
    [
        {},
        hist([], [], [], []),
        hist([NAN], [NAN], [NAN], [NAN]),
        hist([NAN, NAN], [0.1, 0.1], [NAN, NAN], [0.1, 0.1]),
    ],
    ids=["empty dict", "empty series", "NaN from epoch 1", "NaN losses"],
)
def test_nothing_to_judge(history: dict[str, list[float]]) -> None:
    assert diagnose(history, RULES) is None


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ({"loss": [0.3], "accuracy": [0.9]}, "but no val_loss; fit with validation_data"),
        ({"val_loss": [0.3], "val_accuracy": [0.9]}, "but no loss"),
        ({"loss": [0.3], "val_loss": [0.3], "val_accuracy": [0.9]}, "no accuracy"),
        (hist([0.3, 0.2], [0.9, 0.92], [0.3], [0.9]), "differ in length"),
        (
            {**hist([0.3, 0.2], [0.9, 0.92], [0.3, 0.2], [0.9, 0.9]), "train_eval_loss": [0.1]},
            "differ in length",
        ),
    ],
)
def test_malformed_history_is_an_error(history: dict[str, list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        diagnose(history, RULES)


def test_zero_validation_loss_does_not_divide_by_zero() -> None:
    diag = diagnose(hist([0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]), RULES)
    assert diag is not None and diag.val_loss_rise == 0.0 and diag.fit == "good", diag


@pytest.mark.parametrize(
    ("history", "changes", "before", "after"),
    [
        (OVERFIT_BY_LOSS, {"val_loss_rise": 0.6}, "overfit", "good"),
        (GOOD, {"overfit_gap": 0.005, "error_ratio": 0.1}, "good", "generalisation_gap"),
        (off(GOOD), {"underfit_skill": 0.95}, "good", "underfit"),
        (STILL_IMPROVING, {"still_improving": 0.2}, "underfit", "good"),
        (OVERFIT_BY_LOSS, {"underfit_accuracy": 0.99, "underfit_r2": 0.9}, "overfit", "overfit"),
    ],
    ids=["val_loss_rise", "overfit_gap", "underfit_skill", "still_improving", "retired keys"],
)
def test_thresholds_come_from_the_sweep_file(
    history: dict[str, list[float]], changes: dict[str, float], before: str, after: str
) -> None:
    check_thresholds_apply(history, changes, before, after)


def check_thresholds_apply(
    history: dict[str, list[float]], changes: dict[str, float], before: str, after: str
) -> None:
    """``history`` is judged ``before`` by the default rules, ``after`` with ``changes`` made
    in a sweep file's diagnosis section (test_diagnosis_loss uses it for the loss rules)."""
    spec = parse_spec(
        "name: t\ndataset: mnist_5k\ntrials: 1\ndiagnosis:\n"
        + "".join(f"  {k}: {v}\n" for k, v in changes.items())
    )
    assert diagnose(history, RULES).fit == before  # type: ignore[union-attr]
    assert diagnose(history, spec.diagnosis).fit == after  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("overfit_gap: 1.5", "diagnosis.overfit_gap"),
        ("val_loss_rise: 0", "diagnosis.val_loss_rise"),
        ("underfit_skill: -0.1", "diagnosis.underfit_skill"),
        ("error_ratio: 0", "diagnosis.error_ratio"),
        ("val_accuracy_drop: 1", "diagnosis.val_accuracy_drop"),
        ("still_improving: -1", "diagnosis.still_improving"),
        ("overfit: 0.1", "unknown key 'overfit'; allowed keys: overfit_gap"),
    ],
)
def test_bad_diagnosis_section_names_the_field(section: str, message: str) -> None:
    check_section_refused(section, message)


def check_section_refused(section: str, message: str) -> None:
    """A sweep file whose diagnosis section holds ``section`` is refused with ``message``."""
    with pytest.raises(SpecError, match=message):
        parse_spec(f"name: t\ndataset: mnist_5k\ntrials: 1\ndiagnosis:\n  {section}\n", "x.yaml")


# -- the dropout-off training side (nnsweep.traineval) -------------------------------------------


def with_train_eval(history: dict[str, list[float]], loss: list[float], acc: list[float]):
    return {**history, "train_eval_loss": loss, "train_eval_accuracy": acc}


# Dropout 0.5: Keras' train accuracy (dropout on) sits level with validation, the same
# weights with dropout off are 8-9 points above it.
DROPOUT_HIDES_A_GAP = with_train_eval(
    hist(
        [0.9, 0.6, 0.5, 0.45, 0.42],
        [0.75, 0.84, 0.86, 0.87, 0.875],
        [0.40, 0.33, 0.31, 0.30, 0.302],
        [0.85, 0.86, 0.865, 0.87, 0.87],
    ),
    [0.35, 0.22, 0.17, 0.15, 0.14],
    [0.90, 0.94, 0.95, 0.955, 0.96],
)
# Dropout on, Keras' train accuracy never reaches 0.80; dropout off it is 0.93 (the retired
# bar of train accuracy 0.80 called it underfit on Keras' figure).
DROPOUT_FAKES_UNDERFIT = with_train_eval(
    hist(
        [1.2, 0.9, 0.85, 0.84],
        [0.60, 0.74, 0.76, 0.77],
        [0.30, 0.26, 0.255, 0.256],
        [0.90, 0.92, 0.925, 0.925],
    ),
    [0.28, 0.23, 0.225, 0.224],
    [0.91, 0.925, 0.93, 0.93],
)


@pytest.mark.parametrize(
    ("history", "with_it", "without_it", "why"),
    [
        (DROPOUT_HIDES_A_GAP, "generalisation_gap", "good", "by train_eval_accuracy (dropout off)"),
        (DROPOUT_FAKES_UNDERFIT, "good", "good", "gap +0.005 by train_eval_accuracy"),
    ],
    ids=["hidden gap", "underfit over-called"],
)
def test_the_gap_rules_read_the_dropout_off_accuracy(
    history: dict[str, list[float]], with_it: str, without_it: str, why: str
) -> None:
    diag = diagnose(history, RULES)
    assert diag is not None and diag.fit == with_it, diag.reason
    assert diag.dropout_off and why in diag.reason
    last3 = range(-3, 0)
    assert diag.gap == pytest.approx(
        sum(history["train_eval_accuracy"][i] - history["val_accuracy"][i] for i in last3) / 3
    )
    # an old run, logged before train_eval existed: Keras' dropout-on figures are read
    old = {k: v for k, v in history.items() if not k.startswith("train_eval_")}
    before = diagnose(old, RULES)
    assert before is not None and before.fit == without_it, before.reason
    assert not before.dropout_off
    assert before.gap == pytest.approx(
        sum(history["accuracy"][i] - history["val_accuracy"][i] for i in last3) / 3
    )


def test_good_reason_names_the_training_side_it_read() -> None:
    diag = diagnose(DROPOUT_FAKES_UNDERFIT, RULES)
    assert diag is not None
    assert diag.reason == (
        "no rule fired at epoch 4: gap +0.005 by train_eval_accuracy (dropout off), val_loss "
        "level 0% above its lowest"
    )
    assert diag.rule == "gap_accuracy 0.005"
    old = diagnose(hist([0.2] * 4, [0.94] * 4, [0.22] * 4, [0.93] * 4), RULES)
    assert old is not None and "Keras' accuracy (dropout on)" in old.reason


def test_a_nan_dropout_off_epoch_is_skipped() -> None:
    history = {**DROPOUT_HIDES_A_GAP, "train_eval_loss": [0.35, 0.22, 0.17, 0.15, NAN]}
    assert usable_epochs(history) == [0, 1, 2, 3]
    diag = diagnose(history, RULES)
    assert diag is not None and diag.epochs == 4
