"""``nnsweep run DATA.csv --target COL``: a data file in place of a sweep file.

Also what the run chose for what the file left out (printed once, logged as ``sweep.yaml``,
saved on request).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from nnsweep.spec.config import SweepSpec
    from nnsweep.sweep.prepare import Prepared

Target = Annotated[
    str | None,
    typer.Option(
        metavar="COL",
        help="With a data file (.csv, .tsv, .parquet) in place of the sweep file: the column "
        "to predict. Everything else gets the defaults for the data (printed at the start).",
    ),
]
SaveResolved = Annotated[
    Path | None,
    typer.Option(
        "--save-resolved",
        metavar="PATH",
        help="Write the sweep file as this run resolved it (the default space and budget "
        "filled in) to PATH, before any trial: `nnsweep run PATH` repeats or resumes the run.",
    ),
]


def load_sweep(path: Path, target: str | None) -> SweepSpec:
    """The spec of ``nnsweep run PATH``: a sweep file, or a data file's zero-config spec.

    Raises:
        SpecError: ``--target`` with a sweep file, a missing data file, a table without
            ``--target``, or the sweep file's own problems.
    """
    from nnsweep.errors import SpecError
    from nnsweep.spec.config import load_spec
    from nnsweep.spec.defaults import data_file_spec, is_data_file

    if is_data_file(path):
        return data_file_spec(path, target)
    if target is not None:
        raise SpecError(
            f"--target: {path} is a sweep file, whose dataset.target names the column; use "
            "--target with a data file (nnsweep run DATA.csv --target COL)"
        )
    return load_spec(path)


def sweep_text(path: Path, prepared: Prepared) -> str:
    """What the parent run logs as ``sweep.yaml``: the file as written, or, when the run
    filled in defaults (or started from a data file), the sweep as resolved."""
    from nnsweep.spec.defaults import is_data_file, resolved_yaml

    if prepared.notes or is_data_file(path):
        return resolved_yaml(resolved(prepared), str(path))
    return path.read_text(encoding="utf-8")


def resolved(prepared: Prepared) -> SweepSpec:
    """The prepared spec under the study's name, so that running it resumes the study."""
    spec = prepared.spec
    if spec.name == prepared.study_name:
        return spec
    return spec.model_copy(update={"name": prepared.study_name})


def show_choices(path: Path, prepared: Prepared, save: Path | None) -> None:
    """Print what zero-config chose (once, before the first trial) and write the resolved
    sweep file to ``save`` when given."""
    from nnsweep.spec.defaults import resolved_yaml

    for note in prepared.notes:
        typer.echo(note)
    typer.echo(prepared.dataset.validation_line())  # how trials are scored: folds or holdout
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(resolved_yaml(resolved(prepared), str(path)), encoding="utf-8")
        typer.echo(f"resolved sweep written to {save}: `nnsweep run {save}` resumes this study")
