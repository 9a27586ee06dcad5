"""The ``nnsweep`` command. The only place errors become a stderr line and an exit status.

Exit status: 0 ok, 1 runtime failure, 2 bad input (sweep file, data, storage, arguments),
130 interrupted. Tracebacks only with ``--debug``. TensorFlow is imported only by the commands
that train or load a model, so ``nnsweep --help`` stays fast. The commands live in
:mod:`nnsweep.cli.run` (run, status, best) and :mod:`nnsweep.cli.results` (report, compare,
ui, export, predict); this module puts them together.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import typer

from nnsweep.cli import dashboard as cli_dashboard
from nnsweep.cli import results as cli_results
from nnsweep.cli import run as cli_run
from nnsweep.errors import NnsweepError, first_line
from nnsweep.train.runtime import quiet_native_logs
from nnsweep.urls import forget_secrets, known_secrets, mask_url, remember_secrets

app = typer.Typer(
    name="nnsweep",
    help="Hyperparameter sweeps for Keras MLPs: Optuna samples, Keras trains, MLflow tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for _command in (
    cli_run.run,
    cli_run.status,
    cli_run.best,
    cli_results.report,
    cli_results.compare,
    cli_results.ui,
    cli_dashboard.dashboard,
    cli_results.export,
    cli_results.predict,
):
    app.command()(_command)

_state: dict[str, Any] = {"debug": False}


def version() -> str:
    """The installed package's version (the source tree's when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("nnsweep")
    except PackageNotFoundError:
        from nnsweep.version import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"nnsweep {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    _state["debug"] = debug


def show_usage_error(exc: typer.TyperException) -> int:
    """Print a command-line error as Typer does in standalone mode; return its exit status.

    Typer raises its parsing errors (its own copy of Click's) as :class:`typer.TyperException`
    subclasses whose ``exit_code`` is 2 for usage errors; those also have ``show()``, which
    prints the usage line and a hint before ``Error: …``.
    """
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to one stderr line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    quiet_native_logs(debug=_state["debug"])  # before anything imports TensorFlow
    remember_secrets(known_secrets(args))  # scrubbed from every message and log line
    command = typer.main.get_command(app)
    try:
        # Typer's non-standalone mode returns the code of typer.Exit, and 130 for Ctrl-C
        rv = command.main(args=args, prog_name="nnsweep", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 130:
            raise KeyboardInterrupt
        return code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("nnsweep: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:  # bad arguments, as Typer's parser words them
        return show_usage_error(exc)
    except NnsweepError as exc:
        if _state["debug"]:
            print(mask_url(traceback.format_exc()), end="", file=sys.stderr)
        print(f"nnsweep: error: {mask_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = (
            "; a trial cut short is marked FAIL. Run the same command again to resume the study."
            if "run" in args
            else ""
        )
        print(f"nnsweep: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        if _state["debug"]:
            print(mask_url(traceback.format_exc()), end="", file=sys.stderr)
        message = mask_url(first_line(f"{type(exc).__name__}: {exc}"))
        print(f"nnsweep: error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        forget_secrets()
