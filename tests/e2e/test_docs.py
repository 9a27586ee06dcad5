"""The docs stay true to the code: every sweep-file field documented, every CLI command in the
README's table, every relative link resolving, and the README a front page (≤ 200 lines).

The lists are built from the code (``SweepSpec`` and its nested sections, the Typer app), so a
field or command added without its documentation fails here, naming what is missing. No
training: these tests read files and import the spec and CLI modules only.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SWEEP_FILE_DOC = DOCS / "sweep-file.md"
MAX_README_LINES = 200

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


# -- helpers -----------------------------------------------------------------------------------
def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds: itself, or the members of a union, an
    ``Annotated``, a ``list[...]``/``tuple[...]``/``dict[...]``, at any depth."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def spec_field_names(
    model: type[BaseModel], prefix: str = "", seen: tuple[type, ...] = ()
) -> list[str]:
    """Every field of ``model`` by its dotted name, nested sections included
    (``train.early_stopping.patience``), in declaration order, each once."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        names.append(dotted)
        for sub in _models_in(info.annotation):
            if sub not in (*seen, model):  # a model that holds itself would recurse forever
                names.extend(spec_field_names(sub, f"{dotted}.", (*seen, model)))
    return list(dict.fromkeys(names))


def _prose(text: str) -> str:
    """Markdown without fenced code blocks (links and headings there are examples)."""
    return _FENCE.sub("", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: inline markup dropped, lower case, every character
    but letters, digits, ``_``, ``-`` and spaces removed, spaces turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The heading anchors of a Markdown file, with GitHub's -1, -2 … for repeats."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for match in _HEADING.finditer(_prose(path.read_text(encoding="utf-8"))):
        slug = github_slug(match.group(2))
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def relative_links(path: Path) -> Iterator[tuple[str, str]]:
    """(target, anchor) of every relative link in a Markdown file, outside code."""
    text = _INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    for match in _LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
            continue  # http:, https:, mailto: …
        file_part, _, anchor = target.partition("#")
        yield file_part, anchor


def cli_command_names() -> list[str]:
    """Every ``nnsweep`` subcommand (``group sub`` for a subcommand of a group), from the app."""
    import typer

    from nnsweep.cli.main import app

    # Typer's command objects are click's (Typer 0.29 vendors click): a group has .commands
    def walk(group: object, prefix: str) -> Iterator[str]:
        for name, command in getattr(group, "commands", {}).items():
            if getattr(command, "hidden", False):
                continue
            yield f"{prefix}{name}"
            yield from walk(command, f"{prefix}{name} ")

    root = typer.main.get_command(app)
    assert hasattr(root, "commands"), "nnsweep's CLI is a group of subcommands"
    return list(walk(root, ""))


def readme_command_table() -> list[str]:
    """The first cell of every row of the tables under the README's "Commands" heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Commands[^\n]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has a '## Commands' section"
    rows = [line for line in match.group(1).splitlines() if line.lstrip().startswith("|")]
    return [row.strip().strip("|").split(" | ")[0] for row in rows]


# -- the tests ---------------------------------------------------------------------------------
def test_the_field_walk_reaches_nested_sections_and_union_members() -> None:
    class Inner(BaseModel):
        folds: int = 5

    class Section(BaseModel):
        inner: Inner | None = None
        either: float | Inner = 0.1
        many: list[Inner] = []

    class Top(BaseModel):
        section: typing.Annotated[Section, "metadata"]
        plain: int = 0

    assert spec_field_names(Top) == [
        "section", "section.inner", "section.inner.folds", "section.either",
        "section.either.folds", "section.many", "section.many.folds", "plain",
    ]  # fmt: skip


def test_every_sweep_file_field_is_documented_by_its_dotted_name() -> None:
    from nnsweep.spec.config import SweepSpec

    names = spec_field_names(SweepSpec)
    assert {"train.early_stopping.patience", "space.units", "dataset.validation"} <= set(names)
    text = SWEEP_FILE_DOC.read_text(encoding="utf-8")
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, (
        f"docs/sweep-file.md does not document {len(missing)} SweepSpec field(s); add each by its "
        f"dotted name in backticks to the field reference: {', '.join(missing)}"
    )


def test_the_field_reference_lists_no_field_the_spec_lacks() -> None:
    from nnsweep.spec.config import SweepSpec

    text = SWEEP_FILE_DOC.read_text(encoding="utf-8")
    section = re.search(r"^## Field reference\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/sweep-file.md has a '## Field reference' section"
    rows = re.findall(r"^\| `([a-z_][a-z0-9_.]*)` \|", section.group(1), re.M)
    assert len(rows) > 40, "the field reference is a table with one row per field"
    stale = sorted(set(rows) - set(spec_field_names(SweepSpec)))
    assert not stale, (
        "docs/sweep-file.md's field reference documents field(s) SweepSpec no longer has; "
        f"remove or rename them: {', '.join(stale)}"
    )


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for file_part, anchor in relative_links(path):
        target = (path.parent / file_part).resolve() if file_part else path
        if not target.exists():
            broken.append(f"{file_part}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{file_part}#{anchor}: no such heading in {target.name}")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {'; '.join(broken)}"


def test_every_cli_command_is_in_the_readme_command_table() -> None:
    commands = cli_command_names()
    assert {"run", "status", "export", "predict"} <= set(commands)
    cells = readme_command_table()
    missing = [
        name
        for name in commands
        if not any(re.search(rf"`nnsweep {re.escape(name)}(?=[ `])", cell) for cell in cells)
    ]
    assert not missing, "README.md's '## Commands' table has no row for: " + ", ".join(
        f"nnsweep {name}" for name in missing
    )


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines; keep it a front page (at most {MAX_README_LINES}) "
        "and move the rest to a page under docs/"
    )
    text = "\n".join(lines)
    for command in ("make sweep", "make test"):
        assert command in text


def sweep_examples() -> list[tuple[str, str]]:
    """(where, text) of every YAML block in the README and docs/ that is a whole sweep file."""
    found = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)):
            if re.search(r"^name:", block, re.M):
                found.append((f"{path.relative_to(ROOT)}#{i}", block))
    return found


@pytest.mark.parametrize(("where", "text"), [pytest.param(*e, id=e[0]) for e in sweep_examples()])
def test_sweep_file_examples_are_valid(where: str, text: str) -> None:
    from nnsweep.spec.config import parse_spec

    parse_spec(text, where)  # a SpecError names the example and the field


def test_the_link_checker_catches_what_it_should(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n## Sharing the UI on a network\n## Top\n"
        "[ok](#sharing-the-ui-on-a-network) [again](#top-1) [bad](#nope) [gone](other.md)\n"
        "```\n[in code](missing.md)\n```\n`[inline](missing2.md)` [web](https://example.org)\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"top", "sharing-the-ui-on-a-network", "top-1"}
    assert list(relative_links(page)) == [
        ("", "sharing-the-ui-on-a-network"), ("", "top-1"), ("", "nope"), ("other.md", ""),
    ]  # fmt: skip
    assert github_slug("3. Full-size quality: `sweeps/fashion.yaml`") == (
        "3-full-size-quality-sweepsfashionyaml"
    )
