"""Peer (a): Optuna TPE + ``optuna_integration.MLflowCallback``, the documented pattern.

The objective is decorated with ``MLflowCallback.track_in_mlflow()`` so each trial is an
MLflow run (params and the objective value logged by the callback); a small Keras callback
adds per-epoch ``loss``/``accuracy``/``val_loss``/``val_accuracy`` with step = epoch, so its
tracking matches nnsweep's per-epoch metrics (no artifacts). No pruning, in-memory study.
Prints one JSON line. Run by bench/peers.py; alone:

    .venv/bin/python bench/peer_optuna_mlflow.py --trials 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()

    import keras
    import mlflow
    import optuna
    from optuna_integration import MLflowCallback

    from bench.space import build_peer_model, peer_data

    data = peer_data(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="nnsweep-peer-optuna-"))
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mlflc = MLflowCallback(
        tracking_uri=f"sqlite:///{tmp}/mlflow.db",
        metric_name="val_accuracy",
        create_experiment=True,
    )

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch + 1)

    @mlflc.track_in_mlflow()
    def objective(trial: optuna.Trial) -> float:
        n_layers = trial.suggest_int("n_layers", 1, 3)
        units = [trial.suggest_int(f"units_{i}", 32, 512, log=True) for i in range(n_layers)]
        activation = trial.suggest_categorical(
            "activation", ["relu", "tanh", "sigmoid", "elu", "selu"]
        )
        optimizer = trial.suggest_categorical("optimizer", ["sgd", "rmsprop", "adam"])
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        keras.utils.set_random_seed(args.seed + trial.number)
        model = build_peer_model(units, activation, optimizer, lr)
        hist = model.fit(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=args.epochs,
            batch_size=128,
            verbose=0,
            callbacks=[EpochMetrics()],
        )
        keras.backend.clear_session()
        return max(hist.history["val_accuracy"])

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed)
    )
    study.optimize(objective, n_trials=args.trials, callbacks=[mlflc])
    print(
        json.dumps(
            {
                "peer": "optuna+MLflowCallback (TPE)",
                "trials": len(study.trials),
                "complete": len(study.trials),
                "best_val_accuracy": study.best_value,
                "inner_seconds": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
