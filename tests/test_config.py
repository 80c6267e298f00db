"""Settings: environment variables, the TOML file, refusals, and production's safe defaults."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

import pytest

from summitcast import geo
from summitcast.config import DEVELOPMENT_SECRET, Settings, shipped_at_risk_countries
from summitcast.errors import ConfigurationError

pytestmark = pytest.mark.unit


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMITCAST_K_ANONYMITY", "7")
    monkeypatch.setenv("SUMMITCAST_DATA_DIR", "/srv/summit")
    settings = Settings()
    assert (settings.k_anonymity, settings.data_dir) == (7, Path("/srv/summit"))


def test_toml_file_is_read_below_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "summitcast.toml"
    config.write_text('k_anonymity = 9\nredis_url = "redis://127.0.0.1:6379/0"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUMMITCAST_K_ANONYMITY", "3")
    settings = Settings()
    assert (settings.k_anonymity, settings.redis_url) == (3, "redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("environment", ["production", "test"])
def test_default_secret_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ConfigurationError, match="SUMMITCAST_SECRET_KEY"):
        Settings(environment=environment)  # type: ignore[arg-type]


def test_short_secret_is_refused_in_production() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings(environment="production", secret_key="short")  # type: ignore[arg-type]


def test_development_may_use_default_secret() -> None:
    assert Settings().secret_key.get_secret_value() == DEVELOPMENT_SECRET


def test_secret_is_not_shown_in_repr() -> None:
    settings = Settings(
        environment="production",
        secret_key="s" * 40,  # type: ignore[arg-type]
        base_url="https://summit.example.org",
    )
    assert "s" * 40 not in repr(settings)


def test_database_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'summitcast.db'}"


def test_default_listener_port_ranges_do_not_overlap() -> None:
    ranges = Settings().port_ranges()

    for protocol in ("tcp", "udp"):
        ports = [p for kind, r in ranges.values() if kind == protocol for p in r]
        assert len(ports) == len(set(ports))
    # The old defaults collided from the 6th session on air: 9100 + 16 x 6 = 9196..9211.
    assert set(ranges["greenroom_srt_port"][1]).isdisjoint(ranges["ingest_interpreter_srt_port"][1])


def test_green_room_ports_inside_the_interpreter_range_are_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings(greenroom_srt_port=9200, broadcast_max_sessions=16)

    assert str(refused.value).startswith(
        "Listener ports overlap: ingest_interpreter_srt_port uses 9100-9355 and "
        "greenroom_srt_port uses 9200-9231"
    )


def test_fewer_sessions_make_room_for_the_same_ports() -> None:
    settings = Settings(greenroom_srt_port=9200, broadcast_max_sessions=6)

    assert settings.port_ranges()["ingest_interpreter_srt_port"][1] == range(9100, 9196)


HTTPS = "https://summit.example.org"
SECRET = "s" * 40


def test_production_on_plain_http_without_a_trusted_proxy_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings(environment="production", secret_key=SECRET, base_url="http://summit.example.org")  # type: ignore[arg-type]

    message = str(refused.value)
    assert "SUMMITCAST_BASE_URL is 'http://summit.example.org'" in message
    assert "set it to the https:// address" in message
    assert "SUMMITCAST_TRUSTED_PROXIES" in message


def test_production_on_plain_http_behind_a_trusted_proxy_starts() -> None:
    settings = Settings(
        environment="production",
        secret_key=SECRET,  # type: ignore[arg-type]
        base_url="http://127.0.0.1:8000",
        trusted_proxies="127.0.0.1",  # type: ignore[arg-type]
    )

    assert settings.trusted_proxies == (IPv4Network("127.0.0.1/32"),)


def test_production_always_sends_secure_cookies_and_hsts() -> None:
    production = Settings(environment="production", secret_key=SECRET, base_url=HTTPS)  # type: ignore[arg-type]
    development = Settings()
    behind_https = Settings(secure_cookies=True)

    assert production.secure_cookies is False  # the override is off, production is not
    assert (production.cookies_secure, production.strict_transport) == (True, True)
    assert (development.cookies_secure, development.strict_transport) == (False, False)
    assert (behind_https.cookies_secure, behind_https.strict_transport) == (True, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1, 10.0.0.0/8", (IPv4Network("127.0.0.1/32"), IPv4Network("10.0.0.0/8"))),
        ('["::1", "fd00::/8"]', (IPv6Network("::1/128"), IPv6Network("fd00::/8"))),
        ("", ()),
    ],
)
def test_trusted_proxies_are_read_from_a_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[object, ...]
) -> None:
    monkeypatch.setenv("SUMMITCAST_TRUSTED_PROXIES", value)

    assert Settings().trusted_proxies == expected


def test_trusted_proxy_that_is_not_a_network_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=re.escape("10.0.0.1/8 has host bits set")):
        Settings(trusted_proxies="10.0.0.1/8")  # type: ignore[arg-type]


def test_shipped_at_risk_countries_are_the_default_and_real_countries() -> None:
    shipped = shipped_at_risk_countries()

    assert Settings().at_risk_countries == shipped
    assert {"IR", "BY", "CN", "RU", "KP", "SA"} <= shipped
    assert not {"DE", "KE", "BR", "US", "IN"} & shipped
    assert all(geo.valid_country(code) for code in shipped)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ir, by", frozenset({"IR", "BY"})),
        ('["ir"]', frozenset({"IR"})),
        ("none", frozenset()),
        ("NONE", frozenset()),
        ("[]", frozenset()),
    ],
)
def test_at_risk_countries_may_be_replaced_or_turned_off(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: frozenset[str]
) -> None:
    monkeypatch.setenv("SUMMITCAST_AT_RISK_COUNTRIES", value)

    assert Settings().at_risk_countries == expected


def test_an_empty_at_risk_variable_keeps_the_shipped_list(monkeypatch: pytest.MonkeyPatch) -> None:
    # A deployment template's unset placeholder must not turn the protection off.
    monkeypatch.setenv("SUMMITCAST_AT_RISK_COUNTRIES", " ")

    assert Settings().at_risk_countries == shipped_at_risk_countries()


def test_at_risk_country_that_is_not_a_code_is_refused() -> None:
    with pytest.raises(ValueError, match="'IRAN' is not a two-letter ISO 3166 country code"):
        Settings(at_risk_countries="Iran")  # type: ignore[arg-type]


def test_login_delay_cap_below_its_start_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="LOGIN_ACCOUNT_DELAY_MAX_S"):
        Settings(login_account_delay_s=5, login_account_delay_max_s=1)


def test_shared_dir_holds_what_every_cluster_node_reads(tmp_path: Path) -> None:
    """Attendance keys and logs, photos and reports follow shared_dir; per-node files stay."""
    alone = Settings(data_dir=tmp_path / "node")
    assert alone.attendance_dir == tmp_path / "node" / "attendance"
    assert alone.photo_dir == tmp_path / "node" / "photos"
    clustered = Settings(data_dir=tmp_path / "node", shared_dir=tmp_path / "shared")
    assert clustered.attendance_dir == tmp_path / "shared" / "attendance"
    assert clustered.photo_dir == tmp_path / "shared" / "photos"
    assert clustered.report_dir == tmp_path / "shared" / "reports"
    assert clustered.effective_segment_dir == tmp_path / "node" / "hls"
