"""Data: load a named dataset or a table once, split it, and describe what the model eats.

Modules: :mod:`.load` (``load_dataset``/``sweep_dataset``, the ``Dataset`` splits),
:mod:`.tables` (CSV/Parquet/NPZ tables), :mod:`.arrays` (the one bounded ``.npz`` reader),
:mod:`._digits` and :mod:`._keras` (named datasets), :mod:`.splits` (seeded splits),
:mod:`.features` (column kinds and preprocessing inputs), :mod:`.modelio` (a model's
inputs/outputs contract). Imports the ground and :mod:`nnsweep.spec`.
"""
