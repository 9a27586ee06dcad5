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

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nnsweep.ui import check_port
from tests.conftest import CliResult, Stores

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The test machine has no network but loopback; keep Chromium from trying.
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = (1600, 800)
WAIT = 90.0  # seconds for any one thing to show up; CI's 2 cores are shared
SHOTS_ENV = "NNSWEEP_UPDATE_SCREENSHOTS"
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"

TRIALS, EPOCHS = 3, 3
MODEL_NAME = "tiny-mlp"
ROW = "//div[contains(concat(' ', normalize-space(@class), ' '), ' ag-row ')]"  # a table row

Cli = Callable[..., CliResult]


def _require_browser() -> None:
    """Skip on a machine without Chromium or Selenium, but fail in CI, which installs both."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


class UiProcess:
    """``nnsweep ui`` in a subprocess, its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        nnsweep = Path(sys.executable).with_name("nnsweep")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(nnsweep), "ui", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.proc.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.2)
        raise AssertionError(f"nnsweep ui never printed /{pattern}/; output:\n{self.output}")

    def stop(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


class Api:
    """MLflow's REST API on the server that `nnsweep ui` started."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        url = f"{self.base}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            return dict(json.load(resp))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.base}/api/2.0/mlflow/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(json.load(resp))


class Page:
    """A headless Chromium tab with the waits and clicks the MLflow UI needs."""

    def __init__(self, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.shots = shots
        self.profile = tempfile.mkdtemp(prefix="nnsweep-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.add_argument("--window-size={},{}".format(*VIEWPORT))
        self.driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        self.driver.set_page_load_timeout(WAIT)
        width, height = VIEWPORT
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------------
    def text(self) -> str:
        from selenium.common.exceptions import WebDriverException

        try:
            return str(self.driver.find_element("tag name", "body").text)
        except WebDriverException:  # the page is being replaced
            return ""

    def wait(self, what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Poll ``check`` until it returns something truthy; fail with a screenshot if never."""
        from selenium.common.exceptions import WebDriverException

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(WebDriverException):
                if result := check():
                    return result
            time.sleep(0.25)
        self.shot(f"FAILED-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        raise AssertionError(
            f"{what}: not there after {timeout:.0f} s; page shows:\n{self.text()[:3000]}"
        )

    def wait_text(self, *texts: str, timeout: float = WAIT) -> None:
        self.wait(f"text {texts}", lambda: all(t in self.text() for t in texts), timeout)

    def find(self, xpath: str) -> list[Any]:
        return [e for e in self.driver.find_elements("xpath", xpath) if e.is_displayed()]

    def element(self, what: str, xpath: str) -> Any:
        return self.wait(what, lambda: (self.find(xpath) or [None])[0])

    def click(self, what: str, xpath: str) -> None:
        """Click the first visible match, retrying while the app re-renders or overlays it."""

        def attempt() -> bool:
            # Scrolled out of its table, an element does not count as displayed: scroll first.
            found = self.driver.find_elements("xpath", xpath)
            if not found:
                return False
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", found[0])
            if not found[0].is_displayed():
                return False
            found[0].click()
            return True

        self.wait(f"click {what}", attempt)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.execute_script("document.activeElement && document.activeElement.blur()")
        self.driver.save_screenshot(str(path))
        return path

    # -- MLflow UI pieces ---------------------------------------------------------------------
    def lines_drawn(self) -> int:
        """How many plotly lines with at least two points the page draws."""
        return int(
            self.driver.execute_script(
                "return [...document.querySelectorAll('.js-plotly-plot path.js-line')]"
                ".filter(p => (p.getAttribute('d') || '').includes('L')).length"
            )
        )

    def image_shown(self) -> bool:
        """Whether an artifact image (the viewer loads it as a blob) is drawn."""
        return bool(
            self.driver.execute_script(
                "return [...document.images].some(i => i.src.startsWith('blob:') && i.complete"
                " && i.naturalWidth > 100)"
            )
        )

    def close_assistant(self) -> None:
        """The "MLflow Assistant" side panel opens by itself on a first visit; close it."""
        if "MLflow Assistant" in self.text():
            self.click(
                "the assistant's close button",
                "//*[contains(text(), 'MLflow Assistant')]"
                "/ancestor::*[.//button[@aria-label='Close']][1]//button[@aria-label='Close']",
            )
            self.wait("the assistant panel to close", lambda: "Ask a question" not in self.text())

    def grid_rows(self) -> list[tuple[int, str]]:
        """(row index, run name) of the runs table, top to bottom."""
        rows = {}
        for row in self.driver.find_elements("css selector", ".ag-row"):
            for link in row.find_elements("css selector", "a[href*='/runs/']"):
                if link.text.strip():
                    rows[int(row.get_attribute("row-index"))] = link.text.strip()
        return sorted(rows.items())

    def grid_names(self) -> list[str]:
        return [name for _, name in self.grid_rows()]

    def toggle_columns(self, names: list[str]) -> None:
        """Tick (or untick) columns in the runs table's "Columns" menu."""
        self.click("Columns", "//button[normalize-space(.)='Columns']")
        for name in names:
            self.click(
                f"column {name}", f"//div[@role='dialog']//span[normalize-space(.)='{name}']"
            )
        self.driver.find_element("tag name", "body").send_keys("\ue00c")  # Escape
        self.wait("the Columns menu to close", lambda: not self.find("//div[@role='dialog']"))


@contextlib.contextmanager
def _page(shots: Path) -> Iterator[Page]:
    page = Page(shots)
    try:
        yield page
    finally:
        page.close()


def test_mlflow_ui_shows_the_sweep_runs_curves_and_champion(
    stores: Stores, write_sweep: Callable[..., Path], cli: Cli, tmp_path: Path
) -> None:
    _require_browser()
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
    port = _free_port()
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
        server_pid = next(iter(_children(ui.proc.pid)), None)

        api = Api(base)
        expected = _check_rest_api(api, exp_id)

        # An http:// tracking URI is a server already: `nnsweep ui` only prints its URL.
        remote = cli("ui", "--tracking-uri", base)
        assert remote.code == 0, remote.err
        assert f"its UI: {url}" in remote.out

        t = time.monotonic()
        with _page(tmp_path) as page:
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
