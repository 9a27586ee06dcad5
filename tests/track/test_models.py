"""``models:/`` URIs resolved in the given store: refusals are one ExportError line.

The round trip (a logged model downloaded and loaded) is in ``test_modelstore.py``; registry
aliases and versions in ``test_export.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nnsweep.errors import ExportError
from nnsweep.track.models import MODEL_URI_TAG, download_model, model_location, model_uri_of


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/", "models:/mnist-mlp", "m-123"])
def test_a_uri_that_is_not_a_model_uri_is_refused(uri: str) -> None:
    with pytest.raises(ExportError, match=r"not an MLflow model URI; use models:/NAME@ALIAS"):
        model_location(uri, "sqlite:///unused.db")


@pytest.mark.parametrize("uri", ["models:/m-0123456789abcdef", "models:/nope@champion"])
def test_a_model_missing_from_the_store_names_the_store(uri: str, tmp_path: Path) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ExportError, match=r"not found in sqlite:///.*check the name") as info:
        download_model(uri, tmp_path / "copy", tracking_uri)
    assert str(info.value).startswith(uri) and "\n" not in str(info.value)
    assert not (tmp_path / "copy").exists()


def test_model_uri_of_reads_the_runs_tag() -> None:
    from mlflow.entities import Run, RunData, RunInfo, RunTag

    def run_with(tags: dict[str, str]) -> Run:
        info = RunInfo("r", "0", "u", "FINISHED", 0, 0, "ACTIVE", artifact_uri="file:///x")
        return Run(info, RunData(tags=[RunTag(k, v) for k, v in tags.items()]))

    assert model_uri_of(run_with({MODEL_URI_TAG: "models:/m-1"})) == "models:/m-1"
    assert model_uri_of(run_with({})) is None
