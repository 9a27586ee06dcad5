"""Predict with an exported or registered model: digits from images, labels or values from rows.

Modules: :mod:`.predict` (``nnsweep predict``), :mod:`.loader` (load a model folder or a
``models:/`` URI it trusts), :mod:`.rows` (table rows in, original labels out).
"""
