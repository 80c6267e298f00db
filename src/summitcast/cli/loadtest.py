"""`summitcast loadtest …`: simulate location screens against a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

loadtest_app = typer.Typer(help="Load tests against a running server.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _print_progress(row: dict[str, object]) -> None:
    """One line of a sample: the server's count and the clients' own."""
    console.print(
        f"t={row['at_s']:>6}s  server online {row['server']}  "
        f"clients online {row.get('online', 0)}  sent {row.get('sent', 0)}  "
        f"acked {row.get('acked', 0)}  reconnects {row.get('reconnects', 0)}  "
        f"connect errors {row.get('connect_errors', 0)}"
    )


@loadtest_app.command("presence")
def presence(
    secrets: Annotated[
        Path,
        typer.Option(exists=True, dir_okay=False, help="From `summitcast locations bulk-create`."),
    ],
    locations: Annotated[
        int, typer.Option(min=1, help="How many of the file's locations.")
    ] = 30_000,
    duration: Annotated[
        float, typer.Option(min=1, help="Seconds; the run stops by itself.")
    ] = 120.0,
    url: Annotated[str, typer.Option(help="The server.")] = "http://127.0.0.1:8000",
    summit: Annotated[str, typer.Option(help="Slug whose figures are sampled.")] = "demo-summit",
    interval: Annotated[
        float, typer.Option(help="Expected heartbeat interval (the server announces the real one).")
    ] = 10.0,
    ramp: Annotated[float | None, typer.Option(help="Seconds to spread connections over.")] = None,
    herd: Annotated[bool, typer.Option(help="Connect all at once (thundering herd).")] = False,
    processes: Annotated[int, typer.Option(min=0, help="Client processes; 0: automatic.")] = 0,
    sources: Annotated[
        str, typer.Option(help="Local addresses, one per process, e.g. 127.0.0.2,127.0.0.3.")
    ] = "",
    sample_every: Annotated[float, typer.Option(min=0.2, help="Seconds between samples.")] = 2.0,
    dashboards: Annotated[int, typer.Option(min=0, help="Dashboard sockets to time.")] = 0,
    probes: Annotated[int, typer.Option(min=0, help="Locations brought online one by one.")] = 0,
    timeout: Annotated[float, typer.Option(help="The server's presence timeout, seconds.")] = 35.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False,
) -> None:
    """Hold LOCATIONS presence sockets for DURATION seconds and report what the server did."""
    from summitcast.loadtest.report import print_result, write_json
    from summitcast.loadtest.run import LoadPlan, LoadTest, read_secrets

    chosen = read_secrets(secrets, limit=locations)
    if len(chosen) < locations:
        raise typer.BadParameter(f"{secrets} holds only {len(chosen)} locations.")
    if probes and not dashboards:
        raise typer.BadParameter("--probes needs --dashboards.")
    # Default ramp: about one interval, the way screens come up when a session starts.
    ramp_s = 0.0 if herd else (ramp if ramp is not None else min(interval, duration / 4))
    plan = LoadPlan(
        base_url=url.rstrip("/"),
        summit=summit,
        locations=chosen,
        duration_s=duration,
        ramp_s=ramp_s,
        processes=processes,
        sources=tuple(s.strip() for s in sources.split(",") if s.strip()),
        sample_every_s=sample_every,
        dashboards=dashboards,
        probes=probes,
        timeout_s=timeout,
    )
    result = LoadTest(plan, None if quiet else _print_progress).run()
    print_result(result, console)
    if json_out is not None:
        write_json(result, json_out)


def _origin_logs(paths: str) -> list[Path]:
    """The --origin-log files; ValidationError (exit 2) naming any that is not there."""
    from summitcast.errors import ValidationError

    logs = [Path(p.strip()) for p in paths.split(",") if p.strip()]
    missing = [str(p) for p in logs if not p.is_file()]
    if missing:
        raise ValidationError(f"--origin-log: no such file {', '.join(missing)}")
    return logs


def _print_viewer_progress(row: dict[str, object]) -> None:
    """One line of running totals of a viewer run."""
    console.print("  ".join(f"{key.replace('_', ' ')} {value}" for key, value in row.items()))


@loadtest_app.command("viewers")
def viewers(
    url: Annotated[
        str, typer.Option(help="Edge base URLs, comma-separated; default: the --master URL's.")
    ] = "",
    master: Annotated[
        str,
        typer.Option(help="The master playlist: a path (/hls/SLUG/SESSION/master.m3u8) or URL."),
    ] = "",
    viewer_count: Annotated[
        int, typer.Option("--viewers", min=1, help="Simulated players in this process.")
    ] = 100,
    duration: Annotated[
        float, typer.Option(min=1, help="Seconds; the run stops by itself.")
    ] = 60.0,
    ramp: Annotated[
        float | None, typer.Option(min=0, help="Seconds to spread viewers' starts over.")
    ] = None,
    mix: Annotated[
        str, typer.Option(help='Rung weights, e.g. "1080p=10,720p=40,audio=10"; empty: equal.')
    ] = "",
    seed: Annotated[int, typer.Option(help="Seed of the deal of rungs to viewers.")] = 0,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a request may take before it failed.")
    ] = 4.0,
    connections: Annotated[
        int, typer.Option(min=1, help="Keep-alive connections per edge, shared by its viewers.")
    ] = 256,
    origin_log: Annotated[
        str, typer.Option(help="Origin nginx access logs, comma-separated (requests per segment).")
    ] = "",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    progress: Annotated[
        float, typer.Option(min=0, help="Seconds between progress lines; 0: none.")
    ] = 10.0,
) -> None:
    """Play VIEWERS simulated HLS players against the edges for DURATION seconds; report."""
    from summitcast.loadtest.viewer_report import print_summary, summary, write_json
    from summitcast.loadtest.viewers import ViewerPlan, parse_mix, plan_edges, run_viewers

    edges, master_path = plan_edges(url, master)
    logs = _origin_logs(origin_log)
    plan = ViewerPlan(
        edges=edges,
        master_path=master_path,
        viewers=viewer_count,
        duration_s=duration,
        # Default ramp: viewers arrive over a quarter of the run, at most 10 s.
        ramp_s=ramp if ramp is not None else min(10.0, duration / 4),
        mix=parse_mix(mix),
        seed=seed,
        timeout_s=timeout,
        connections_per_edge=connections,
        progress_every_s=progress,
    )
    figures = summary(run_viewers(plan, _print_viewer_progress), logs)
    print_summary(figures, console)
    if json_out is not None:
        write_json(figures, json_out)
