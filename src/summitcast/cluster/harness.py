"""The cluster harness: a whole topology as processes on loopback addresses, and its faults."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from summitcast.cluster import commands
from summitcast.cluster.commands import Command
from summitcast.cluster.processes import ClusterError, Probe, Supervised
from summitcast.deploy.render import render, write
from summitcast.deploy.topology import Endpoint, Topology

# Settings of every app node at the small size: a 2-core machine runs the whole topology.
SMALL_NODE_ENV = {
    "SUMMITCAST_BROADCAST_LADDER": "small",
    "SUMMITCAST_BROADCAST_PRESET": "ultrafast",
    "SUMMITCAST_BROADCAST_FPS": "15",
}


class Cluster:
    """Starts every role of a topology, kills and restarts single roles, stops them all."""

    def __init__(
        self,
        topology: Topology,
        work_dir: Path,
        *,
        node_env: Mapping[str, str] | None = None,
        ready_s: float = 60.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        self.topology = topology
        self.work_dir = work_dir.resolve()
        self.node_env = dict(node_env or {})  # over every app node's env file
        self.ready_s = ready_s
        self.stop_grace_s = stop_grace_s
        self.rendered_dir = self.work_dir / "rendered"
        self.logs = self.work_dir / "logs"
        self.pg_data = self.work_dir / "postgres"
        self.secret_key_file = self.work_dir / "secret_key"
        self.roles: dict[str, Supervised] = {}
        self._started = False

    # -- the roles -------------------------------------------------------------------------

    def role_names(self) -> list[str]:
        """Every role in start order: back-ends, app nodes, nginx."""
        t = self.topology
        return [
            "postgres",
            "redis",
            *(f"page-{n.name}" for n in t.page_nodes),
            *(f"broadcast-{n.name}" for n in t.broadcast_nodes),
            *(f"origin-{n.name}" for n in t.broadcast_nodes),
            *(f"edge-{e.name}" for e in t.edges),
            "balancer",
        ]

    def env_file(self, node: str) -> Path:
        """An app node's rendered env file."""
        return self.rendered_dir / "env" / f"{node}.env"

    def commands(self) -> dict[str, Command]:
        """Every step and role in start order: what the harness runs, what the guide quotes."""
        first = self.env_file(self.topology.page_nodes[0].name)
        steps = {
            "initdb": commands.initdb(self.pg_data),
            "postgres": self.command("postgres"),
            "redis": self.command("redis"),
            "createuser": commands.createuser(self.topology),
            "createdb": commands.createdb(self.topology),
            "db-upgrade": commands.db_upgrade(first, self.node_env),
        }
        return steps | {role: self.command(role) for role in self.role_names()[2:]}

    def command(self, role: str) -> Command:
        """The command line of one role (the one docs/deploy.md gives for running it by hand)."""
        t = self.topology
        kind, _, name = role.partition("-")
        if role == "postgres":
            return commands.postgres(t, self.pg_data)
        if role == "redis":
            return commands.redis(t)
        if kind in ("page", "broadcast"):
            return commands.serve(self.env_file(name), self.node_env)
        if kind in ("origin", "edge") or role == "balancer":
            config = self.rendered_dir / "nginx" / f"{role}.conf"
            return commands.nginx(t.nginx, self.nginx_prefix(role), config)
        raise ClusterError(f"no role {role!r} in {t.name} ({', '.join(self.role_names())})")

    def nginx_prefix(self, role: str) -> Path:
        """The folder an nginx role keeps its pid, logs, temporary files and cache in."""
        kind, _, name = role.partition("-")
        return self.topology.nginx_prefix(kind, name)

    def probe(self, role: str) -> Probe:
        """How the harness tells that a role is up."""
        t = self.topology
        kind, _, name = role.partition("-")
        if role == "postgres":
            return Probe("postgres", t.postgres)
        if role == "redis":
            return Probe("redis", t.redis)
        if role == "balancer":
            return Probe("http", t.balancer, "/healthz", below=300)
        if kind == "page":
            [page] = [n for n in t.page_nodes if n.name == name]
            return Probe("http", page.app, "/healthz", below=300)
        if kind in ("broadcast", "origin"):
            [node] = [n for n in t.broadcast_nodes if n.name == name]
            # An origin's /healthz is its own app's, proxied: both must be up.
            return Probe("http", node.app if kind == "broadcast" else node.origin, "/healthz", 300)
        [edge] = [e for e in t.edges if e.name == name]
        return Probe("http", edge.listen, "/hls/")  # nginx's (or the origin's) 404 is an answer

    @property
    def database_url(self) -> str:
        """The shared database's URL, as the nodes have it."""
        variables = commands.read_env_file(self.env_file(self.topology.page_nodes[0].name))
        return variables["SUMMITCAST_DATABASE_URL"]

    @property
    def secret_key(self) -> str:
        """The key every node shares (link secrets of locations are sealed under it)."""
        return self.secret_key_file.read_text(encoding="utf-8").strip()

    def listens(self) -> dict[str, Endpoint]:
        """Every address a role listens on, by role name."""
        t = self.topology
        found = {"postgres": t.postgres, "redis": t.redis, "balancer": t.balancer}
        found |= {f"page-{n.name}": n.app for n in t.page_nodes}
        found |= {f"broadcast-{n.name}": n.app for n in t.broadcast_nodes}
        found |= {f"origin-{n.name}": n.origin for n in t.broadcast_nodes}
        return found | {f"edge-{e.name}": e.listen for e in t.edges}

    def urls(self) -> dict[str, str]:
        """Where each HTTP role answers, by role name."""
        t = self.topology
        found = {"balancer": t.base_url.rstrip("/")}
        found |= {f"page-{n.name}": n.app.url for n in t.page_nodes}
        found |= {f"broadcast-{n.name}": n.app.url for n in t.broadcast_nodes}
        found |= {f"origin-{n.name}": n.origin.url for n in t.broadcast_nodes}
        found |= {f"edge-{e.name}": e.listen.url for e in t.edges}
        return found

    # -- life --------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start_all(self) -> None:
        """Render, start every role in order and wait until each one answers."""
        self._prepare()
        atexit.register(self.stop)
        self._started = True
        steps = self.commands()
        self._start_together(["postgres", "redis"])
        for step in ("createuser", "createdb", "db-upgrade"):
            self._run(step, steps[step])
        names = self.role_names()
        self._start_together([n for n in names if n.startswith(("page-", "broadcast-"))])
        self._start_together([n for n in names if n.startswith(("origin-", "edge-", "balancer"))])

    def _prepare(self) -> None:
        """Render the topology into the work folder and make a new PostgreSQL cluster."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.work_dir, self.topology.root):
            folder.mkdir(parents=True, exist_ok=True)
            _check_reachable(folder)
        for role, address in self.listens().items():
            _check_free(role, address)
        self.secret_key_file.write_text(secrets.token_urlsafe(48) + "\n", encoding="utf-8")
        self.secret_key_file.chmod(0o600)
        write(render(self.topology, secret_key_file=self.secret_key_file), self.rendered_dir)
        for role in self.role_names():
            if role.startswith(("origin-", "edge-", "balancer")):
                self.nginx_prefix(role).mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.pg_data, ignore_errors=True)
        self.pg_data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.pg_data, "postgres", "postgres")
        self._run("initdb", self.commands()["initdb"])

    def _run(self, name: str, command: Command) -> None:
        """Run a one-off step to its end (logged like a role); ClusterError when it fails."""
        step = Supervised(name, command, None, self.logs / f"{name}.log")
        step.start()
        assert step.process is not None
        try:
            code = step.process.wait(timeout=self.ready_s)
        except subprocess.TimeoutExpired:
            step.kill()
            raise ClusterError(f"{name} took over {self.ready_s:.0f} s:\n{step.tail()}") from None
        if code != 0:
            raise ClusterError(f"{name} failed (exit {code}):\n{step.tail()}")

    def _start_together(self, roles: list[str]) -> None:
        """Start roles at once (they boot in parallel), then wait for each in turn."""
        for role in roles:
            self.start(role, wait=False)
        for role in roles:
            self.roles[role].wait_ready(self.ready_s)

    def start(self, role: str, *, wait: bool = True) -> None:
        """Start one role (again) and, by default, wait until it answers."""
        command = self.command(role)  # an unknown role fails here, before anything runs
        supervised = Supervised(role, command, self.probe(role), self.logs / f"{role}.log")
        self.roles[role] = supervised
        supervised.start()
        if wait:
            supervised.wait_ready(self.ready_s)

    def kill(self, role: str, signum: int = signal.SIGKILL) -> None:
        """Send signum (SIGKILL by default) to a role's whole process group and wait for it."""
        if role not in self.roles:
            raise ClusterError(f"{role!r} was not started ({', '.join(self.roles)})")
        self.roles[role].kill(signum)

    def restart_postgres(self, down_s: float = 0.0) -> None:
        """Stop PostgreSQL as an operator would (fast shutdown), wait down_s, start it again."""
        # SIGINT is PostgreSQL's fast shutdown: sessions are cut, the data is kept.
        self.roles["postgres"].stop(self.stop_grace_s, signal.SIGINT)
        time.sleep(down_s)
        self.start("postgres")

    def restart_redis(self, down_s: float = 0.0) -> None:
        """Kill Redis (nothing is persisted: presence starts empty), wait down_s, start it."""
        self.roles["redis"].kill()
        time.sleep(down_s)
        self.start("redis")

    def stop(self) -> None:
        """Stop every role (front first, SIGTERM then SIGKILL) and remove PostgreSQL's data."""
        for role in reversed(list(self.roles)):
            # PostgreSQL's SIGTERM waits for every session to end: fast shutdown instead.
            signum = signal.SIGINT if role == "postgres" else signal.SIGTERM
            self.roles[role].stop(self.stop_grace_s, signum)
        self.roles.clear()
        if self._started:
            atexit.unregister(self.stop)
            shutil.rmtree(self.pg_data, ignore_errors=True)
            self._started = False


def _check_free(role: str, address: Endpoint) -> None:
    """ClusterError when something already listens where role must (another cluster, say)."""
    # A readiness probe would take a stranger on that address for the role itself.
    with socket.socket(socket.AF_INET6 if ":" in address.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.host, address.port))
        except OSError as error:
            raise ClusterError(
                f"{address.address} of {role} is taken ({error.strerror}): is another cluster "
                "running on these addresses?"
            ) from None


def _check_reachable(folder: Path) -> None:
    """As root, PostgreSQL (user postgres) and nginx's workers must reach into folder."""
    if os.geteuid() != 0:
        return
    for parent in (folder, *folder.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise ClusterError(
                f"{parent} is not searchable by other users, so PostgreSQL (run as postgres) "
                f"and nginx's workers cannot reach {folder}: use a work folder under a "
                "world-searchable path (chmod o+x)."
            )
