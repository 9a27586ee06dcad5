"""The MLflow UI as a user sees it: a real sweep, `nnsweep ui`, and Debian's headless Chromium.

One test, in the order of the README walkthrough (docs/ui.md): it runs a tiny sweep, registers
the best model as ``champion``, starts ``nnsweep ui`` in a subprocess as a user would, checks
through MLflow's REST API what the sweep logged, then drives Chromium (Selenium with
/usr/bin/chromedriver; nothing is downloaded) through the pages the walkthrough shows, and
stops the server with SIGINT. Screenshots go to the test's tmp dir; with
NNSWEEP_UPDATE_SCREENSHOTS=1 they also replace docs/img/ui-*.png.

The MLflow UI is a React app: every step waits for content (run names, metric names, chart
traces) rather than sleeping.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nnsweep.ui.server import check_port
from tests._browser import Api, Page, child_pids, open_page, require_browser
from tests._uiproc import UiProcess, free_port
from tests.conftest import CliResult, Stores

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS_ENV = "NNSWEEP_UPDATE_SCREENSHOTS"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

# A link whose text is arguments[0], scrolled into view; else every scrolled box moves down a step
SCROLL_TO_LINK = """
const link = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === arguments[0]);
if (link) { link.scrollIntoView({block: 'center'}); return true; }
for (const el of document.querySelectorAll('*')) {
  const style = getComputedStyle(el);
  if (el.scrollHeight > el.clientHeight + 10 && /(auto|scroll)/.test(style.overflowY)) {
    el.scrollTop = el.scrollTop + el.clientHeight / 2 >= el.scrollHeight - el.clientHeight
      ? 0 : el.scrollTop + el.clientHeight / 2;
  }
}
window.scrollBy(0, window.innerHeight / 2);
return false;
"""

TRIALS, EPOCHS = 3, 3
MODEL_NAME = "tiny-mlp"
ROW = "//div[contains(concat(' ', normalize-space(@class), ' '), ' ag-row ')]"  # a table row

Cli = Callable[..., CliResult]


def test_mlflow_ui_shows_the_sweep_runs_curves_and_champion(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli, tmp_path: Path
) -> None:
    require_browser()
    timings: dict[str, float] = {}

    # -- a real sweep, and its best model registered as champion --------------------------------
    t = time.monotonic()
    sweep = write_sweep(trials=TRIALS, train={"epochs": EPOCHS, "batch_size": 128})
    ran = cli("run", sweep, *stores.args, "--quiet")
    assert ran.code == 0, ran.err
    timings["sweep_s"] = time.monotonic() - t
    t = time.monotonic()
    exported = cli(
        "export", "tiny", "--out", tmp_path / "export", "--register", MODEL_NAME, *stores.args
    )
    assert exported.code == 0, exported.err
    timings["export_s"] = time.monotonic() - t

    # -- `nnsweep ui` as a user starts it -----------------------------------------------------
    port = free_port()
    ui = UiProcess(["--port", str(port), "--tracking-uri", stores.tracking_uri], cwd=tmp_path)
    server_pid = None
    try:
        ready = ui.wait_for(r"MLflow UI ready in \d+ s: (\S+)", timeout=240)
        timings["server_ready_s"] = time.monotonic() - ui.started
        url = ready.group(1)
        base = f"http://127.0.0.1:{port}"
        assert url.startswith(f"{base}/#/experiments/"), url
        assert "workflowType=machine_learning" in url
        assert "orderByKey=metrics.%60objective_val_accuracy%60&orderByAsc=false" in url
        exp_id = url.split("/#/experiments/")[1].split("/")[0]
        assert "sweep 'tiny': its runs, highest objective_val_accuracy first" in ui.output
        server_pid = next(iter(child_pids(ui.proc.pid)), None)

        api = Api(base)
        expected = _check_rest_api(api, exp_id)

        # An http:// tracking URI is a server already: `nnsweep ui` only prints its URL.
        remote = cli("ui", "--tracking-uri", base)
        assert remote.code == 0, remote.err
        assert f"its UI: {url}" in remote.out

        t = time.monotonic()
        with open_page(tmp_path) as page:
            _walk_the_ui(page, url, base, exp_id, expected)
        timings["browser_s"] = time.monotonic() - t
    finally:
        if ui.proc.poll() is None:
            code = ui.stop()
        else:
            code = ui.proc.returncode

    # -- Ctrl-C stops everything --------------------------------------------------------------
    assert code == 0, ui.output
    assert ui.lines[-1] == "MLflow UI stopped", ui.output
    assert server_pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)  # no process of the server's group is left
    check_port("127.0.0.1", port)  # and the port is free again

    if os.environ.get(SHOTS_ENV) == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for png in sorted(tmp_path.glob("ui-*.png")):
            shutil.copyfile(png, DOCS_IMG / png.name)
    print("timings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))


def _check_rest_api(api: Api, exp_id: str) -> dict[str, Any]:
    """What the sweep logged, read back through the UI server's REST API."""
    exp = api.get("experiments/get", experiment_id=exp_id)["experiment"]
    assert exp["name"] == "tiny"
    tags = {t["key"]: t["value"] for t in exp.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"

    runs = api.post("runs/search", {"experiment_ids": [exp_id], "max_results": 100})["runs"]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        run["tags"] = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        by_role.setdefault(run["tags"].get("nnsweep.role", "?"), []).append(run)
    (parent,) = by_role["study"]
    trials = sorted(by_role["trial"], key=lambda r: r["info"]["run_name"])
    assert [r["info"]["run_name"] for r in trials] == [f"trial-{i:03d}" for i in range(TRIALS)]

    latest: dict[str, float] = {}
    scored: dict[str, float] = {}  # the objective value each trial was scored with
    for run in trials:
        info = run["info"]
        assert run["tags"]["mlflow.parentRunId"] == parent["info"]["run_id"]
        assert info["status"] == "FINISHED"
        history = api.get("metrics/get-history", run_id=info["run_id"], metric_key="val_accuracy")[
            "metrics"
        ]
        steps = sorted(int(m.get("step", 0)) for m in history)
        assert steps == list(range(1, EPOCHS + 1)), (info["run_name"], history)
        # The run was open while the trial trained: every epoch lies inside it.
        start, end = int(info["start_time"]), int(info["end_time"])
        assert all(start <= int(m["timestamp"]) <= end for m in history)
        assert end - start > 0
        latest[info["run_name"]] = max(history, key=lambda m: int(m["step"]))["value"]
        logged = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
        scored[info["run_name"]] = logged["objective_val_accuracy"]
        assert scored[info["run_name"]] == max(m["value"] for m in history)  # the best epoch

    model = api.get("registered-models/get", name=MODEL_NAME)["registered_model"]
    assert {a["alias"] for a in model.get("aliases", [])} == {"champion"}
    artifacts = {
        run["info"]["run_name"]: [
            f["path"]
            for f in api.get("artifacts/list", run_id=run["info"]["run_id"]).get("files", [])
        ]
        for run in [parent, *trials]
    }
    return {
        "parent": parent["info"]["run_name"],
        "parent_id": parent["info"]["run_id"],
        "val_accuracy": latest,
        "objective": scored,
        "fit_tags": all("nnsweep.fit" in run["tags"] for run in trials),
        "artifacts": artifacts,
    }


def _walk_the_ui(page: Page, url: str, base: str, exp_id: str, expected: dict[str, Any]) -> None:
    trials = sorted(expected["val_accuracy"])
    parent = expected["parent"]

    # 1. The printed URL, in a browser that has never seen MLflow: the runs table, Model
    #    training mode, every trial listed, best objective value (best epoch) first.
    page.open(url)
    page.wait("every trial in the runs table", lambda: set(trials) <= set(page.grid_names()))
    page.wait_text("Sort: objective_val_accuracy", "Model registry")
    assert not page.find("//*[normalize-space(text())='Evaluation runs']")  # not GenAI mode
    names = [n for n in page.grid_names() if n in trials]
    values = [expected["objective"][n] for n in names]
    assert values == sorted(values, reverse=True), list(zip(names, values, strict=True))
    assert values[0] == max(expected["objective"].values())
    best = names[0]  # of trials that tie, the one MLflow lists first
    page.close_assistant()
    columns = [
        "Dataset",
        "Source",
        "Models",
        "objective_val_accuracy",
        "val_accuracy",
        "val_loss",
        "n_layers",
        "units_0",
        "activation",
        "learning_rate",
    ]
    page.toggle_columns(columns + (["nnsweep.fit"] if expected["fit_tags"] else []))
    page.wait(
        "the val_accuracy column",
        lambda: page.find("//*[@role='columnheader'][normalize-space(.)='val_accuracy']"),
    )
    for name in trials:  # the column shows each trial's last-epoch value
        assert repr(expected["val_accuracy"][name]) in page.text()
    page.wait(
        "the objective_val_accuracy column",
        lambda: page.find("//*[@role='columnheader'][normalize-space(.)='objective_val_accuracy']"),
    )
    page.shot("ui-runs-sorted")

    # 2. A trial's page. MLflow's links drop the mode, so the sidebar flips to GenAI: one click
    #    on "Model training" there and this browser keeps it.
    page.click(best, f"//a[normalize-space(.)='{best}']")
    page.wait_text("val_accuracy", "Parent run")
    if page.find("//*[normalize-space(text())='Evaluation runs']"):
        page.click("Model training", "//*[normalize-space(text())='Model training']")
        page.wait("the runs table again", lambda: parent in page.grid_names())
        page.click(best, f"//a[normalize-space(.)='{best}']")
    page.wait_text("Metrics", "val_accuracy", "Parent run", parent)
    assert not page.find("//*[normalize-space(text())='Evaluation runs']")
    metric_row = page.element(
        "the val_accuracy row", "//*[@role='row'][.//*[normalize-space(text())='val_accuracy']]"
    )
    assert repr(expected["val_accuracy"][best]) in metric_row.text
    page.shot("ui-trial-run")

    page.click("Artifacts tab", "//*[@role='tab'][normalize-space(.)='Artifacts']")
    files = expected["artifacts"][best]
    if files:
        page.wait_text(*files)
        shown = next((f for f in files if f.endswith(".png")), files[0])
        page.click(shown, f"//*[normalize-space(text())='{shown}']")
        if shown.endswith(".png"):
            page.wait(f"{shown} drawn", page.image_shown)
        page.shot("ui-trial-artifacts")

    # 3. The parent run of the invocation, with its trials nested under it (date order).
    page.open(
        f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
        "&orderByKey=attributes.start_time&orderByAsc=false"
    )
    page.wait("the parent run, collapsed", lambda: page.grid_names() == [parent])
    page.click(
        "expand the parent run",
        f"{ROW}[.//a[normalize-space(.)='{parent}']]"
        "//button[contains(@data-component-id, 'runnamecellrenderer')]",
    )
    page.wait("the trials under it", lambda: set(trials) <= set(page.grid_names()))
    rows = page.grid_rows()
    assert rows[0][1] == parent and {n for _, n in rows[1:]} == set(trials)
    page.shot("ui-runs-nested")

    # 4. Select the trials, Compare, and follow val_accuracy to its curves by epoch.
    page.open(url)
    page.wait("every trial in the runs table", lambda: set(trials) <= set(page.grid_names()))
    for name in trials:
        page.click(
            f"the checkbox of {name}",
            f"{ROW}[.//a[normalize-space(.)='{name}']]"
            "//div[contains(@class, 'ag-checkbox-input-wrapper')]",
        )
    page.click("Compare", "//button[normalize-space(.)='Compare']")
    page.wait_text(f"Comparing {TRIALS} Runs")
    # The comparison lists every metric of the runs (with the export's deploy_* and the
    # diagnosis figures, dozens); its rows render as they scroll into view, so scroll to it.
    page.wait(
        "the val_accuracy row", lambda: page.driver.execute_script(SCROLL_TO_LINK, "val_accuracy")
    )
    page.click("val_accuracy", "//a[normalize-space(.)='val_accuracy']")
    page.wait("a val_accuracy curve per trial", lambda: page.lines_drawn() >= TRIALS)
    page.wait_text(*(f"{n} (val_accuracy)" for n in trials))
    page.shot("ui-compare-val-accuracy")

    # 5. The chart view: val_accuracy and val_loss side by side for the runs shown.
    page.open(url)
    page.wait("every trial in the runs table", lambda: set(trials) <= set(page.grid_names()))
    page.click("Chart view", "//label[.//input[@name='runs-view-mode' and @value='CHART']]")
    search = page.element("the chart search", "//input[@placeholder='Search metric charts']")
    search.send_keys("^val_(accuracy|loss)$")  # the search takes a regular expression
    page.wait(
        "exactly the val_accuracy and val_loss charts",
        lambda: (
            sorted(
                card.text.split("\n")[0]
                for card in page.driver.find_elements(
                    "css selector", "[data-testid='experiment-view-compare-runs-card']"
                )
                if card.text.strip()
            )
            == ["val_accuracy", "val_loss"]
        ),
    )
    page.wait_text(*(f"{n} (val_loss)" for n in trials[:2]))
    page.shot("ui-charts-val")

    # 6. The parent run: the sweep's params, best-so-far tags, its child runs and report.
    page.open(f"{base}/#/experiments/{exp_id}/runs/{expected['parent_id']}")
    page.wait_text("best_value", "nnsweep.best.trial", "Child runs", *trials)
    page.shot("ui-parent-run")
    page.click("Artifacts tab", "//*[@role='tab'][normalize-space(.)='Artifacts']")
    page.wait_text(*expected["artifacts"][parent])
    if "report" in expected["artifacts"][parent]:
        page.click("report/", "//*[normalize-space(text())='report']")
        page.click("a report figure", "//*[normalize-space(text())='accuracy_overlay.png']")
        page.wait("the figure drawn", page.image_shown)
        page.shot("ui-parent-report")

    # 7. The registered model and its champion alias.
    page.open(f"{base}/#/models/{MODEL_NAME}")
    page.wait_text(MODEL_NAME, "champion", "Version 1")
    page.shot("ui-champion")
