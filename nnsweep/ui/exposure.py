"""Who may reach ``nnsweep ui``: loopback by default, other machines with a login or on purpose.

MLflow's UI has no login of its own, and its host check (DNS-rebinding protection) accepts
``localhost`` and every private address (10.*, 172.16-31.*, 192.168.*) as Host header, so on a
shared network anyone who reaches the port can create and delete experiments, move registry
aliases and upload artifacts. ``nnsweep ui`` therefore binds 127.0.0.1 unless told otherwise,
and binds anything else only with ``--auth`` (MLflow's basic-auth app: users, passwords and
per-experiment permissions) or an explicit ``--insecure``. ``--allowed-hosts`` and
``--cors-allowed-origins`` are passed to ``mlflow server`` as they are.

``--auth`` needs MLflow's ``auth`` extra (Flask-WTF), ``MLFLOW_FLASK_SERVER_SECRET_KEY`` and, on
the first start, ``MLFLOW_AUTH_ADMIN_PASSWORD`` (MLflow then creates the user ``admin``); the
users live in ``basic_auth.db`` in the working directory unless ``MLFLOW_AUTH_CONFIG_PATH``
names a configuration file that says otherwise. All of these reach the server through its
environment, never its command line.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nnsweep.errors import ExposureError

LOOPBACK = "127.0.0.1"
AUTH_APP = "basic-auth"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
AUTH_CONFIG_ENV = "MLFLOW_AUTH_CONFIG_PATH"
AUTH_DB = "basic_auth.db"  # MLflow's default: sqlite:///basic_auth.db, in the working directory


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Exposure:
    """Where the UI listens and who may use it.

    Attributes:
        host: the address to bind.
        allowed_hosts: MLflow's ``--allowed-hosts`` (Host headers it answers), as given.
        cors_allowed_origins: MLflow's ``--cors-allowed-origins``, as given.
        auth: serve MLflow's basic-auth app (a login for every request but ``/health``).
        insecure: bind a non-loopback address without a login, on purpose.
    """

    host: str = LOOPBACK
    allowed_hosts: str | None = None
    cors_allowed_origins: str | None = None
    auth: bool = False
    insecure: bool = False

    @property
    def public(self) -> bool:
        return not is_loopback(self.host)

    def check(self, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[str]:
        """Refuse an unprotected public bind or an ``--auth`` that cannot start; return the
        warnings to print.

        Raises:
            ExposureError: with the rule and the fix.
        """
        env = os.environ if environ is None else environ
        if self.auth:
            _check_auth(env, Path.cwd() if cwd is None else cwd)
        if not self.public:
            return []
        if not self.auth and not self.insecure:
            raise ExposureError(
                f"--host {self.host} makes the UI reachable from other machines, and MLflow's UI "
                "has no login: anyone who reaches it can change experiments, registry aliases "
                "and artifacts; add --auth (MLflow's basic-auth app, see docs/ui.md), or "
                "--insecure if only trusted machines can reach it, or keep --host 127.0.0.1"
            )
        warnings = []
        if not self.auth:
            warnings.append(
                f"warning: binding {self.host} makes the UI reachable from other machines, and "
                "it has no login (--insecure)"
            )
        else:
            warnings.append(
                "note: --auth sends passwords as HTTP basic auth, readable on the network "
                "unless a TLS proxy is in front"
            )
        if self.allowed_hosts is None:
            warnings.append(
                "note: without --allowed-hosts MLflow answers any Host header naming localhost "
                "or a private address; set it to the names this server is reached by"
            )
        return warnings

    def server_flags(self) -> list[str]:
        """The ``mlflow server`` options this exposure adds."""
        flags = ["--app-name", AUTH_APP] if self.auth else []
        if self.allowed_hosts is not None:
            flags += ["--allowed-hosts", self.allowed_hosts]
        if self.cors_allowed_origins is not None:
            flags += ["--cors-allowed-origins", self.cors_allowed_origins]
        return flags


def _check_auth(env: Mapping[str, str], cwd: Path) -> None:
    if importlib.util.find_spec("flask_wtf") is None:
        raise ExposureError(
            "--auth needs MLflow's auth extra (Flask-WTF); install it with "
            "pip install 'nnsweep[auth]'"
        )
    if not env.get(SECRET_KEY_ENV):
        raise ExposureError(
            f"--auth needs {SECRET_KEY_ENV}, a random string kept the same across restarts: "
            f"export {SECRET_KEY_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    first_start = not env.get(AUTH_CONFIG_ENV) and not (cwd / AUTH_DB).exists()
    if first_start and not env.get(ADMIN_PASSWORD_ENV):
        raise ExposureError(
            f"--auth: no {AUTH_DB} here yet, so MLflow creates the user 'admin' on this first "
            f"start and needs its password: export {ADMIN_PASSWORD_ENV}=… (see docs/ui.md)"
        )
