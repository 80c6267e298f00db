"""The command lines of every role of a cluster, in one place.

The harness runs exactly these, and docs/deploy.md quotes them for bringing the same
topology up by hand (a test checks that the guide still names each one). Every
program stays in the foreground, so that the harness (or systemd) owns its life.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from summitcast.deploy.topology import Endpoint, Topology

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class Command:
    """One program to run: its argv, an env file to read and variables added over it."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = None  # a node's rendered env/NAME.env

    def environment(self) -> dict[str, str]:
        """The variables the program gets on top of the caller's environment."""
        found = read_env_file(self.env_file) if self.env_file is not None else {}
        return found | dict(self.env)

    def shell(self) -> str:
        """The command as one types it in a shell of its own (env file sourced first)."""
        assigned = [f"{key}={shlex.quote(value)}" for key, value in sorted(self.env.items())]
        line = " ".join([*assigned, *(shlex.quote(part) for part in self.argv)])
        if self.env_file is None:
            return line
        return f"set -a; . {shlex.quote(str(self.env_file))}; set +a; {line}"


def summitcast_program() -> str:
    """The installed `summitcast` command beside this interpreter (a venv's), else on PATH."""
    beside = Path(sys.executable).parent / "summitcast"
    return str(beside) if beside.exists() else (shutil.which("summitcast") or "summitcast")


def as_postgres(argv: list[str]) -> tuple[str, ...]:
    """argv run as the user postgres when we are root (initdb and postgres refuse root)."""
    if os.geteuid() == 0:
        return ("runuser", "-u", "postgres", "--", *argv)
    return tuple(argv)


def initdb(data_dir: Path) -> Command:
    """A new PostgreSQL cluster in data_dir: trust authentication, owned by postgres."""
    argv = [str(PG_BIN / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres"]
    # -N: no fsync of the new files; the cluster lives as long as one harness run.
    return Command(as_postgres([*argv, "-E", "UTF8", "-N", "--no-instructions"]))


def postgres(topology: Topology, data_dir: Path) -> Command:
    """PostgreSQL in the foreground, on the topology's address only."""
    address = topology.postgres
    argv = [str(PG_BIN / "postgres"), "-D", str(data_dir), "-p", str(address.port)]
    argv += ["-c", f"listen_addresses={address.host}"]
    # TCP only: no socket file in /var/run/postgresql, where the machine's server has its.
    argv += ["-c", "unix_socket_directories="]
    # A harness's database is thrown away at the end: durability would only cost seconds.
    argv += ["-c", "fsync=off", "-c", "max_connections=200"]
    return Command(as_postgres(argv))


def createuser(topology: Topology) -> Command:
    """Create the nodes' database role in the new cluster (trust: no password)."""
    address = topology.postgres
    argv = [str(PG_BIN / "createuser"), "-h", address.host, "-p", str(address.port)]
    return Command((*argv, "-U", "postgres", topology.database_user))


def createdb(topology: Topology) -> Command:
    """Create the nodes' database, owned by their role."""
    address = topology.postgres
    argv = [str(PG_BIN / "createdb"), "-h", address.host, "-p", str(address.port)]
    argv += ["-U", "postgres", "-O", topology.database_user]
    return Command((*argv, topology.database_name))


def postgres_ready(address: Endpoint) -> Command:
    """pg_isready against the cluster's address (exit 0 once it accepts connections)."""
    argv = [str(PG_BIN / "pg_isready"), "-q", "-h", address.host, "-p", str(address.port)]
    return Command((*argv, "-U", "postgres", "-d", "postgres"))


def redis(topology: Topology) -> Command:
    """redis-server in the foreground on the topology's address, nothing persisted."""
    address = topology.redis
    argv = ["redis-server", "--bind", address.host, "--port", str(address.port)]
    # Presence is rebuilt by the next heartbeats: a snapshot would only cost a fork.
    return Command((*argv, "--save", "", "--appendonly", "no"))


def db_upgrade(env_file: Path, extra: Mapping[str, str]) -> Command:
    """Migrate the shared database once, before any node starts (with a node's settings)."""
    return Command((summitcast_program(), "db", "upgrade"), extra, env_file)


def serve(env_file: Path, extra: Mapping[str, str]) -> Command:
    """One app node: `summitcast serve` with the node's settings from its env file."""
    # Address, port and every other choice are SUMMITCAST_* variables of the env file.
    return Command((summitcast_program(), "serve"), extra, env_file)


def nginx(program: str, prefix: Path, config: Path) -> Command:
    """One nginx (origin, edge or balancer) in the foreground with its rendered config."""
    # -e: errors before the config is read go to the log, not to /var/log/nginx.
    argv = [program, "-p", f"{prefix}/", "-e", "stderr", "-c", str(config)]
    return Command((*argv, "-g", "daemon off;"))


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an env file (systemd EnvironmentFile syntax: KEY=VALUE, # comments)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith(("#", ";")) or "=" not in text:
            continue
        key, value = text.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[key.strip()] = value
    return found
