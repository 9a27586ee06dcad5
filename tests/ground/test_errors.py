"""errors.first_line, and failure reasons that reach a store (MLflow tags, Optuna attributes)
with their secrets masked, as the CLI's own error lines are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nnsweep.errors import ExportError, StudyNotFoundError, first_line
from nnsweep.names import ARTIFACT_ERROR_TAG, FAIL_REASON_KEY, MODEL_ERROR_TAG
from nnsweep.track.tracker import Tracker, open_reader
from nnsweep.train.objective import failure_reason
from nnsweep.urls import forget_secrets, remember_secrets

PASSWORD = "s3cr/et p@ss"  # '/', a space and '@': what naive masking misses
URL = f"postgresql+psycopg://bob:{PASSWORD}@db.internal:5432/optuna"
DRIVER_ECHO = "c0rrect-horse-battery"  # a secret a driver quotes outside any URL


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ValueError("first\nsecond"), "first"),
        (ValueError("\n\n  padded  \nnext"), "padded"),
        (ValueError(""), "ValueError"),  # empty message: the type's name, no IndexError
        (ValueError("   \n \n"), "ValueError"),
        (RuntimeError(), "RuntimeError"),
        (ExportError("one line"), "one line"),
        (StudyNotFoundError("no study 'x'"), "no study 'x'"),  # KeyError would quote it
        ("text\nmore", "text"),
        ("", ""),
        ("\n  \n", ""),
    ],
)
def test_first_line(exc: BaseException | str, line: str) -> None:
    assert first_line(exc) == line


@pytest.fixture
def remembered() -> Iterator[None]:
    remember_secrets([DRIVER_ECHO])  # as the CLI does with the secrets it was handed
    yield
    forget_secrets()


def test_failure_reason_is_masked_and_one_line() -> None:
    reason = failure_reason(OSError(f"could not connect to {URL}\ntraceback…"))
    assert PASSWORD not in reason and "s3cr" not in reason
    assert reason.startswith("OSError: could not connect to postgresql+psycopg://bob:***@")
    assert "\n" not in reason
    assert failure_reason(ValueError("")) == "ValueError"


def test_reasons_written_to_run_tags_are_masked(tmp_path: Path, remembered: None) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "masked")
    parent = tracker.start_parent("masked", tags={}, params={})
    failed = tracker.start_trial(parent, "masked", 0, {"units_0": 8})
    other = tracker.start_trial(parent, "masked", 1, {"units_0": 8})
    tracker.end_trial(failed, "FAIL", f"OperationalError: {URL} refused ({DRIVER_ECHO})")
    # as steps/modelstore write their errors: through Tracker.set_tags
    tracker.set_tags(other, {MODEL_ERROR_TAG: f"MlflowException: {URL}"})
    tracker.set_tags(other, {ARTIFACT_ERROR_TAG: f"upload: password={DRIVER_ECHO}"})
    tracker.end_trial(other, "COMPLETE")
    tracker.flush()
    client = open_reader(tracker.tracking_uri)
    tags = {**client.get_run(failed).data.tags}
    other_tags = client.get_run(other).data.tags
    stored = [tags[FAIL_REASON_KEY], other_tags[MODEL_ERROR_TAG], other_tags[ARTIFACT_ERROR_TAG]]
    for text in stored:
        assert "***" in text
        assert PASSWORD not in text and "s3cr" not in text and DRIVER_ECHO not in text
    assert tags[FAIL_REASON_KEY].startswith("OperationalError: postgresql+psycopg://bob:***@")


def test_no_hand_written_first_line_outside_errors() -> None:
    """``str(exc).splitlines()[0]`` raises IndexError on an empty message: use first_line."""
    import re

    import nnsweep

    pattern = re.compile(r"splitlines\(\)\s*(\[0\]|or\b)|split\([\"']\\n[\"']\)\[0\]")
    package = Path(nnsweep.__file__).parent
    found = [
        f"{path.name}:{n}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "errors.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
