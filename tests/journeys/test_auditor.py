"""The auditor's day: download the published attendance log and check it with the installed tool."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import chromium_page
from tests.journeys.conftest import SLUG, SUMMITCAST, Journey, Server, demo_server

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo, published attendance included; no encoder (an auditor watches nothing)."""
    with demo_server(
        tmp_path_factory.mktemp("auditor"), SUMMITCAST_BROADCAST_WORKERS="false"
    ) as running:
        yield running


def _tamper(path: Path) -> Path:
    """A copy of the log with one byte changed: the last hex digit of one pseudonym."""
    data = bytearray(path.read_bytes())
    match = re.search(rb'"pseudonym":"[0-9a-f]{31}([0-9a-f])"', data)
    assert match, "no pseudonym in the log"
    at = match.start(1)
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    tampered = path.with_name("tampered-" + path.name)
    tampered.write_bytes(bytes(data))
    return tampered


def test_auditor_downloads_the_log_and_verifies_it_then_a_tampered_copy_fails(
    server: Server, tmp_path: Path
) -> None:
    journey = Journey("auditor", server.base_url)
    with chromium_page() as page:
        journey.watch(page, "attendance")
        page.goto(server.url(f"/s/{SLUG}/attendance"))
        page.wait_for_selector("#verify")
        journey.shot(page, "attendance-page")
        key = page.locator("#public-key").inner_text().strip()
        # The page's own instructions: the command an auditor copies.
        instructions = page.locator("#verify pre").inner_text()
        with page.expect_download() as download_info:
            page.click("#log-link")
        log = tmp_path / "attendance-log.jsonl"
        download_info.value.save_as(log)
        journey.shot(page, "log-downloaded")

    verify_line = next(line for line in instructions.splitlines() if "audit verify" in line)
    argv = shlex.split(verify_line)
    assert argv[:3] == ["summitcast", "audit", "verify"], verify_line
    assert key in argv, (key, verify_line)
    command = [str(SUMMITCAST), *argv[1:3], str(log), *argv[4:], "--no-progress"]

    ok = server.cli(*command[1:])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout

    tampered = server.cli(*command[1:3], str(_tamper(log)), *command[4:])
    assert tampered.returncode != 0, tampered.stdout + tampered.stderr
    assert "FAILED" in tampered.stdout + tampered.stderr
    assert "Traceback" not in tampered.stderr
    journey.assert_clean()
