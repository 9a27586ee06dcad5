"""`nnsweep predict` streams CSV rows: chunks keep the rows' order and labels (the output is the
whole-file output), a progress bar counts every row, and the reader's memory is bounded by a
chunk, not by the file."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder (model.keras beside the card's io section) of a model trained briefly
    on a synthetic table with string labels, a text column and missing values."""
    import keras

    from nnsweep.data.load import load_dataset
    from nnsweep.data.modelio import ModelIO
    from nnsweep.export.card import CARD_FORMAT
    from nnsweep.spec.config import DatasetSpec
    from nnsweep.train.model import HyperParams, build_model
    from tests._tables import write_table

    root = tmp_path_factory.mktemp("stream")
    path = write_table(root, "binary", n=200)
    data = load_dataset(DatasetSpec.model_validate({"path": str(path), "target": "label"}))
    keras.utils.set_random_seed(0)
    hp = HyperParams(n_layers=1, units=(8,), batch_size=32, epochs=3, learning_rate=0.01)
    model = build_model(hp, **data.model_kwargs())
    model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    folder = root / "export"
    folder.mkdir()
    model.save(folder / "model.keras")
    card = {"format": CARD_FORMAT, "io": ModelIO.of(data).as_dict()}
    (folder / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def _rows(tmp_path: Path, name: str, n: int, seed: int) -> Path:
    """``n`` new rows, the target column kept, an unseen category and a missing number."""
    from tests._tables import make_table

    frame = make_table("binary", n=n, seed=seed)
    frame.loc[0, "colour"] = "purple"
    frame.loc[1, "x1"] = np.nan
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def _streamed(loaded: Any, paths: list[Path], fmt: str, chunk_rows: int) -> str:
    from nnsweep.predict.stream import stream_predictions

    parts: list[str] = []
    n = stream_predictions(loaded, paths, fmt, parts.append, chunk_rows=chunk_rows, progress=False)
    assert n == 0 or parts
    return "".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_chunks_keep_row_order_and_labels(binary_model, tmp_path, fmt):
    """Streamed in chunks of 7 rows (a ragged last chunk, two files), the output is exactly the
    whole-file output: every row once, numbered from 0 per file, with the same label and
    probability."""
    from nnsweep.predict.loader import load_predictor
    from nnsweep.predict.output import render
    from nnsweep.predict.predict import predict

    paths = [_rows(tmp_path, "a", 52, seed=3), _rows(tmp_path, "b", 9, seed=4)]
    loaded = load_predictor(str(binary_model), "sqlite:///unused.db")
    whole = render(predict(str(binary_model), paths, tracking_uri="unused", loaded=loaded), fmt)
    streamed = _streamed(loaded, paths, fmt, chunk_rows=7)
    assert streamed == whole
    if fmt == "json":
        rows = json.loads(streamed)
        assert [r["row"] for r in rows] == list(range(52)) + list(range(9))
        assert {r["prediction"] for r in rows} <= {"good", "bad"}


@pytest.mark.slow
def test_text_output_has_one_header_and_every_row(binary_model, tmp_path):
    """The text table, aligned chunk by chunk, has one header and one line per row in order."""
    from nnsweep.predict.loader import load_predictor

    path = _rows(tmp_path, "a", 23, seed=5)
    loaded = load_predictor(str(binary_model), "sqlite:///unused.db")
    lines = _streamed(loaded, [path], "text", chunk_rows=5).splitlines()
    assert lines[0].split() == ["input", "row", "prediction", "probability"]
    assert [int(line.split()[1]) for line in lines[1:]] == list(range(23))


@pytest.mark.slow
def test_progress_bar_counts_every_row(binary_model, tmp_path, monkeypatch):
    """With progress on, the bar on stderr ends at the file's row count; off, nothing is drawn."""
    from nnsweep.predict.loader import load_predictor
    from nnsweep.predict.stream import stream_predictions

    path = _rows(tmp_path, "a", 45, seed=6)
    loaded = load_predictor(str(binary_model), "sqlite:///unused.db")
    for progress, expected in ((True, "45 rows"), (False, "")):
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        n = stream_predictions(
            loaded, [path], "csv", lambda _: None, chunk_rows=10, progress=progress
        )
        assert n == 45
        if expected:
            assert expected in err.getvalue().replace(".0", "")
        else:
            assert err.getvalue() == ""


def _csv_of(path: Path, n: int) -> None:
    """A numeric and a text column (a distinct text per row, as an id or a free-text field
    has), ``n`` rows, written in blocks."""
    import pandas as pd

    block = 50_000
    for start in range(0, n, block):
        size = min(block, n - start)
        frame = pd.DataFrame(
            {
                "x": np.arange(start, start + size, dtype=float),
                "colour": [f"c{i}" for i in range(start, start + size)],
            }
        )
        frame.to_csv(path, mode="w" if start == 0 else "a", header=start == 0, index=False)


_READER = """
import sys
from pathlib import Path
import pandas as pd
from nnsweep.data.chunks import iter_csv_rows
from nnsweep.data.features import fit_schema

warm, path, chunk_rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
schema = fit_schema(pd.read_csv(warm, nrows=100), {"x": "numeric", "colour": "categorical"})


def peak_kib():  # this process's own peak RSS (ru_maxrss would count the parent's, from fork)
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


for _ in iter_csv_rows(warm, schema, chunk_rows=5_000):
    pass
before = peak_kib()
seen, ordered, text = 0, True, True
for frame in iter_csv_rows(path, schema, chunk_rows=chunk_rows):
    ordered &= bool((frame["x"].to_numpy() == range(seen, seen + len(frame))).all())
    text &= bool(frame["colour"].map(type).eq(str).all())
    seen += len(frame)
grown = peak_kib() - before
print(seen, ordered, text, grown)
"""


def _read_in_child(warm: Path, path: Path, chunk_rows: int) -> tuple[int, bool, bool, int]:
    """Rows seen, in order, text as text, and the peak RSS growth (KiB) of a fresh process
    reading ``path`` in chunks of ``chunk_rows`` (after warming up on ``warm``)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _READER, str(warm), str(path), str(chunk_rows)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen, ordered, text, grown = done.stdout.split()
    return int(seen), ordered == "True", text == "True", int(grown)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_chunked_reader_memory_is_bounded_by_a_chunk(tmp_path):
    """A fresh process reading 400,000 rows in chunks of 5,000 grows its peak memory (RSS) by
    a fraction of what the whole file in one chunk costs; the chunks hold every row once, in
    order, text read as text."""
    warm, large = tmp_path / "warm.csv", tmp_path / "large.csv"
    _csv_of(warm, 20_000)
    _csv_of(large, 400_000)
    seen, ordered, text, streamed = _read_in_child(warm, large, 5_000)
    assert (seen, ordered, text) == (400_000, True, True)
    *_, whole = _read_in_child(warm, large, 10**9)
    assert whole > 8_000, whole  # the whole file costs over 8 MiB more: the yardstick is real
    assert streamed < whole / 4, (streamed, whole)
