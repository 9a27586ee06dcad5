"""nnsweep.pipeline: every row once per epoch, a new seeded order each epoch, tables too."""

from __future__ import annotations

import numpy as np
import pytest

from nnsweep.train.pipeline import eval_batches, train_batches


def epochs_of(ds, n_epochs: int) -> list[list[np.ndarray]]:
    """The batches of ``n_epochs`` passes over ``ds``, as Keras iterates it (one pass each)."""
    return [[(x, y) for x, y in ds.as_numpy_iterator()] for _ in range(n_epochs)]


def test_each_epoch_holds_every_row_once_in_a_new_order() -> None:
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25, dtype=np.int32)
    epochs = epochs_of(train_batches(x, y, batch_size=8, seed=3), 3)
    orders = []
    for batches in epochs:
        assert [len(b[1]) for b in batches] == [8, 8, 8, 1]  # the last batch is short
        ys = np.concatenate([b[1] for b in batches])
        xs = np.concatenate([b[0] for b in batches])
        assert sorted(ys.tolist()) == list(range(25))
        np.testing.assert_array_equal(xs, x[ys])  # rows stay paired with their targets
        orders.append(ys.tolist())
    assert orders[0] != list(range(25))
    assert len({tuple(o) for o in orders}) == 3  # reshuffled every epoch


def test_the_same_seed_gives_the_same_batches_and_another_seed_others() -> None:
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    y = np.arange(40, dtype=np.int32)

    def order(seed: int) -> list[list[int]]:
        return [
            np.concatenate([b[1] for b in batches]).tolist()
            for batches in epochs_of(train_batches(x, y, batch_size=16, seed=seed), 2)
        ]

    assert order(7) == order(7)
    assert order(7) != order(8)


def test_table_inputs_keep_their_columns_and_text() -> None:
    x = {
        "age": np.array([30.0, 41.0, 52.0, 63.0], dtype=np.float32),
        "city": np.array(["Oslo", "Lima", "Pune", "Oslo"], dtype=object),
    }
    y = np.array([0, 1, 1, 0], dtype=np.int32)
    seen: dict[int, tuple[float, bytes]] = {}
    for rows, targets in train_batches(x, y, batch_size=3, seed=0).as_numpy_iterator():
        assert set(rows) == {"age", "city"}
        for age, city, target in zip(rows["age"], rows["city"], targets, strict=True):
            seen[int(age)] = (int(target), city)
    assert seen == {30: (0, b"Oslo"), 41: (1, b"Lima"), 52: (1, b"Pune"), 63: (0, b"Oslo")}


def test_eval_batches_keep_row_order() -> None:
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    y = np.arange(7, dtype=np.int32)
    for _ in range(2):  # cached after the first pass, same rows after it
        batches = list(eval_batches(x, y, batch_size=3).as_numpy_iterator())
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_a_batch_size_under_one_is_refused(batch_size: int) -> None:
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="batch_size"):
        train_batches(x, y, batch_size=batch_size, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        eval_batches(x, y, batch_size=batch_size)


def test_a_worker_thread_budget_bounds_tf_data_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int32)
    assert train_batches(
        x, y, batch_size=2, seed=0
    ).options().threading.private_threadpool_size in (
        None,
        0,
    )
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: 1)
    for ds in (train_batches(x, y, batch_size=2, seed=0), eval_batches(x, y, batch_size=2)):
        assert ds.options().threading.private_threadpool_size == 1
        assert ds.options().threading.max_intra_op_parallelism == 1


@pytest.mark.slow
def test_a_keras_fit_from_the_pipeline_learns_and_is_reproducible() -> None:
    import keras

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)

    def fit() -> tuple[list[float], list[np.ndarray]]:
        keras.utils.set_random_seed(5)
        model = keras.Sequential(
            [
                keras.Input(shape=(4,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(2, activation="softmax"),
            ]  # fmt: skip
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])  # fmt: skip
        history = model.fit(
            train_batches(x, y, batch_size=32, seed=5),
            validation_data=eval_batches(x[:50], y[:50], batch_size=32),
            epochs=5,
            shuffle=False,
            verbose=0,
        )
        weights = model.get_weights()
        keras.backend.clear_session()
        return history.history["val_accuracy"], weights

    (acc_a, w_a), (acc_b, w_b) = fit(), fit()
    assert len(acc_a) == 5 and acc_a[-1] > 0.85
    assert acc_a == acc_b
    for a, b in zip(w_a, w_b, strict=True):
        np.testing.assert_array_equal(a, b)
