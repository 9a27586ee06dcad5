"""The registered champion serves raw rows through MLflow's own tools, answering as
``nnsweep predict`` does.

Real sweeps (a table with numeric and text columns; the 5k MNIST digits), ``nnsweep export
--register``, then the real ``mlflow models serve --env-manager local`` on a free loopback port
(``dataframe_split`` and ``dataframe_records`` POSTs; for digits also ``inputs`` as 28×28
arrays), ``mlflow models predict`` (a CSV of the table's rows; a CSV of 0–255 pixel integers and
a JSON ``dataframe_split``) and ``mlflow.pyfunc.load_model(...).predict``, each compared with
``nnsweep predict models:/…``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests._uiproc import free_port
from tests.conftest import TINY_SWEEP, CliResult, Stores

BIN = Path(sys.executable).parent
SERVE_WAIT_S = 180.0
TABLE_SWEEP: dict[str, Any] = {
    "name": "flowers",
    "trials": 3,  # a small table: the export's default is the mean of the 3 best trials
    "seed": 0,
    "sampler": "random",
    "pruner": "none",
    "train": {"epochs": 30, "batch_size": 16},
    "space": {"n_layers": 1, "units": [12, 16], "activation": "relu", "optimizer": "adam",
              "learning_rate": 0.02, "dropout": 0.0},
}  # fmt: skip


def flower_table(n_missing: int = 6) -> Any:
    """sklearn's iris (4 numeric columns, species names as labels) plus two text columns:
    ``colour`` (tied to the species, a few cells empty) and ``site`` (noise)."""
    import pandas as pd
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    rng = np.random.default_rng(0)
    species = np.asarray(iris.target_names)[iris.target]
    palette = {"setosa": "white", "versicolor": "blue", "virginica": "purple"}
    colour = pd.Series([palette[s] for s in species], dtype=object)
    colour[rng.choice(len(frame), n_missing, replace=False)] = None
    frame = frame.drop(columns="target").assign(
        colour=colour,
        site=rng.choice(["north", "south", "east"], len(frame)),
        stems=rng.integers(1, 5, len(frame)),  # int64 in every CSV read: MLflow's double refuses it
        wild=rng.choice([True, False], len(frame)),  # bool
        species=species,
    )
    return frame


def _run(*args: str | Path) -> None:
    from nnsweep.cli.main import main

    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def champions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two registered champions in one store: ``flowers`` (table) and ``digits`` (MNIST)."""
    root = tmp_path_factory.mktemp("serving")
    stores = Stores(root, f"sqlite:///{root / 'optuna.db'}", f"sqlite:///{root / 'mlflow.db'}")
    table = root / "flowers.csv"
    flower_table().to_csv(table, index=False)
    sweeps = {
        "flowers": {**TABLE_SWEEP,
                    "dataset": {"path": str(table), "target": "species", "validation": 0.2}},
        "digits": {**TINY_SWEEP, "name": "digits", "trials": 1,
                   "train": {"epochs": 2, "batch_size": 128}},
    }  # fmt: skip
    for name, spec in sweeps.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        _run("run", path, "--quiet", *stores.args)
        _run("export", name, "--out", root / "exports" / name, "--register", name, *stores.args)
    return {"stores": stores, "root": root, "table": table}


def _env(stores: Stores) -> dict[str, str]:
    """The serving process's environment: the store (registry included: whatever
    MLFLOW_REGISTRY_URI this process's environment holds is not it), and the venv's bin on
    PATH, where `mlflow models serve` finds `uvicorn`."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": stores.tracking_uri,
        "MLFLOW_REGISTRY_URI": stores.tracking_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@contextlib.contextmanager
def served(name: str, stores: Stores, log: Path) -> Iterator[str]:
    """``mlflow models serve -m models:/NAME@champion`` on a free loopback port; its URL."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
           "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=_env(stores), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_WAIT_S
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _models_predict(uri: str, rows: Path, content_type: str, stores: Stores) -> list[Any]:
    """The labels the real ``mlflow models predict`` gives for the file ``rows``."""
    out = rows.with_name(rows.name + ".out.json")
    subprocess.run(
        [str(BIN / "mlflow"), "models", "predict", "-m", uri, "-i", str(rows), "-t",
         content_type, "--env-manager", "local", "-o", str(out)],
        env=_env(stores), check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    return [p["prediction"] for p in json.loads(out.read_text())["predictions"]]


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _nnsweep_predict(
    cli: Callable[..., CliResult], model: str, path: Path, stores: Stores
) -> list[dict[str, Any]]:
    """What ``nnsweep predict MODEL PATH --json`` answers (in this process: the servers and
    ``mlflow models predict`` are the separate processes compared with it)."""
    result = cli("predict", model, path, "--json", "--tracking-uri", stores.tracking_uri)
    assert result.code == 0, result.err
    return json.loads(result.out)


def _table_rows(champions: dict[str, Any]) -> Any:
    """Raw rows of the table: every species, a missing colour, a missing number, an unseen
    site, an integer where the file had floats; the target column left in (ignored)."""
    import pandas as pd

    frame = pd.read_csv(champions["table"])
    rows = frame.iloc[[0, 1, 60, 61, 120, 140]].reset_index(drop=True)
    rows.loc[1, "colour"] = None
    rows.loc[2, "petal_width"] = np.nan
    rows.loc[3, "site"] = "moon"
    rows["sepal_length"] = rows["sepal_length"].astype(object)
    rows.loc[4, "sepal_length"] = 7  # a JSON integer in a double column
    return rows


def _records(rows: Any) -> list[dict[str, Any]]:
    """Rows as JSON records, missing cells as null."""
    out = []
    for record in rows.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and np.isnan(v) else v)
                    for k, v in record.items()})  # fmt: skip
    return out


@pytest.mark.slow
def test_table_champion_serves_raw_rows_as_nnsweep_predict_answers(
    champions, cli, tmp_path, monkeypatch
):
    import mlflow.pyfunc
    import pandas as pd

    stores, uri = champions["stores"], "models:/flowers@champion"
    card = json.loads((champions["root"] / "exports" / "flowers" / "model_card.json").read_text())
    assert card["ensemble"]["k"] == 3  # the default export of a small table: what is served
    rows = _table_rows(champions)
    csv = tmp_path / "rows.csv"
    rows.drop(columns="species").to_csv(csv, index=False)
    expected = _nnsweep_predict(cli, uri, csv, stores)
    labels = [r["prediction"] for r in expected]
    assert set(labels) <= {"setosa", "versicolor", "virginica"} and len(set(labels)) >= 2
    features = rows.drop(columns="species")
    records = _records(features)

    with served("flowers", stores, tmp_path / "serve.log") as url:
        split = {"columns": list(features.columns), "data": [list(r.values()) for r in records]}
        code, split_answer = _post(url, {"dataframe_split": split})
        assert code == 200, split_answer
        code, records_answer = _post(url, {"dataframe_records": records})
        assert code == 200, records_answer
        code, refused = _post(url, {"dataframe_records": [{"sepal_length": 5.0}]})

    for answer in (split_answer["predictions"], records_answer["predictions"]):
        assert [a["prediction"] for a in answer] == labels
        for got, want in zip(answer, expected, strict=True):
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    assert code == 400 and "petal_length" in refused["message"]

    # mlflow models predict on a CSV, and the Python API, on the same rows
    assert _models_predict(uri, csv, "csv", stores) == labels
    # the registry too: MLFLOW_REGISTRY_URI may hold an earlier test's store (see _env)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", stores.tracking_uri)
    mlflow.set_tracking_uri(stores.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(uri)
    finally:
        mlflow.set_tracking_uri(None)
    frame = pd.read_csv(csv)
    assert list(model.predict(frame)["prediction"]) == labels
    inputs = model.metadata.get_input_schema()
    assert [(c.name, str(c.type)) for c in inputs.inputs] == [
        ("sepal_length", "Any"), ("sepal_width", "Any"), ("petal_length", "Any"),
        ("petal_width", "Any"), ("colour", "DataType.string"), ("site", "DataType.string"),
        ("stems", "Any"),
        ("wild", "Any"),
    ]  # fmt: skip
    assert frame["stems"].dtype == np.int64 and frame["wild"].dtype == bool


@pytest.mark.slow
def test_digit_champion_serves_pixel_rows_as_nnsweep_predict_answers(champions, cli, tmp_path):
    import pandas as pd

    from nnsweep.data._digits import load_raw

    stores, uri = champions["stores"], "models:/digits@champion"
    (_, _, x_test, y_test), _ = load_raw("mnist_5k")
    # one test image of each digit 0-7 (the split is sorted by digit: its first rows are 0s)
    picked = [int(np.flatnonzero(y_test == digit)[0]) for digit in range(8)]
    pixels = np.asarray(x_test[picked], dtype=np.uint8).reshape(8, 784)
    np.save(tmp_path / "digits.npy", pixels)
    expected = [r["class"] for r in _nnsweep_predict(cli, uri, tmp_path / "digits.npy", stores)]
    assert len(set(expected)) >= 3  # a trained model, not a constant
    assert sum(e == d for e, d in zip(expected, range(8), strict=True)) >= 4

    scaled = (pixels / 255.0).round(6)
    columns = [f"p{i}" for i in range(784)]
    with served("digits", stores, tmp_path / "serve.log") as url:
        code, split = _post(url, {"dataframe_split": {"columns": columns,
                                                      "data": scaled.tolist()}})  # fmt: skip
        assert code == 200, split
        records = [dict(zip(columns, row, strict=True)) for row in pixels.tolist()]  # 0-255
        code, by_records = _post(url, {"dataframe_records": records})
        assert code == 200, by_records
        code, images = _post(url, {"inputs": pixels.reshape(8, 28, 28).tolist()})
        assert code == 200, images
        code, refused = _post(url, {"inputs": pixels[:, :100].tolist()})  # not 784 pixels
        assert code == 400 and "784 pixel values" in refused["message"], refused
    assert [p["prediction"] for p in split["predictions"]] == expected
    assert [p["prediction"] for p in by_records["predictions"]] == expected
    assert [p["prediction"] for p in images["predictions"]] == expected

    csv = tmp_path / "pixels.csv"  # a header and 0-255 integers, as MNIST CSVs come
    pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(784)]).to_csv(csv, index=False)
    assert _models_predict(uri, csv, "csv", stores) == expected

    rows = tmp_path / "pixels.json"  # 0-255 integers
    rows.write_text(json.dumps({"dataframe_split": {"columns": columns, "data": pixels.tolist()}}))
    assert _models_predict(uri, rows, "json", stores) == expected
