"""Packaging: compatible ranges in pyproject.toml, exact versions in constraints.txt."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 gets tomli from the dev extra
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"constraints.txt: {raw!r} is not an exact 'name==version' pin"
        pins[canonicalize_name(name)] = version
    return pins


def _requirements(*groups: str) -> list[Requirement]:
    lines = list(PROJECT["dependencies"])
    for group in groups:
        lines += EXTRAS[group]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("line", PROJECT["dependencies"])
def test_runtime_dependencies_are_ranges_not_exact_pins(line: str) -> None:
    req = Requirement(line)
    assert req.specifier, f"{line!r}: give a lower bound"
    assert not any(s.operator in ("==", "===") for s in req.specifier), f"{line!r} is pinned"


def test_tensorflow_is_required_by_its_gpu_compatible_name() -> None:
    names = {canonicalize_name(r.name) for r in _requirements()}
    # tensorflow-cpu ships the same `tensorflow` module and would overwrite a GPU build
    assert "tensorflow" in names and "tensorflow-cpu" not in names


def test_gpu_extra_is_tensorflow_and_cuda() -> None:
    (req,) = (Requirement(line) for line in EXTRAS["gpu"])
    assert canonicalize_name(req.name) == "tensorflow" and "and-cuda" in req.extras


def test_license_is_an_spdx_string() -> None:
    assert PROJECT["license"] == "Apache-2.0"


def test_every_dependency_has_an_exact_version_in_constraints() -> None:
    pins = _pins()
    missing = [
        str(req)
        for req in _requirements(*EXTRAS)
        if (req.marker is None or req.marker.evaluate()) and canonicalize_name(req.name) not in pins
    ]
    assert not missing, f"constraints.txt has no pin for {missing} (make lock)"


def test_constraint_pins_satisfy_the_ranges() -> None:
    pins = _pins()
    for req in _requirements(*EXTRAS):
        version = pins.get(canonicalize_name(req.name))
        if version is not None:
            assert req.specifier.contains(version), f"constraints.txt {req.name}=={version}: {req}"


def test_constraints_do_not_pin_nnsweep_itself() -> None:
    assert "nnsweep" not in _pins()


def _make_rules() -> dict[str, list[str]]:
    """Makefile target -> its recipe lines."""
    rules: dict[str, list[str]] = {}
    target = ""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and target:
            rules[target].append(line.strip())
        elif ":" in line and not line.startswith(("#", " ", "\t")) and ":=" not in line:
            target = line.split(":", 1)[0].strip()
            rules[target] = [line.split(":", 1)[1].strip()]  # first item: prerequisites
    return rules


def test_make_installs_from_constraints_and_sweep_needs_no_dev_tools() -> None:
    rules = _make_rules()
    pip_var = next(v for v in (ROOT / "Makefile").read_text().splitlines() if v.startswith("PIP"))
    assert "-c constraints.txt" in pip_var
    for target, recipe in rules.items():
        if target != "lock":  # lock re-resolves on purpose
            assert not any("pip install" in line for line in recipe), f"{target}: use $(PIP)"
    assert rules["sweep"][0] == "$(RUN)"
    assert rules["$(RUN)"][0].split() == ["pyproject.toml", "constraints.txt"]
    assert "$(PIP) -e ." in rules["$(RUN)"] and not any("dev" in x for x in rules["$(RUN)"])
    assert "$(PIP) -e '.[dev]'" in rules["$(DEV)"] and rules["test"][0] == "$(DEV)"


def test_the_version_is_written_once() -> None:
    import importlib.metadata

    import nnsweep

    assert "version" in PROJECT["dynamic"] and "version" not in PROJECT
    assert importlib.metadata.version("nnsweep") == nnsweep.__version__
