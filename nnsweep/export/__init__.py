"""Export a study's best model: a portable, evaluated and optionally registered artifact.

Modules: :mod:`.export` (``export_best``), :mod:`.card` (the model card's content),
:mod:`.card_md` (``MODEL_CARD.md``), :mod:`.registry` (MLflow model registry),
:mod:`.intervals` (confidence intervals on test figures).
"""
