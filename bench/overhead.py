"""Target 1: wall time of one fully tracked nnsweep trial vs plain ``model.fit``.

Three contenders run in this one process, interleaved (plain, plain on nnsweep's pipeline,
nnsweep, plain, …) after one warm-up fit, on the same data, model, epochs, batch size and seed:

* *plain*: the MLP built by hand and fitted with ``model.fit`` on the NumPy arrays, as a
  user would write it (the target's yardstick);
* *plain on nnsweep's pipeline*: the same, fitted from :mod:`nnsweep.train.pipeline`'s tf.data
  batches, so *plain − this* is what the pipeline saves and *nnsweep − this* what tracking
  costs (with nnsweep's one compile difference, ``steps_per_execution=8``, folded in);
* *nnsweep*: the Optuna trial's own duration inside ``run_sweep`` with the default stores
  (Optuna's journal file, SQLite ``mlflow.db``): sampling, opening the MLflow child run, the
  fit with per-epoch metric logging, train-eval and pruning reports, the diagnosis,
  ``learning_curves.png``, the model summary and config, logging the best model, closing the
  run and releasing the model.

Per-invocation costs (opening the stores, the parent run, the study report) are printed
separately.

    .venv/bin/python bench/overhead.py --dataset mnist_5k --repeats 7
    .venv/bin/python bench/overhead.py --dataset fashion_mnist --repeats 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, machine, stores, versions  # noqa: E402


def plain_fit(data, hp, seed: int, pipeline: bool = False) -> float:
    """The same MLP as nnsweep builds, compiled with Keras defaults, fitted by model.fit.

    ``pipeline``: from nnsweep's tf.data batches instead of the NumPy arrays.
    """
    import keras

    from nnsweep.train.pipeline import eval_batches, train_batches

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    init = "lecun_normal" if hp.activation == "selu" else "glorot_uniform"
    layers = [keras.Input(shape=(784,))]
    layers += [
        keras.layers.Dense(u, activation=hp.activation, kernel_initializer=init) for u in hp.units
    ]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    if pipeline:
        model.fit(
            train_batches(data.x_train, data.y_train, batch_size=hp.batch_size, seed=seed),
            validation_data=eval_batches(data.x_val, data.y_val, batch_size=hp.batch_size),
            epochs=hp.epochs,
            shuffle=False,
            verbose=0,
        )
    else:
        model.fit(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=hp.epochs,
            batch_size=hp.batch_size,
            verbose=0,
        )
    seconds = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist_5k", choices=["mnist_5k", "fashion_mnist"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = ap.parse_args()

    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import load_spec
    from nnsweep.study.storage import open_storage
    from nnsweep.sweep.prepare import preflight
    from nnsweep.sweep.run import run_sweep
    from nnsweep.train.model import HyperParams

    spec = load_spec(BENCH / "overhead.yaml").with_overrides(
        dataset={"name": args.dataset, "validation": 0.1}
    )
    data = load_dataset(args.dataset, validation=0.1, seed=spec.seed)
    hp = HyperParams(
        n_layers=2,
        units=(256, 256),
        activation="relu",
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=128,
        epochs=10,
    )
    tmp, storage, tracking = stores("overhead", optuna_kind="journal")  # the defaults
    print(f"# {machine()}; {versions()}")
    print(
        f"# data {args.dataset}: train {len(data.y_train)}, val {len(data.y_val)}; "
        f"model 784-256-256-10 relu adam, batch 128, 10 epochs"
    )

    import keras
    import optuna

    warm = HyperParams(n_layers=2, units=(256, 256), epochs=1)
    plain_fit(data, warm, 0)  # TF's one-time start-up is charged to neither side
    keras.backend.clear_session()

    plain, piped, tracked, invocation = [], [], [], []
    for r in range(args.repeats):
        plain.append(plain_fit(data, hp, spec.seed + r))
        piped.append(plain_fit(data, hp, spec.seed + r, pipeline=True))
        start = time.perf_counter()
        prepared = preflight(
            spec.with_overrides(trials=r + 1), storage_url=storage, tracking_uri=tracking
        )
        res = run_sweep(prepared)
        invocation.append(time.perf_counter() - start)
        study = optuna.load_study(study_name=res.study_name, storage=open_storage(storage))
        trial = study.trials[-1]
        tracked.append((trial.datetime_complete - trial.datetime_start).total_seconds())
        print(
            f"repeat {r + 1}: plain fit {plain[-1]:.2f} s, plain fit on nnsweep's pipeline "
            f"{piped[-1]:.2f} s, nnsweep trial {tracked[-1]:.2f} s "
            f"(whole run_sweep call {invocation[-1]:.2f} s)",
            flush=True,
        )

    p, q, t = (statistics.median(v) for v in (plain, piped, tracked))
    setup = statistics.median(i - x for i, x in zip(invocation, tracked, strict=True))
    print(
        f"overhead {args.dataset}: plain model.fit {p:.2f} s, nnsweep tracked trial {t:.2f} s "
        f"(median of {args.repeats}); ratio {t / p:.3f} (target <= 1.05) "
        f"{'MET' if t / p <= 1.05 else 'MISSED'}"
    )
    print(
        f"of which: the input pipeline saves {p - q:.2f} s ({(p - q) / p:.1%} of the plain fit); "
        f"tracking (and nnsweep's steps_per_execution=8) costs {t - q:.2f} s per trial "
        f"({t / q:.3f}x the plain fit on the same pipeline)"
    )
    print(
        f"per-invocation setup + study report (once per `nnsweep run`, not per trial): "
        f"{setup:.2f} s"
    )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"stores kept in {tmp}")


if __name__ == "__main__":
    main()
