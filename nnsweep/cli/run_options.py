"""The options of ``nnsweep run``, as annotated types its signature names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SweepArg = Annotated[
    Path,
    typer.Argument(
        metavar="SWEEP|DATA",
        help="Sweep file, e.g. sweeps/quickstart.yaml, or a data file (.csv, .tsv, "
        ".parquet, .npz) to sweep with the defaults for it (see --target).",
    ),
]

Trials = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Trials wanted in total, COMPLETE ones unless the file says "
        "trials_count: all (overrides file).",
    ),
]

Timeout = Annotated[float | None, typer.Option(min=1, help="Stop starting trials after S seconds.")]

StudyOpt = Annotated[str | None, typer.Option(help="Study name [default: the sweep's name].")]

DataPath = Annotated[
    Path | None, typer.Option(help="Local dataset: an .npz or a folder of the 4 IDX files.")
]

Seed = Annotated[int | None, typer.Option(min=0, help="Seed (overrides file).")]

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Log lines only, no live bar.")]

Jobs = Annotated[
    str,
    typer.Option(
        metavar="N|auto",
        help="Worker processes on this machine sharing the study: auto (from the cores, "
        "GPUs, model size, trials and memory; 1 on a SQLite storage) or N. --jobs 1 is one "
        "process, reproducible trial for trial. Workers on other machines: run the same "
        "command there.",
    ),
]

Gpus = Annotated[
    str,
    typer.Option(
        metavar="auto|none|IDS",
        help="GPUs to train on, one per worker: auto (every visible one), none, or ids "
        "such as 0,1. Without a GPU (or CUDA) this changes nothing.",
    ),
]

WarmStart = Annotated[
    str | None,
    typer.Option(
        metavar="NAME[:K]",
        help="Begin a new study with the K (default 5) best trials of study NAME, mapped "
        "into this space (overrides the file's warm_start).",
    ),
]
