"""The fit rules: figures at the judged epoch → verdict, deciding figure, a reason naming it.

The rules and thresholds are stated in :mod:`nnsweep.train.diagnosis`; the figures come from
:mod:`nnsweep.train.fitfigures`. Each rule returns ``(tag, rule, figure, reason)``: ``rule``
is the short ``figure value > threshold`` text shown beside the verdict (the MLflow tag
``nnsweep.fit_rule`` and the ``fit_rule`` column of ``nnsweep compare``), ``figure`` its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from nnsweep.train.fitfigures import TREND_WINDOW, Figures, Series, drop_per_epoch, level

if TYPE_CHECKING:
    from nnsweep.spec.config import DiagnosisSpec

Verdict = tuple[Literal["underfit", "good", "generalisation_gap", "overfit"], str, float, str]


def judge(
    f: Figures,
    s: Series,
    rules: DiagnosisSpec,
    loss: list[float],
    val_loss: list[float],
    acc: list[float] | None,
    val_acc: list[float] | None,
    keep: list[int],
) -> Verdict:
    """The verdict on the weights at index ``f.at`` of the usable epochs ``keep``."""
    epoch = keep[f.at] + 1
    found = _overfit(f, s, rules, loss, val_acc, keep, epoch) or _underfit(
        f, s, rules, loss, val_loss, keep, epoch
    )
    found = found or _gap(f, s, rules, acc, val_acc, loss, val_loss, epoch)
    if found is None:
        found = _good(f, s, epoch)
    later = later_overfit(val_loss, f.at, keep, rules)
    if later and found[0] != "overfit":
        found = (found[0], found[1], found[2], f"{found[3]}; {later}")
    return found


def _overfit(
    f: Figures,
    s: Series,
    rules: DiagnosisSpec,
    loss: list[float],
    val_acc: list[float] | None,
    keep: list[int],
    epoch: int,
) -> Verdict | None:
    if f.rise > rules.val_loss_rise and f.train_fell:
        low = loss[f.rise_from]
        return (
            "overfit",
            f"val_loss_rise {f.rise:.3f} > {rules.val_loss_rise:g}",
            f.rise,
            f"at epoch {epoch} the val_loss level (mean of {f.window} epochs) is {f.rise:.0%} "
            f"above its lowest, at epoch {keep[f.rise_from] + 1}, while {s.loss} kept falling "
            f"({low:.4g} -> {loss[f.at]:.4g}); limit diagnosis.val_loss_rise="
            f"{rules.val_loss_rise:g}; stop earlier or regularise",
        )
    if f.drop is not None and val_acc is not None and f.drop > rules.val_accuracy_drop:
        best = level(val_acc, f.best_level_at or 0)
        return (
            "overfit",
            f"val_accuracy_drop {f.drop:.3f} > {rules.val_accuracy_drop:g}",
            f.drop,
            f"at epoch {epoch} the val_accuracy level {level(val_acc, f.at):.3f} is {f.drop:.3f} "
            f"below its best level {best:.3f} (epoch {keep[f.best_level_at or 0] + 1}); limit "
            f"diagnosis.val_accuracy_drop={rules.val_accuracy_drop:g}; stop earlier or regularise",
        )
    return None


def _underfit(
    f: Figures,
    s: Series,
    rules: DiagnosisSpec,
    loss: list[float],
    val_loss: list[float],
    keep: list[int],
    epoch: int,
) -> Verdict | None:
    if f.train_skill is not None and f.train_skill < rules.underfit_skill:
        trivial = "class frequencies" if s.mode == "accuracy" else "training mean"
        return (
            "underfit",
            f"train_skill {f.train_skill:.3f} < {rules.underfit_skill:g}",
            f.train_skill,
            f"at epoch {epoch} {s.describe(s.loss)} is {loss[f.at]:.4g} against the trivial "
            f"predictor's {loss[f.at] / max(1 - f.train_skill, 1e-12):.4g} ({trivial}): skill "
            f"{f.train_skill:.3f} on its own training rows, {f.val_skill:.3f} on validation; "
            f"limit diagnosis.underfit_skill={rules.underfit_skill:g}; more capacity, a higher "
            "learning rate or more epochs",
        )
    n = len(loss)
    last_is_min = min(range(n), key=lambda i: (val_loss[i], i)) == n - 1
    if f.at == n - 1 and n >= 2 and last_is_min:
        steps = min(TREND_WINDOW, n - 1)
        drop_l, drop_vl = drop_per_epoch(loss, steps), drop_per_epoch(val_loss, steps)
        if drop_l > rules.still_improving and drop_vl > rules.still_improving:
            return (
                "underfit",
                f"still_improving {drop_vl:.3f} > {rules.still_improving:g}",
                drop_vl,
                f"still improving at the last epoch ({epoch}, a new val_loss minimum): {s.loss} "
                f"fell {drop_l:.1%} and val_loss {drop_vl:.1%} per epoch over the last {steps} "
                f"epoch{'s' if steps > 1 else ''}; limit diagnosis.still_improving="
                f"{rules.still_improving:g}; train longer",
            )
    return None


def _gap(
    f: Figures,
    s: Series,
    rules: DiagnosisSpec,
    acc: list[float] | None,
    val_acc: list[float] | None,
    loss: list[float],
    val_loss: list[float],
    epoch: int,
) -> Verdict | None:
    tail = "validation is still at its best; more data or regularisation may narrow the gap"
    if f.gap_accuracy is not None and f.error_ratio is not None and val_acc is not None:
        if f.gap_accuracy <= rules.overfit_gap or f.error_ratio <= rules.error_ratio:
            return None
        return (
            "generalisation_gap",
            f"error_ratio {f.error_ratio:.2f} > {rules.error_ratio:g}",
            f.error_ratio,
            f"at epoch {epoch} the model errs on {1 - val_acc[f.at]:.1%} of validation rows "
            f"and {1 - (acc or val_acc)[f.at]:.1%} of its training rows by {s.describe()}: "
            f"{f.error_ratio + 1:.1f}x (mean of {f.window} epochs) > 1 + diagnosis.error_ratio="
            f"{rules.error_ratio:g}, a gap of {f.gap_accuracy:+.3f} > diagnosis.overfit_gap="
            f"{rules.overfit_gap:g}; {tail}",
        )
    if f.loss_ratio <= rules.overfit_loss_ratio:
        return None
    if f.gap_baseline is not None and f.gap_baseline <= rules.loss_gap:
        return None  # twice a tiny loss is still tiny: no gap worth the name
    absolute = (
        f" and {f.gap_baseline:.3f} of the trivial predictor's loss > diagnosis.loss_gap="
        f"{rules.loss_gap:g}"
        if f.gap_baseline is not None
        else ""
    )
    return (
        "generalisation_gap",
        f"loss_ratio {f.loss_ratio:.3f} > {rules.overfit_loss_ratio:g}",
        f.loss_ratio,
        f"at epoch {epoch} val_loss {val_loss[f.at]:.4g} against {s.describe()} "
        f"{loss[f.at]:.4g}: {f.loss_ratio + 1:.2f}x (mean of {f.window} epochs) > "
        f"1 + diagnosis.overfit_loss_ratio={rules.overfit_loss_ratio:g}{absolute}; {tail}",
    )


def _good(f: Figures, s: Series, epoch: int) -> Verdict:
    if f.gap_accuracy is not None:
        rule = f"gap_accuracy {f.gap_accuracy:.3f}"
        shown, figure = f"gap {f.gap_accuracy:+.3f}", f.gap_accuracy
    else:
        rule = f"loss_ratio {f.loss_ratio:.3f}"
        shown, figure = f"val_loss/loss {f.loss_ratio + 1:.2f}", f.loss_ratio
    skill = f", skill {f.train_skill:.2f}" if f.train_skill is not None else ""
    if f.gap_accuracy is None and f.gap_baseline is not None:  # why a ratio can still be good
        skill = f", {f.gap_baseline:.1%} of the trivial predictor's loss apart{skill}"
    return (
        "good",
        rule,
        figure,
        f"no rule fired at epoch {epoch}: {shown} by {s.describe()}, val_loss level "
        f"{f.rise:.0%} above its lowest{skill}",
    )


def later_overfit(
    val_loss: list[float], at: int, keep: list[int], rules: DiagnosisSpec
) -> str | None:
    """A note when the run's val_loss level rose after the judged epoch: the kept weights
    came before the overfitting, which the exported model does not carry."""
    n = len(val_loss)
    if at >= n - 1:
        return None
    base = min(level(val_loss, i) for i in range(at + 1))
    end = level(val_loss, n - 1)
    rise = end / max(base, 1e-12) - 1
    if rise <= rules.val_loss_rise:
        return None
    return (
        f"the run went on to epoch {keep[-1] + 1}, where its val_loss level was {rise:.0%} "
        "above the kept weights' lowest: it overfit after them, and they are the ones kept"
    )
