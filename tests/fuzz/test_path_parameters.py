"""Every path parameter of every route, filled with hostile values, is answered below 500.

The walk covers the app's whole route table (pages, backstage, API, portal, files), so a
route added later is fuzzed without editing this file. One parameter is hostile at a
time while the others name objects that exist, so each value reaches its own lookup.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from hypothesis import given
from hypothesis import strategies as st

from summitcast.app import ROUTERS
from summitcast.services import programme, speakers
from tests.fuzz.conftest import Run, World, real_ids, replenish

pytestmark = pytest.mark.integration

PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
# What the attacker sent: NUL bytes, ids past SQLite's and PostgreSQL's integer
# ranges, a path past the file system's name limit, a climb out of a folder.
HOSTILE = ["a\x00b", str(2**63), str(2**31), "x" * 5000, ".."]
# Hypothesis adds its own values on top: any text (control characters included) or integer.
DRAWN = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)
DRAWN_EXAMPLES = 200


def parameterised_routes() -> list[tuple[str, str, str]]:
    """Every (method, path, parameter) of the app's routes that take path parameters."""
    found = set()
    for route in [r for router in ROUTERS for r in router.routes]:
        if isinstance(route, APIRoute):
            for method in route.methods - {"HEAD"}:
                for name in PARAMETER.findall(route.path):
                    found.add((method, route.path, name))
    return sorted(found)


def fill(path: str, real: dict[str, str], hostile: str, value: str) -> str:
    """The path with `hostile` set to value and the others to objects that exist."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return quote(value if name == hostile else real.get(name, "x1"), safe="")

    return PARAMETER.sub(one, path)


def existing(world: World) -> dict[str, str]:
    """Path parameters naming objects that exist, a speaker's link token among them."""
    replenish(world.database)
    real = real_ids(world.database)
    secret = world.app.state.settings.secret_key.get_secret_value().encode()
    with world.database.session() as db:
        summit = programme.get_summit(db, real["slug"])
        item = programme.get_item(db, summit, int(real["item_id"]))
        invitation = speakers.invite_speaker(
            db, summit, item, int(real["speaker_id"]), valid_days=5
        )
        real["token"] = speakers.invitation_token(invitation, secret)
        real["invitation_id"] = str(invitation.id)
    real["summit"] = real["slug"]
    return real


def test_route_walk_finds_every_kind_of_parameter() -> None:
    names = {name for _method, _path, name in parameterised_routes()}

    assert {"slug", "session_id", "item_id", "speaker_id", "token", "public_id", "path"} <= names
    assert len(parameterised_routes()) >= 150


def fuzz_path_parameters(world: World, run: Run) -> None:
    """Send every hostile value to every parameter, then run.examples drawn ones at random."""
    real = existing(world)
    routes = parameterised_routes()
    with world.client() as client:

        def send(method: str, path: str, name: str, value: str) -> None:
            response = client.request(method, fill(path, real, name, value), follow_redirects=False)
            shown = value if len(value) < 40 else f"{value[:20]!r}... ({len(value)} chars)"
            run.check(response, f"{method} {path} {name}={shown!r}")

        for method, path, name in routes:
            for value in HOSTILE:
                send(method, path, name, value)

        for examples in run.chunks():

            @run.settings(examples)
            @given(route=st.sampled_from(routes), value=DRAWN)
            def drawn(route: tuple[str, str, str], value: str) -> None:
                send(*route, value)

            drawn()


def test_hostile_path_parameters_are_answered_below_500(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(examples=DRAWN_EXAMPLES)

    with caplog.at_level(logging.ERROR):
        fuzz_path_parameters(world, run)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]

    assert run.sent >= 900, f"only {run.sent} requests were sent: the walk itself is broken"
    assert not run.failures, f"{len(run.failures)} answers of 500 or more:\n" + "\n".join(
        run.failures[:40]
    )
    assert not tracebacks, f"{len(tracebacks)} tracebacks logged: {tracebacks[:5]}"
