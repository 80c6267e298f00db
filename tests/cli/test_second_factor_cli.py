"""`summitcast user reset-second-factor`: for a person who lost every second factor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from summitcast.services import second_factor
from summitcast.storage.database import Database
from summitcast.storage.tables import RecoveryCode, TotpSecret, User
from tests.cli.test_cli import cli_env, run  # noqa: F401 - cli_env is a fixture
from tests.conftest import make_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]


def test_reset_second_factor_removes_app_and_codes(
    cli_env: Database,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_user(cli_env, "org@example.org")
    with cli_env.session() as db:
        user = db.scalars(select(User)).one()
        second_factor.start_totp(db, user, key=b"k" * 32)
        second_factor.new_recovery_codes(db, user)

    code = run(monkeypatch, "user", "reset-second-factor", "ORG@example.org")

    assert code == 0
    assert "Removed 11 second-factor record(s) of org@example.org" in capsys.readouterr().out
    with cli_env.session() as db:
        assert db.scalars(select(TotpSecret)).all() == []
        assert db.scalars(select(RecoveryCode)).all() == []


def test_reset_second_factor_of_unknown_user_exits_2(
    cli_env: Database,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run(monkeypatch, "user", "reset-second-factor", "nobody@example.org")

    assert code == 2
    assert "No user with e-mail nobody@example.org." in capsys.readouterr().err
