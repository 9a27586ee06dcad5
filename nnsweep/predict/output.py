"""What ``nnsweep predict`` answers: a digit's prediction, and every result rendered as text.

:func:`render` writes digit predictions (:class:`Prediction`) and row predictions
(:class:`~nnsweep.predict.rows.RowPrediction`) as JSON, CSV or an aligned text table; both
:mod:`nnsweep.predict.predict` and the chunk-by-chunk :mod:`nnsweep.predict.stream` use it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnsweep.predict.rows import RowPrediction


@dataclass(frozen=True)
class Prediction:
    """One input's predicted digit, its probability, all 10 probabilities, and whether the
    input was inverted to MNIST polarity first."""

    input: str
    digit: int
    probability: float
    probabilities: tuple[float, ...]
    inverted: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "class": self.digit,
            "probability": self.probability,
            "inverted": self.inverted,
            "probabilities": list(self.probabilities),
        }


def render(results: list[Prediction] | list[RowPrediction], fmt: str) -> str:
    """``results`` as ``json`` (a list of objects), ``csv`` (a header, one line per input) or
    ``text`` (an aligned table). Rows: ``input``, ``row``, ``prediction`` and, for
    classification, ``probability``; digits: ``input``, ``class``, ``probability``,
    ``inverted`` and ``p0``…``p9``."""
    if fmt == "json":
        return json.dumps([r.as_dict() for r in results], indent=2) + "\n"
    rows = [_flat(r) for r in results]
    header = list(rows[0]) if rows else ["input", "prediction"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([row[k] for k in header] for row in rows)
        return buffer.getvalue()
    shown = [k for k in header if k not in ("inverted",) and not _is_prob_column(k)]
    widths = {k: max(len(k), *(len(row[k]) for row in rows)) for k in shown}
    lines = ["  ".join(f"{k:<{widths[k]}}" for k in shown).rstrip()]
    for row, result in zip(rows, results, strict=True):
        note = "  (inverted)" if isinstance(result, Prediction) and result.inverted else ""
        lines.append("  ".join(_align(row[k], widths[k], k) for k in shown).rstrip() + note)
    return "\n".join(lines) + "\n"


def _is_prob_column(key: str) -> bool:
    return key.startswith("p") and key[1:].isdigit()


def _align(value: str, width: int, key: str) -> str:
    return f"{value:<{width}}" if key in ("input", "prediction") else f"{value:>{width}}"


def _flat(result: Prediction | RowPrediction) -> dict[str, str]:
    """One result as CSV cells, in column order."""
    if isinstance(result, Prediction):
        return {
            "input": result.input,
            "class": str(result.digit),
            "probability": f"{result.probability:.6f}",
            "inverted": str(result.inverted).lower(),
            **{f"p{i}": f"{p:.6f}" for i, p in enumerate(result.probabilities)},
        }
    value = result.prediction
    cells = {
        "input": result.input,
        "row": str(result.row),
        # float32 outputs: 7 significant digits is what they hold
        "prediction": f"{value:.7g}" if isinstance(value, float) else str(value),
    }
    if result.probability is not None:
        cells["probability"] = f"{result.probability:.6f}"
    return cells
