"""MLflow side: the tracker that writes runs, and models read back by URI.

Modules: :mod:`.tracker` (``Tracker``: experiments, parent and trial runs, metrics, datasets),
:mod:`.models` (``models:/`` URIs, downloads). Independent of :mod:`nnsweep.study`.
"""
