"""Every tag, attribute and environment-variable name is written once, in nnsweep/names.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nnsweep import names

PACKAGE = Path(names.__file__).parent
# a whole string that is a key: "nnsweep.fit", "nnsweep.best.trial", "NNSWEEP_STORAGE"
KEY = re.compile(r"nnsweep\.[A-Za-z_][\w.]*|NNSWEEP_\w+")


def key_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in ``source`` that is a name, or starts an
    f-string that builds one (``f"nnsweep.{x}"``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if KEY.fullmatch(node.value):
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and re.match(r"(nnsweep\.|NNSWEEP_)\S*$", head.value):
                found.append((node.lineno, head.value))
    return found


def test_no_name_literal_outside_names_module() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "names.py"
        for line, text in key_literals(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "define these in nnsweep/names.py and import them:\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize(
    ("source", "hits"),
    [
        ('TAG = "nnsweep.fit"', 1),
        ('tags = {"nnsweep.best.trial": 1}', 1),
        ('import os\nos.environ.get("NNSWEEP_STORAGE")', 1),
        ('key = f"nnsweep.{name}"', 1),
        ('"""The nnsweep.fit tag, see NNSWEEP_STORAGE."""', 0),  # prose, not a key
        ('FORMAT = "nnsweep.model_card/1"', 0),  # a format id, not a key
        ("from .names import FIT_TAG\nx = FIT_TAG", 0),
    ],
)
def test_checker_finds_keys_and_only_keys(source: str, hits: int) -> None:
    assert len(key_literals(source)) == hits


def test_names_are_unique_well_formed_and_the_module_imports_nothing() -> None:
    values = {k: v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    assert len(values) >= 25
    assert len(set(values.values())) == len(values), "two constants share one name"
    for const, value in values.items():
        suffix = const.rsplit("_", 1)[-1]
        assert suffix in {"TAG", "ATTR", "KEY", "ENV"}, const
        assert KEY.fullmatch(value), (const, value)
        assert value.startswith("NNSWEEP_") == (suffix == "ENV"), (const, value)
    tree = ast.parse(Path(names.__file__).read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [ast.unparse(n) for n in imports] == ["from __future__ import annotations"]


def test_modules_use_the_shared_names() -> None:
    from nnsweep import stores
    from nnsweep.results import trials
    from nnsweep.study import storage as study
    from nnsweep.track import models as modeluri
    from nnsweep.track import tracker as tracking
    from nnsweep.train import modellog as modelstore
    from nnsweep.train import steps

    assert steps.FIT_TAG is names.FIT_TAG
    assert trials.FIT_TAG is names.FIT_TAG
    assert modelstore.MODEL_ERROR_TAG is names.MODEL_ERROR_TAG
    assert modeluri.MODEL_URI_TAG is names.MODEL_URI_TAG
    assert stores.STORAGE_ENV is names.STORAGE_ENV
    assert study.SPEC_ATTR is names.SPEC_ATTR
    assert tracking.STUDY_TAG is names.STUDY_TAG
