"""The ingest URLs a producer gives the studio: one encoder, or every redundant encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from summitcast.config import Settings
from summitcast.runtime.broadcast_manager import BroadcastManager
from summitcast.storage.database import Database

pytestmark = pytest.mark.unit


def _manager(tmp_path: Path, **settings: object) -> BroadcastManager:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    return BroadcastManager(Settings(data_dir=tmp_path, **settings), database)  # type: ignore[arg-type]


def test_one_encoder_gives_one_set_of_urls(tmp_path: Path) -> None:
    urls = _manager(tmp_path, ingest_public_host="studio.example").ingest_urls(3, "k3y")

    assert urls == {
        "rtmp_server": "rtmp://studio.example:1935/live",
        "rtmp_url": "rtmp://studio.example:1935/live/k3y",
        "srt_url": "srt://studio.example:9000?passphrase=k3y&pbkeylen=16",
    }


def test_redundant_encoders_give_the_studio_each_encoders_ingest(tmp_path: Path) -> None:
    manager = _manager(
        tmp_path,
        encoder_names="a,b",
        encoder_name="a",
        encoder_ingest_hosts="ingest-a.example,ingest-b.example",
        ingest_public_host="ignored.example",
    )

    urls = manager.ingest_urls(3, "k3y")

    assert urls["rtmp_url"] == "rtmp://ingest-a.example:1935/live/k3y"
    assert urls["encoder_b_rtmp_url"] == "rtmp://ingest-b.example:1935/live/k3y"
    assert urls["encoder_b_srt_url"] == "srt://ingest-b.example:9000?passphrase=k3y&pbkeylen=16"


def test_ingest_hosts_must_match_the_encoders(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="one host per encoder"):
        Settings(data_dir=tmp_path, encoder_names="a,b", encoder_ingest_hosts="only-one")
