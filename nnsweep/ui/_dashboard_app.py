"""The child process of ``nnsweep dashboard``: optuna-dashboard on the storage in its environment.

Run as ``python -m nnsweep.ui._dashboard_app HOST PORT``; the storage URL comes from
``NNSWEEP_DASHBOARD_STORAGE``, never the command line (``ps`` shows a command line to every
local user, and a PostgreSQL URL may hold a password). A journal file is opened as Optuna's
JournalStorage, any other URL as an RDB storage, as ``nnsweep run`` opens them.
"""

from __future__ import annotations

import os
import sys

from nnsweep.names import DASHBOARD_STORAGE_ENV


def storage_for(url: str) -> object:
    """The Optuna storage optuna-dashboard reads: a journal file or an RDB URL."""
    from nnsweep.stores import journal_path

    path = journal_path(url)
    if path is None:
        return url  # optuna-dashboard opens an RDB URL itself (and migrates nothing)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def main(argv: list[str]) -> int:
    from optuna_dashboard import run_server

    host, port = argv
    url = os.environ.pop(DASHBOARD_STORAGE_ENV, "")
    if not url:
        print(f"{DASHBOARD_STORAGE_ENV} is not set", file=sys.stderr)
        return 2
    try:
        run_server(storage_for(url), host=host, port=int(port))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
