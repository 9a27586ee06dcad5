"""Hostile files and folders: predict inputs that are bombs, output folders that are not ours.

Each class is one parametrized table where it can be. Every input must be refused in one
stderr line, exit 2, in seconds and bounded memory; a pickle posing as .npy writes a
marker file when unpickled, and that file must never appear.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CliResult, Stores

Cli = Callable[..., CliResult]


# -- predict inputs are bounded ------------------------------------------------------------------
def _npy_header(fh: Any, shape: tuple[int, ...], descr: str) -> None:
    np.lib.format.write_array_header_1_0(
        fh, {"descr": descr, "fortran_order": False, "shape": shape}
    )


def _zero_bomb(path: Path, images: int) -> None:
    """An .npz whose x.npy is ``images`` blank digits: ~1000:1 deflate, written in chunks."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            _npy_header(member, (images, 28, 28), "|u1")
            chunk = bytes(784 * 1000)
            for _ in range(images // 1000):
                member.write(chunk)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` gray pixels (its data is one short row)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


class _WritesMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))  # unpickling creates the file


def _hostile_input(case: str, tmp: Path) -> tuple[Path, str]:
    """Case name → (the input file, what the one-line error must say)."""
    path = tmp / {"png": "x.png", "npz": "x.npz"}.get(case.split()[0], "x.npy")
    if case == "npy header claims 10**10 values":
        with path.open("wb") as fh:
            _npy_header(fh, (10**10,), "|u1")
            fh.write(b"\0" * 784)
        return path, "over the limit of"
    if case == "npy float64 stack over the image limit":
        with path.open("wb") as fh:
            _npy_header(fh, (200_000, 784), "<f8")
        return path, "(200000, 784) holds 156,800,000 values"
    if case == "npy object array":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return path, "dtype object; expected numbers"
    if case == "npy structured array":
        np.save(path, np.zeros(3, dtype=[("a", "u1"), ("b", "f4")]))
        return path, "expected numbers"
    if case == "npy truncated data":
        with path.open("wb") as fh:
            _npy_header(fh, (10, 28, 28), "|u1")
            fh.write(b"\0" * 100)
        return path, "not a readable NumPy file"
    if case == "npy that is a pickle":
        import pickle

        path.write_bytes(pickle.dumps(_WritesMarker(str(tmp / "pickle-ran.txt"))))
        return path, "not a NumPy .npy or .npz file"
    if case == "npy sparse 2 GiB file":
        with path.open("wb") as fh:
            _npy_header(fh, (28, 28), "|u1")
            fh.truncate(2 << 30)
        return path, "over the limit of 1,073,741,824 for an input file"
    if case == "npz holding an object array":
        np.savez(path, x=np.array([1, "a", None], dtype=object))
        return path, "dtype object; expected numbers"
    if case == "npz zip bomb (ratio)":
        _zero_bomb(path, 60_000)  # 47 MB of zeros in ~50 KB
        return path, "as a zip bomb does"
    if case == "npz zip bomb (declared size)":
        _zero_bomb(path, 1_000_000)  # 784 MB
        return path, "over the limit of"
    if case == "npz with 5000 members":
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            for i in range(5000):
                archive.writestr(f"a{i}.npy", b"")
        return path, "5,000 members"
    if case == "png over twice Pillow's pixel limit":
        _png_header_only(path, 20_000, 20_000)  # 400 M pixels: Pillow's own error
        return path, "Pillow's limit for decompression bombs"
    if case == "png over Pillow's pixel limit":
        _png_header_only(path, 10_000, 10_000)  # 100 M pixels: Pillow only warns
        return path, "Pillow's limit for decompression bombs"
    raise AssertionError(case)


HOSTILE_INPUTS = [
    "npy header claims 10**10 values",
    "npy float64 stack over the image limit",
    "npy object array",
    "npy structured array",
    "npy truncated data",
    "npy that is a pickle",
    "npy sparse 2 GiB file",
    "npz holding an object array",
    "npz zip bomb (ratio)",
    "npz zip bomb (declared size)",
    "npz with 5000 members",
    "png over twice Pillow's pixel limit",
    "png over Pillow's pixel limit",
]
MAX_RSS_MB = 200  # the CLI itself takes ~50 MB; a loaded bomb would take hundreds
# The CLI in a fresh process that reports its own peak memory (KiB) on stdout: VmHWM, the
# high-water mark of this program's memory (ru_maxrss would include the forking parent's).
MEASURED_CLI = (
    "import re, sys\n"
    "from nnsweep.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("case", HOSTILE_INPUTS)
def test_hostile_predict_input_is_one_line_exit_2_in_bounded_time_and_memory(
    tmp_path: Path, case: str
) -> None:
    path, expected = _hostile_input(case, tmp_path)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "predict", str(tmp_path / "m.keras"), str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nnsweep: error: INPUT {path}"), proc.stderr
    assert expected in lines[0], lines[0]
    assert elapsed < 10
    peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < MAX_RSS_MB, f"{peak_mb:.0f} MB"
    assert not (tmp_path / "pickle-ran.txt").exists()


# -- names and paths stay in their lane ----------------------------------------------------------
FORCE_REFUSALS = {
    "someone's files": {"notes.txt": "mine"},
    "a card of another tool": {"model_card.json": '{"format": "hf.card/2"}', "w.bin": "x"},
    "a card that is not JSON": {"model_card.json": "{not json", "w.bin": "x"},
    "a card that is a JSON list": {"model_card.json": "[1, 2]"},
}


@pytest.mark.parametrize("case", list(FORCE_REFUSALS))
def test_export_force_replaces_only_an_earlier_export(
    cli: Cli, stores: Stores, tmp_path: Path, case: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name, text in FORCE_REFUSALS[case].items():
        (out / name).write_text(text, encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli("export", "tiny", "--out", out, "--force", *stores.args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "--force replaces an earlier nnsweep export only" in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing deleted


def test_export_force_accepts_a_folder_with_an_nnsweep_card_and_not_a_linked_one(
    tmp_path: Path,
) -> None:
    import json

    from nnsweep.errors import ExportError
    from nnsweep.export.card import CARD_FORMAT
    from nnsweep.export.export import check_out_dir

    card = json.dumps({"format": CARD_FORMAT, "study": "tiny"})
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "model_card.json").write_text(card, encoding="utf-8")
    (earlier / "model.keras").write_bytes(b"old")
    check_out_dir(earlier, force=True)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "data.csv").write_text("precious", encoding="utf-8")
    (linked / "model_card.json").symlink_to(earlier / "model_card.json")
    with pytest.raises(ExportError, match="earlier nnsweep export only"):
        check_out_dir(linked, force=True)


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", ".", "/etc", "bell\a", "x\\y"])
def test_report_folder_named_after_a_study_stays_in_reports(
    cli: Cli, stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("report", name, *stores.args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "cannot name a folder inside reports/" in lines[0], result.err
    assert "--out FOLDER" in lines[0]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "reports").exists()


def test_report_folder_through_a_link_out_of_reports_is_refused(tmp_path: Path) -> None:
    from nnsweep.errors import ExportError
    from nnsweep.paths import child_dir

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "tiny").mkdir()
    assert child_dir(reports, "tiny") == reports / "tiny"
    (reports / "linked").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ExportError, match="cannot name a folder inside"):
        child_dir(reports, "linked")
