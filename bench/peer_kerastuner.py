"""Peer (b): KerasTuner RandomSearch or Hyperband on the shared space. Prints one JSON line.

RandomSearch runs ``--trials`` trials of 10 epochs. Hyperband (max_epochs 10, factor 3, one
iteration) decides its own number of trials and epochs per trial; both are reported. Trials
are tracked the KerasTuner way (its oracle files in a temporary directory), not in MLflow.
Run by bench/peers.py; alone:

    .venv/bin/python bench/peer_kerastuner.py --tuner random --trials 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tuner", choices=["random", "hyperband"], default="random")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras_tuner as kt

    from bench.space import (
        ACTIVATIONS,
        BATCH_SIZE,
        EPOCHS,
        OPTIMIZERS,
        build_peer_model,
        peer_data,
    )

    data = peer_data(args.seed)

    def build(hp: kt.HyperParameters):
        n_layers = hp.Int("n_layers", 1, 3)
        units = [hp.Int(f"units_{i}", 32, 512, sampling="log") for i in range(n_layers)]
        return build_peer_model(
            units,
            hp.Choice("activation", ACTIVATIONS),
            hp.Choice("optimizer", OPTIMIZERS),
            hp.Float("learning_rate", 1e-4, 1e-1, sampling="log"),
        )

    tmp = tempfile.mkdtemp(prefix=f"nnsweep-peer-kt-{args.tuner}-")
    common = {
        "objective": "val_accuracy",
        "seed": args.seed,
        "directory": tmp,
        "project_name": "p",
        "overwrite": True,
    }
    if args.tuner == "random":
        tuner = kt.RandomSearch(build, max_trials=args.trials, **common)
    else:
        tuner = kt.Hyperband(build, max_epochs=EPOCHS, factor=3, hyperband_iterations=1, **common)
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        verbose=0,
    )
    trials = list(tuner.oracle.trials.values())
    done = [t for t in trials if t.status == "COMPLETED"]
    best = tuner.oracle.get_best_trials(num_trials=1)[0]
    # Hyperband trains a trial from tuner/initial_epoch to tuner/epochs; RandomSearch all 10.
    epochs = 0
    for t in trials:
        values = t.hyperparameters.values
        epochs += values.get("tuner/epochs", EPOCHS) - values.get("tuner/initial_epoch", 0)
    print(
        json.dumps(
            {
                "peer": f"KerasTuner {'RandomSearch' if args.tuner == 'random' else 'Hyperband'}",
                "trials": len(trials),
                "complete": len(done),
                "epochs_trained": epochs,
                "best_val_accuracy": float(best.score),
                "inner_seconds": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
