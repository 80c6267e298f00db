"""A cluster's topology: which role runs where, loaded from a TOML file (deploy/*.toml)."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from summitcast.errors import ValidationError

# Node names become encoder names (enc-<name>/ in URLs) and file names: the rule of
# Settings.encoder_names, 1 to 8 lower-case letters or digits.
NAME_RE = re.compile(r"^[a-z0-9]{1,8}$")
_USER_RE = re.compile(r"^([a-z_][a-z0-9_-]{0,31})?$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Endpoint:
    """An address and port a process listens on."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The plain-HTTP URL of the endpoint."""
        return f"http://{self.address}"

    @property
    def address(self) -> str:
        """host:port, as nginx's listen and server directives take it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PageNode:
    """An app node that serves pages, the API and WebSockets (no encoders)."""

    name: str
    app: Endpoint


@dataclass(frozen=True)
class BroadcastNode:
    """An app node that runs the encoders, with an origin nginx serving its segments."""

    name: str
    app: Endpoint
    origin: Endpoint
    ingest_host: str


@dataclass(frozen=True)
class Edge:
    """An nginx cache in front of the origins."""

    name: str
    listen: Endpoint
    cache_mb: int = 1024


@dataclass(frozen=True)
class Topology:
    """Every role of a cluster and where it listens."""

    name: str
    balancer: Endpoint
    page_nodes: tuple[PageNode, ...]
    broadcast_nodes: tuple[BroadcastNode, ...]  # their names are the encoder names
    edges: tuple[Edge, ...]
    postgres: Endpoint
    redis: Endpoint
    base_url: str  # what viewers type: the balancer's URL (or the TLS name)
    root: Path  # each node's data and segment dirs, each nginx's prefix, cache and logs
    segment_s: float = 2.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # nginx worker_processes; 0 is "auto" (one per core), for real machines.
    nginx_workers: int = 1
    app_workers: int = 1  # `summitcast serve --workers` of every app node
    database_name: str = "summitcast"
    database_user: str = "summitcast"
    redis_prefix: str = "summitcast"
    # Where systemd units expect the rendered files and the summitcast command.
    config_dir: Path = Path("/etc/summitcast")
    command: str = "/opt/summitcast/bin/summitcast"
    nginx: str = "/usr/sbin/nginx"
    # nginx's `user` for its workers, only when its master runs as root (the loopback
    # harness in CI): without it they would be "nobody" and could not read the work dir.
    nginx_user: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # more SUMMITCAST_* for every node

    @property
    def encoder_names(self) -> tuple[str, ...]:
        """The redundant encoders' names; empty with one broadcast node (no enc-<name>/)."""
        if len(self.broadcast_nodes) < 2:
            return ()
        return tuple(node.name for node in self.broadcast_nodes)

    def node_dir(self, name: str) -> Path:
        """An app node's own folder (data dir, segment dir)."""
        return self.root / "nodes" / name

    def segment_dir(self, node: str) -> Path:
        """Where a broadcast node's encoders write (and its origin nginx reads) segments."""
        return self.node_dir(node) / "hls"

    def nginx_prefix(self, role: str, name: str = "") -> Path:
        """The nginx prefix (-p) of one nginx: its pid, logs, temporary files and cache."""
        # root/nginx/balancer, root/nginx/edge-e1...: the stem of the config file
        # (nginx/edge-e1.conf), which is the systemd instance name too.
        return self.root / "nginx" / (f"{role}-{name}" if name else role)

    @property
    def shared_dir(self) -> Path:
        """Uploads and normalised media, read by every node (a shared file system)."""
        return self.root / "shared"


def load_topology(path: Path) -> Topology:
    """Read a topology TOML file; relative paths in it are relative to the file's folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot be read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML ({exc})") from exc
    try:
        topology = topology_from_dict(data, base=path.resolve().parent)
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}", field=exc.field) from exc
    return topology


_TOP_KEYS = {
    "name", "balancer", "page_nodes", "broadcast_nodes", "edges", "postgres", "redis",
    "base_url", "root", "segment_s", "tls_cert", "tls_key", "nginx_workers", "app_workers",
    "database_name", "database_user", "redis_prefix", "config_dir", "command", "nginx", "env",
    "nginx_user",
}  # fmt: skip


def topology_from_dict(data: Mapping[str, Any], *, base: Path) -> Topology:
    """A Topology from parsed TOML; relative paths are taken relative to base."""
    _known_keys("the file", data, _TOP_KEYS)
    name = _name(data, "name", "the topology", pattern=re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$"))
    tls_cert, tls_key = _path(data, "tls_cert", base), _path(data, "tls_key", base)
    if (tls_cert is None) != (tls_key is None):
        raise ValidationError("tls_cert and tls_key go together: give both or neither")
    base_url = _text(data, "base_url", "the topology")
    if not re.match(r"^https?://[^/\s]+$", base_url):
        raise ValidationError(
            f"base_url {base_url!r} must be http(s)://host[:port] with no path", field="base_url"
        )
    root = _path(data, "root", base)
    if root is None:
        raise ValidationError("root is missing: the folder where nodes and nginx keep files")
    topology = Topology(
        name=name,
        balancer=_endpoint(data, "balancer", "the topology"),
        page_nodes=tuple(_page_node(entry, where) for where, entry in _list(data, "page_nodes")),
        broadcast_nodes=tuple(
            _broadcast_node(entry, where) for where, entry in _list(data, "broadcast_nodes")
        ),
        edges=tuple(_edge(entry, where) for where, entry in _list(data, "edges")),
        postgres=_endpoint(data, "postgres", "the topology"),
        redis=_endpoint(data, "redis", "the topology"),
        base_url=base_url,
        root=root,
        segment_s=_number(data, "segment_s", 2.0, low=0.5, high=30.0),
        tls_cert=tls_cert,
        tls_key=tls_key,
        nginx_workers=int(_number(data, "nginx_workers", 1, low=0, high=256, whole=True)),
        app_workers=int(_number(data, "app_workers", 1, low=1, high=256, whole=True)),
        database_name=_text(data, "database_name", "the topology", "summitcast"),
        database_user=_text(data, "database_user", "the topology", "summitcast"),
        redis_prefix=_text(data, "redis_prefix", "the topology", "summitcast"),
        config_dir=_path(data, "config_dir", Path("/")) or Path("/etc/summitcast"),
        command=_text(data, "command", "the topology", "/opt/summitcast/bin/summitcast"),
        nginx=_text(data, "nginx", "the topology", "/usr/sbin/nginx"),
        nginx_user=_name(data, "nginx_user", "the topology", pattern=_USER_RE, default=""),
        extra=_env(data),
    )  # fmt: skip
    _check_unique(topology)
    return topology


def _known_keys(where: str, data: Mapping[str, Any], known: set[str]) -> None:
    """Refuse keys nobody reads: a typo would otherwise pass silently."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(
            f"{where} has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
            field=unknown[0],
        )


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    """A required (or defaulted) non-empty string."""
    value = data.get(key, default)
    if value is None:
        raise ValidationError(f"{where}: {key} is missing", field=key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}: {key} must be a non-empty string", field=key)
    return value


def _name(
    data: Mapping[str, Any],
    key: str,
    where: str,
    *,
    pattern: re.Pattern[str],
    default: str | None = None,
) -> str:
    """A name that must match pattern."""
    if default is not None and data.get(key, default) == default:
        return default
    value = _text(data, key, where)
    if not pattern.match(value):
        raise ValidationError(
            f"{where}: {key} {value!r} must match {pattern.pattern} "
            "(lower-case letters and digits; node names at most 8)",
            field=key,
        )
    return value


def _number(
    data: Mapping[str, Any],
    key: str,
    default: float,
    *,
    low: float,
    high: float,
    whole: bool = False,
) -> float:
    """A number within [low, high] (a whole one when whole)."""
    value = data.get(key, default)
    allowed = isinstance(value, int) or (isinstance(value, float) and not whole)
    if isinstance(value, bool) or not allowed or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise ValidationError(f"{key} must be {kind} from {low:g} to {high:g}", field=key)
    return float(value)


def _path(data: Mapping[str, Any], key: str, base: Path) -> Path | None:
    """An optional path; a relative one is taken relative to base."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{key} must be a non-empty path string", field=key)
    return (base / Path(value).expanduser()).resolve()


def _list(data: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
    """A non-empty array of tables ([[key]] in TOML), each with where it is ("edges[1]")."""
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{key} must list at least one node ([[{key}]] tables)", field=key)
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ValidationError(f"{key}[{index}] must be a table", field=key)
    return [
        (f"{key}[{index}] ({entry.get('name', '?')})", entry) for index, entry in enumerate(value)
    ]


def _host(value: str, where: str) -> str:
    """An IP address or a host name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOST_RE.match(value):
            raise ValidationError(f"{where}: {value!r} is not an IP address or host name") from None
    return value


def _endpoint(data: Mapping[str, Any], key: str, where: str) -> Endpoint:
    """An Endpoint written "host:port" ("[::1]:8080" for IPv6)."""
    text = _text(data, key, where)
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValidationError(
            f"{where}: {key} {text!r} must be host:port with a port from 1 to 65535", field=key
        )
    return Endpoint(_host(host, f"{where}: {key}"), int(port))


def _page_node(entry: Mapping[str, Any], where: str) -> PageNode:
    """One [[page_nodes]] table."""
    _known_keys(where, entry, {"name", "app"})
    return PageNode(_name(entry, "name", where, pattern=NAME_RE), _endpoint(entry, "app", where))


def _broadcast_node(entry: Mapping[str, Any], where: str) -> BroadcastNode:
    """One [[broadcast_nodes]] table."""
    _known_keys(where, entry, {"name", "app", "origin", "ingest_host"})
    app = _endpoint(entry, "app", where)
    ingest = _host(_text(entry, "ingest_host", where, app.host), f"{where}: ingest_host")
    return BroadcastNode(
        _name(entry, "name", where, pattern=NAME_RE), app, _endpoint(entry, "origin", where), ingest
    )


def _edge(entry: Mapping[str, Any], where: str) -> Edge:
    """One [[edges]] table."""
    _known_keys(where, entry, {"name", "listen", "cache_mb"})
    cache_mb = int(_number(entry, "cache_mb", 1024, low=16, high=16 * 1024 * 1024, whole=True))
    return Edge(
        _name(entry, "name", where, pattern=NAME_RE), _endpoint(entry, "listen", where), cache_mb
    )


def _env(data: Mapping[str, Any]) -> dict[str, str]:
    """The [env] table: more SUMMITCAST_* settings for every node."""
    value = data.get("env", {})
    if not isinstance(value, dict):
        raise ValidationError("env must be a table of SUMMITCAST_* = value", field="env")
    env: dict[str, str] = {}
    for key, item in value.items():
        if not re.match(r"^SUMMITCAST_[A-Z0-9_]+$", key) or isinstance(item, dict | list):
            raise ValidationError(f"env: {key!r} must be SUMMITCAST_NAME = a value", field="env")
        env[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return env


def _check_unique(topology: Topology) -> None:
    """Every node name once (names become file names) and every listener once."""
    names = [node.name for node in topology.page_nodes]
    names += [node.name for node in topology.broadcast_nodes]
    names += [node.name for node in topology.edges]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ValidationError(f"node name {name!r} is used twice", field="name")
    listeners: dict[Endpoint, str] = {}
    pairs = [("balancer", topology.balancer), ("postgres", topology.postgres)]
    pairs += [("redis", topology.redis)]
    pairs += [(f"page node {n.name}", n.app) for n in topology.page_nodes]
    for node in topology.broadcast_nodes:
        pairs += [(f"broadcast node {node.name}", node.app)]
        pairs += [(f"origin of {node.name}", node.origin)]
    pairs += [(f"edge {n.name}", n.listen) for n in topology.edges]
    for owner, endpoint in pairs:
        if endpoint in listeners:
            raise ValidationError(
                f"{owner} and {listeners[endpoint]} both listen on {endpoint.address}",
                field="port",
            )
        listeners[endpoint] = owner
