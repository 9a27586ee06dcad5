"""The test-read ledger on a real sweep: a second export of a study is refused and names the
earlier read, --reread-test reads again and the card says "read 2 times", and exports that run
at the same time in two processes each record their read (no lost write)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.export._study import copy_stores, sweep

STUDY = "wine_ledger"
REREAD = "test split read 2 times: selection on it makes this figure optimistic"


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 1-trial sweep on wine whose test split no export has read."""
    stores, _ = sweep(tmp_path_factory.mktemp("ledger"), STUDY, trials=1, log_models="best")
    return stores


def _reads(stores: Any) -> list[Any]:
    import optuna

    from nnsweep.export.ledger import reads

    return reads(optuna.load_study(study_name=STUDY, storage=stores.storage))


def _card(out: Path) -> dict[str, Any]:
    return json.loads((out / "model_card.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_second_export_is_refused_and_reread_test_reads_again(swept, tmp_path, cli):
    """First export: read once. Second: exit 2, one line naming the earlier read (time, what)
    and --reread-test, nothing written. With --reread-test: the card, page and summary say
    read 2 times, and the ledger holds both reads."""
    stores = copy_stores(swept, tmp_path / "stores")
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    done = cli("export", STUDY, "--out", first_out, *stores.args)
    assert done.code == 0, done.err
    first_card = _card(first_out)
    assert first_card["test_reads"]["count"] == 1 and first_card["test_reads"]["others"] == []
    assert "test split read once (this export): an unbiased figure" in done.out
    (first,) = _reads(stores)
    assert first.trial == first_card["trial"] and not first.retrained
    assert first.time == first_card["test_reads"]["this"]["time"]
    assert first.scored.startswith(f"trial #{first.trial}'s model from the sweep")

    refused = cli("export", STUDY, "--out", second_out, *stores.args)
    assert refused.code == 2 and refused.out == ""
    lines = refused.err.strip().splitlines()
    assert len(lines) == 1, refused.err
    assert f"already read once ({first.time} on host " in lines[0]
    assert f"): {first.scored})" in lines[0] and "--reread-test" in lines[0]
    assert not second_out.exists()
    assert _reads(stores) == [first]

    again = cli("export", STUDY, "--out", second_out, "--reread-test", *stores.args)
    assert again.code == 0, again.err
    card = _card(second_out)
    assert card["test_reads"]["count"] == 2
    assert [r["key"] for r in card["test_reads"]["others"]] == [first.key]
    every = _reads(stores)
    assert [r.key for r in every] == [first.key, card["test_reads"]["this"]["key"]]
    line = f"{REREAD}; the one before: {first.time}, {first.scored}"
    assert f"  {line}\n" in again.out
    assert line in (second_out / "MODEL_CARD.md").read_text(encoding="utf-8")
    # the first export's folder is the first read's, untouched
    assert _card(first_out)["test_reads"] == first_card["test_reads"]


def _export_at_once(stores: Any, outs: list[Path], *args: str) -> list[subprocess.CompletedProcess]:
    """`nnsweep export` of the study into each of ``outs``, all started together, each in its
    own process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nnsweep",
                "export",
                STUDY,
                "--out",
                str(out),
                *args,
                *stores.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for out in outs
    ]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


@pytest.mark.slow
def test_two_first_exports_at_once_read_the_test_split_once(swept, tmp_path):
    """Two exports of an unread study at the same time, without --reread-test: exactly one
    reads the test split (each claims the read before scoring; the later claim withdraws),
    the other is refused in one line and writes nothing; the ledger holds the one read."""
    stores = copy_stores(swept, tmp_path / "stores")
    outs = [tmp_path / "a", tmp_path / "b"]
    done = _export_at_once(stores, outs)
    ok = [out for out, proc in zip(outs, done, strict=True) if proc.returncode == 0]
    for out, proc in zip(outs, done, strict=True):
        if proc.returncode != 0:
            assert proc.returncode == 2, proc.stderr
            assert "already read once" in proc.stderr.strip().splitlines()[-1]
            assert not out.exists()
    assert len(ok) == 1, [p.stderr[-500:] for p in done]
    every = _reads(stores)
    assert len(every) == len(ok) == 1
    cards = sorted((_card(out)["test_reads"] for out in ok), key=lambda s: s["this"]["key"])
    assert [s["this"]["key"] for s in cards] == [r.key for r in every]
    assert cards[-1]["count"] == len(ok)  # the later read sees every read before it


@pytest.mark.slow
def test_two_rereads_at_once_are_both_recorded(swept, tmp_path, cli):
    """After one export, two --reread-test exports at the same time both succeed, the ledger
    holds all three reads, and the later card says it is the third read."""
    stores = copy_stores(swept, tmp_path / "stores")
    assert cli("export", STUDY, "--out", tmp_path / "first", *stores.args).code == 0
    outs = [tmp_path / "a", tmp_path / "b"]
    done = _export_at_once(stores, outs, "--reread-test")
    assert [p.returncode for p in done] == [0, 0], [p.stderr[-500:] for p in done]
    every = _reads(stores)
    assert len(every) == 3 and len({r.key for r in every}) == 3
    assert every[0].pid == os.getpid() and len({r.pid for r in every[1:]} - {os.getpid()}) == 2
    cards = sorted((_card(out)["test_reads"] for out in outs), key=lambda s: s["this"]["key"])
    assert [s["this"]["key"] for s in cards] == [r.key for r in every[1:]]
    assert cards[0]["count"] in (2, 3) and cards[-1]["count"] == 3
    for proc, out in zip(done, outs, strict=True):
        n = _card(out)["test_reads"]["count"]
        assert f"test split read {n} times: selection on it makes this figure optimistic" in (
            proc.stdout
        )


def _claim_record() -> dict[str, Any]:
    from nnsweep.export.ledger import CLAIM_NOTE

    return {"time": "2026-12-07T00:00:00Z", "trial": None, "retrained": False,
            "scored": CLAIM_NOTE, "host": "elsewhere", "pid": 1}  # fmt: skip


def test_a_claim_stored_first_under_a_later_key_still_wins():
    """The race two exports at once can meet: the other's claim was timed after this one's but
    stored before it (this write landed late). Ordering by key would let both read; the claim
    is refused because the ledger holds another claim, and this one is withdrawn."""
    import optuna

    from nnsweep.errors import ExportError
    from nnsweep.export.ledger import READ_PREFIX, claim_read, reads

    study = optuna.create_study(study_name="race")
    later = f"{READ_PREFIX}{'9' * 20}-ffffffff"  # a key after any this process will make
    study.set_user_attr(later, _claim_record())
    with pytest.raises(ExportError, match="already read once"):
        claim_read(study, reread=False)
    assert [r.key for r in reads(study)] == [later]  # nothing of this export stands


def test_claims_that_see_each_other_back_off_and_one_goes_on(monkeypatch):
    """Two claims that saw each other are both withdrawn; after a pause the next try finds the
    ledger empty and its claim stands: one read, recorded under the standing claim."""
    import optuna

    from nnsweep.export import ledger

    study = optuna.create_study(study_name="backoff")
    rival = f"{ledger.READ_PREFIX}{'0' * 20}-00000000"
    real_claim, tries = ledger._claim, []

    def claim(s: Any) -> str:
        key = real_claim(s)
        tries.append(key)
        if len(tries) == 1:  # the rival's claim lands at the same moment, and backs off too
            s.set_user_attr(rival, _claim_record())
        return key

    def pause(seconds: float) -> None:
        study.set_user_attr(rival, {"withdrawn": True})

    monkeypatch.setattr(ledger, "_claim", claim)
    monkeypatch.setattr(ledger.time, "sleep", pause)
    key = ledger.claim_read(study, reread=False)
    assert len(tries) == 2 and key == tries[1]
    assert [r.key for r in ledger.reads(study)] == [key]
    assert study.user_attrs[tries[0]] == {"withdrawn": True}


def test_a_reread_claim_stands_beside_earlier_reads():
    import optuna

    from nnsweep.export.ledger import READ_PREFIX, claim_read, reads

    study = optuna.create_study(study_name="again")
    study.set_user_attr(f"{READ_PREFIX}{'0' * 20}-00000000", _claim_record())
    key = claim_read(study, reread=True)
    assert len(reads(study)) == 2 and key in {r.key for r in reads(study)}
