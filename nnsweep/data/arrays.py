"""NumPy ``.npy`` / ``.npz`` files read with bounded memory: every size is checked first.

``np.load`` trusts a file: an ``.npy`` header may claim ``shape=(10**10,)`` and NumPy allocates
it before reading a byte; an ``.npz`` is a zip whose member may inflate a few kilobytes into
gigabytes; an object array is a pickle. Here the file size, the zip member's declared size and
compression ratio, and the array header (shape and dtype, read with NumPy's own
``read_magic`` / ``read_array_header_*``) are checked before any array is loaded, and object or
structured dtypes are refused. Loading then reads exactly what the header announced.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from nnsweep.errors import NnsweepError, first_line

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
MAX_FILE_BYTES = 1 << 30  # 1 GiB: no input nnsweep reads is near it
MAX_NPZ_MEMBERS = 1_000
MAX_TABLE_VALUES = 1 << 27  # one array of a data file: 1 GiB of 8-byte values at most
MAX_RATIO = 200  # deflate reaches ~1000:1 on constant data; real pixel arrays stay far below
RATIO_FLOOR = 1 << 20  # members under 1 MiB may compress as well as they like
HEADER_SLACK = 1 << 16  # an .npy header is at most ~64 KiB

# Picks the array to read from an .npz's keys, or raises the caller's error saying why none.
ChooseKey = Callable[[list[str]], str]


@dataclass(frozen=True)
class Header:
    """What an ``.npy`` header announces."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def read_header(fh: IO[bytes]) -> Header:
    """The header of the ``.npy`` stream ``fh`` (positioned at its start); leaves ``fh`` at the
    first data byte.

    Raises:
        ValueError: not an ``.npy`` header NumPy can read (or a header over 10,000 bytes).
    """
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):  # 3.0 differs only in the header's text encoding
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return Header(tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran))


def check_header(header: Header, *, max_count: int, kinds: str, what: str) -> str | None:
    """Why an array with ``header`` is refused, or None: dtype kind not in ``kinds`` (object
    and structured dtypes never), or more than ``max_count`` values."""
    dtype = header.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in kinds:
        return f"array of dtype {dtype}; expected {what}"
    if header.count > max_count:
        return (
            f"array of shape {header.shape} holds {header.count:,} values, over the limit of "
            f"{max_count:,}; split it into smaller files"
        )
    return None


def npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The arrays of an open ``.npz``, by the key ``np.load`` gives them (name less ``.npy``)."""
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def check_member(info: zipfile.ZipInfo, *, max_bytes: int) -> str | None:
    """Why a zip member is refused before it is inflated, or None: its declared size is over
    ``max_bytes`` (plus a header), or it inflates more than ``MAX_RATIO`` times (a zip bomb).
    Python's zipfile never inflates past the declared size, so the declared size bounds memory.
    """
    size, packed = info.file_size, info.compress_size
    if size > max_bytes + HEADER_SLACK:
        return f"member {info.filename} declares {size:,} bytes, over the limit of {max_bytes:,}"
    if size > RATIO_FLOOR and size > MAX_RATIO * max(packed, 1):
        return (
            f"member {info.filename} inflates {packed:,} bytes to {size:,} (over {MAX_RATIO}:1), "
            "as a zip bomb does"
        )
    return None


def preferred_key(
    path: Path, preferred: tuple[str, ...], hint: str, error: type[NnsweepError]
) -> ChooseKey:
    """A ``choose`` for :func:`load_array`: an ``.npz``'s only array, else the first of
    ``preferred`` it holds; else ``error`` listing (at most ten of) its keys and ``hint``."""

    def choose(keys: list[str]) -> str:
        key = keys[0] if len(keys) == 1 else next((k for k in preferred if k in keys), None)
        if key is None:
            shown = ", ".join(keys[:10]) + (", …" if len(keys) > 10 else "")
            raise error(
                f"INPUT {path}: .npz holds {shown or 'no arrays'}; save one array, or {hint} "
                f"{', '.join(preferred)}"
            )
        return key

    return choose


def load_array(
    path: Path,
    *,
    choose: ChooseKey,
    max_count: int,
    kinds: str,
    what: str,
    error: type[NnsweepError],
) -> tuple[np.ndarray, str | None]:
    """Load the array of an ``.npy``, or the one ``choose`` picks from an ``.npz``'s keys,
    every size checked first; returns it and its key (None for an ``.npy``). The array of an
    ``.npy`` is memory-mapped: read-only, its pages read as they are used.

    Args:
        max_count: the most values the array may hold.
        kinds: the dtype kinds taken (NumPy's letters, e.g. ``"uif"``); ``what`` names them.
        error: the nnsweep error raised, its message starting ``INPUT <path>:``.

    Raises:
        ``error``: too big, a zip bomb, an object or structured array, not a NumPy file.
    """
    where = str(path)

    def fail(reason: str) -> NnsweepError:
        return error(f"INPUT {where}: {reason}")

    def where_of(key: str) -> None:
        nonlocal where
        where = f"{path}[{key}]"

    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise fail(f"{size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for an input file")
    try:
        if magic == NPY_MAGIC:
            with path.open("rb") as fh:
                header = read_header(fh)
            reason = check_header(header, max_count=max_count, kinds=kinds, what=what)
            if reason:
                raise fail(reason)
            if header.count == 0:
                return np.zeros(header.shape, header.dtype), None
            # memory-mapped: pages are read as the caller touches them, and a file shorter
            # than its header says fails here instead of allocating
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        if not magic.startswith(ZIP_MAGIC):
            raise fail("not a NumPy .npy or .npz file")
        arrays = _read_members(
            path, lambda keys: [choose(keys)], max_count, kinds, what, fail, where_of
        )
        (chosen, array), *_ = arrays.items()
        return array, chosen
    except NnsweepError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        reason = first_line(exc)[:200]
        raise fail(f"not a readable NumPy file ({reason})") from None


def _read_members(
    path: Path,
    choose: Callable[[list[str]], list[str]],
    max_count: int,
    kinds: str,
    what: str,
    fail: Callable[[str], NnsweepError],
    where_of: Callable[[str], None] = lambda key: None,
) -> dict[str, np.ndarray]:
    """The members ``choose`` picks from the ``.npz`` at ``path``, each checked before it is
    inflated (declared size, compression ratio, header) and read exactly as announced."""
    max_bytes = max_count * 8  # the widest numeric dtype nnsweep takes: 8-byte values
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise fail(f".npz holds {len(infos):,} members, over {MAX_NPZ_MEMBERS:,}")
        members = npz_members(archive)
        for chosen in choose(list(members)):
            info = members[chosen]
            where_of(chosen)
            reason = check_member(info, max_bytes=max_bytes)
            if reason:
                raise fail(reason)
            with archive.open(info) as fh:
                header = read_header(fh)
                reason = check_header(header, max_count=max_count, kinds=kinds, what=what)
                if reason:
                    raise fail(reason)
                if header.nbytes > info.file_size:
                    raise fail(
                        f"header announces {header.nbytes:,} bytes, the member holds "
                        f"{info.file_size:,}"
                    )
            with archive.open(info) as fh:
                out[chosen] = np.lib.format.read_array(fh, allow_pickle=False)
    return out


def read_npz(
    path: Path,
    choose: Callable[[list[str]], list[str]],
    *,
    max_count: int,
    kinds: str = "biuf",
    what: str = "numbers",
    error: type[NnsweepError],
    label: str,
) -> dict[str, np.ndarray]:
    """The arrays ``choose`` picks (by key) from the ``.npz`` at ``path``, with the bounds of
    :func:`load_array`: the file's size, each member's declared size and compression ratio,
    each header's shape and dtype (no object or structured arrays) checked before reading.

    Every ``.npz`` nnsweep reads goes through here or :func:`load_array` (Keras' own text
    datasets, whose sequences are object arrays, are read by :mod:`nnsweep.data._keras`).

    Args:
        choose: given the file's keys, the keys to read (raises the caller's error if none fit).
        max_count: the most values any one array may hold.
        error: the nnsweep error raised; its message starts with ``label``.

    Raises:
        ``error``: unreadable, too big, a zip bomb, an object array, not an ``.npz``.
    """

    def fail(reason: str) -> NnsweepError:
        return error(f"{label}: {reason}")

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(f"{size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for an input file")
        return _read_members(path, choose, max_count, kinds, what, fail)
    except NnsweepError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        reason = first_line(exc)[:200]
        raise fail(f"not a readable .npz file ({reason})") from None
