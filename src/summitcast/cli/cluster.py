"""`summitcast cluster up`: a whole topology on this machine, stopped with Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from summitcast.cluster.harness import SMALL_NODE_ENV, Cluster
from summitcast.deploy.topology import load_topology

cluster_app = typer.Typer(help="Run a whole topology on this machine.", no_args_is_help=True)
console = Console(soft_wrap=True)  # URLs stay on one line
SIZES = ("small", "full")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (systemd, a CI job's end) stops the cluster like Ctrl-C does."""
    raise KeyboardInterrupt


@cluster_app.command("up")
def up(
    topology: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A topology TOML (deploy/*.toml).")
    ],
    size: Annotated[
        str,
        typer.Option(help="small: light encoders (small ladder, fast preset) for a laptop; full."),
    ] = "small",
    work_dir: Annotated[
        Path | None,
        typer.Option(help="Rendered files, logs and PostgreSQL's data; default ROOT/cluster."),
    ] = None,
) -> None:
    """Start every role of TOPOLOGY, print where each answers, stop them all on Ctrl-C."""
    if size not in SIZES:
        raise typer.BadParameter(f"--size must be one of {', '.join(SIZES)}.")
    loaded = load_topology(topology)
    folder = work_dir or loaded.root / "cluster"
    cluster = Cluster(loaded, folder, node_env=SMALL_NODE_ENV if size == "small" else {})
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    console.print(
        f"Starting {loaded.name}: {len(cluster.role_names())} roles, logs in {folder}/logs"
    )
    try:
        with cluster:
            for role, url in cluster.urls().items():
                console.print(f"  {role:<16} {url}")
            console.print(f"  {'postgres':<16} {cluster.database_url}")
            console.print(f"\n[bold]{loaded.base_url}[/] is up. Ctrl-C stops every process.")
            _watch(cluster)
    except KeyboardInterrupt:
        pass
    console.print("Stopped every process of the cluster.")


@cluster_app.command("commands")
def show_commands(
    topology: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A topology TOML (deploy/*.toml).")
    ],
    work_dir: Annotated[
        Path | None, typer.Option(help="As for `cluster up`; default ROOT/cluster.")
    ] = None,
) -> None:
    """Print what `cluster up` runs, in order, one shell line each (to run the roles by hand)."""
    loaded = load_topology(topology)
    cluster = Cluster(loaded, work_dir or loaded.root / "cluster")
    key, out = cluster.secret_key_file, cluster.rendered_dir
    # What the harness does in Python before the first command (Cluster._prepare).
    console.print(
        f"# Before: a key in {key} (python -c 'import secrets; print(secrets.token_urlsafe(48))'),"
        f"\n# summitcast deploy render {topology} --secret-key-file {key} --out {out},\n"
        f"# mkdir -p each nginx prefix (-p below), and an empty {cluster.pg_data} owned by "
        "postgres (mode 0700). Then each line in a terminal of its own, in this order:",
        markup=False,
        highlight=False,
    )
    for step, command in cluster.commands().items():
        console.print(f"# {step}\n{command.shell()}", markup=False, highlight=False)


def _watch(cluster: Cluster) -> None:
    """Until interrupted: say once when a role exits by itself."""
    reported: set[str] = set()
    while True:
        for role, supervised in cluster.roles.items():
            if not supervised.running and role not in reported:
                reported.add(role)
                console.print(f"[red]{role} exited[/]; its log: {supervised.log}")
        time.sleep(1.0)
