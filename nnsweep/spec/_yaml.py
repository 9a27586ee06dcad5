"""YAML for sweep files with bounded time and memory: PyYAML's safe loader plus limits.

``yaml.safe_load`` builds what a document describes, and a document can describe far more
than it holds: nine nested levels of nine aliases (a "billion laughs", 1 KB) stand for 9⁹
strings, which any later walk (validation, an error message) expands; ``[[[[…`` nested a
hundred thousand deep overflows the Python stack; a 5,000-digit integer costs quadratic time
to convert. This loader refuses each while the document is being composed, before anything
is built from it:

* at most :data:`MAX_NODES` nodes, counting every use of an alias as the whole subtree it
  stands for (so aliases are fine, expansion is not), and no alias inside its own anchor;
* at most :data:`MAX_DEPTH` levels of nesting;
* integers of at most :data:`MAX_INT_DIGITS` digits;
* no key twice in one mapping (YAML forbids it; PyYAML would keep the last silently);
* no control characters in strings (they can only come from escapes such as ``"\\0"`` or
  ``"\\e"``, and would reach file names and terminals).

Each refusal is a :class:`LimitError`, a ``yaml.MarkedYAMLError`` with the line.
:func:`read_text` reads the file itself with a size limit, as UTF-8 text only.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from nnsweep.errors import SpecError

MAX_NODES = 10_000
MAX_DEPTH = 20
MAX_INT_DIGITS = 30

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class LimitError(yaml.MarkedYAMLError):
    """The document breaks one of this module's limits; ``problem`` says which."""


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that enforces the limits above while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0  # nodes so far, aliases expanded
        self._depth = 0
        self._sizes: dict[Node, int] = {}  # expanded size of each finished node

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                if node not in self._sizes:
                    raise LimitError(
                        problem=f"alias *{event.anchor} is used inside its own anchor",
                        problem_mark=event.start_mark,
                    )
                self._count(self._sizes[node], event.start_mark)
            return cast(Node, Composer.compose_node(self, parent, index))
        event = self.peek_event()
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LimitError(
                problem=f"nesting deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark
            )
        before = self._nodes
        self._count(1, event.start_mark)
        node = cast(Node, Composer.compose_node(self, parent, index))
        self._depth -= 1
        self._sizes[node] = self._nodes - before
        return node

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise LimitError(
                problem=f"more than {MAX_NODES:,} values (aliases counted as what they stand "
                "for); a sweep file needs a few dozen",
                problem_mark=mark,
            )

    def construct_scalar(self, node: ScalarNode) -> Any:  # type: ignore[override]
        value = super().construct_scalar(node)
        if isinstance(value, str):
            bad = _CONTROL.search(value)
            if bad:
                raise LimitError(
                    problem=f"control character U+{ord(bad.group()):04X} in a string; "
                    "a sweep file holds plain text",
                    problem_mark=node.start_mark,
                )
        return value

    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(node.value).replace("_", "")
        if len(text) > MAX_INT_DIGITS:  # hex and base-60 integers count by characters too
            raise LimitError(
                problem=f"an integer of more than {MAX_INT_DIGITS} digits is too large",
                problem_mark=node.start_mark,
            )
        return int(super().construct_yaml_int(node))

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base class reports it
                continue
            if duplicate:
                raise LimitError(
                    problem=f"key {str(key_node.value)[:40]!r} appears twice in one mapping",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def load(text: str) -> Any:
    """Parse one YAML document under the limits. Raises ``yaml.YAMLError`` (or
    :class:`LimitError`, a subclass)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_text(path: Path, max_bytes: int) -> str:
    """The text of ``path``: at most ``max_bytes`` bytes of UTF-8, read without reading
    further (a huge file costs no memory). Raises :class:`SpecError`."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the sweep file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise SpecError(
            f"{path}: a sweep file is at most {max_bytes:,} bytes, but this one is larger"
        )
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise SpecError(f"{path}: {encoding} text, not UTF-8; save the sweep file as UTF-8")
    if b"\0" in data:
        raise SpecError(f"{path}: a binary file (it holds NUL bytes), not a YAML sweep file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the sweep file as UTF-8"
        ) from None
