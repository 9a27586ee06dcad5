"""The Keras MLP: hyperparameters and a task in, a compiled Keras model out.

Input → [a table's preprocessing head, with the space's tabular techniques:
:mod:`nnsweep.train.layers`] → n × [Dense(units_i, activation) (with ``batch_norm``: Dense →
BatchNormalization → activation) (+ Dropout, AlphaDropout for selu)] → the task's output
layer (:mod:`nnsweep.tasks`), compiled with the task's loss and metrics. For the digits:
Input(784) → … → Dense(10, softmax), sparse categorical cross-entropy and accuracy, as a
``keras.Sequential``. Keras is imported inside the functions so that importing this module
(and ``nnsweep --help``) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nnsweep.tasks import DIGITS, REGRESSION, Task
from nnsweep.train.layers import head_params, head_width, tabular_head

if TYPE_CHECKING:
    import keras

    from nnsweep.data.features import FeatureSchema

INPUT_DIM = 784
N_CLASSES = 10


@dataclass(frozen=True)
class HyperParams:
    """One point of the search space, as a trial trains it."""

    n_layers: int
    units: tuple[int, ...]
    activation: str = "relu"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    batch_size: int = 128
    dropout: float = 0.0
    epochs: int = 10
    # the tabular techniques (nnsweep.spec.tabular); the defaults are the plain MLP
    weight_decay: float | None = None  # None: the optimizer's own default
    batch_norm: bool = False
    input_transform: str = "standard"
    numeric_embedding: str = "none"
    categorical_encoding: str = "onehot"
    embedding_dim: int = 8

    def __post_init__(self) -> None:
        if len(self.units) != self.n_layers:
            raise ValueError(
                f"{self.n_layers} layers need {self.n_layers} widths, got {self.units}"
            )

    def as_params(self) -> dict[str, Any]:
        """Flat parameters as logged to MLflow: ``n_layers``, ``units_0``…, ``activation``, …"""
        flat: dict[str, Any] = {"n_layers": self.n_layers}
        flat.update({f"units_{i}": u for i, u in enumerate(self.units)})
        flat.update(
            activation=self.activation,
            optimizer=self.optimizer,
            learning_rate=self.learning_rate,
            lr_schedule=self.lr_schedule,
            batch_size=self.batch_size,
            dropout=self.dropout,
            epochs=self.epochs,
        )
        # a technique at its default is left out: trials of older studies and of spaces
        # that never name it log the same parameters as before
        flat.update({k: v for k, v in self.techniques().items() if v != _TECHNIQUE_DEFAULTS[k]})
        return flat

    def techniques(self) -> dict[str, Any]:
        """The tabular-technique fields by name (see :mod:`nnsweep.spec.tabular`)."""
        return {k: getattr(self, k) for k in _TECHNIQUE_DEFAULTS}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HyperParams:
        """Inverse of :meth:`as_params` (values may be strings, as MLflow returns them)."""
        n = int(params["n_layers"])
        return cls(
            n_layers=n,
            units=tuple(int(params[f"units_{i}"]) for i in range(n)),
            activation=str(params["activation"]),
            optimizer=str(params["optimizer"]),
            learning_rate=float(params["learning_rate"]),
            lr_schedule=str(params.get("lr_schedule", "constant")),
            batch_size=int(params["batch_size"]),
            dropout=float(params["dropout"]),
            epochs=int(params["epochs"]),
            weight_decay=_optional_float(params.get("weight_decay")),
            batch_norm=str(params.get("batch_norm", False)).lower() in ("true", "1"),
            input_transform=str(params.get("input_transform", "standard")),
            numeric_embedding=str(params.get("numeric_embedding", "none")),
            categorical_encoding=str(params.get("categorical_encoding", "onehot")),
            embedding_dim=int(params.get("embedding_dim", 8)),
        )


_TECHNIQUE_DEFAULTS: dict[str, Any] = {
    "weight_decay": None,
    "batch_norm": False,
    "input_transform": "standard",
    "numeric_embedding": "none",
    "categorical_encoding": "onehot",
    "embedding_dim": 8,
}
_TABLE_ONLY = ("input_transform", "numeric_embedding", "categorical_encoding")


def _optional_float(value: Any) -> float | None:
    return None if value is None or str(value) == "None" else float(value)


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    weight_decay: float | None = None,
) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer for one of the names in :data:`nnsweep.spec.config.OPTIMIZERS`.

    ``weight_decay``: Keras' decoupled weight decay (AdamW's rule, ``w -= lr * decay * w``
    each step), which every Keras optimizer takes; ``None`` keeps the optimizer's default
    (``adamw``: 0.004, the others: none).
    """
    import keras

    opt = keras.optimizers
    kw: dict[str, Any] = {} if weight_decay is None else {"weight_decay": weight_decay}
    factories = {
        "sgd": lambda: opt.SGD(learning_rate, **kw),
        "sgd_momentum": lambda: opt.SGD(learning_rate, momentum=0.9, **kw),
        "rmsprop": lambda: opt.RMSprop(learning_rate, **kw),
        "adam": lambda: opt.Adam(learning_rate, **kw),
        "adamw": lambda: opt.AdamW(learning_rate, **kw),
        "nadam": lambda: opt.Nadam(learning_rate, **kw),
    }
    if name not in factories:
        raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(factories)}")
    return factories[name]()


def learning_rate(
    hp: HyperParams, train_size: int | None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``hp.learning_rate``, or with ``lr_schedule: cosine`` a cosine decay from it to 0 over
    the fit's ``epochs`` x ceil(``train_size`` / ``batch_size``) optimizer steps."""
    import keras

    if hp.lr_schedule == "constant":
        return hp.learning_rate
    if hp.lr_schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {hp.lr_schedule!r}; use constant or cosine")
    if not train_size:
        raise ValueError("lr_schedule cosine needs the number of training images")
    steps = hp.epochs * math.ceil(train_size / hp.batch_size)
    return keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps=steps)


def build_model(
    hp: HyperParams,
    *,
    task: Task | None = None,
    schema: FeatureSchema | None = None,
    input_dim: int = INPUT_DIM,
    input_name: str = "pixels",
    target_scale: tuple[float, float] | None = None,
    train_size: int | None = None,
    steps_per_execution: int = 1,
) -> keras.Model:
    """Build and compile the MLP for ``hp`` (``train_size``: rows per epoch, which a cosine
    learning-rate schedule needs to know its length).

    ``task`` (default: the 10 digits) sets the output layer, loss and metrics. With a table's
    ``schema`` the model starts with its preprocessing head
    (:func:`nnsweep.data.head.build_head`)
    and takes a dict of raw columns; otherwise it takes ``(n, input_dim)`` arrays on an input
    named ``input_name``. A regression output is ``mean + std * Dense(1)`` with the training
    target's ``target_scale``: the untrained model predicts the mean, and the model answers in
    the target's units. :meth:`nnsweep.data.load.Dataset.model_kwargs` gives every argument but
    ``hp``, ``train_size`` and ``steps_per_execution``.

    ``steps_per_execution`` > 1 runs that many batches per call into the compiled function:
    fewer Python round trips, same results (the sweep uses 8). It is part of the compile
    config a saved model carries, and only changes how later fit/evaluate/predict calls batch.
    """
    import keras

    task = task or DIGITS
    tabular = [k for k in _TABLE_ONLY if getattr(hp, k) != _TECHNIQUE_DEFAULTS[k]]
    if schema is None and tabular:
        raise ValueError(f"{tabular[0]} needs a table with named columns (a feature schema)")
    if schema is None and (task.kind != REGRESSION or target_scale is None):
        layers: list[keras.layers.Layer] = [keras.Input(shape=(input_dim,), name=input_name)]
        layers += [*_hidden_layers(hp), _output_layer(task)]
        model: keras.Model = keras.Sequential(layers, name="mlp")
    else:
        if schema is not None:
            inputs, x = tabular_head(
                schema,
                input_transform=hp.input_transform,
                numeric_embedding=hp.numeric_embedding,
                categorical_encoding=hp.categorical_encoding,
                embedding_dim=hp.embedding_dim,
            )
        else:
            inputs = keras.Input(shape=(input_dim,), name=input_name)
            x = inputs
        for layer in _hidden_layers(hp):
            x = layer(x)
        out = _output_layer(task)(x)
        if task.kind == REGRESSION and target_scale is not None:
            mean, std = target_scale
            out = keras.ops.add(keras.ops.multiply(out, np.float32(std)), np.float32(mean))
        model = keras.Model(inputs, out, name="mlp")
    # regression: mse / training variance, so gradients do not scale with the target's units
    weight = 1.0 / target_scale[1] ** 2 if task.kind == REGRESSION and target_scale else None
    model.compile(
        optimizer=make_optimizer(hp.optimizer, learning_rate(hp, train_size), hp.weight_decay),
        loss=task.loss,
        loss_weights=weight,
        metrics=task.keras_metrics(),
        steps_per_execution=steps_per_execution,
    )
    return model


def _hidden_layers(hp: HyperParams) -> list[keras.layers.Layer]:
    import keras

    # SELU only self-normalises with LeCun-normal weights, and with AlphaDropout, which keeps
    # the activations' mean and variance where plain dropout would shift them.
    selu = hp.activation == "selu"
    init = "lecun_normal" if selu else "glorot_uniform"
    dropout = keras.layers.AlphaDropout if selu else keras.layers.Dropout
    layers: list[keras.layers.Layer] = []
    for i, width in enumerate(hp.units):
        # batch norm between the linear part and the activation, as Ioffe & Szegedy place it
        layers.append(
            keras.layers.Dense(
                width,
                activation=None if hp.batch_norm else hp.activation,
                kernel_initializer=init,
                name=f"hidden_{i}",
            )
        )
        if hp.batch_norm:
            layers.append(keras.layers.BatchNormalization(name=f"batchnorm_{i}"))
            layers.append(keras.layers.Activation(hp.activation, name=f"activation_{i}"))
        if hp.dropout > 0:
            layers.append(dropout(hp.dropout, name=f"dropout_{i}"))
    return layers


def _output_layer(task: Task) -> keras.layers.Layer:
    import keras

    return keras.layers.Dense(
        task.output_units, activation=task.output_activation, name=task.output_name
    )


def count_params(
    hp: HyperParams,
    *,
    input_dim: int = INPUT_DIM,
    output_units: int = N_CLASSES,
    schema: FeatureSchema | None = None,
) -> int:
    """Trainable parameters of the MLP for ``hp``, computed without building it.

    ``input_dim``: the width of the plain input (after a plain preprocessing head, which has
    no trainable weights); with a table's ``schema`` the head's width and trainable
    parameters follow ``hp``'s techniques (:func:`nnsweep.train.layers.head_width`).
    Batch norm adds 2 trainable values per hidden unit (and 2 statistics, not counted).
    """
    extra = 0
    if schema is not None:
        techniques = (hp.numeric_embedding, hp.categorical_encoding, hp.embedding_dim)
        input_dim = head_width(schema, *techniques)
        extra = head_params(schema, *techniques)
    widths = [input_dim, *hp.units, output_units]
    dense = sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    return dense + extra + (2 * sum(hp.units) if hp.batch_norm else 0)
