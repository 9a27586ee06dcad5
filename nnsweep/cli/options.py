"""Options the ``nnsweep`` commands share: where the two stores are, and ``--json``."""

from __future__ import annotations

from typing import Annotated

import typer

from nnsweep.stores import STORAGE_ENV, TRACKING_ENV, resolve
from nnsweep.urls import mask_url

Storage = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar=STORAGE_ENV,
        help="Optuna storage URL [default: journal:///optuna.log beside the MLflow SQLite file; "
        "an existing optuna.db there is kept].",
        show_envvar=True,
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar=TRACKING_ENV,
        help="MLflow tracking URI [default: sqlite:///mlflow.db].",
        show_envvar=True,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead.")]


def resolve_stores(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """(Optuna storage URL, MLflow tracking URI) from the flags, environment and defaults."""
    return resolve(storage, tracking_uri)


def uri_flag(tracking_uri: str | None) -> str:
    """`` --tracking-uri URI`` (password masked) to repeat in a hint, when one was given."""
    return f" --tracking-uri {mask_url(tracking_uri)}" if tracking_uri else ""
