"""What a running sweep shows: a line per finished trial, and (unless --quiet) a live bar.

The bar has the trials done/total, the best value so far and the ETA. In a multi-objective
study (``objective.also``) each line also has the trial's second objective, and "best" is the
best primary value followed by the size of the Pareto front so far (``front 3``)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from nnsweep.study.objectives import also_metric, primary_direction, primary_value, trial_also

if TYPE_CHECKING:
    import optuna


def front_size(study: optuna.Study) -> int:
    """Trials on the Pareto front of a multi-objective study's own COMPLETE trials."""
    from nnsweep.study.front import own_front

    return len(own_front(study))


class SweepProgress:
    """Optuna callback + start hook that reports progress on stderr."""

    def __init__(
        self, *, quiet: bool = False, metric: str = "value", count: str = "complete"
    ) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.count = count
        self.metric = metric
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.progress: Any = None
        self.task: Any = None
        self.best: float | None = None
        self.best_number: int | None = None
        self.direction: str = "maximize"  # both set by on_start, from the study
        self.also: str | None = None
        self.started = time.monotonic()
        # a line shown once the sweep starts (what data it trains on), after every check passed
        self.heading: str | None = None

    # -- hooks --------------------------------------------------------------------------------
    def on_start(self, study: optuna.Study, done: int, target: int | None) -> None:
        from rich.markup import escape

        self.started = time.monotonic()
        self.direction = primary_direction(study)
        self.also = also_metric(study)
        if self.heading:
            self.console.print(self.heading, markup=False)
        if done:
            self.console.print(
                f"resuming study [bold]{escape(study.study_name)}[/]: {done} "
                + ("COMPLETE trial(s)" if self.count == "complete" else "trial(s)")
                + " so far"
                + (f", target {target}" if target else "")
            )
        if self.quiet or not self.console.is_terminal:
            self.quiet = True
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            escape(study.study_name), total=target, completed=done, best="—"
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna.trial import TrialState
        from rich.markup import escape

        from nnsweep.names import FAIL_REASON_KEY
        from nnsweep.train.objective import SURPLUS_ATTR, counts_toward_target

        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        primary = primary_value(trial)
        value = f"{self.metric}={primary:.4f}" if primary is not None else ""
        if self.also is not None and (second := trial_also(trial)) is not None:
            shown = f"{second:,.0f}" if second.is_integer() else f"{second:.3g}"
            value = f"{value} {self.also}={shown}".strip()
        if trial.state == TrialState.COMPLETE and primary is not None:
            better = (
                self.best is None
                or (self.direction == "maximize" and primary > self.best)
                or (self.direction == "minimize" and primary < self.best)
            )
            if better:
                self.best, self.best_number = primary, trial.number
        if trial.state == TrialState.FAIL:
            value = trial.user_attrs.get(FAIL_REASON_KEY, "failed")
        best = f"{self.best:.4f} (#{self.best_number})" if self.best is not None else "—"
        if self.also is not None and self.best is not None:
            best = f"{best} front {front_size(study)}"
        line = f"trial {trial.number:>3} {trial.state.name:<8} {value}  {seconds:.1f}s  best {best}"
        if self.progress is not None:
            self.progress.console.print(escape(line))  # a reason may hold "[...]"
            advance = int(counts_toward_target(trial, self.count))
            self.progress.update(self.task, advance=advance, best=best)
        else:
            print(line, file=sys.stderr, flush=True)
        self._say_why_stopped(study)

    def _say_why_stopped(self, study: optuna.Study) -> None:
        """The stop rule's reason, once, as soon as it fired (in any worker)."""
        from nnsweep.sweep.stop import stop_reason

        why = stop_reason(study)
        if why and why != getattr(self, "stopped", None):
            self.stopped = why
            console = self.progress.console if self.progress is not None else self.console
            console.print(why, markup=False)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
