"""``nnsweep export --retrain``: refit the best params on train+validation, for any task.

The refit sees as many epochs as the exported trial's weights did (see
:func:`nnsweep.export.export.export_best`), on the training and validation rows together, with the
same model the sweep built (:meth:`nnsweep.data.load.Dataset.model_kwargs`: task, preprocessing
head, target scale). It never touches the test split.
"""

from __future__ import annotations

import time
from dataclasses import replace
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

    x, y = data.train_and_val()
    keras.utils.set_random_seed(seed)
    model = build_model(replace(hp, epochs=epochs), train_size=len(y), **data.model_kwargs())
    start = time.perf_counter()
    batches = train_batches(x, y, batch_size=hp.batch_size, seed=seed)
    fit = model.fit(batches, epochs=epochs, shuffle=False, verbose=0)  # batches reshuffle
    final = {k: float(v[-1]) for k, v in fit.history.items() if v}
    info = {
        "data": "train+validation",
        "train_size": int(len(y)),
        "epochs": epochs,
        "batch_size": hp.batch_size,
        "seed": seed,
        "final": final,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return model, info
