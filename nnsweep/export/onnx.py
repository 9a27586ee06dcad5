"""``export --onnx``: the exported Keras model as ``model.onnx``, checked in onnxruntime.

The model is converted with tf2onnx (``tf2onnx.convert.from_function`` on the model's call,
opset :data:`OPSET`), preprocessing included: it takes the same raw inputs as ``model.keras``
(digits: ``pixels`` float32 ``(rows, 784)``; a table: ``numeric`` float32 ``(rows, columns)``
with missing cells as NaN, and one string ``(rows, 1)`` input per categorical column) and
answers what it answers (probabilities, or the value). Three ops of nnsweep's models need
handlers of our own (:mod:`nnsweep.export._onnx_ops`): with them every model nnsweep builds
converts (measured with TensorFlow 2.21, Keras 3.15, tf2onnx 1.17, onnxruntime 1.32;
docs/export-predict.md).

:func:`convert` loads the converted graph in onnxruntime before the test split is read, and
refuses a model holding an op onnxruntime cannot run, naming it. After the one test read,
:func:`check` runs the graph on the test rows beside Keras' predictions; the card states the
largest absolute difference and the versions used, and a difference over :data:`TOLERANCE`
keeps the file out of the export.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.errors import ExportError, first_line

if TYPE_CHECKING:
    import keras

    from nnsweep.data.modelio import ModelIO

ONNX_FILE = "model.onnx"
OPSET = 17
OUTPUT = "output"
TOLERANCE = 1e-4  # float32 arithmetic in another order: 0 to 2.4e-7 measured; more is a bug
INSTALL = "pip install 'nnsweep[onnx]'"
PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
_MISSING_OP = re.compile(r"No Op registered for (\w+)")


@dataclass(frozen=True)
class OnnxModel:
    """A converted model: the serialised ONNX graph and how it was made."""

    data: bytes
    inputs: tuple[dict[str, Any], ...]
    converter: str
    runtime: str


def require() -> None:
    """Refuse ``--onnx`` when the optional packages are not installed.

    Raises:
        ExportError: naming the missing packages and the install command.
    """
    missing = []
    for name in PACKAGES:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise ExportError(
            f"--onnx needs `{INSTALL}` ({', '.join(missing)} not installed); install it or "
            "export without --onnx"
        )


def convert(model: keras.Model, io: ModelIO, what: str) -> OnnxModel:
    """``model`` as an ONNX graph taking the same inputs, loaded once in onnxruntime.

    ``what`` names the model in messages (e.g. ``trial #3's model``).

    Raises:
        ExportError: the optional packages are missing, tf2onnx fails, or the graph holds an
            operator onnxruntime cannot run (named).
    """
    require()
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from nnsweep.export._onnx_ops import handlers

    signature = _signature(model, io)

    def call(inputs: Any) -> dict[str, Any]:
        return {OUTPUT: model(inputs, training=False)}

    function = tf.function(call, input_signature=signature)
    converter = f"tf2onnx {tf2onnx.__version__} (opset {OPSET})"
    quiet = logging.getLogger("tf2onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs every op it rewrites at INFO and WARNING
    try:
        proto, _ = tf2onnx.convert.from_function(
            function,
            input_signature=signature,
            opset=OPSET,
            custom_op_handlers=handlers(model),
        )
    except Exception as exc:  # tf2onnx raises bare ValueError/KeyError on what it cannot map
        raise ExportError(
            f"--onnx: {converter} cannot convert {what}: {type(exc).__name__}: "
            f"{_first_line(exc)}; export without --onnx"
        ) from None
    finally:
        quiet.setLevel(level)
    _drop_unused_inputs(proto)
    data = proto.SerializeToString()
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception classes are not public
        raise ExportError(_refusal(what, converter, str(exc))) from None
    inputs = tuple(
        {
            "name": i.name,
            "type": i.type,
            "shape": [d if isinstance(d, int) else None for d in i.shape],
        }
        for i in session.get_inputs()
    )
    return OnnxModel(data, inputs, converter, f"onnxruntime {ort.__version__}")


def check(converted: OnnxModel, model: keras.Model, x: Any) -> dict[str, Any]:
    """The card's ``onnx`` section: the graph run on the test rows ``x`` (already read by the
    export, not read again) beside Keras' own predictions.

    ``file`` is :data:`ONNX_FILE`, or None with ``refused`` saying why when the largest
    absolute difference is not finite or over :data:`TOLERANCE`.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(converted.data, providers=["CPUExecutionProvider"])
    want = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float64)
    names = [i.name for i in session.get_inputs()]
    feeds = (
        {name: _array(x[name]) for name in names} if isinstance(x, dict) else {names[0]: _array(x)}
    )
    got = np.asarray(session.run([OUTPUT], feeds)[0], np.float64).reshape(want.shape)
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    ok = bool(np.isfinite(diff)) and diff <= TOLERANCE
    section: dict[str, Any] = {
        "file": ONNX_FILE if ok else None,
        "max_abs_diff": diff if np.isfinite(diff) else None,
        "compared_on": f"the {len(want)} test rows, against Keras' predictions",
        "tolerance": TOLERANCE,
        "opset": OPSET,
        "converter": converted.converter,
        "runtime": converted.runtime,
        "inputs": list(converted.inputs),
        "output": OUTPUT,
    }
    if not ok:
        section["refused"] = (
            f"onnxruntime's output differs from Keras' by {diff:.3g} (over {TOLERANCE:g}); "
            "model.onnx was not written"
        )
    return section


def _signature(model: keras.Model, io: ModelIO) -> list[Any]:
    """tf.TensorSpecs of the model's inputs, any number of rows: a dict for a table's model
    (its inputs by name), one spec for a model on one array."""
    import tensorflow as tf

    specs = {
        str(t.name).split(":")[0]: tf.TensorSpec(
            (None, *t.shape[1:]), t.dtype, name=str(t.name).split(":")[0]
        )
        for t in model.inputs
    }
    if io.schema is not None:
        return [specs]
    if len(specs) != 1:
        raise ExportError(f"--onnx: the model takes {len(specs)} inputs, expected one")
    return [next(iter(specs.values()))]


def _drop_unused_inputs(proto: Any) -> None:
    """Remove graph inputs no node reads: the lookup tables' default values, which tf2onnx
    turns into inputs (captured constants) and :mod:`~nnsweep.export._onnx_ops` leaves unused."""
    used = {name for node in proto.graph.node for name in node.input}
    for unused in [i for i in proto.graph.input if i.name not in used]:
        proto.graph.input.remove(unused)


def _refusal(what: str, converter: str, error: str) -> str:
    found = _MISSING_OP.search(error)
    if found is None:
        return (
            f"--onnx: onnxruntime cannot load {what} as converted by {converter}: "
            f"{first_line(error)[:300]}; export without --onnx"
        )
    return (
        f"--onnx: {what} holds TensorFlow's {found.group(1)}, which {converter} leaves in the "
        "graph and onnxruntime cannot run (docs/export-predict.md lists what converts); "
        "export without --onnx"
    )


def _array(values: Any) -> np.ndarray:
    """A model input as onnxruntime takes it: float32, or Python strings (a tf.string tensor
    holds bytes)."""
    out = np.asarray(values.numpy() if hasattr(values, "numpy") else values)
    if out.dtype.kind in "fiub":
        return out.astype(np.float32)
    decode = np.vectorize(
        lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v), otypes=[object]
    )
    return decode(out) if out.size else out.astype(object)


def _first_line(exc: BaseException) -> str:
    return first_line(exc)[:300]


def markdown(card: dict[str, Any]) -> list[str]:
    """``MODEL_CARD.md``'s ONNX section, if the export was asked for one."""
    section = card.get("onnx")
    if not section:
        return []
    inputs = ", ".join(
        f"`{i['name']}` {i['type']} {i['shape']}".replace("None", "rows") for i in section["inputs"]
    )
    diff = section["max_abs_diff"]
    lines = [
        "",
        "## ONNX",
        "",
        f"- file: `{section['file']}`" if section["file"] else f"- no file: {section['refused']}",
        f"- largest absolute difference from Keras: {diff:.3g} on {section['compared_on']} "
        f"(tolerance {section['tolerance']:g})"
        if diff is not None
        else "- largest absolute difference from Keras: not finite",
        f"- inputs: {inputs}; output `{section['output']}` (what `model.keras` answers)",
        f"- made with {section['converter']}, checked with {section['runtime']}",
    ]
    return lines


def summary_line(card: dict[str, Any]) -> str | None:
    """The export summary's ONNX line, e.g. ``onnx: model.onnx, largest difference from Keras
    1.2e-07 on the 100 test rows (tf2onnx 1.17.0 (opset 17), onnxruntime 1.32.0)``."""
    section = card.get("onnx")
    if not section:
        return None
    diff = section["max_abs_diff"]
    shown = f"{diff:.2g}" if diff is not None else "not finite"
    head = section["file"] or f"not written ({section['refused']})"
    rows = section["compared_on"].removesuffix(", against Keras' predictions")
    return (
        f"onnx: {head}, largest difference from Keras {shown} on {rows} "
        f"({section['converter']}, {section['runtime']})"
    )
