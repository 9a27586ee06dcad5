"""The search space's tabular techniques: weight decay, batch norm, input transform, embeddings.

Each is a space dimension like the others (fixed, a list of choices, or a range) that
:class:`nnsweep.spec.config.SpaceSpec` takes from :class:`TabularSpaceFields`; the model
builds them (:mod:`nnsweep.train.layers`, :func:`nnsweep.train.model.build_model`). Their
defaults are the plain MLP of earlier versions, so a space that names none of them trains as
before:

* ``weight_decay``: decoupled weight decay (AdamW's) on any optimizer; left out, each
  optimizer keeps its own default (``adamw`` 0.004, the others none).
* ``batch_norm``: ``true`` puts a ``BatchNormalization`` between each hidden ``Dense`` and
  its activation.
* ``input_transform`` (tables): ``standard`` (the training mean and standard deviation) or
  ``quantile`` (each numeric column through its training quantiles to a normal score).
* ``numeric_embedding`` (tables): ``none``, ``periodic`` or ``piecewise_linear``
  (Gorishniy et al. 2022), each numeric column into ``embedding_dim`` values.
* ``categorical_encoding`` (tables): ``onehot``, or ``embedding``: categorical columns with
  :data:`MANY_CATEGORIES` or more categories become a learned ``embedding_dim``-wide vector.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from nnsweep.spec.space import Choice, Dimension, Fixed, parse_categorical, parse_numeric
from nnsweep.spec.space import short_repr as _short

INPUT_TRANSFORMS = ("standard", "quantile")
NUMERIC_EMBEDDINGS = ("none", "periodic", "piecewise_linear")
CATEGORICAL_ENCODINGS = ("onehot", "embedding")
MAX_EMBEDDING_DIM = 256
MANY_CATEGORIES = 10
"""``categorical_encoding: embedding`` embeds the columns with at least this many categories;
the others stay one-hot."""
DEFAULT_EMBEDDING_DIM = 8

# what a model of an earlier version, before these dimensions existed, was built with: a
# trial that does not record one of them trained with this value (nnsweep.study.warm)
EARLIER_VALUES: dict[str, Any] = {
    "batch_norm": False,
    "input_transform": "standard",
    "numeric_embedding": "none",
    "categorical_encoding": "onehot",
    "embedding_dim": DEFAULT_EMBEDDING_DIM,
}

# the dimensions that need a table's feature schema (the digits and Keras' text vectors have none)
TABLE_ONLY = {
    "input_transform": "standard",
    "numeric_embedding": "none",
    "categorical_encoding": "onehot",
}


def parse_flag(raw: Any) -> Dimension:
    """A true/false entry: ``true``, ``false`` or a list of them (``[false, true]``)."""
    if isinstance(raw, Dimension):
        return raw
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and not raw:
        raise ValueError("choices must not be empty; give [false, true]")
    for v in values:
        if not isinstance(v, bool):
            raise ValueError(f"{_short(v)} is not true or false")
    if len(set(values)) != len(values):
        raise ValueError(f"choices must be distinct, but got {_short(values)}")
    return Choice(tuple(values)) if isinstance(raw, list) else Fixed(raw)


_AS_YAML = PlainSerializer(lambda dim: dim.raw())


def _cat(allowed: tuple[str, ...]) -> BeforeValidator:
    return BeforeValidator(lambda raw: parse_categorical(raw, allowed))


def _num(kind: type, **bounds: Any) -> BeforeValidator:
    return BeforeValidator(lambda raw: parse_numeric(raw, kind, **bounds))


class TabularSpaceFields(BaseModel):
    """The technique dimensions of ``space`` (see the module docstring for each)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    weight_decay: Annotated[Dimension, _num(float, minimum=0.0, maximum=1.0), _AS_YAML] | None = (
        None
    )
    batch_norm: Annotated[Dimension, BeforeValidator(parse_flag), _AS_YAML] = Fixed(False)
    input_transform: Annotated[Dimension, _cat(INPUT_TRANSFORMS), _AS_YAML] = Fixed("standard")
    numeric_embedding: Annotated[Dimension, _cat(NUMERIC_EMBEDDINGS), _AS_YAML] = Fixed("none")
    categorical_encoding: Annotated[Dimension, _cat(CATEGORICAL_ENCODINGS), _AS_YAML] = Fixed(
        "onehot"
    )
    embedding_dim: Annotated[
        Dimension, _num(int, minimum=1, at_most=MAX_EMBEDDING_DIM), _AS_YAML
    ] = Fixed(DEFAULT_EMBEDDING_DIM)


def table_only_problem(space: TabularSpaceFields, dataset: str) -> str | None:
    """What is wrong when a space asks a dataset without a feature schema (``dataset``
    names it) for a table-only technique, else None."""
    for key, plain in TABLE_ONLY.items():
        dim: Dimension = getattr(space, key)
        if dim.grid_values() != [plain]:
            return (
                f"space.{key}: {_short(dim.raw())} needs a table with named columns, but "
                f"{dataset} is an array dataset; leave space.{key} out"
            )
    return None
