"""Folders named after studies (``reports/STUDY``): always one plain folder inside their base.

A study's name comes from a sweep file, ``--study`` or a storage someone else wrote, so it may
hold ``/``, ``..`` or a control character; a path derived from it must not climb out of the
folder it belongs in, or write somewhere the user never named.
"""

from __future__ import annotations

import os
from pathlib import Path

from nnsweep.errors import ExportError


def child_dir(base: Path, name: str, *, option: str = "--out") -> Path:
    """``base / name``, when ``name`` is one plain path component that stays inside ``base``.

    Raises:
        ExportError: ``name`` is empty, ``.`` or ``..``, holds a path separator or a control
            character, or resolves (through a link) outside ``base``; says to pass ``option``.
    """
    separators = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}
    plain = (
        name not in ("", ".", "..")
        and not any(sep in name for sep in separators)
        and all(ch.isprintable() for ch in name)
    )
    path = base / name
    if plain:
        resolved_base = base.resolve()
        plain = path.resolve().parent == resolved_base
    if not plain:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ExportError(
            f"{shown!r} cannot name a folder inside {base}/ (a path separator, '.', '..', a "
            f"control character or a link out of it); pass {option} FOLDER"
        )
    return path
