"""The uvicorn master that `summitcast serve` becomes: uvicorn, our log filter, nothing else.

`serve` migrates the database and then replaces its own process with this module
(``os.execv``), so the supervisor of the workers does not carry the whole command
line (Typer, Rich, SQLAlchemy, Alembic: ~115 MiB) for the length of the event.
Workers are spawned fresh by uvicorn and import only the app.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

# uvicorn logs every WebSocket it accepts or closes, with the client's address and
# port, even without an access log: addresses must not reach our logs (DESIGN.md's
# threat model), and 30,000 screens reconnecting would write 60,000 lines anyway.
_PER_CONNECTION = ('%s - "WebSocket %s"', "connection open", "connection closed")


class QuietConnections(logging.Filter):
    """Drops uvicorn's per-connection records (they carry client addresses)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the per-connection ones."""
        return not (isinstance(record.msg, str) and record.msg.startswith(_PER_CONNECTION))


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration with QuietConnections on its error logger."""
    config = copy.deepcopy(LOGGING_CONFIG)
    # By its full name: run with -m, this module is __main__ here but not in the workers.
    config["filters"] = {"quiet": {"()": "summitcast.cli.serving.QuietConnections"}}
    config["handlers"]["default"]["filters"] = ["quiet"]
    return config


def main(argv: list[str]) -> None:
    """Run uvicorn with the options `serve` passed as one JSON argument."""
    options: dict[str, Any] = json.loads(argv[0])
    uvicorn.run(
        "summitcast.app:app_from_environment", factory=True, log_config=log_config(), **options
    )


if __name__ == "__main__":
    main(sys.argv[1:])
