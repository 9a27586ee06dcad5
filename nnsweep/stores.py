"""Where the two stores are: Optuna storage and MLflow tracking URLs, their checks, artifacts.

One home for every question about a store's address: which URL a command uses (flag, then
environment, then the default files in the working directory), whether it can be used before
anything is written, where MLflow puts a local store's artifacts, and how processes that
start at the same moment on one store take turns. Nothing here imports Optuna or MLflow;
SQLAlchemy only when a server must be asked.

Start-up steps race when several workers start at once: both Optuna and MLflow create their
tables, and MLflow its experiment and its tags, with a check-then-insert that a second process
can interleave. For local files (SQLite, a journal) :func:`startup_lock` makes the processes
take turns; for servers :func:`retry_race` repeats the (idempotent) step, which then finds
what the other process created.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from nnsweep.errors import NnsweepError, StorageError, StoreBusyError, first_line
from nnsweep.names import STORAGE_ENV
from nnsweep.urls import mask_url

T = TypeVar("T")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_STORAGE_FILE = "optuna.log"  # Optuna's JournalStorage file: takes concurrent writers
LEGACY_STORAGE_FILE = "optuna.db"  # earlier versions' SQLite default; kept where it exists
TRACKING_ENV = "MLFLOW_TRACKING_URI"
ARTIFACTS_DIR = "mlruns"  # beside a SQLite tracking file, as `mlflow ui` would put it
CONNECT_TIMEOUT = 5  # seconds, for the checks and for PostgreSQL connections

_STORAGE_FIX = f"fix --storage / {STORAGE_ENV}"


def sqlite_path(uri: str) -> Path | None:
    """The file behind a ``sqlite:///…`` URI (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def journal_path(url: str) -> Path | None:
    """The log file behind a ``journal:///…`` Optuna storage URL, else None."""
    if not url.startswith("journal:///"):
        return None
    return Path(url.removeprefix("journal:///"))


def resolve_tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get(TRACKING_ENV) or DEFAULT_TRACKING_URI


def resolve_storage(storage: str | None, tracking_uri: str) -> str:
    """``--storage``, else ``$NNSWEEP_STORAGE``, else the default file beside the MLflow file.

    The default is Optuna's journal file ``optuna.log`` (``journal:///optuna.log``), which
    several worker processes append to safely (docs/scale-out.md). A folder that already
    has the SQLite ``optuna.db`` of an earlier nnsweep, and no ``optuna.log``, keeps using it,
    so its studies resume; a SQLite file takes one writer, so ``--jobs auto`` runs one worker.
    """
    if storage or os.environ.get(STORAGE_ENV):
        return storage or os.environ[STORAGE_ENV]
    path = sqlite_path(tracking_uri)
    folder = path.parent if path is not None else Path(".")
    legacy = folder / LEGACY_STORAGE_FILE
    if legacy.is_file() and not (folder / DEFAULT_STORAGE_FILE).exists():
        return "sqlite:///" + legacy.as_posix()
    return "journal:///" + (folder / DEFAULT_STORAGE_FILE).as_posix()


def takes_concurrent_writers(storage_url: str) -> bool:
    """Whether several processes may write ``storage_url`` at once (not a SQLite file)."""
    return sqlite_path(storage_url) is None


def resolve(storage: str | None, tracking_uri: str | None) -> tuple[str, str]:
    """(Optuna storage URL, MLflow tracking URI) for the flags given, defaults filled in."""
    uri = resolve_tracking_uri(tracking_uri)
    return resolve_storage(storage, uri), uri


def pinned(url: str) -> str:
    """``url`` with a relative SQLite or journal file made absolute, from the working directory.

    For a long-lived process (a notebook that changes directory between two sweeps): MLflow
    keeps one store per URI for the life of the process, while Optuna's journal opens its file
    by name on every write, so a relative default would put the second sweep's trials in the
    new folder and its runs in the old one.
    """
    for prefix in ("sqlite:///", "journal:///"):
        if url.startswith(prefix):
            rest = url.removeprefix(prefix)
            path, sep, query = rest.partition("?") if prefix == "sqlite:///" else (rest, "", "")
            if path and path != ":memory:" and not Path(path).is_absolute():
                return prefix + Path(path).absolute().as_posix() + sep + query
    return url


def connect_args(url: str) -> dict[str, Any]:
    """SQLAlchemy ``connect_args`` for ``url``: a connect timeout for PostgreSQL."""
    return {"connect_timeout": CONNECT_TIMEOUT} if url.startswith("postgresql") else {}


def artifact_root(tracking_uri: str) -> Path | None:
    """Where a SQLite tracking store keeps its artifacts (``mlruns/`` beside the file), else None
    (a server or another backend decides for itself)."""
    path = sqlite_path(tracking_uri)
    return path.resolve().parent / ARTIFACTS_DIR if path is not None else None


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """The artifact location to create ``experiment`` with (a ``file://`` URI), else None."""
    root = artifact_root(tracking_uri)
    return (root / experiment).as_uri() if root is not None else None


def _try_connect(url: str, shown: str, fix: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = create_engine(url, connect_args=connect_args(url))
        with engine.connect():
            pass
        engine.dispose()
    except (ArgumentError, SQLAlchemyError, ImportError, ValueError) as exc:
        reason = mask_url(first_line(exc))[:200]
        raise StorageError(f"{shown}: cannot connect ({reason}); {fix}") from None


def check_storage(url: str, tracking_uri: str | None = None) -> None:
    """Fail fast, before anything is written, when the Optuna storage is unusable.

    Raises:
        StorageError: bad scheme, missing folder, the MLflow file reused, or no connection.
    """
    shown = mask_url(url)
    journal = journal_path(url)
    if journal is not None:
        folder = journal.resolve().parent
        if not folder.is_dir():
            raise StorageError(f"storage {shown}: folder {folder} does not exist; {_STORAGE_FIX}")
        return
    path = sqlite_path(url)
    if path is not None:
        if not path.resolve().parent.is_dir():
            raise StorageError(
                f"storage {shown}: folder {path.resolve().parent} does not exist; {_STORAGE_FIX}"
            )
        tracking_path = sqlite_path(tracking_uri or "")
        if tracking_path is not None and tracking_path.resolve() == path.resolve():
            raise StorageError(
                f"storage {shown} is the MLflow tracking file; Optuna and MLflow both keep "
                "Alembic tables, so give Optuna its own file (e.g. sqlite:///optuna.db)"
            )
        return
    if "://" not in url:
        raise StorageError(
            f"storage {shown}: not a URL; use sqlite:///optuna.db, "
            "postgresql+psycopg://user:pw@host/db or journal:///path/optuna.log"
        )
    _try_connect(url, f"storage {shown}", _STORAGE_FIX)


def check_tracking_uri(uri: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast, before anything is written, when the tracking store cannot be reached.

    Raises:
        StorageError: the SQLite folder is missing, or a server does not answer.
    """
    shown = mask_url(uri)
    path = sqlite_path(uri)
    if path is not None:
        folder = path.resolve().parent
        if not folder.is_dir():
            raise StorageError(
                f"tracking URI {shown}: folder {folder} does not exist; create it or fix "
                "--tracking-uri / MLFLOW_TRACKING_URI"
            )
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                resp.read()
        except (TimeoutError, urllib.error.URLError, ConnectionError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StorageError(
                f"tracking URI {shown}: MLflow server not reachable ({reason}); start it or fix "
                "--tracking-uri / MLFLOW_TRACKING_URI"
            ) from None
        return
    if "://" in uri and not uri.startswith("file:"):
        _try_connect(uri, f"tracking URI {shown}", "fix --tracking-uri")


def check_concurrent_storage(storage_url: str, jobs: int) -> None:
    """Refuse a plain SQLite file for several ``--jobs`` writers, with the fix.

    Raises:
        StorageError: ``jobs > 1`` on a SQLite storage.
    """
    if jobs > 1 and not takes_concurrent_writers(storage_url):
        raise StorageError(
            f"--jobs {jobs} needs a storage that takes concurrent writers, but "
            f"{mask_url(storage_url)} is a SQLite file; use --storage journal:///optuna.log "
            "(one machine) or postgresql+psycopg://user:pw@host/db (many)"
        )


def check_stores(storage_url: str, tracking_uri: str, *, jobs: int = 1) -> None:
    """Every check of both stores that must pass before either is written to.

    Raises:
        StorageError: the first problem found, worded with its fix.
    """
    check_concurrent_storage(storage_url, jobs)
    check_storage(storage_url, tracking_uri)
    check_tracking_uri(tracking_uri)


def startup_lock_paths(*urls: str) -> list[Path]:
    """The lock files of the local store files among ``urls``: ``.NAME.lock`` beside each."""
    files = [sqlite_path(url) or journal_path(url) for url in urls]
    return sorted({f.resolve().parent / f".{f.name}.lock" for f in files if f is not None})


@contextlib.contextmanager
def startup_lock(*urls: str) -> Iterator[None]:
    """Take turns with other processes starting on the same stores, for the steps inside.

    Local files (SQLite, a journal): an exclusive ``flock`` on ``.NAME.lock`` beside each.
    PostgreSQL: a session advisory lock in each database, held on a connection of its own.
    Locks are always taken in one order, so two processes never wait for each other
    crosswise; other servers (an MLflow server) get none, and rely on :func:`retry_race`.

    Raises:
        StoreBusyError: a PostgreSQL lock not granted within ``STARTUP_LOCK_TIMEOUT``.
    """
    with contextlib.ExitStack() as stack:
        for path in startup_lock_paths(*urls):
            stack.enter_context(_file_lock(path))
        for url in sorted({u for u in urls if u.startswith("postgresql")}):
            stack.enter_context(_postgres_lock(url))
        yield


STARTUP_LOCK_TIMEOUT = 300  # seconds to wait for another process's start-up steps
_LOCK_KEY = int.from_bytes(b"nnsweep", "big")  # one advisory lock key per database


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock, retries only
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _postgres_lock(url: str) -> Iterator[None]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, connect_args=connect_args(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            try:
                conn.execute(text(f"SET lock_timeout = '{STARTUP_LOCK_TIMEOUT}s'"))
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            except SQLAlchemyError as exc:
                raise StoreBusyError(
                    f"{mask_url(url)}: waited {STARTUP_LOCK_TIMEOUT} s for other processes to "
                    f"start ({mask_url(first_line(exc))[:200]}); run the command again"
                ) from None
            try:
                yield
            finally:  # closing the session releases the lock anyway
                with contextlib.suppress(SQLAlchemyError):
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
    finally:
        engine.dispose()


_RACE_TYPES = {"IntegrityError", "DuplicatedStudyError", "UniqueViolation", "DuplicateTable"}
_RACE_TEXTS = (
    "already exists",
    "duplicate key",
    "uniqueviolation",
    "unique constraint failed",
    "duplicatetable",
    "database is locked",
    "could not serialize access",
    "deadlock detected",
    "online migration",
)


def is_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what a store says when another process did the same step first
    (a unique key or a table that already exists, a locked SQLite file)."""
    if isinstance(exc, NnsweepError):
        return False
    if {cls.__name__ for cls in type(exc).__mro__} & _RACE_TYPES:
        return True
    text = str(exc).lower()
    return any(word in text for word in _RACE_TEXTS)


def retry_race(step: Callable[[], T], what: str, *, attempts: int = 8) -> T:
    """Run ``step``, an idempotent start-up step, again while it loses a race to another
    process (see :func:`is_race`), after a growing random pause; other errors pass through.

    Raises:
        StoreBusyError: still losing after ``attempts`` tries (exit 1: run it again).
    """
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as exc:
            if not is_race(exc):
                raise
            if attempt == attempts:
                raise StoreBusyError(
                    f"{what}: other processes kept doing the same at the same moment "
                    f"({mask_url(first_line(exc))[:200]}); run the command again"
                ) from exc
            # back off (0.2 s doubling to 3 s, jittered): the other process's step, such
            # as MLflow's schema migrations, can take seconds
            time.sleep(min(0.1 * 2**attempt, 3.0) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover
