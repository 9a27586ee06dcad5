"""MLflow models read back by URI: resolve ``models:/…`` in a given store and download its files.

Used by :mod:`nnsweep.export.export` (the best trial's logged model) and
:mod:`nnsweep.predict.predict`
(``nnsweep predict models:/NAME@ALIAS``); the sweep writes the models, see
:mod:`nnsweep.train.modellog`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nnsweep.errors import ExportError, first_line
from nnsweep.names import MODEL_URI_TAG
from nnsweep.urls import mask_url

_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def model_location(uri: str, tracking_uri: str) -> str:
    """Where the files of MLflow model ``uri`` live, resolved in the store at ``tracking_uri``.

    ``uri`` is ``models:/m-…`` (a logged model), ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``
    or ``models:/NAME/latest``. Resolved here with an explicit client because MLflow's own
    ``models:/`` resolution reads the *global* tracking URI, whatever URI it is given.

    Raises:
        ExportError: not a ``models:/`` URI, or no such model, alias or version.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    rest = uri.removeprefix("models:/").strip("/") if uri.startswith("models:/") else ""
    name, sep, pointer = rest.rpartition("@") if "@" in rest else rest.rpartition("/")
    if not rest or (not sep and not rest.startswith("m-")):
        raise ExportError(
            f"{uri}: not an MLflow model URI; use models:/NAME@ALIAS, models:/NAME/VERSION or "
            "models:/m-ID"
        )
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if not sep:
            return str(client.get_logged_model(rest).artifact_location)
        if sep == "@":
            version = client.get_model_version_by_alias(name, pointer).version
        elif pointer == "latest":
            found = client.search_model_versions(f"name = '{name}'")
            if not found:
                raise MlflowException(f"Registered Model with name={name} not found")
            version = str(max(int(v.version) for v in found))
        else:
            version = pointer
        return str(client.get_model_version_download_uri(name, version))
    except MlflowException as exc:
        reason = mask_url(first_line(exc))[:200]
        raise ExportError(
            f"{uri}: not found in {mask_url(tracking_uri)} ({reason}); check the name, version "
            "or alias, and --tracking-uri"
        ) from None


def download_model(uri: str, dst: str | Path, tracking_uri: str) -> Path:
    """Copy the files of MLflow model ``uri`` (see :func:`model_location`) into ``dst``.

    Raises:
        ExportError: the model cannot be resolved or fetched (one line, with MLflow's reason).
    """
    import mlflow

    location = model_location(uri, tracking_uri)
    # MLflow draws a progress bar on stderr for every download; a CLI line is enough.
    previous = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "false"
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri
        )
    except Exception as exc:
        reason = mask_url(first_line(exc))[:200]
        raise ExportError(f"{uri}: cannot download its files from {location} ({reason})") from None
    finally:
        if previous is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = previous
    return Path(local)


def model_uri_of(run: Any) -> str | None:
    """The ``models:/m-…`` URI the sweep logged on a trial's MLflow run, if any."""
    return run.data.tags.get(MODEL_URI_TAG)
