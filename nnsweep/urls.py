"""URL helpers: hide passwords before a URL is shown, logged or stored, and scrub known secrets.

A password can hold any character once a user types it into a URL unencoded: ``/``, spaces,
``@``, ``:``. :func:`mask_url` therefore reads a whole URL with SQLAlchemy's own parser (what
Optuna and MLflow use to connect) and, in a longer message or where that parser would split a
password at an ``@``, hides everything from ``user:`` up to the *last* ``@`` before the host, so
it errs towards hiding too much. Secret query parameters (``password=``, ``sslpassword=``,
``token=``, …) are hidden too. Exception texts may quote a password outside any URL (a driver
echoing its connection options): :func:`scrub` removes the known secrets themselves, which the
CLI collects with :func:`known_secrets` and registers with :func:`remember_secrets`.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from nnsweep.names import STORAGE_ENV

MASK = "***"

# userinfo password: up to the last '@' on the line that is followed by a host (no '@' in it),
# never across another URL's "://": a password may hold '@', '/', ':' and spaces, and a
# message that merely contains an '@' later loses more text rather than a secret.
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s?#]*):"
    r"(?P<pw>(?:(?!://)[^\n])*)@(?=[^\s@/?#]*(?:[\s/?#]|$))"
)
_SECRET_KEY = r"[\w.-]*(?:password|passwd|pwd|secret|token|api_?key)[\w.-]*"
_QUERY_SECRET = re.compile(rf"(?P<key>[?&;]{_SECRET_KEY}=)(?P<value>[^&;#\s]*)", re.IGNORECASE)
_SECRET_KEY_RE = re.compile(rf"^{_SECRET_KEY}$", re.IGNORECASE)
_SCHEME = re.compile(r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+]*://")
_WHOLE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+]*://\S*$")
_WEB = ("http://", "https://")  # SQLAlchemy would re-quote their paths and fragments

# Options and environment variables that may carry a store URL or a bare secret.
URL_OPTIONS = ("--storage", "--tracking-uri", "--registry-uri")
URL_ENV = (
    STORAGE_ENV,
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_BACKEND_STORE_URI",
)
SECRET_ENV = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "PGPASSWORD",
)
MIN_SCRUB_LENGTH = 3  # shorter secrets are masked inside URLs only, not wherever they appear

_remembered: set[str] = set()
_factory: Callable[..., logging.LogRecord] | None = None  # the record factory before ours


def _scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _factory is not None
    record = _factory(*args, **kwargs)
    if _remembered:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is logging's to report, as it would be
            return record
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
    return record


def _mask_whole(url: str) -> str | None:
    """``url`` with its password hidden by SQLAlchemy, or None if SQLAlchemy cannot be trusted
    with it (not a URL it parses, or a raw '@' in the password it would split at)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.password is None or "@" in (parsed.host or ""):
        return None
    return str(parsed.render_as_string(hide_password=True))


def mask_url(text: str) -> str:
    """Replace every password in ``text`` by ``***``: ``scheme://user:pw@host``, secret query
    parameters (``?password=``, ``sslpassword=``, ``token=``, …) and remembered secrets.

    ``text`` is one URL or a whole message quoting URLs (an error text is then safe to print).
    """
    text = scrub(text, secrets_of(text))  # first: a raw space can end a query value early
    whole = _WHOLE_URL.match(text) and not text.lower().startswith(_WEB)
    masked = _mask_whole(text) if whole else None
    if masked is None:
        masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", masked)


def secrets_of(url: str) -> list[str]:
    """The passwords and secret query values ``url`` carries (as written and decoded), to
    scrub them from any text that might still hold them. ``url`` may be a message: each URL in
    it is read to the end of its line, so a raw space cannot cut a secret short."""
    found = [m["pw"] for m in _USERINFO.finditer(url)]
    found += [m["value"] for m in _QUERY_SECRET.finditer(url)]
    found += [urllib.parse.unquote(s) for s in found]
    for start in _SCHEME.finditer(url):
        found += _sqlalchemy_secrets(url[start.start() :].split("\n", 1)[0])
    return list(dict.fromkeys(s for s in found if s and s != MASK))


def _sqlalchemy_secrets(url: str) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    found = [parsed.password or ""]
    for key, value in parsed.query.items():
        if _SECRET_KEY_RE.match(key):
            found += [value] if isinstance(value, str) else list(value)
    return found


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every occurrence of each secret (and of the remembered ones) replaced by
    ``***``, longest first; also their percent-encoded forms."""
    candidates: set[str] = set()
    for secret in {*secrets, *_remembered}:
        if len(secret) >= MIN_SCRUB_LENGTH:
            candidates |= {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}
    for secret in sorted(candidates, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def known_secrets(args: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets a command line and its environment hand nnsweep: passwords in the store
    URLs (``--storage``, ``--tracking-uri`` and their environment variables, any argument
    holding ``://``) and MLflow's credential variables."""
    env = os.environ if environ is None else environ
    urls = [env[name] for name in URL_ENV if env.get(name)]
    for i, arg in enumerate(args):
        option, eq, value = arg.partition("=")
        if option in URL_OPTIONS and eq:
            urls.append(value)
        elif arg in URL_OPTIONS and i + 1 < len(args):
            urls.append(args[i + 1])
        elif "://" in arg:
            urls.append(arg)
    found = [s for url in urls for s in secrets_of(url)]
    found += [env[name] for name in SECRET_ENV if env.get(name)]
    return list(dict.fromkeys(found))


def remember_secrets(secrets: Iterable[str]) -> None:
    """Scrub ``secrets`` from every text :func:`mask_url` and :func:`scrub` return from now on
    in this process, and from every log message (the CLI registers the secrets of the stores
    it was given, so a driver's error quoted in a warning cannot carry them)."""
    global _factory
    _remembered.update(s for s in secrets if s)
    if _factory is None and _remembered:
        _factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_scrubbed_record)


def forget_secrets() -> None:
    """Drop the remembered secrets and stop scrubbing log messages."""
    global _factory
    _remembered.clear()
    if _factory is not None:
        logging.setLogRecordFactory(_factory)
        _factory = None
