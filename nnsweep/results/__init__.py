"""Read a study's results back: the trials joined with their runs, tables and reports.

Modules: :mod:`.trials` (Optuna trials joined with MLflow runs), :mod:`.table` (printed
tables), :mod:`.report` (the report folder and its plots).
"""
