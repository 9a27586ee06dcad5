"""Where a card's test figures come from: how often the split was read, whose rows it holds.

The sentences the model card (:mod:`nnsweep.export.card_md`) and the ``nnsweep export``
summary print under the test figures, read from the card's ``test`` and ``test_reads``
sections: the read count (:mod:`nnsweep.export.ledger`), test labels that no training row
holds, where the test rows were drawn from, and what the ``loss`` is.
"""

from __future__ import annotations

from typing import Any

from nnsweep.export.ledger import reads_line


def unseen_line(test: dict[str, Any]) -> str | None:
    """The test labels no training row holds, or ``None`` when there are none."""
    unseen = test.get("unseen_labels") or {}
    if not unseen:
        return None
    n = sum(int(c) for c in unseen.values())
    shown = ", ".join(f"{label!r} ({count})" for label, count in list(unseen.items())[:5])
    more = f", … ({len(unseen)} labels)" if len(unseen) > 5 else ""
    return (
        f"{n} test row(s) hold a label no training row holds: {shown}{more}; the model cannot "
        "answer it, and these rows are left out of the test figures"
    )


def test_lines(card: dict[str, Any], *, brief: bool = False) -> list[str]:
    """The card's lines under the test figures; ``brief``: only those the export summary
    prints (the read count and unseen labels)."""
    test = card["test"]
    lines = [reads_line(card.get("test_reads"))]
    unseen = unseen_line(test)
    if unseen:
        lines.append(unseen)
    if brief:
        return lines
    if test.get("origin"):
        lines.append(f"test rows: {test['origin']}")
    if "r2" in test and test.get("loss_definition"):
        lines.append(f"loss {test['loss']:.4g}: {test['loss_definition']}")
    return lines
