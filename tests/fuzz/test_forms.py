"""Every browser form, filled with arbitrary text and files, is answered below 500.

The forms are read from the route table (FastAPI's Form and File parameters), so a form
added later is fuzzed without editing this file: login, location registration, the host's
counted/forget pages, and every backstage form of the seeded summit (summit, sessions,
items, speakers, photos, locations, invitations, second factors).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from fastapi import params
from fastapi.dependencies.utils import _get_flat_body_params
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from summitcast.app import ROUTERS
from tests.fuzz.conftest import Run, World, real_ids

pytestmark = pytest.mark.integration

PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
EXAMPLES = 8
# Text as a person or a script might send it: any character (controls included), numbers
# past every integer column, very long values; files of arbitrary bytes.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=200),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["", " ", "0", "-1", str(2**31), str(2**63), "x" * 25_000, "1,2,3"]),
)
FILE = st.binary(max_size=4096)


def form_routes() -> list[tuple[str, str, dict[str, bool]]]:
    """Every (method, path, {field: is_file}) of the routes that read a form."""
    found = []
    for route in [r for router in ROUTERS for r in router.routes]:
        if not isinstance(route, APIRoute) or route.path.startswith("/api/"):
            continue
        fields = {
            field.alias: isinstance(field.field_info, params.File)
            for field in _get_flat_body_params(route.dependant)
            if isinstance(field.field_info, params.Form)
        }
        if fields:
            found += [(method, route.path, fields) for method in sorted(route.methods)]
    return sorted(found, key=lambda found: found[:2])


def fuzz_forms(world: World, run: Run) -> None:
    """Fill every form run.examples times; 500s and worse are noted in run."""
    with world.client() as client:
        for method, path, fields in form_routes():
            if run.out_of_time():
                return
            _form_fuzzer(world, client, method, path, fields, run)()


def _form_fuzzer(
    world: World, client: TestClient, method: str, path: str, fields: dict[str, bool], run: Run
) -> Callable[[], None]:
    """A Hypothesis test of one form."""
    texts = {name: TEXT for name, is_file in fields.items() if not is_file}
    files = {name: FILE for name, is_file in fields.items() if is_file}

    @run.settings()
    @given(text=st.fixed_dictionaries({}, optional=texts), upload=st.fixed_dictionaries(files))
    def fill(text: dict[str, str], upload: dict[str, bytes]) -> None:
        # Objects are looked up afresh: a fuzzed form may rename or delete them.
        real = real_ids(world.database)
        url = PARAMETER.sub(lambda m: real.get(m.group(1), "1"), path)
        response = client.request(
            method,
            url,
            data=text,
            files={name: ("f.bin", body) for name, body in upload.items()} or None,
            follow_redirects=False,
        )
        run.check(response, f"{method} {path} {text!r:.300}")

    return fill


def test_form_walk_finds_the_forms() -> None:
    paths = {path for _method, path, _fields in form_routes()}

    assert {"/login", "/s/{slug}/register", "/backstage/s/{slug}/sessions"} <= paths
    assert "/backstage/s/{slug}/speakers/{speaker_id}/photo" in paths
    assert len(paths) >= 25


def test_forms_filled_with_anything_are_answered_below_500(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(examples=EXAMPLES)

    with caplog.at_level(logging.ERROR):
        fuzz_forms(world, run)
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]

    assert run.sent >= 100, f"only {run.sent} forms were sent: the walk itself is broken"
    assert not run.failures, f"{len(run.failures)} answers of 500 or more:\n" + "\n".join(
        run.failures[:40]
    )
    assert not tracebacks, f"{len(tracebacks)} tracebacks logged: {tracebacks[:5]}"
