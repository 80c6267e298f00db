"""Settings: environment variables, the TOML file, and the refusal of default secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from summitcast.config import DEVELOPMENT_SECRET, Settings
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
    settings = Settings(environment="production", secret_key="s" * 40)  # type: ignore[arg-type]
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
