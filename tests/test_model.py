"""The Keras MLP builder: shapes, parameter counts, optimizers, params round trip."""

from __future__ import annotations

import numpy as np
import pytest

from nnsweep.config import ACTIVATIONS, OPTIMIZERS
from nnsweep.model import HyperParams, build_model, count_params, learning_rate


def test_seed_lab_model_has_19885_params() -> None:
    hp = HyperParams(n_layers=1, units=(25,), activation="sigmoid", optimizer="sgd")
    model = build_model(hp)
    assert model.count_params() == 19_885 == count_params(hp)
    assert model.input_shape == (None, 784) and model.output_shape == (None, 10)


@pytest.mark.parametrize("units", [(8,), (64, 32), (16, 16, 16)])
def test_count_params_matches_keras(units: tuple[int, ...]) -> None:
    hp = HyperParams(n_layers=len(units), units=units, dropout=0.2)
    model = build_model(hp)
    assert model.count_params() == count_params(hp)
    dropouts = [layer for layer in model.layers if "dropout" in layer.name]
    assert len(dropouts) == len(units)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_is_the_hidden_layers_and_softmax_the_output(activation: str) -> None:
    """The model computes softmax(act(x W1 + b1) W2 + b2) with the named activation: the same
    numbers by hand, from its own weights, on inputs that reach every activation's bends."""
    import keras

    model = build_model(HyperParams(n_layers=1, units=(6,), activation=activation))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-zero biases too, so no layer is the identity at 0
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.weights])
    x = rng.normal(0, 0.1, (5, 784)).astype(np.float32)
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers)
    act = keras.activations.get(activation)
    hidden = keras.ops.convert_to_numpy(act(keras.ops.convert_to_tensor(x @ w1 + b1)))
    expected = _softmax(hidden @ w2 + b2)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    # a wrong hidden activation would not give the same numbers (the check has teeth)
    if activation != "relu":
        relu = _softmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2)
        assert not np.allclose(relu, expected, atol=1e-4)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_compiles_with_its_learning_rate(optimizer: str) -> None:
    model = build_model(
        HyperParams(n_layers=1, units=(4,), optimizer=optimizer, learning_rate=0.02)
    )
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)


def test_params_round_trip_from_strings() -> None:
    hp = HyperParams(
        n_layers=2,
        units=(64, 8),
        activation="elu",
        optimizer="nadam",
        learning_rate=0.003,
        lr_schedule="cosine",
        batch_size=32,
        dropout=0.1,
        epochs=4,
    )
    flat = hp.as_params()
    assert flat["units_0"] == 64 and flat["units_1"] == 8
    assert HyperParams.from_params({k: str(v) for k, v in flat.items()}) == hp


def test_params_logged_before_lr_schedule_existed_mean_constant() -> None:
    flat = HyperParams(n_layers=1, units=(8,)).as_params()
    del flat["lr_schedule"]
    assert HyperParams.from_params(flat).lr_schedule == "constant"


@pytest.mark.slow
def test_cosine_schedule_decays_to_zero_over_the_whole_fit() -> None:
    hp = HyperParams(
        n_layers=1, units=(4,), learning_rate=0.02, lr_schedule="cosine", batch_size=32, epochs=3
    )
    x = np.zeros((100, 784), np.float32)  # 4 steps per epoch, 12 in all
    schedule = learning_rate(hp, len(x))
    assert float(schedule(0)) == pytest.approx(0.02)
    assert float(schedule(6)) == pytest.approx(0.01)
    model = build_model(hp, train_size=len(x))
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.02)
    model.fit(x, np.zeros(100, np.int32), batch_size=32, epochs=3, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 12
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs the number of training images"):
        build_model(hp)


def test_units_must_match_layers() -> None:
    with pytest.raises(ValueError, match="2 layers need 2 widths"):
        HyperParams(n_layers=2, units=(8,))
