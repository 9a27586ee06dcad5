"""Deployment figures: the timing harness's own overhead is bounded, its summary is what
numpy computes, and an export's card, summary line and MLflow run carry plausible figures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Stores


def test_harness_overhead_on_a_no_op_is_microseconds() -> None:
    """What the harness adds to every timed call: a no-op must time at well under 0.1 ms
    (a model call is about 1 ms), so the figures are the model's, not the harness's."""
    from nnsweep.export.latency import time_calls

    seconds = time_calls(lambda: None, 500, warmup=5)
    assert len(seconds) == 500
    assert float(np.percentile(seconds, 50)) < 20e-6
    assert float(np.percentile(seconds, 99)) < 1e-3


def test_harness_times_what_it_calls_and_stops_at_its_cap() -> None:
    from nnsweep.export.latency import latency_summary, time_calls

    seconds = time_calls(lambda: time.sleep(0.002), 20, warmup=0)
    assert len(seconds) == 20 and seconds.min() >= 0.002  # never less than the call itself
    capped = time_calls(lambda: time.sleep(0.01), 1000, warmup=0, cap_s=0.05)
    assert 0 < len(capped) <= 10  # the 50 ms cap stops 10 ms calls after at most 10
    summary = latency_summary(np.array([0.001, 0.002, 0.003, 0.004]))
    assert summary == {
        "p50_ms": pytest.approx(2.5),
        "p99_ms": pytest.approx(float(np.percentile([1, 2, 3, 4], 99))),
        "calls": 4,
    }


def test_deployment_line_and_metrics_state_every_figure() -> None:
    from nnsweep.export.latency import SERVING, deployment_line, deployment_metrics

    section = {
        "trainable_params": 1234,
        "keras_bytes": 56789,
        "one_row": {"p50_ms": 1.5, "p99_ms": 3.25, "calls": 300},
        "batch": {"rows": 1000, "seconds": 0.02, "rows_per_s": 50000.0},
        "cores": {"cpu_count": 8, "usable_cores": 2},
        "serving": SERVING,
    }
    line = deployment_line(section)
    assert line == (
        "deployment: 1,234 trainable params, model.keras 56,789 bytes; CPU latency 1 row p50 "
        "1.50 ms, p99 3.25 ms (300 calls); 1,000 rows in 20 ms (50,000 rows/s); 8 cores "
        "(2 usable)"
    )
    assert deployment_metrics(section) == {
        "deploy_trainable_params": 1234.0,
        "deploy_keras_bytes": 56789.0,
        "deploy_latency_p50_ms": 1.5,
        "deploy_latency_p99_ms": 3.25,
        "deploy_throughput_rows_per_s": 50000.0,
        "deploy_cpu_count": 8.0,
    }
    assert deployment_line(None) is None


@pytest.mark.slow
def test_export_card_summary_and_run_carry_the_deployment_figures(
    stores: Stores, cli, write_sweep, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    sweep = write_sweep("deploy", trials=1)
    assert cli("run", sweep, "--quiet", *stores.args).code == 0
    out = tmp_path / "export"
    result = cli("export", "deploy", "--out", out, *stores.args)
    assert result.code == 0, result.err

    card = json.loads((out / "model_card.json").read_text(encoding="utf-8"))
    deploy = card["deployment"]
    assert deploy["trainable_params"] == card["parameter_count"] > 0
    assert deploy["keras_bytes"] == (out / "model.keras").stat().st_size
    one, batch = deploy["one_row"], deploy["batch"]
    assert one["calls"] >= 10
    assert 0.0 < one["p50_ms"] <= one["p99_ms"] < 5_000.0
    assert batch["rows"] == 1000 and batch["rows_per_s"] > 100.0
    # a batch shares the per-call cost: far more rows per second than one row at a time
    assert batch["rows_per_s"] > 1000.0 / one["p50_ms"]
    assert deploy["cores"]["cpu_count"] >= 1
    assert "deployment: " in result.out and "rows/s" in result.out
    page = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Deployment" in page and "nnsweep.track.pyfunc" in page
    run = MlflowClient(stores.tracking_uri).get_run(card["mlflow"]["run_id"])
    assert run.data.metrics["deploy_latency_p50_ms"] == pytest.approx(one["p50_ms"])
    assert run.data.metrics["deploy_keras_bytes"] == deploy["keras_bytes"]
