"""``nnsweep export --retrain``: refit the best params on train+validation, for any task.

After K-fold cross-validation there is no validation split: the refit trains on the whole
training part, for the epochs the folds chose (their mean, :mod:`nnsweep.train.cv`); export
always refits then.

The refit sees as many epochs as the exported trial's weights did (see
:func:`nnsweep.export.export.export_best`), on the training and validation rows together, with the
same model the sweep built (:meth:`nnsweep.data.load.Dataset.model_kwargs`: task, preprocessing
head, target scale). It never touches the test split.

The learning-rate schedule keeps the trial's length: a ``cosine`` schedule decays over the
trial's full ``epochs`` (times the refit's steps per epoch, on its larger data), and the refit
stops after the weights' epoch, where the trial's weights stopped too. So the refit's learning
rate at each epoch is the trial's at the same epoch; a schedule recomputed over the shorter run
would decay to 0 by its end, which the trial's weights never saw. The card's ``retrain``
section says so in ``schedule``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from nnsweep.data.load import Dataset
    from nnsweep.train.model import HyperParams


def retrain(
    hp: HyperParams, data: Dataset, *, seed: int, epochs: int
) -> tuple[keras.Model, dict[str, Any]]:
    """Refit ``hp`` on train+validation for ``epochs`` epochs, seeded.

    Returns:
        The model, and the card's ``retrain`` section: data, size, epochs, batch size, seed,
        the last epoch's training loss and task metrics (``final``), seconds.
    """
    import keras

    from nnsweep.train.model import build_model
    from nnsweep.train.pipeline import train_batches

    x, y = data.train_and_val()  # under cross-validation: the whole training part
    keras.utils.set_random_seed(seed)
    # hp.epochs, not epochs: the schedule spans the trial's whole run (see the module docstring)
    model = build_model(hp, train_size=len(y), **data.model_kwargs())
    start = time.perf_counter()
    batches = train_batches(x, y, batch_size=hp.batch_size, seed=seed)
    fit = model.fit(batches, epochs=epochs, shuffle=False, verbose=0)  # batches reshuffle
    final = {k: float(v[-1]) for k, v in fit.history.items() if v}
    info = {
        "data": "the whole training part" if data.folds else "train+validation",
        "train_size": int(len(y)),
        "epochs": epochs,
        "batch_size": hp.batch_size,
        "seed": seed,
        "schedule": schedule_note(hp, epochs),
        "final": final,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return model, info


def schedule_note(hp: HyperParams, epochs: int) -> str:
    """What the refit's learning rate did, in words (the card's ``retrain.schedule``)."""
    if hp.lr_schedule == "constant":
        return f"constant learning rate {hp.learning_rate:g}, as in the trial"
    return (
        f"{hp.lr_schedule} from {hp.learning_rate:g} over the trial's {hp.epochs} epochs, "
        f"stopped after epoch {epochs} as the trial's weights were: the same learning rate "
        "at each epoch as in the trial"
    )
