"""The Keras MLP builder: shapes, parameter counts, optimizers, params round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnsweep.export import scores
from nnsweep.spec.config import ACTIVATIONS, OPTIMIZERS
from nnsweep.tasks import Task
from nnsweep.train.model import HyperParams, build_model, count_params, learning_rate


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


# -- tasks and tables ---------------------------------------------------------------------------
@pytest.mark.parametrize(("activation", "kind"), [("selu", "AlphaDropout"), ("relu", "Dropout")])
def test_selu_layers_drop_out_with_alpha_dropout(activation: str, kind: str) -> None:
    model = build_model(HyperParams(n_layers=2, units=(8, 8), activation=activation, dropout=0.1))
    drops = [type(layer).__name__ for layer in model.layers if "dropout" in layer.name]
    assert drops == [kind, kind]


def test_softmax_is_an_allowed_hidden_activation() -> None:
    assert "softmax" in ACTIVATIONS


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "shape", "loss", "metrics"),
    [
        (Task("binary", 2), (None, 1), "binary_crossentropy", ["accuracy", "auc"]),
        (Task("multiclass", 5), (None, 5), "sparse_categorical_crossentropy", ["accuracy"]),
        (Task("regression"), (None, 1), "mse", ["mae"]),
    ],
)
def test_the_task_sets_output_loss_and_metrics(
    task: Task, shape: tuple[int | None, int], loss: str, metrics: list[str]
) -> None:
    model = build_model(HyperParams(n_layers=1, units=(4,)), task=task, input_dim=12)
    assert model.output_shape == shape and model.loss == loss
    history = model.fit(np.zeros((8, 12)), np.zeros(8), epochs=1, verbose=0).history
    assert sorted(history) == sorted(["loss", *metrics])
    assert model.count_params() == count_params(
        HyperParams(n_layers=1, units=(4,)), input_dim=12, output_units=task.output_units
    )


def test_a_regression_model_starts_at_the_training_mean_in_target_units() -> None:
    hp = HyperParams(n_layers=1, units=(4,))
    model = build_model(hp, task=Task("regression"), input_dim=3, target_scale=(250.0, 40.0))
    output = model.get_layer("output")
    output.set_weights([np.zeros_like(w) for w in output.get_weights()])
    assert np.allclose(model.predict(np.ones((2, 3)), verbose=0), 250.0)
    output.set_weights([np.ones_like(w) for w in output.get_weights()])
    w, b = model.get_layer("hidden_0").get_weights()
    z = np.maximum(np.ones(3) @ w + b, 0).sum() + 1.0  # Dense(1) with weights and bias 1
    assert np.allclose(model.predict(np.ones((2, 3)), verbose=0), 250.0 + 40.0 * z)


TABLES = {
    "binary": ("load_breast_cancer", "accuracy", 1),
    "multiclass": ("load_wine", "accuracy", 1),
    "regression": ("load_diabetes", "mae", -1),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(TABLES))
def test_table_models_beat_the_trivial_baseline_and_reload_in_safe_mode(
    tmp_path: Path, kind: str
) -> None:
    """A model on a real table (scikit-learn's bundled ones, as CSV) through its Dataset."""
    import keras
    import sklearn.datasets

    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import DatasetSpec

    loader, metric, sign = TABLES[kind]
    frame = getattr(sklearn.datasets, loader)(as_frame=True).frame
    frame.to_csv(tmp_path / "t.csv", index=False)
    spec = DatasetSpec(path=tmp_path / "t.csv", target="target", validation=0.2)
    data = load_dataset(spec, seed=0)
    assert data.task.kind == kind
    keras.utils.set_random_seed(0)
    hp = HyperParams(n_layers=1, units=(32,), learning_rate=3e-3, batch_size=32, epochs=40)
    model = build_model(hp, train_size=len(data.y_train), **data.model_kwargs())
    model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
              epochs=hp.epochs, batch_size=hp.batch_size, verbose=0)  # fmt: skip
    figures = scores.test_metrics(
        data.task,
        data.y_test,
        model.predict(data.x_test, verbose=0),
        data.class_names,
        data.y_train,
    )
    assert sign * figures[metric] > sign * figures["baseline"][metric] * (1.2 if sign > 0 else 0.8)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")  # safe_mode=True
    np.testing.assert_allclose(
        again.predict(data.x_test, verbose=0), model.predict(data.x_test, verbose=0), rtol=1e-5
    )
