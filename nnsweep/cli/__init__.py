"""The ``nnsweep`` command: the only place that imports Typer and turns errors into output.

Modules: :mod:`.main` (the app, error handling, exit codes), :mod:`.options` (shared
options), :mod:`.run` (run, status, best), :mod:`.results` (report, compare, export,
predict, ui).
"""
