"""``nnsweep predict`` on CSV rows in chunks: read, predicted and written a chunk at a time.

A table model's CSV inputs (``.csv``, ``.tsv``, ``.csv.gz``) are read :data:`CHUNK_ROWS` rows at
a time (:func:`nnsweep.data.chunks.iter_csv_rows`), so memory stays bounded by a chunk
whatever the file's length, and the output is written as each chunk is done: the same CSV and
JSON as :func:`nnsweep.predict.output.render` gives for the whole file (the text table is
aligned chunk by chunk). A progress bar (rows, rows/s) goes to stderr when stderr is a
terminal. Each file is still at most :data:`~nnsweep.predict.rows.MAX_ROWS_FILE_BYTES` (and
a ``.gz`` at most :data:`~nnsweep.predict.rows.MAX_INFLATED_BYTES` decompressed), checked
before it is read; the row limit of a whole-file read does not apply.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnsweep.data.chunks import CHUNK_ROWS, iter_csv_rows
from nnsweep.data.rowmodel import answers
from nnsweep.errors import DataError, ExportError
from nnsweep.predict.output import render

if TYPE_CHECKING:
    from nnsweep.data.modelio import ModelIO
    from nnsweep.predict.loader import LoadedModel
    from nnsweep.predict.rows import RowPrediction


def streamable(contract: ModelIO | None, paths: Sequence[str | Path]) -> bool:
    """Whether ``paths`` are all CSV files of a table model's rows (so they stream)."""
    from nnsweep.spec.dataset import table_format

    if contract is None or contract.schema is None or not paths:
        return False
    return all(Path(p).is_file() and table_format(Path(p)) == "csv" for p in paths)


def stream_predictions(
    loaded: LoadedModel,
    paths: Sequence[str | Path],
    fmt: str,
    write: Callable[[str], None],
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool | None = None,
) -> int:
    """Predict every row of the CSV files ``paths`` with ``loaded``, writing ``fmt`` (``csv``,
    ``json`` or ``text``) output through ``write`` chunk by chunk; returns the rows predicted.

    ``progress``: draw a bar on stderr (None: only if stderr is a terminal).

    Raises:
        ExportError: a file that is missing, oversized or unreadable, holds no rows, or lacks
            a column.
    """
    from tqdm import tqdm

    from nnsweep.predict.rows import check_row_file

    for raw in paths:
        check_row_file(Path(raw))
    total = 0
    first = True
    hide = None if progress is None else not progress  # None: tqdm shows it on a terminal only
    bar = tqdm(unit=" rows", unit_scale=True, file=sys.stderr, disable=hide)
    with bar:
        for raw in paths:
            path = Path(raw)
            for chunk in _predicted(loaded, path, chunk_rows):
                write(_render_chunk(chunk, fmt, first=first))
                first = False
                total += len(chunk)
                bar.update(len(chunk))
    if fmt == "json":
        write("\n]\n")
    return total


def _predicted(loaded: LoadedModel, path: Path, chunk_rows: int) -> Iterator[list[RowPrediction]]:
    """The predictions of ``path``'s rows, a chunk at a time (rows numbered from 0 per file)."""
    from nnsweep.data.features import to_inputs
    from nnsweep.predict.rows import RowPrediction, _input_error

    contract = loaded.io
    assert contract.schema is not None
    row = 0
    try:
        for frame in iter_csv_rows(path, contract.schema, chunk_rows):
            if frame.empty:  # pandas hands a header-only file over as one empty chunk
                continue
            labels, probs, every = answers(contract, loaded(to_inputs(frame, contract.schema)))
            chunk = [
                RowPrediction(
                    input=str(path),
                    row=row + i,
                    prediction=labels[i],
                    probability=probs[i] if probs is not None else None,
                    probabilities=every[i] if every is not None else None,
                )
                for i in range(len(frame))
            ]
            row += len(frame)
            yield chunk
    except DataError as exc:
        raise _input_error(path, exc) from None
    if row == 0:  # as a whole-file read refuses it (nnsweep.predict.rows.read_model_rows)
        raise ExportError(f"INPUT {path}: holds no rows; give at least one")


def _render_chunk(chunk: list[RowPrediction], fmt: str, *, first: bool) -> str:
    """A chunk's lines: the whole output's header (or ``[``) only in the first chunk."""
    if fmt == "json":
        body = ",\n".join(textwrap.indent(json.dumps(r.as_dict(), indent=2), "  ") for r in chunk)
        return ("[\n" if first else ",\n") + body
    text = render(chunk, fmt)
    return text if first else text.split("\n", 1)[1]
