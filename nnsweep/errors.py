"""Every error nnsweep raises on purpose.

The library raises these; only :mod:`nnsweep.cli.main` turns them into one line on stderr and an
exit status. ``exit_code`` says which: 2 for bad input the user can fix (a sweep file, a
path, a URL), 1 for a failure at run time.
"""

from __future__ import annotations


class NnsweepError(Exception):
    """Base class of all nnsweep errors. Caught by the CLI, printed as one line."""

    exit_code: int = 1


class SpecError(NnsweepError, ValueError):
    """Raised when a sweep file is malformed: unknown key, wrong type, impossible range."""

    exit_code = 2


class DataError(NnsweepError):
    """Raised when a dataset cannot be loaded: unknown name, missing or corrupt file, no network."""

    exit_code = 2


class StorageError(NnsweepError):
    """Raised when the Optuna storage or MLflow tracking store cannot be reached or used."""

    exit_code = 2


class StudyNotFoundError(NnsweepError, KeyError):
    """Raised when a command names a study that the storage does not hold."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoCompleteTrialError(NnsweepError):
    """Raised when a command needs a finished trial and the study has none."""

    exit_code = 2


class ExportError(NnsweepError):
    """Raised when an export or prediction cannot be done with the inputs given."""

    exit_code = 2


class SweepFailedError(NnsweepError, RuntimeError):
    """Raised when a sweep ran but no trial completed (every trial failed)."""

    exit_code = 1


class PortBusyError(NnsweepError):
    """Raised when the port (or address) asked for the UI cannot be bound."""

    exit_code = 2


class ExposureError(NnsweepError):
    """Raised when ``nnsweep ui`` would serve other machines without a login or ``--insecure``,
    or its login (``--auth``) is not set up."""

    exit_code = 2


class ServerError(NnsweepError, RuntimeError):
    """Raised when the MLflow server exits before it answers, or does not answer in time."""

    exit_code = 1


class StoreBusyError(NnsweepError, RuntimeError):
    """Raised when a store kept refusing a start-up step (creating its tables, a study, an
    experiment) that other processes were doing at the same moment, after retries. A run-time
    failure, not bad input: the same command run again goes through."""

    exit_code = 1


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of ``exc``'s text, stripped, else (for an exception with an
    empty message) its type's name, else ``""`` for an empty string. Never raises."""
    line = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return line or ("" if isinstance(exc, str) else type(exc).__name__)
