"""Schemathesis over /api/openapi.json: no 5xx, and every answer matches the document.

Every operation is fuzzed as an organiser of the seeded summit (session cookie and CSRF
header), with valid and invalid input, half of the examples aimed at objects that exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance

from summitcast.storage.database import Database
from tests.fuzz.conftest import Organiser, Run, World, real_ids, replenish

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, response_schema_conformance]
# Per operation and generation mode: ~25 operations x 2 modes x 2 databases in make test.
EXAMPLES = 6


@pytest.fixture
def api_schema(world: World) -> Iterator[schemathesis.BaseSchema]:
    """The app's OpenAPI document loaded by schemathesis (which runs the app's lifespan)."""
    try:
        yield schemathesis.openapi.from_asgi("/api/openapi.json", world.app)
    finally:
        # Schemathesis keeps the lifespan running for the process; end it with the test.
        shutdown_lifespans()


def fuzz_operations(
    schema: schemathesis.BaseSchema, organiser: Organiser, database: Database, run: Run
) -> None:
    """Fuzz every operation run.examples times per mode; one line per failing one."""
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if _negatable(operation):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            if run.out_of_time():
                return
            try:
                _fuzzer(operation, mode, organiser, database, run)()
            except Unsatisfiable:
                pass
            except Exception as exc:  # one line per operation, the whole report at the end
                run.failures.append(f"{operation.label} [{mode.value}]: {_first_lines(exc)}")


def _fuzzer(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    organiser: Organiser,
    database: Database,
    run: Run,
) -> Callable[[], None]:
    """A Hypothesis test of one operation in one mode, counting its requests in run."""

    @run.settings()
    @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
    def test(case: schemathesis.Case, aim: bool) -> None:
        # Invalid cases keep their invalid parameters; valid ones may aim at real objects.
        if aim and mode.is_positive and case.path_parameters:
            known = real_ids(database)
            case.path_parameters = {
                name: known.get(name, value) for name, value in case.path_parameters.items()
            }
        run.sent += 1
        case.call_and_validate(headers=organiser.headers, cookies=organiser.cookies, checks=CHECKS)

    return test


def _negatable(operation: schemathesis.APIOperation) -> bool:
    """Whether invalid input exists: a body with a schema or a constrained parameter."""
    if any(body.definition.get("schema") for body in operation.body):
        return True
    parameters = [*operation.path_parameters, *operation.query]
    schemas = [parameter.definition.get("schema", {}) for parameter in parameters]
    return any(
        schema.get("type") != "string" or set(schema) - {"type", "title"} for schema in schemas
    )


def _first_lines(error: BaseException) -> str:
    """What failed and how to reproduce it, without the schemas schemathesis prints."""
    lines = str(error).strip().splitlines()
    keep = [line for line in lines if line.startswith(("- ", "[", "    curl "))]
    return "\n    ".join(dict.fromkeys(keep or lines[:3]))


def test_api_operations_answer_no_5xx_and_match_the_schema(
    api_schema: schemathesis.BaseSchema, world: World
) -> None:
    run = Run(examples=EXAMPLES)

    fuzz_operations(api_schema, world.organiser, world.database, run)

    assert run.sent >= 100, f"only {run.sent} requests were sent: the fuzzing itself is broken"
    assert not run.failures, "\n".join(run.failures)


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("items/{item_id}/speakers", {"speakers": [2**63]}),
        ("items/{item_id}/speakers", {"speakers": [2**31]}),
        ("sessions/{session_id}/order", {"order": [0]}),
    ],
)
def test_ids_in_bodies_past_the_id_column_are_refused_by_field(
    world: World, operation: str, body: dict[str, list[int]]
) -> None:
    replenish(world.database)  # the fuzzing before may have deleted them
    real = real_ids(world.database)
    path = operation.format(**real)

    with world.client() as client:
        response = client.put(f"/api/summits/{real['slug']}/{path}", json=body)

    assert response.status_code == 422
    (field,) = body
    assert response.json()["detail"][0].startswith(f"{field}.0: Input should be")
