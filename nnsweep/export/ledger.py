"""The test-read ledger: every read of a study's test split, recorded on the study itself.

A test figure is unbiased only if it is read once, after every choice was made. Nothing but
``nnsweep export`` reads the test split, so the export records each read as an Optuna study
user attribute, and a second export of the same study is refused unless the user says, with
``--reread-test``, that they know the new figure is no longer a clean one. The card then says
how many times the split has been read.

One attribute per read, under the key ``nnsweep.test_read.<time in ns>-<random hex>``: every
storage Optuna offers (RDB, journal file, gRPC proxy) writes one user attribute atomically,
and two reads never share a key, so two exports that run at once both land in the ledger
without a read-modify-write that one of them could lose. :func:`reads` lists them in time
order. A read is recorded right after the test metrics are computed, before anything else is
written, so an export that fails later still counts the read it made.

Two first exports started at once must not both read: each *claims* the read under its key
before scoring (:func:`claim_read`), then lists the ledger, and goes on only if it sees no
other claim or read. Of two claims, at least one sees the other (each lists the ledger after
its own claim is stored), so at most one goes on; one that sees another claim withdraws its
own and, after a random pause, tries again, and is refused once the other's claim or read
stands. Ordering by the key's time would not do: a claim's key is timed before its write, and
a write can land after a later key's. A claim whose export died before recording counts as a
read (whether the split was scored is unknown); one that failed before scoring is withdrawn.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nnsweep.errors import ExportError
from nnsweep.names import TEST_READ_KEY

if TYPE_CHECKING:
    import optuna

READ_PREFIX = TEST_READ_KEY + "."
SHOWN = 3  # the refusal names at most this many earlier reads (the latest ones)
CLAIM_TRIES = 8  # claims tried before giving up when others keep claiming at the same time
CLAIM_NOTE = "claimed by an export that did not record what it scored"
OPTIMISTIC = "selection on it makes this figure optimistic"


@dataclass(frozen=True)
class TestRead:
    """One read of a study's test split: when, where, and what was scored on it.

    ``scored`` says what the figures are of (``trial #3's model from the sweep``,
    ``trial #3 refit on train+validation``, an ensemble, …); ``trial`` is the trial the
    model came from (``None`` for a model that is not one trial's).
    """

    __test__ = False  # a dataclass named Test*, not a pytest class

    time: str
    trial: int | None
    retrained: bool
    scored: str
    host: str
    pid: int
    key: str = ""

    def describe(self) -> str:
        """``2026-12-07T07:10:03Z on host h (pid 42): trial #3's model from the sweep``."""
        return f"{self.time} on host {self.host} (pid {self.pid}): {self.scored}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reads(study: optuna.Study) -> list[TestRead]:
    """Every recorded read (and standing claim) of ``study``'s test split, oldest first."""
    found = []
    for key, value in study.user_attrs.items():
        if not key.startswith(READ_PREFIX) or not isinstance(value, dict):
            continue
        if value.get("withdrawn"):
            continue
        found.append(
            TestRead(
                time=str(value.get("time", "?")),
                trial=value.get("trial"),
                retrained=bool(value.get("retrained", False)),
                scored=str(value.get("scored", "?")),
                host=str(value.get("host", "?")),
                pid=int(value.get("pid", 0)),
                key=key,
            )
        )
    return sorted(found, key=lambda r: r.key)  # the key starts with the time in ns


def check_unread(study: optuna.Study, reread: bool) -> list[TestRead]:
    """The earlier reads of ``study``'s test split; refuse another without ``reread``.

    Raises:
        ExportError: the split was read before and ``reread`` is false; names the latest
            reads and the flag.
    """
    earlier = reads(study)
    if earlier and not reread:
        shown = "; ".join(r.describe() for r in earlier[-SHOWN:])
        more = f" ({len(earlier) - SHOWN} earlier not shown)" if len(earlier) > SHOWN else ""
        raise ExportError(
            f"study {study.study_name!r}: its test split was already read {times(len(earlier))}"
            f" ({shown}){more}; another read is no longer an unbiased figure; pass "
            "--reread-test to read it again (the card will say how many times it was read)"
        )
    return earlier


def claim_read(study: optuna.Study, reread: bool) -> str:
    """Claim this export's read of the test split before scoring it; returns the claim's key.

    Without ``reread``, the claim stands only if, once stored, the ledger holds no other claim
    or read; otherwise it is withdrawn, and tried again after a random pause while the others
    are claims that may be withdrawn too.

    Raises:
        ExportError: without ``reread``, another export read or claimed the split first.
    """
    if reread:
        return _claim(study)
    for attempt in range(CLAIM_TRIES):
        check_unread(study, reread=False)  # another's read or standing claim: refused
        key = _claim(study)
        if not [r for r in reads(study) if r.key != key]:
            return key
        withdraw(study, key)  # it and another saw each other: both back off, one wins later
        time.sleep(random.uniform(0.05, 0.4) * (attempt + 1))  # noqa: S311 - not a secret
    check_unread(study, reread=False)
    raise ExportError(
        f"study {study.study_name!r}: other exports kept claiming its test split at the same "
        "moment; run one export at a time"
    )


def _claim(study: optuna.Study) -> str:
    key = f"{READ_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    study.set_user_attr(
        key,
        {
            "time": now,
            "trial": None,
            "retrained": False,
            "scored": CLAIM_NOTE,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    )
    return key


def withdraw(study: optuna.Study, key: str) -> None:
    """Withdraw a claim whose export did not score the test split."""
    study.set_user_attr(key, {"withdrawn": True})


def record_read(
    study: optuna.Study, *, trial: int | None, retrained: bool, scored: str, key: str | None = None
) -> tuple[TestRead, list[TestRead]]:
    """Record one read of the test split on ``study`` (under its claim's ``key`` if given).

    Returns:
        This read, and every read recorded so far (this one and any that a concurrent export
        recorded meanwhile included), oldest first.
    """
    key = key or f"{READ_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    this = TestRead(
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        trial=trial,
        retrained=retrained,
        scored=scored,
        host=socket.gethostname(),
        pid=os.getpid(),
        key=key,
    )
    record = this.as_dict()
    del record["key"]
    study.set_user_attr(key, record)
    return this, reads(study)


def card_section(this: TestRead, every: list[TestRead]) -> dict[str, Any]:
    """The card's ``test_reads`` section: how many reads so far (this one included), this
    read, and the others in time order."""
    return {
        "count": len(every),
        "this": this.as_dict(),
        "others": [r.as_dict() for r in every if r.key != this.key],
    }


def times(n: int) -> str:
    """``once``, ``2 times``, …"""
    return "once" if n == 1 else f"{n} times"


def reads_line(section: dict[str, Any] | None) -> str:
    """One sentence for the card and the export summary: how often the split was read."""
    if not section:
        return "test reads: not recorded (a card from before the test-read ledger)"
    n = int(section["count"])
    if n <= 1:
        return "test split read once (this export): an unbiased figure"
    latest = section["others"][-1] if section["others"] else None
    before = f"; the one before: {latest['time']}, {latest['scored']}" if latest else ""
    return f"test split read {n} times: {OPTIMISTIC}{before}"


def scored_what(
    trial: int, retrained: bool, *, members: list[int] | None = None, boosting: bool = False
) -> str:
    """What an export of ``trial`` scores on the test split, in words: the model, an
    ensemble of ``members`` (trial numbers) beside it, gradient boosting beside it."""
    what = (
        f"trial #{trial} refit on train+validation"
        if retrained
        else f"trial #{trial}'s model from the sweep"
    )
    if members:
        refit = ", each refit" if retrained else ""
        what += f"; the mean of trials {', '.join(f'#{n}' for n in members)}{refit}"
    if boosting:
        what += "; gradient boosting on the same rows"
    return what


def read_number(card: dict[str, Any]) -> int:
    """Which read of the study's test split the card's figures are (1 for the first)."""
    return int((card.get("test_reads") or {}).get("count") or 1)


def read_tag(card: dict[str, Any]) -> str:
    """The trial run's ``nnsweep.test_read`` tag: which read its latest ``test_*`` are."""
    section = card.get("test_reads") or {}
    this = section.get("this") or {}
    n = read_number(card)
    return (
        f"read {n} of the test split ({this.get('time', '?')}): {this.get('scored', '?')}; "
        f"test_* at step {n}"
    )
