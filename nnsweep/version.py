"""The version of nnsweep, written once (pyproject.toml reads it)."""

__version__ = "0.1.0"
