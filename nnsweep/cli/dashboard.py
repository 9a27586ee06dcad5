"""``nnsweep dashboard``: Optuna's own dashboard on the study storage, beside MLflow's UI."""

from __future__ import annotations

from typing import Annotated

import typer

from nnsweep.cli.options import Storage, TrackingUri, resolve_stores


def dashboard(
    study: Annotated[
        str | None,
        typer.Argument(metavar="[STUDY]", help="Study to open [default: the list of studies]."),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8080,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; 127.0.0.1 keeps it private to this machine."),
    ] = "127.0.0.1",
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a non-loopback --host (it has no login)."),
    ] = False,
    storage: Storage = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Start Optuna's dashboard (optuna-dashboard) on the study storage, print the URL of the
    study's page, and serve until Ctrl-C: optimization history, parameter importances, slice,
    contour and parallel-coordinate plots, every trial's params. The storage URL reaches the
    server through its environment, never its command line. A --host other than loopback needs
    --insecure."""
    from nnsweep.ui.dashboard import serve_dashboard

    storage_url, _ = resolve_stores(storage, tracking_uri)
    code = serve_dashboard(
        storage_url,
        study=study,
        host=host,
        port=port,
        insecure=insecure,
        echo=typer.echo,
        warn=lambda line: typer.echo(line, err=True),
    )
    raise typer.Exit(code)
