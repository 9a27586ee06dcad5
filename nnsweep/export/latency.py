"""Deployment figures measured at export: parameters, file size, CPU latency and throughput.

:func:`deployment_figures` loads the exported ``model.keras`` as ``nnsweep predict`` and the
MLflow pyfunc do (Keras' safe mode, :func:`nnsweep.data.rowmodel.load_keras`) and times raw
rows through the same path (:func:`nnsweep.track.pyfunc.predict_frame`: rows → model inputs
→ model → original labels):

* **one row**: p50 and p99 over :data:`ONE_ROW_CALLS` calls (after :data:`WARMUP_CALLS`
  untimed ones), each on one training row, stopping early after :data:`TIME_CAP_S` seconds
  (``calls`` says how many ran);
* **a batch**: :data:`BATCH_ROWS` training rows in one call (the best of
  :data:`BATCH_REPEATS`), as rows per second;
* the machine's logical CPU cores (``cpu_count``) and those this process may use
  (``usable_cores``), since both bound the figures.

Training rows, not test rows: the test split is read once, for the card's scores. The figures
are wall-clock on the exporting machine, under whatever else it runs; they describe this
model on this machine, not a guarantee.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# the timing core lives below export, where a sweep's latency objective uses it too
from nnsweep.train.timing import TIME_CAP_S, WARMUP_CALLS, cores, latency_summary, time_calls

if TYPE_CHECKING:
    from nnsweep.data.load import Dataset
    from nnsweep.data.modelio import ModelIO

ONE_ROW_CALLS = 300
BATCH_ROWS = 1000
BATCH_REPEATS = 3
METRIC_PREFIX = "deploy_"
SERVING = (
    "MLflow pyfunc with loader module nnsweep.track.pyfunc (no code or pickle in the model); "
    "`nnsweep predict models:/…` trusts only the data/model.keras of such a model (or of "
    "MLflow's keras flavour), loaded in Keras' safe mode"
)
__all__ = [
    "TIME_CAP_S", "WARMUP_CALLS", "cores", "latency_summary", "time_calls",
    "deployment_figures", "deployment_line", "deployment_metrics", "log_deployment",
    "training_rows",
]  # fmt: skip


def training_rows(data: Dataset, io: ModelIO, n: int) -> Any:
    """``n`` raw training rows (cycled if the split is smaller), as a user would send them."""
    from nnsweep.data.features import take_rows
    from nnsweep.track.pyfunc import raw_example

    index = np.arange(n) % max(len(data.y_train), 1)
    return raw_example(io, take_rows(data.x_train, index))


def deployment_figures(
    keras_file: Path,
    io: ModelIO,
    data: Dataset,
    *,
    calls: int = ONE_ROW_CALLS,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """The card's ``deployment`` section for the model saved at ``keras_file`` (see the module
    docstring): ``trainable_params``, ``keras_bytes``, ``one_row`` (p50/p99 ms, calls),
    ``batch`` (rows, seconds, rows_per_s), ``cores`` and ``path`` (what was timed)."""
    from nnsweep.data.rowmodel import load_keras
    from nnsweep.track.pyfunc import predict_frame

    loaded = load_keras(keras_file, str(keras_file), io)
    rows = training_rows(data, io, batch_rows)
    one = rows.iloc[:1] if hasattr(rows, "iloc") else rows[:1]
    one_row = latency_summary(time_calls(lambda: predict_frame(loaded, one), calls))
    batch = time_calls(lambda: predict_frame(loaded, rows), BATCH_REPEATS, warmup=1)
    best = float(batch.min())
    return {
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in loaded.net.trainable_weights)),
        "keras_bytes": int(keras_file.stat().st_size),
        "one_row": one_row,
        "batch": {"rows": int(batch_rows), "seconds": best, "rows_per_s": batch_rows / best},
        "cores": cores(),
        "path": "raw rows → model inputs → model.keras (safe mode) → labels, as nnsweep "
        "predict and the MLflow pyfunc run it; CPU, wall clock, training rows",
        "serving": SERVING,
    }


def deployment_metrics(section: dict[str, Any]) -> dict[str, float]:
    """The section as MLflow metrics (``deploy_*``), for the run export logs to."""
    one, batch = section["one_row"], section["batch"]
    metrics = {
        "trainable_params": section["trainable_params"],
        "keras_bytes": section["keras_bytes"],
        "latency_p50_ms": one["p50_ms"],
        "latency_p99_ms": one["p99_ms"],
        "throughput_rows_per_s": batch["rows_per_s"],
        "cpu_count": section["cores"]["cpu_count"],
    }
    return {METRIC_PREFIX + k: float(v) for k, v in metrics.items() if v is not None}


def log_deployment(client: Any, run_id: str, section: dict[str, Any]) -> None:
    """Log :func:`deployment_metrics` on ``run_id``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in deployment_metrics(section).items()]
    client.log_batch(run_id, metrics=metrics)


def deployment_line(section: dict[str, Any] | None) -> str | None:
    """One line for the export summary and the card page; None if there is no section."""
    if not section:
        return None
    one, batch, cpu = section["one_row"], section["batch"], section["cores"]
    usable = cpu.get("usable_cores")
    cores_text = f"{cpu['cpu_count']} cores" + (
        f" ({usable} usable)" if usable and usable != cpu["cpu_count"] else ""
    )
    return (
        f"deployment: {section['trainable_params']:,} trainable params, model.keras "
        f"{section['keras_bytes']:,} bytes; CPU latency 1 row p50 {one['p50_ms']:.2f} ms, "
        f"p99 {one['p99_ms']:.2f} ms ({one['calls']} calls); {batch['rows']:,} rows in "
        f"{batch['seconds'] * 1e3:.0f} ms ({batch['rows_per_s']:,.0f} rows/s); {cores_text}"
    )
