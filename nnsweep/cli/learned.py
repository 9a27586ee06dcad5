"""What ``nnsweep run`` and ``nnsweep report`` say at the end, and the warm-start options.

Why a sweep stopped, what mattered, bound warnings, and the next sweep (``--save-sweep``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nnsweep.names import WARM_START_STORAGE_ENV

WarmStartStorage = Annotated[
    str | None,
    typer.Option(
        "--warm-start-storage",
        envvar=WARM_START_STORAGE_ENV,
        show_envvar=True,
        metavar="URL",
        help="Optuna storage of the --warm-start study, when it is not --storage (e.g. "
        "journal:///old.log while the new study is on PostgreSQL).",
    ),
]
SaveSweep = Annotated[
    Path | None,
    typer.Option(
        "--save-sweep",
        metavar="PATH",
        help="Write the next sweep here: this study's space, widened where the best trials "
        "crowd an edge, warm-started from this study.",
    ),
]


def warm_start_override(text: str | None) -> dict[str, Any] | None:
    """``--warm-start NAME[:K]`` as the sweep file's ``warm_start`` section (None: not given).

    Raises:
        SpecError: a malformed value, with the form expected.
    """
    from pydantic import ValidationError

    from nnsweep.errors import SpecError
    from nnsweep.spec.warm import parse_warm_start

    if text is None:
        return None
    try:
        return parse_warm_start(text).model_dump(mode="json", exclude_none=True)
    except (ValidationError, ValueError) as exc:
        reason = str(exc).splitlines()[-1].strip() if isinstance(exc, ValidationError) else exc
        raise SpecError(f"--warm-start: {reason}; give NAME or NAME:K") from None


def print_learned(
    storage_url: str, study_name: str, save_sweep: Path | None, *, study: Any = None
) -> None:
    """Print why the study stopped (when the stop rule ended it), the "what we learned" block,
    and write the next sweep to ``save_sweep`` when given (``study``: the run's own, so the
    storage is not opened again; loaded from ``storage_url`` when not given)."""
    from nnsweep.results.importance import what_we_learned
    from nnsweep.study.storage import load_study
    from nnsweep.sweep.stop import stop_reason

    if study is None:
        study = load_study(study_name, storage_url)
    if why := stop_reason(study):
        typer.echo(why)
    learned = what_we_learned(study)
    for line in learned.lines():
        typer.echo(line)
    if save_sweep is not None:
        save_next(study, learned, save_sweep)


def save_next(study: Any, learned: Any, path: Path) -> None:
    """Write the next sweep file and say how to run it."""
    from nnsweep.results.nextsweep import save_sweep

    written = save_sweep(study, learned, path)
    typer.echo(f"next sweep written to {written}: run it with `nnsweep run {written}`")
