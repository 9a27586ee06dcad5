"""tf2onnx handlers for four TensorFlow ops it converts wrongly or not at all.

Each is measured against Keras on TensorFlow 2.21 with tf2onnx 1.17 (docs/export-predict.md).

* ``SelectV2`` (``ops.where``: the median imputation of missing numeric cells): tf2onnx writes
  ``cond * x + (1 - cond) * y`` unless the condition is a bare ``IsNaN``/``IsInf``, so a NaN in
  the branch not taken made the whole row NaN. Here: ONNX ``Where`` (same broadcasting).
* ``Erfinv`` (``input_transform: quantile``): ONNX has no such operator. Here: Giles' float32
  approximation (2010, "Approximating the erfinv function") and one Newton step on ONNX ``Erf``,
  on ``x`` rounded as TensorFlow rounds it (``ndtri((x + 1) / 2) / sqrt(2)`` in float32):
  within 1.8e-6 of ``tf.math.erfinv`` over the transform's range [-0.998, 0.998].
* ``Erfc`` (``activation: gelu``, Keras' exact GELU ``0.5 x erfc(-x / sqrt 2)``): ONNX has no
  such operator. Here: ``1 - Erf(x)``, within 1e-7 of TensorFlow where GELU uses it.
* ``LookupTableFindV2`` (Keras ``StringLookup``: categorical columns): tf2onnx cannot find the
  table of a Keras 3 layer ("Could not determine table shared name"). Here: ONNX-ML
  ``CategoryMapper`` with the layer's own vocabulary (``get_vocabulary()``), found by the
  layer's name in the node's name scope; unseen strings map to the out-of-vocabulary index 0.

Handlers use tf2onnx's custom-op-handler interface (``func(ctx, node, name, args)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

Handler = Callable[[Any, Any, str, list[Any]], None]

# Giles (2010), single precision: w < 5 and w >= 5, highest power first
_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
            -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)  # fmt: skip
_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
         -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)  # fmt: skip


def handlers(model: keras.Model) -> dict[str, tuple[Handler, list[Any]]]:
    """tf2onnx ``custom_op_handlers`` for ``model`` (its ``StringLookup`` vocabularies)."""
    vocabularies = _vocabularies(model)

    def lookup(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
        _lookup(ctx, node, vocabularies)

    return {
        "SelectV2": (_where, []),
        "Erfinv": (_erfinv, []),
        "Erfc": (_erfc, []),
        "LookupTableFindV2": (lookup, []),
    }


def _where(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    node.type = "Where"


def _erfc(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    from tf2onnx import utils

    dtype = ctx.get_dtype(node.input[0])
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1.0, np.float32))
    erf = ctx.make_node("Erf", [node.input[0]]).output[0]
    outputs, shape = node.output, ctx.get_shape(node.output[0])
    ctx.remove_node(node.name)
    ctx.make_node("Sub", [one.output[0], erf], outputs=outputs, shapes=[shape], dtypes=[dtype])


def _erfinv(ctx: Any, node: Any, name: str, args: list[Any]) -> None:
    from tf2onnx import utils

    def const(value: float) -> str:
        array = np.array(value, np.float32)
        return str(ctx.make_const(utils.make_name(f"{node.name}_c"), array).output[0])

    def op(kind: str, *inputs: str) -> str:
        return str(ctx.make_node(kind, list(inputs)).output[0])

    def horner(coefficients: tuple[float, ...], t: str) -> str:
        p = const(coefficients[0])
        for c in coefficients[1:]:
            p = op("Add", const(c), op("Mul", p, t))
        return p

    one, half = const(1.0), const(0.5)
    # x as TensorFlow sees it: 2 * (fl(x / 2 + 1 / 2) - 1 / 2), both steps exact
    x = op("Sub", op("Add", op("Mul", node.input[0], half), half), half)
    x = op("Add", x, x)
    w = op("Neg", op("Log", op("Mul", op("Sub", one, x), op("Add", one, x))))
    central = horner(_CENTRAL, op("Sub", w, const(2.5)))
    tail = horner(_TAIL, op("Sub", op("Sqrt", w), const(3.0)))
    y = op("Mul", op("Where", op("Less", w, const(5.0)), central, tail), x)
    slope = op("Mul", const(2 / math.sqrt(math.pi)), op("Exp", op("Neg", op("Mul", y, y))))
    step = op("Div", op("Sub", op("Erf", y), x), slope)
    outputs, shape, dtype = (
        node.output,
        ctx.get_shape(node.output[0]),
        ctx.get_dtype(node.output[0]),
    )
    ctx.remove_node(node.name)
    ctx.make_node("Sub", [y, step], outputs=outputs, shapes=[shape], dtypes=[dtype])


def _lookup(ctx: Any, node: Any, vocabularies: dict[str, list[str]]) -> None:
    from onnx import TensorProto

    vocabulary = _vocabulary_of(node.name, vocabularies)
    if vocabulary is None:
        raise ValueError(f"no StringLookup layer of the model matches {node.name}")
    outputs, shape = node.output, ctx.get_shape(node.output[0])
    keys = node.input[1]
    ctx.remove_node(node.name)
    ctx.make_node(
        "CategoryMapper",
        [keys],
        attr={
            "cats_strings": [v.encode("utf-8") for v in vocabulary[1:]],
            "cats_int64s": list(range(1, len(vocabulary))),
            "default_int64": 0,
        },
        domain="ai.onnx.ml",
        outputs=outputs,
        shapes=[shape],
        dtypes=[TensorProto.INT64],
    )


def _vocabularies(model: keras.Model) -> dict[str, list[str]]:
    """Layer name → vocabulary (out-of-vocabulary token first) of every ``StringLookup`` in
    ``model`` and the models nested in it (an ensemble's members). Only the layout nnsweep
    builds (one OOV index, no mask token) is taken: any other stays unconverted."""
    import keras

    found: dict[str, list[str]] = {}
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.StringLookup):
            config = layer.get_config()
            if config.get("num_oov_indices") == 1 and config.get("mask_token") is None:
                found[layer.name] = [str(v) for v in layer.get_vocabulary()]
        elif isinstance(layer, keras.Model):
            found.update(_vocabularies(layer))
    return found


def _vocabulary_of(node_name: str, vocabularies: dict[str, list[str]]) -> list[str] | None:
    """The vocabulary of the layer whose name (TensorFlow may add ``_N``) is a scope of
    ``node_name``, e.g. ``mlp_1/onehot_colour_1/None_Lookup/LookupTableFindV2``."""
    scopes = node_name.split("/")[:-1]
    for scope in reversed(scopes):
        if scope in vocabularies:
            return vocabularies[scope]
        for layer, vocabulary in vocabularies.items():
            if re.fullmatch(re.escape(layer) + r"_\d+", scope):
                return vocabulary
    return None
