"""``nnsweep status`` fast: trial counts and best values read with SQL, Optuna as the fallback.

Loading Optuna (and its Alembic check) is most of what ``status`` costs on a big study: ~0.8 s
of ~2 s on 1,000 trials. Optuna's RDB tables are plain SQL, so :func:`read_summaries` answers
from them directly; :func:`study_summaries` is what callers use: it takes that answer when
there is one and asks Optuna otherwise (a journal storage, an unknown study or schema), so
the answer and the errors are always Optuna's.

A multi-objective study (:mod:`nnsweep.study.objectives`) is summarised by its primary
objective (``direction``, ``metric``, ``best``), plus ``also`` (the second metric) and
``front`` (its own Pareto-front trials, best primary first: ``number``, ``value``, ``also``),
which Optuna computes (:func:`nnsweep.study.front.own_front`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnsweep.names import COMPARABLE_ATTR, HISTORY_ATTR, OBJECTIVE_ATTR, SPEC_ATTR
from nnsweep.stores import connect_args, journal_path, sqlite_path
from nnsweep.tasks import task_of

if TYPE_CHECKING:
    import optuna

# where Optuna keeps ``Study.set_metric_names`` (a study system attribute, a JSON list)
METRIC_NAMES_KEY = "study:metric_names"

TRIAL_STATES = ("RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING")  # Optuna's TrialState


def read_summaries(storage_url: str, names: list[str] | None = None) -> list[dict[str, Any]] | None:
    """:func:`nnsweep.study.storage.summarize` for RDB storages, with a few SQL queries on Optuna's
    tables, importing neither Optuna nor Alembic.

    Returns None when it cannot answer (a journal storage, an unknown study, an unreachable
    database, a schema it does not know): the caller then goes through Optuna, which also
    gives the proper error.
    """
    if journal_path(storage_url) is not None or (
        (path := sqlite_path(storage_url)) is not None and not path.exists()
    ):
        return None
    import json

    import sqlalchemy as sa

    try:
        engine = sa.create_engine(storage_url, connect_args=connect_args(storage_url))
        with engine.connect() as conn:
            studies: dict[str, int] = dict(
                conn.execute(sa.text("SELECT study_name, study_id FROM studies")).all()
            )
            wanted = sorted(studies) if names is None else names
            if any(n not in studies for n in wanted):
                return None
            out = []
            for name in wanted:
                sid = {"sid": studies[name]}
                directions = [
                    str(d)
                    for (d,) in conn.execute(
                        sa.text(
                            "SELECT direction FROM study_directions WHERE study_id = :sid "
                            "ORDER BY objective"
                        ),
                        sid,
                    ).all()
                ]
                direction = directions[0]  # the primary objective's
                attrs = {
                    key: json.loads(value)
                    for key, value in conn.execute(
                        sa.text(
                            "SELECT key, value_json FROM study_user_attributes "
                            "WHERE study_id = :sid AND key IN (:metric, :comparable, :spec)"
                        ),
                        {
                            **sid,
                            "metric": OBJECTIVE_ATTR,
                            "comparable": COMPARABLE_ATTR,
                            "spec": SPEC_ATTR,
                        },
                    ).all()
                }
                counts: dict[str, int] = dict(
                    conn.execute(
                        sa.text(
                            "SELECT state, COUNT(*) FROM trials WHERE study_id = :sid "
                            "GROUP BY state"
                        ),
                        sid,
                    ).all()
                )
                order = "DESC" if direction == "MAXIMIZE" else "ASC"
                best = _best_row(conn, sid, order)
                summary = {
                    "study": name,
                    "direction": direction.lower(),
                    "metric": attrs.get(OBJECTIVE_ATTR) or "value",
                    "n_trials": sum(counts.values()),
                    "states": {st: counts.get(st, 0) for st in TRIAL_STATES},
                    "best": {"number": best[0], "value": best[1]} if best else None,
                    "task": task_of(attrs),
                }
                if len(directions) > 1:
                    summary["also"] = _also_name(conn, sid)
                out.append(summary)
        engine.dispose()
        return out
    except Exception:  # any surprise: let Optuna answer (and word the error)
        return None


def _best_row(conn: Any, sid: dict[str, int], order: str) -> Any:
    """(number, primary value) of the study's best own COMPLETE trial, or None: history a
    warm start copied in is left out, as :mod:`nnsweep.study.own` does."""
    import sqlalchemy as sa

    return conn.execute(
        sa.text(
            "SELECT t.number, v.value FROM trials t JOIN trial_values v "
            "ON v.trial_id = t.trial_id WHERE t.study_id = :sid "
            "AND t.state = 'COMPLETE' AND v.objective = 0 "
            "AND v.value_type = 'FINITE' AND NOT EXISTS (SELECT 1 FROM "
            "trial_user_attributes a WHERE a.trial_id = t.trial_id AND "
            f"a.key = :history) ORDER BY v.value {order}, t.number LIMIT 1"
        ),
        {**sid, "history": HISTORY_ATTR},
    ).first()


def _also_name(conn: Any, sid: dict[str, int]) -> str:
    """A multi-objective study's second metric name, as ``objectives.also_metric`` reads it."""
    import json

    import sqlalchemy as sa

    row = conn.execute(
        sa.text(
            "SELECT value_json FROM study_system_attributes WHERE study_id = :sid AND key = :key"
        ),
        {**sid, "key": METRIC_NAMES_KEY},
    ).first()
    names = json.loads(row[0]) if row else None
    return str(names[1]) if names and len(names) > 1 and names[1] else "objective_1"


def front_of(study: optuna.Study) -> list[dict[str, Any]]:
    """A multi-objective study's own Pareto front as ``status --json`` gives it: ``number``,
    ``value`` (primary), ``also`` (second value) and ``run_id`` (its MLflow run) per trial,
    best primary first."""
    from nnsweep.names import RUN_ID_ATTR
    from nnsweep.study.front import own_front
    from nnsweep.study.objectives import also_value, primary_value

    return [
        {
            "number": t.number,
            "value": primary_value(t),
            "also": also_value(t),
            "run_id": t.user_attrs.get(RUN_ID_ATTR),
        }
        for t in own_front(study)
    ]


def _multi(summary: dict[str, Any], study: optuna.Study) -> dict[str, Any]:
    """``summary`` with a multi-objective study's ``also`` and ``front`` (others unchanged)."""
    from nnsweep.study.objectives import also_metric, is_multi

    if is_multi(study):
        front = front_of(study)
        # the best by the primary value; ties: the smaller second value (front order)
        best = {"number": front[0]["number"], "value": front[0]["value"]} if front else None
        summary = {**summary, "best": best, "also": also_metric(study), "front": front}
    return summary


def study_summaries(storage_url: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One summary (as :func:`nnsweep.study.storage.summarize` words it, plus ``task``: the study's
    task, None when unknown) per study in ``names``, or per study in the storage, sorted by
    name; by SQL when that can answer, else through Optuna.

    Raises:
        StorageError: the storage cannot be used.
        StudyNotFoundError: a name is not in the storage.
    """
    from nnsweep.study.storage import list_studies, load_study, summarize

    fast = read_summaries(storage_url, names)
    if fast is not None:  # a multi-objective study's front: Optuna's, over its own trials
        return [_multi(s, load_study(s["study"], storage_url)) if "also" in s else s for s in fast]

    wanted = names if names is not None else list_studies(storage_url)
    out = []
    for name in wanted:
        study = load_study(name, storage_url)
        out.append(_multi(summarize(study), study))
    return out


def best_summary(study: optuna.Study) -> dict[str, Any]:
    """The best COMPLETE trial as ``nnsweep best --json`` prints it
    (:func:`nnsweep.study.storage.best_trial`: by the primary value), plus a multi-objective
    study's ``also`` (second metric), the best trial's ``also_value`` and ``front``
    (:func:`front_of`).

    Raises:
        NoCompleteTrialError: the study has no COMPLETE trial yet.
    """
    from nnsweep.study.objectives import also_metric, also_value, is_multi
    from nnsweep.study.storage import best_trial

    info = best_trial(study)
    if not is_multi(study):
        return info
    best = study.get_trials(deepcopy=False)[info["number"]]  # trials are listed by number
    return {
        **info,
        "also": also_metric(study),
        "also_value": also_value(best),
        "front": front_of(study),
    }
