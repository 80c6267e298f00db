"""ColumnTally counts like the domain's AttendanceTally, and refuses the same buckets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from summitcast.audit.tally import ColumnTally
from summitcast.domain.attendance import AttendanceTally, CountingRule, SessionWindow
from summitcast.errors import ValidationError

pytestmark = pytest.mark.unit

START = datetime(2024, 7, 17, 12, 0, tzinfo=UTC)
T0 = int(START.timestamp())
SESSIONS = (
    SessionWindow("s1", START, START + timedelta(minutes=20)),
    SessionWindow("s2", START + timedelta(minutes=15), START + timedelta(minutes=50)),
)
RULE = CountingRule(session_min_percent=25, k=2)


def _columns(names: list[str], country: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    ordered = sorted(names)
    return np.array(ordered, "S32"), np.array([country[n] for n in ordered], "S2")


def test_column_tally_gives_the_domain_figures() -> None:
    rng = random.Random(3)
    pool = [f"{rng.getrandbits(128):032x}" for _ in range(60)]
    country = {name: rng.choice(["DE", "FR", "KE", "ZZ"]) for name in pool}
    columns, domain = ColumnTally(SESSIONS, RULE), AttendanceTally(SESSIONS, RULE)
    for b in range(12):
        present = sorted(rng.sample(pool, rng.randrange(0, 40)))
        columns.add(T0 + 300 * b, *_columns(present, country))
        domain.add_columns(T0 + 300 * b, present, [country[n] for n in present])

    assert columns.tally().figures() == domain.figures()
    assert columns.tally().country_by_key() == domain.country_by_key()


def test_column_tally_refuses_a_changed_country_like_the_domain() -> None:
    names = [f"{i:032x}" for i in (1, 2, 3)]
    first = {names[0]: "DE", names[1]: "DE"}
    second = {names[0]: "DE", names[1]: "FR", names[2]: "KE"}
    columns, domain = ColumnTally(SESSIONS, RULE), AttendanceTally(SESSIONS, RULE)
    columns.add(T0, *_columns(list(first), first))
    domain.add_columns(T0, sorted(first), [first[n] for n in sorted(first)])

    with pytest.raises(ValidationError) as mine:
        columns.add(T0 + 300, *_columns(list(second), second))
    with pytest.raises(ValidationError) as theirs:
        domain.add_columns(T0 + 300, sorted(second), [second[n] for n in sorted(second)])

    assert mine.value.message == theirs.value.message == f"{names[1]} is in DE and in FR"
    assert columns.tally().figures() == domain.figures()


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (T0 + 7, f"bucket start {T0 + 7} is not aligned to the bucket length"),
        (T0, f"bucket {T0} does not come after bucket {T0}"),
    ],
)
def test_column_tally_refuses_misplaced_buckets(start: int, message: str) -> None:
    columns = ColumnTally(SESSIONS, RULE)
    columns.add(T0, *_columns([], {}))

    with pytest.raises(ValidationError) as caught:
        columns.add(start, *_columns([], {}))

    assert caught.value.message == message
