"""Two-step login in-process: authenticator-app codes, recovery codes, production's rule."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select

from summitcast.app import create_app
from summitcast.config import Settings
from summitcast.domain.accounts import Role
from summitcast.storage.database import Database
from summitcast.storage.tables import RecoveryCode, TotpSecret
from tests.conftest import PASSWORD, csrf_of, grant, make_summit, make_user

# SQLite only: nothing here differs by database (migration 0016 is checked on both by
# tests/storage/test_migrations.py), and each test pays several Argon2 logins.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]

EMAIL = "org@example.org"


def _password(client: TestClient, email: str = EMAIL) -> str:
    """Post the password; returns where it leads."""
    token = csrf_of(client)
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def _token(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, page[:300]
    return match.group(1)


def _enrol_totp(client: TestClient) -> tuple[str, list[str]]:
    """Set up the app from the security page; returns its secret and the recovery codes."""
    token = _token(client.get("/account/security").text)
    started = client.post("/account/security/totp", data={"csrf_token": token})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text)
    assert secret, started.text
    code = pyotp.TOTP(secret.group(1)).now()
    shown = client.post("/account/security/totp/confirm", data={"csrf_token": token, "code": code})
    assert shown.status_code == 200, shown.text
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", shown.text)
    return secret.group(1), codes


def _next_code(secret: str) -> str:
    # The code of the next 30-second step: accepted (one step either side), and not the
    # one just used to confirm the app, which would be refused as reused.
    return pyotp.TOTP(secret).at(time.time() + 30)


def _send_code(client: TestClient, code: str) -> object:
    token = _token(client.get("/login/second-factor").text)
    return client.post(
        "/login/second-factor/code",
        data={"csrf_token": token, "code": code},
        follow_redirects=False,
    )


def _log_out(client: TestClient) -> None:
    client.post("/logout", data={"csrf_token": csrf_of(client)})


def _error(page: str) -> str:
    match = re.search(r'id="second-factor-error">(.*?)</p>', page, re.S)
    assert match, page[:500]
    return html.unescape(match.group(1))


def test_totp_login_takes_password_then_code(client: TestClient, database: Database) -> None:
    make_user(database, EMAIL)
    assert _password(client) == "/backstage"  # no second factor yet: straight in
    secret, codes = _enrol_totp(client)
    assert len(codes) == 10
    _log_out(client)

    assert _password(client) == "/login/second-factor"
    # The password alone signs nobody in.
    assert client.get("/backstage", follow_redirects=False).headers["location"].startswith("/login")
    wrong = _send_code(client, "000000" if _next_code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    assert "code is wrong" in _error(wrong.text)  # type: ignore[attr-defined]
    right = _send_code(client, _next_code(secret))

    assert right.status_code == 303  # type: ignore[attr-defined]
    assert right.headers["location"] == "/backstage"  # type: ignore[attr-defined]
    assert client.get("/backstage").status_code == 200
    with database.session() as db:
        sealed = db.scalar(select(TotpSecret.sealed_secret))
    assert sealed is not None
    assert secret.encode() not in sealed  # sealed, never raw


def test_app_code_and_recovery_code_each_work_once(client: TestClient, database: Database) -> None:
    make_user(database, EMAIL)
    _password(client)
    secret, codes = _enrol_totp(client)
    code = _next_code(secret)
    results = []
    for typed in (code, code, codes[3].upper().replace("-", " "), codes[3]):
        _log_out(client)
        _password(client)
        results.append(_send_code(client, typed).status_code)  # type: ignore[attr-defined]

    assert results == [303, 401, 303, 401]
    with database.session() as db:
        stored = list(db.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10
    assert not any(code.replace("-", "") in h for h in stored for code in codes)


def test_second_factor_codes_are_rate_limited_per_account(
    client: TestClient, database: Database
) -> None:
    make_user(database, EMAIL)
    _password(client)
    secret, _ = _enrol_totp(client)
    _log_out(client)
    _password(client)
    statuses = [_send_code(client, "bad-code").status_code for _ in range(11)]  # type: ignore[attr-defined]

    assert statuses == [401] * 9 + [429, 429]  # the confirmation was the first of ten
    assert _send_code(client, _next_code(secret)).status_code == 429  # type: ignore[attr-defined]


def test_passkey_json_posts_need_the_csrf_token(client: TestClient, database: Database) -> None:
    make_user(database, EMAIL)
    _password(client)

    without = client.post(
        "/account/security/passkey/options", headers={"accept": "application/json"}
    )
    token = _token(client.get("/account/security").text)
    with_token = client.post(
        "/account/security/passkey/options",
        headers={"accept": "application/json", "x-csrf-token": token},
    )

    assert without.status_code == 403
    assert with_token.status_code == 200
    options = with_token.json()
    assert options["rp"] == {"id": "127.0.0.1", "name": "summitcast"}
    assert options["user"]["name"] == EMAIL
    assert EMAIL not in options["user"]["id"]


def test_security_pages_refuse_anonymous(client: TestClient) -> None:
    token = csrf_of(client)

    page = client.get("/account/security", follow_redirects=False)
    post = client.post("/account/security/totp", data={"csrf_token": token})
    step = client.get("/login/second-factor", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    assert post.status_code == 401
    assert step.headers["location"] == "/login"


@pytest.fixture
def production(tmp_path: Path, database: Database) -> Iterator[TestClient]:
    """The app with production settings, reached over HTTPS (its cookie is Secure)."""
    fields = Settings.model_fields
    settings = Settings(
        environment="production",
        secret_key="production-secret-" + "y" * 32,
        base_url="https://testserver",
        data_dir=tmp_path / "data",
        database_url=database.url,
        auto_migrate=False,
        broadcast_workers=False,
        **({"trusted_proxies": "127.0.0.1"} if "trusted_proxies" in fields else {}),  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings, database=database), base_url="https://testserver") as c:
        yield c


def test_production_refuses_organiser_without_second_factor(
    production: TestClient, database: Database
) -> None:
    organiser = make_user(database, EMAIL)
    grant(database, organiser, make_summit(database, "target"), Role.ORGANISER)

    where = _password(production)
    backstage = production.get("/backstage", follow_redirects=False)
    summit = production.get("/backstage/s/target", follow_redirects=False)
    token = _token(production.get("/account/security").text)
    api = production.post(
        "/api/summits/target/speakers", json={"name": "X"}, headers={"x-csrf-token": token}
    )
    codes = production.post("/account/security/recovery-codes", data={"csrf_token": token})
    enrol_page = production.get("/account/security")

    assert where == "/account/security"
    assert backstage.status_code == 303
    assert backstage.headers["location"].startswith("/login")
    assert summit.headers["location"].startswith("/login")
    assert api.status_code == 401
    assert codes.status_code == 422
    assert 'id="enrol-required"' in enrol_page.text

    _secret, recovery = _enrol_totp(production)

    assert len(recovery) == 10
    assert production.get("/backstage").status_code == 200
    assert production.get("/backstage/s/target").status_code == 200
    token = _token(production.get("/account/security").text)
    removed = production.post("/account/security/totp/remove", data={"csrf_token": token})
    assert removed.status_code == 409  # the last factor of staff stays
    assert "Staff need a second factor" in removed.text


def test_production_lets_a_user_without_staff_roles_in_with_a_password(
    production: TestClient, database: Database
) -> None:
    make_user(database, "host@example.org")

    assert _password(production, "host@example.org") == "/backstage"
    assert production.get("/backstage").status_code == 200


def _forged_session(secret: str, data: dict[str, object]) -> str:
    """A session cookie as the app signs it (Starlette: base64 JSON, itsdangerous timestamp)."""
    payload = base64.b64encode(json.dumps(data).encode())
    return TimestampSigner(secret).sign(payload).decode()


def test_production_refuses_a_staff_session_signed_in_without_a_factor(
    production: TestClient, database: Database
) -> None:
    organiser = make_user(database, EMAIL)
    grant(database, organiser, make_summit(database, "target"), Role.ORGANISER)
    secret = production.app.state.settings.secret_key.get_secret_value()  # type: ignore[attr-defined]
    session = {"user_id": organiser.id, "pw": organiser.password_hash[-16:]}
    answers = []
    # A cookie from before second factors were required, then one from a password alone.
    for extra in ({}, {"factor": "none"}, {"factor": "totp"}):
        production.cookies.set("summitcast_session", _forged_session(secret, session | extra))
        answers.append(production.get("/backstage", follow_redirects=False).status_code)

    assert answers == [303, 303, 200]
