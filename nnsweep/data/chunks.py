"""A CSV of raw rows read in chunks, so a file of any length is predicted in bounded memory.

The chunks are read with the options :func:`nnsweep.data.tables.read_frame` uses
(``nnsweep predict``, see :mod:`nnsweep.predict.stream`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from nnsweep.data.features import FeatureSchema, require_columns
from nnsweep.errors import DataError, first_line

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 20_000


def iter_csv_rows(
    path: Path, schema: FeatureSchema, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The rows of the CSV at ``path`` (``.csv``, ``.tsv``, ``.csv.gz``) in frames of at most
    ``chunk_rows``: delimiter, encoding, ``?`` as missing and the schema's text columns read
    as text, as :func:`~nnsweep.data.tables.read_frame` reads a whole file.

    Raises:
        DataError: an unreadable or malformed file (at the chunk where pandas finds it), one
            without rows, or one that lacks the schema's columns (named).
    """
    import pandas as pd

    from nnsweep.data.tables import _check_file, _sniff

    _check_file(path)
    sep, encoding = _sniff(path)
    text = dict.fromkeys((c.name for c in schema.categorical), str)
    try:
        reader = pd.read_csv(
            path,
            sep=sep,
            decimal="," if sep == ";" else ".",
            encoding=encoding,
            na_values=["?"],
            skipinitialspace=True,
            index_col=False,
            dtype=text or None,
            chunksize=max(int(chunk_rows), 1),
        )
        with reader:
            first = True
            for frame in reader:
                frame.columns = [str(c).strip() for c in frame.columns]
                if first:
                    require_columns(frame.columns, schema)
                    first = False
                yield frame
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"dataset.path: {path} holds no columns; give a header and rows") from None
    except Exception as exc:  # pandas raises many types for a malformed file
        reason = first_line(exc)[:160]
        raise DataError(f"dataset.path: {path} is not a readable csv file ({reason})") from None
    if first:
        raise DataError(f"dataset.path: {path} has a header but no rows")
