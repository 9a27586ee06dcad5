"""Run a sweep: prepare once, then trials in one process or in worker processes.

Modules: :mod:`.prepare` (``preflight`` → ``Prepared``: spec, data and stores, made once),
:mod:`.run` (``run_sweep``), :mod:`.workers` (``--jobs`` worker processes), :mod:`.progress`
(what a running sweep prints).
"""
