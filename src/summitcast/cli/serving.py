"""The master that `summitcast serve` becomes: uvicorn workers, our log filter, nothing else.

`serve` migrates the database and then replaces its own process with this module
(``os.execv``), so the supervisor of the workers does not carry the whole command
line (Typer, Rich, SQLAlchemy, Alembic: ~115 MiB) for the length of the event.
Workers are spawned fresh and import only the app.

With several workers each opens its own listening socket on the same address with
``SO_REUSEPORT``, and the kernel deals new connections among them by a hash of each
connection's addresses. uvicorn's own multiprocess mode shares one socket, whose
single accept queue goes to whichever worker wakes first: splits of 58/42 were seen,
~17,400 of 30,000 screens on one worker planned for 15,000 (issue 13).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import multiprocessing
import os
import resource
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE

APP = "summitcast.app:app_from_environment"
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
# A worker that has not stopped this long after SIGTERM is killed (uvicorn's own
# shutdown closes every socket with 1012 at once; it takes ~1 s).
STOP_GRACE_S = 10.0
logger = logging.getLogger("uvicorn.error")

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


def raise_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # Every screen is a file descriptor: 15,000 of them per worker need more than
        # the usual soft limit of 1,024, and the hard limit is what the system allows.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def backlog_cap(backlog: int, somaxconn: Path = SOMAXCONN) -> int | None:
    """The kernel's cap on listen backlogs when it is below ``backlog``, else None."""
    try:
        cap = int(somaxconn.read_text().strip())
    except (OSError, ValueError):
        return None  # not Linux, or not readable: nothing to say
    return cap if 0 < cap < backlog else None


def log_backlog_cap(backlog: int, somaxconn: Path = SOMAXCONN) -> None:
    """Say once when the kernel silently shortens the listen backlog asked for."""
    cap = backlog_cap(backlog, somaxconn)
    if cap is not None:
        logger.warning(
            "The listen backlog of %d is capped by the kernel at %d (net.core.somaxconn): "
            "a herd of reconnecting screens waits on SYN retries; raise it with "
            "`sysctl -w net.core.somaxconn=%d`.",
            backlog,
            cap,
            backlog,
        )


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port that other workers may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_worker(config: uvicorn.Config) -> None:
    """One worker process: its own SO_REUSEPORT socket, uvicorn serving the app on it."""
    config.configure_logging()
    raise_file_limit()
    try:
        sock = reuse_port_socket(config.host, config.port)
    except OSError as error:
        logger.error("Cannot listen on %s:%d: %s", config.host, config.port, error)
        sys.exit(STARTUP_FAILURE)
    # uvicorn calls listen(backlog) on it when the app has started.
    uvicorn.Server(config).run(sockets=[sock])


class Workers:
    """Starts N workers, starts a worker again when it dies, stops all on SIGINT/SIGTERM."""

    def __init__(self, config: uvicorn.Config, count: int) -> None:
        self.config = config
        self.count = count
        # Spawned, not forked: a fresh interpreter that imports only the app.
        self._context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []
        self._stop = threading.Event()
        self.failed = False

    def _start(self) -> Any:
        # By its full name: run with -m, this module is __main__ here (see log_config).
        from summitcast.cli.serving import run_worker as target

        process = self._context.Process(target=target, args=(self.config,))
        process.start()
        logger.info("Started worker process [%d]", process.pid)
        return process

    def _stop_signal(self, signum: int, _frame: object) -> None:
        logger.info("Received %s, stopping the workers.", signal.Signals(signum).name)
        self._stop.set()

    def run(self) -> None:
        """Supervise until a stop signal (or a worker that cannot start); then stop them all."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop_signal)
        logger.info("Started parent process [%d]", os.getpid())
        self.processes = [self._start() for _ in range(self.count)]
        while not self._stop.wait(0.5):
            for index, process in enumerate(self.processes):
                if process.exitcode is None:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    # The app or the address is broken: every restart would fail alike.
                    logger.error("Worker [%d] failed to start; stopping.", process.pid)
                    self.failed = True
                    self._stop.set()
                    break
                logger.info(
                    "Worker [%d] died (exit %s); starting another.", process.pid, process.exitcode
                )
                self.processes[index] = self._start()
        self.stop_all()
        logger.info("Stopping parent process [%d]", os.getpid())

    def stop_all(self) -> None:
        """SIGTERM every worker (uvicorn closes its sockets with 1012), kill the slow ones."""
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join(STOP_GRACE_S)
            if process.exitcode is None:
                logger.warning("Worker [%d] did not stop; killing it.", process.pid)
                process.kill()
                process.join()


def main(argv: list[str]) -> None:
    """Run the workers with the options `serve` passed as one JSON argument."""
    options: dict[str, Any] = json.loads(argv[0])
    workers = int(options.pop("workers", 1))
    config = uvicorn.Config(APP, factory=True, log_config=log_config(), **options)
    limit = raise_file_limit()
    log_backlog_cap(config.backlog)
    if workers <= 1:
        # One worker: this process serves (uvicorn.run's path, minus its reloader).
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    logger.info(
        "Uvicorn running on http://%s:%d with %d workers, each on its own SO_REUSEPORT "
        "socket; up to %d open files each (Press CTRL+C to quit)",
        config.host,
        config.port,
        workers,
        limit,
    )
    supervisor = Workers(config, workers)
    supervisor.run()
    if supervisor.failed:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main(sys.argv[1:])
