"""The Keras MLP: hyperparameters in, a compiled ``keras.Sequential`` out.

Input(784) → n × [Dense(units_i, activation) (+ Dropout)] → Dense(10, softmax), trained with
sparse categorical cross-entropy and accuracy. Keras is imported inside the functions so that
importing this module (and ``nnsweep --help``) stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

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
        return flat

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
        )


def make_optimizer(
    name: str, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer for one of the names in :data:`nnsweep.config.OPTIMIZERS`."""
    import keras

    opt = keras.optimizers
    factories = {
        "sgd": lambda: opt.SGD(learning_rate),
        "sgd_momentum": lambda: opt.SGD(learning_rate, momentum=0.9),
        "rmsprop": lambda: opt.RMSprop(learning_rate),
        "adam": lambda: opt.Adam(learning_rate),
        "adamw": lambda: opt.AdamW(learning_rate),
        "nadam": lambda: opt.Nadam(learning_rate),
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
    input_dim: int = INPUT_DIM,
    train_size: int | None = None,
    steps_per_execution: int = 1,
) -> keras.Sequential:
    """Build and compile the MLP for ``hp`` (``train_size``: images per epoch, which a cosine
    learning-rate schedule needs to know its length).

    ``steps_per_execution`` > 1 runs that many batches per call into the compiled function:
    fewer Python round trips, same results (the sweep uses 8). It is part of the compile
    config a saved model carries, and only changes how later fit/evaluate/predict calls batch.
    """
    import keras

    # SELU only self-normalises with LeCun-normal weights.
    init = "lecun_normal" if hp.activation == "selu" else "glorot_uniform"
    layers: list[keras.layers.Layer] = [keras.Input(shape=(input_dim,), name="pixels")]
    for i, width in enumerate(hp.units):
        layers.append(
            keras.layers.Dense(
                width, activation=hp.activation, kernel_initializer=init, name=f"hidden_{i}"
            )
        )
        if hp.dropout > 0:
            layers.append(keras.layers.Dropout(hp.dropout, name=f"dropout_{i}"))
    layers.append(keras.layers.Dense(N_CLASSES, activation="softmax", name="digits"))
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=make_optimizer(hp.optimizer, learning_rate(hp, train_size)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def count_params(hp: HyperParams, *, input_dim: int = INPUT_DIM) -> int:
    """Trainable parameters of the MLP for ``hp``, computed without building it."""
    widths = [input_dim, *hp.units, N_CLASSES]
    return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
