"""The harness of test_browser.py: MLflow's REST API and Chromium (the server: tests/_uiproc.py).

Chromium is Debian's /usr/bin/chromium driven by Selenium through /usr/bin/chromedriver; nothing
is downloaded. Every wait polls for content (the MLflow UI is a React app) rather than sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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


def require_browser() -> None:
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


def child_pids(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


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
def open_page(shots: Path) -> Iterator[Page]:
    page = Page(shots)
    try:
        yield page
    finally:
        page.close()
