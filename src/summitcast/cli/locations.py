"""`summitcast locations …`: watch locations in bulk (load tests, rehearsals)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from summitcast.cli.data import DatabaseUrlOption, DataDirOption, open_database, settings_for

if TYPE_CHECKING:
    from summitcast.domain.locations import LocationInput

locations_app = typer.Typer(help="Watch locations in bulk.", no_args_is_help=True)
console = Console(stderr=True)

# A known city per country, so that part of a simulated crowd shows as public map dots.
CAPITALS = {
    "DE": "Berlin",
    "KE": "Nairobi",
    "BR": "Brasilia",
    "IN": "New Delhi",
    "NG": "Abuja",
    "US": "Washington",
    "FR": "Paris",
    "JP": "Tokyo",
    "MX": "Mexico City",
    "ZA": "Pretoria",
    "GB": "London",
    "ID": "Jakarta",
    "PH": "Manila",
    "EG": "Cairo",
    "AR": "Buenos Aires",
    "CA": "Ottawa",
}
DEFAULT_COUNTRIES = "DE,KE,BR,IN,NG,US,FR,JP,MX,ZA,GB,ID,PH,EG,AR,CA"


def simulated_inputs(count: int, countries: list[str]) -> Iterator[LocationInput]:
    """Locations spread round-robin over countries: half public with a city, the rest not."""
    from summitcast.domain.locations import LocationInput

    for i in range(count):
        country = countries[i % len(countries)]
        # Every other location (per country) is public with the capital; every tenth hidden.
        public = (i // len(countries)) % 2 == 0 and country in CAPITALS
        hidden = not public and i % 10 == 1
        yield LocationInput(
            label=f"Load test location {i + 1}",
            country=country,
            city=CAPITALS.get(country, "") if public else "",
            kind="hall",
            expected_audience=1 + i % 50,
            privacy_level="public" if public else ("hidden" if hidden else "country"),
        )


@locations_app.command("bulk-create")
def bulk_create(
    summit: Annotated[str, typer.Option(help="Slug of the summit.")],
    count: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many locations.")],
    out: Annotated[Path, typer.Option(help="JSON lines of id and secret, for the load tool.")],
    countries: Annotated[
        str, typer.Option(help="ISO codes, comma-separated; spread round-robin.")
    ] = DEFAULT_COUNTRIES,
    approve: Annotated[bool, typer.Option(help="Approve them at once.")] = True,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Register COUNT approved locations in one summit and write their secrets to OUT."""
    from summitcast.services import locations, programme
    from summitcast.services.link_secrets import LinkSecrets

    codes = [c.strip().upper() for c in countries.split(",") if c.strip()]
    if not codes:
        raise typer.BadParameter("--countries needs at least one ISO code.")
    settings = settings_for(data_dir, database_url)
    progress = Progress(
        TextColumn("Registering"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with open_database(settings, create=False) as database, progress, database.session() as db:
        task = progress.add_task("register", total=count)
        target = programme.get_summit(db, summit)
        made = locations.register_locations_bulk(
            db,
            target,
            simulated_inputs(count, codes),
            links=LinkSecrets.of(settings),
            approve=approve,
            at_risk=settings.at_risk_countries,
            on_batch=lambda n: progress.advance(task, n),
        )
    # Written only after the commit: a file of secrets for rows that do not exist helps nobody.
    with out.open("w", encoding="utf-8") as file:
        for location in made:
            record = {"id": location.location_id, "secret": location.secret}
            file.write(json.dumps(record | {"country": location.country}) + "\n")
    out.chmod(0o600)  # secrets: readable by their owner only
    console.print(f"[green]Registered[/] {len(made):,} locations in {summit}; secrets in {out}.")
