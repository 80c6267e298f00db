"""The login form: every refusal shows the same form again, with the e-mail and the reason."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from summitcast.storage.database import Database
from summitcast.web.routes.auth import readable_wait
from tests.conftest import PASSWORD, csrf_of, make_user

pytestmark = pytest.mark.integration

WRONG = "E-mail or password is wrong."


def _post_login(client: TestClient, token: str, **fields: str) -> Any:
    return client.post("/login", data={"csrf_token": token, **fields}, follow_redirects=False)


def _form(response: Any) -> str:
    """The login form's HTML; fails when the page has none (a separate error page)."""
    match = re.search(r'<form method="post" action="/login".*?</form>', response.text, re.S)
    assert match, f"no login form in the page:\n{response.text}"
    return match.group(0)


def _error(form: str) -> str:
    match = re.search(r'<p class="sc-flash error" role="alert" id="login-error">(.*?)</p>', form)
    assert match, f"no error message in the form:\n{form}"
    return html.unescape(match.group(1))


def _email_value(form: str) -> str:
    match = re.search(r'<input id="email"[^>]*\bvalue="([^"]*)"', form, re.S)
    assert match, form
    return html.unescape(match.group(1))


def test_login_wrong_password_shows_the_form_again_with_the_error(
    client: TestClient, database: Database
) -> None:
    make_user(database, "org@example.org")
    token = csrf_of(client)

    response = _post_login(client, token, email="org@example.org", password="not it")

    assert response.status_code == 401
    assert "location" not in response.headers
    form = _form(response)
    assert _error(form) == WRONG
    assert _email_value(form) == "org@example.org"
    # The error is tied to both fields for screen readers; the cursor waits in the password.
    assert re.search(r'id="password"[^>]*aria-describedby="login-error"[^>]*autofocus', form)
    assert f'name="csrf_token" value="{token}"' in form
    assert response.text.count("<form") == 1
    assert "<title>Not logged in · Log in · summitcast</title>" in response.text


def test_login_unknown_account_gets_the_same_answer_as_a_wrong_password(
    client: TestClient, database: Database
) -> None:
    make_user(database, "org@example.org")
    token = csrf_of(client)

    known = _post_login(client, token, email="org@example.org", password="not it")
    unknown = _post_login(client, token, email="nobody@example.org", password="not it")

    assert unknown.status_code == known.status_code == 401
    assert _error(_form(unknown)) == _error(_form(known)) == WRONG
    assert known.text.replace("org@example.org", "X") == unknown.text.replace(
        "nobody@example.org", "X"
    )


def test_login_keeps_the_email_escaped_and_the_next_page(
    client: TestClient, database: Database
) -> None:
    token = csrf_of(client)
    typed = 'a"><script>alert(1)</script>@example.org'

    response = _post_login(client, token, email=typed, password="x", next="/backstage/s/demo")

    form = _form(response)
    assert "<script>alert(1)" not in response.text
    assert _email_value(form) == typed
    assert 'name="next" value="/backstage/s/demo"' in form


def test_login_lockout_is_shown_in_the_form_with_retry_after(
    client: TestClient, database: Database
) -> None:
    make_user(database, "victim@example.org")
    token = csrf_of(client)
    for n in range(10):  # one guess at each of ten accounts: the per-client limit
        assert (
            _post_login(client, token, email=f"guess{n}@example.org", password="g").status_code
            == 401
        )

    # This client is locked out: even the right password is refused until a slot frees.
    response = _post_login(client, token, email="victim@example.org", password=PASSWORD)

    assert response.status_code == 429
    retry = int(response.headers["retry-after"])
    assert 0 < retry <= 15 * 60
    form = _form(response)
    assert _error(form) == f"Too many attempts to log in; try again in {-(-retry // 60)} minutes."
    assert _email_value(form) == "victim@example.org"
    assert '<a href="/login">Log in</a>' in client.get("/").text  # still anonymous


def test_login_with_an_expired_form_asks_to_try_again_in_the_form(
    client: TestClient, database: Database
) -> None:
    make_user(database, "org@example.org")
    csrf_of(client)

    response = _post_login(client, "stale-token", email="org@example.org", password=PASSWORD)

    assert response.status_code == 403
    form = _form(response)
    assert "security token is missing or has expired" in _error(form)
    assert _email_value(form) == "org@example.org"
    # Nothing was checked and nobody is logged in; the new form carries a valid token.
    assert '<a href="/login">Log in</a>' in client.get("/").text
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert fresh
    retried = _post_login(client, fresh.group(1), email="org@example.org", password=PASSWORD)
    assert retried.status_code == 303


def test_login_without_a_password_asks_for_both_fields(
    client: TestClient, database: Database
) -> None:
    token = csrf_of(client)

    response = _post_login(client, token, email="org@example.org")

    assert response.status_code == 400
    form = _form(response)
    assert _error(form) == "Enter your e-mail and your password."
    assert _email_value(form) == "org@example.org"


def test_login_with_an_overlong_password_is_wrong_not_a_validation_page(
    client: TestClient, database: Database
) -> None:
    make_user(database, "org@example.org")
    token = csrf_of(client)

    response = _post_login(client, token, email="org@example.org", password="p" * 5000)

    assert response.status_code == 401
    assert _error(_form(response)) == WRONG


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (2, "2 seconds"),
        (119, "119 seconds"),
        (120, "2 minutes"),
        (121, "3 minutes"),
        (900, "15 minutes"),
    ],
)
def test_login_wait_reads_in_minutes_past_two(seconds: int, text: str) -> None:
    assert readable_wait(seconds) == text


def test_login_right_password_redirects_to_next(client: TestClient, database: Database) -> None:
    make_user(database, "org@example.org")
    token = csrf_of(client)

    response = _post_login(
        client, token, email="org@example.org", password=PASSWORD, next="/backstage"
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/backstage"


def test_login_page_has_an_empty_form_without_an_error(client: TestClient) -> None:
    response = client.get("/login?next=/backstage/s/x")

    form = _form(response)
    assert response.status_code == 200
    assert 'role="alert"' not in form
    assert re.search(r'<input id="email"[^>]*value=""[^>]*autofocus', form, re.S)
    assert 'name="next" value="/backstage/s/x"' in form
