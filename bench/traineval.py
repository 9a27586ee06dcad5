"""Cost of the dropout-off train-eval callback (:mod:`nnsweep.train.traineval`) per trial.

One process, one warm-up fit, then *without, with* pairs (which goes first alternates) on the
same data, model, epochs, batch size and seed: the same compiled nnsweep MLP
(``steps_per_execution=8``, as a trial builds it) fitted by ``model.fit`` with no callback, and
with the :class:`TrainEval` callback of a sweep (a seeded training subset as large as the
validation split, at most 5,000 rows). The callback's own time (its ``on_epoch_end`` calls) is
timed inside the fit too.

    .venv/bin/python bench/traineval.py --dataset mnist_5k --repeats 5
    .venv/bin/python bench/traineval.py --dataset fashion_mnist --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SEED, VAL_FRACTION, machine, versions  # noqa: E402


def fit_once(data, hp, seed: int, with_callback: bool) -> tuple[float, float]:
    """(seconds of build + compile + fit, seconds inside the callback)."""
    import keras

    from nnsweep.train.model import build_model
    from nnsweep.train.objective import STEPS_PER_EXECUTION
    from nnsweep.train.traineval import train_eval_callback

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = build_model(
        hp,
        **data.model_kwargs(),
        train_size=len(data.y_train),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    callbacks = []
    inside = [0.0]
    if with_callback:
        cb = train_eval_callback(data.task, data.x_train, data.y_train, len(data.y_val), SEED)
        timed = cb.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            t0 = time.perf_counter()
            timed(epoch, logs)
            inside[0] += time.perf_counter() - t0

        cb.on_epoch_end = on_epoch_end
        callbacks.append(cb)
    model.fit(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=hp.epochs,
        batch_size=hp.batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    del model
    keras.backend.clear_session()
    return seconds, inside[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist_5k", choices=["mnist_5k", "fashion_mnist"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()

    from nnsweep.data.load import load_dataset
    from nnsweep.train.model import HyperParams
    from nnsweep.train.traineval import subset_size

    data = load_dataset(args.dataset, validation=VAL_FRACTION, seed=SEED)
    hp = HyperParams(
        n_layers=2,
        units=(256, 256),
        activation="relu",
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=64,
        dropout=0.2,
        epochs=args.epochs,
    )
    rows = subset_size(len(data.y_train), len(data.y_val))
    print(f"# {machine()}; {versions()}")
    print(
        f"# data {args.dataset}: train {len(data.y_train)}, val {len(data.y_val)}, train-eval "
        f"rows {rows}; model 784-256-256-10 relu dropout 0.2 adam, batch 64, {hp.epochs} epochs"
    )
    warm = HyperParams(n_layers=2, units=(256, 256), epochs=1)
    fit_once(data, warm, 0, True)  # TF's one-time start-up is charged to neither side

    without, with_, inside = [], [], []
    for r in range(args.repeats):
        # the order alternates, so a load that rises or falls during the run favours neither
        for flag in (False, True) if r % 2 == 0 else (True, False):
            seconds, cb_seconds = fit_once(data, hp, SEED + r, flag)
            if flag:
                with_.append(seconds)
                inside.append(cb_seconds)
            else:
                without.append(seconds)
        print(
            f"repeat {r + 1}: without {without[-1]:.2f} s, with {with_[-1]:.2f} s "
            f"(callback {inside[-1]:.2f} s, {inside[-1] / hp.epochs * 1000:.0f} ms/epoch)",
            flush=True,
        )
    a, b, c = statistics.median(without), statistics.median(with_), statistics.median(inside)
    paired = statistics.median(w - o for w, o in zip(with_, without, strict=True))
    print(
        f"train-eval cost {args.dataset}: without {a:.2f} s, with {b:.2f} s per trial (median of "
        f"{args.repeats}); median paired difference {paired:+.2f} s ({paired / a:+.1%}); inside "
        "the callback "
        f"{c:.2f} s ({c / a:.1%}, {c / hp.epochs * 1000:.0f} ms per epoch); "
        f"{machine().split(', ')[-1]}"
    )


if __name__ == "__main__":
    main()
