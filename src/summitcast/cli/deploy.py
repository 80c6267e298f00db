"""`summitcast deploy …`: render a cluster topology's files and check them with nginx."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

deploy_app = typer.Typer(
    help="Cluster files (nginx, env, systemd) from a topology TOML (docs/deploy.md).",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


@deploy_app.command("render")
def render_command(
    topology_file: Annotated[Path, typer.Argument(metavar="TOPOLOGY.toml", help="deploy/*.toml.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
    root: Annotated[
        Path | None,
        typer.Option(help="Use this root instead of the topology's (nodes' data, nginx prefixes)."),
    ] = None,
    secret_key_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SUMMITCAST_SECRET_KEY_FILE",
            help="A file holding SUMMITCAST_SECRET_KEY: written into the env files.",
        ),
    ] = None,
) -> None:
    """Render the nginx configs, env files and systemd units of TOPOLOGY.toml into --out."""
    from summitcast.deploy.render import render, write
    from summitcast.deploy.topology import load_topology

    topology = load_topology(topology_file)
    if root is not None:
        topology = dataclasses.replace(topology, root=root.resolve())
    written = write(render(topology, secret_key_file=secret_key_file), out)
    console.print(f"[green]Rendered[/] {topology.name} into {out} ({len(written)} files):")
    for path in written:
        console.print(f"  {path}")
    console.print(f"Check the nginx files with: summitcast deploy check {out}")


@deploy_app.command("check")
def check_command(
    out: Annotated[Path, typer.Argument(metavar="DIR", help="A folder `deploy render` wrote.")],
    nginx: Annotated[str | None, typer.Option(help="The nginx binary; default from PATH.")] = None,
) -> None:
    """Run `nginx -t` on every nginx file of DIR; exit 1 when one fails."""
    from summitcast.deploy.check import check_nginx

    failed = 0
    for result in check_nginx(out, nginx=nginx):
        if result.ok:
            console.print(f"[green]ok[/]     {result.path}")
        else:
            failed += 1
            # nginx's words hold [emerg] and the like: escaped, not read as Rich markup.
            errors.print(f"[red]FAILED[/] {escape(str(result.path))}: {escape(result.message)}")
    if failed:
        raise typer.Exit(1)
