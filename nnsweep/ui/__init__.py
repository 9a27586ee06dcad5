"""The MLflow UI: start it on the project's store, bound safely, and point at the runs.

Modules: :mod:`.server` (``nnsweep ui``), :mod:`.exposure` (which addresses need auth),
:mod:`._guard` (a child process that stops the server when its parent dies).
"""
