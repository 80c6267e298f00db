"""Render a topology into the files each machine needs: nginx configs, env files, systemd units."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path

import jinja2

from summitcast.config import Settings
from summitcast.deploy.topology import BroadcastNode, Edge, Endpoint, Topology
from summitcast.errors import ValidationError

# Content types and Cache-Control of HLS files: the same as web/hls_cache.py (a test
# compares them), written here again because deploy may not import web.
CONTENT_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("application/vnd.apple.mpegurl", ("m3u8",)),
    ("video/mp2t", ("ts",)),
    ("video/iso.segment", ("m4s",)),
    ("video/mp4", ("mp4",)),
    ("audio/mp4", ("m4a",)),
    ("audio/aac", ("aac",)),
    ("text/vtt", ("vtt",)),  # "; charset=utf-8" is added by nginx's charset module
    ("image/png", ("png",)),
    ("image/jpeg", ("jpg",)),
)
PLAYLIST_MAX_AGE_S = 1
REPLAY_PLAYLIST_MAX_AGE_S = 60
SEGMENT_MAX_AGE_S = 365 * 24 * 3600
CACHE_RULES: tuple[tuple[str, str], ...] = (
    (r"/vod\.m3u8$", f"public, max-age={REPLAY_PLAYLIST_MAX_AGE_S}"),
    (r"\.m3u8$", f"public, max-age={PLAYLIST_MAX_AGE_S}"),
    (
        r"\.(" + "|".join(ext for _, exts in CONTENT_TYPES[1:] for ext in exts) + ")$",
        f"public, max-age={SEGMENT_MAX_AGE_S}, immutable",
    ),
)
_BODY_SLACK_BYTES = 64 * 1024  # the app's own request body cap is max_import_bytes + 64 KiB
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Rendered:
    """The rendered files: relative path → text."""

    files: dict[str, str]


def _environment() -> jinja2.Environment:
    """Jinja for config files: no HTML escaping, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("summitcast.deploy", "templates"),
        autoescape=False,  # noqa: S701 - nginx, systemd files  # nosec B701
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(topology: Topology, *, secret_key_file: Path | None = None) -> Rendered:
    """Every file of the topology; with secret_key_file its key goes into the env files."""
    env = _environment()
    files: dict[str, str] = {"nginx/balancer.conf": _balancer(env, topology)}
    for edge in topology.edges:
        files[f"nginx/edge-{edge.name}.conf"] = _edge(env, topology, edge)
    for node in topology.broadcast_nodes:
        files[f"nginx/origin-{node.name}.conf"] = _origin(env, topology, node)
    secret = _secret(secret_key_file)
    for page in topology.page_nodes:
        files[f"env/{page.name}.env"] = _env_file(topology, page.name, None, secret)
    for node in topology.broadcast_nodes:
        files[f"env/{node.name}.env"] = _env_file(topology, node.name, node, secret)
    for unit in ("summitcast-page@", "summitcast-broadcast@", "summitcast-nginx@"):
        template = env.get_template(f"systemd/{unit}.service.j2")
        files[f"systemd/{unit}.service"] = template.render(t=topology)
    files["systemd/README.md"] = env.get_template("systemd/README.md.j2").render(t=topology)
    return Rendered(files)


def write(rendered: Rendered, out_dir: Path) -> list[Path]:
    """Write the files under out_dir (env files readable by their owner only)."""
    written = []
    for relative, text in sorted(rendered.files.items()):
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if relative.startswith("env/"):
            target.chmod(0o600)  # may hold the secret key
        written.append(target)
    return written


def _worker_connections(topology: Topology, busy: int) -> int:
    """Connections per nginx worker: small on loopback, enough for busy on real machines."""
    return 4096 if topology.nginx_workers else busy


def _balancer(env: jinja2.Environment, topology: Topology) -> str:
    """The load balancer's nginx.conf."""
    fields = Settings.model_fields
    chunk = int(fields["upload_chunk_bytes"].default)
    import_bytes = int(fields["max_import_bytes"].default)
    return env.get_template("nginx/balancer.conf.j2").render(
        t=topology,
        prefix=topology.nginx_prefix("balancer"),
        # 30,000 screens' sockets, two connections each (client and app), over the workers.
        worker_connections=_worker_connections(topology, 32768),
        upload_chunk_mib=chunk // _MIB,
        import_mib=import_bytes // _MIB,
        body_mib=math.ceil((max(chunk, import_bytes) + _BODY_SLACK_BYTES) / _MIB),
        edge_scheme="https" if topology.tls_cert else "http",
    )


def _edge(env: jinja2.Environment, topology: Topology, edge: Edge) -> str:
    """One edge cache's nginx.conf."""
    segment = topology.segment_s
    return env.get_template("nginx/edge.conf.j2").render(
        t=topology,
        edge=edge,
        prefix=topology.nginx_prefix("edge", edge.name),
        worker_connections=_worker_connections(topology, 16384),
        # ~8,000 keys per MiB of zone (nginx's figure); one key per file in the cache.
        keys_zone_mb=max(8, edge.cache_mb // 64),
        # nginx counts cache validity in whole seconds: half a segment, at least one.
        playlist_valid=f"{max(1, math.floor(segment / 2))}s",
        segment_valid="365d",
        lock_timeout_s=max(2, math.ceil(segment * 2)),
        origin_timeout_s=max(2, math.ceil(segment * 2)),
    )


def _origin(env: jinja2.Environment, topology: Topology, node: BroadcastNode) -> str:
    """One broadcast node's origin nginx.conf."""
    return env.get_template("nginx/origin.conf.j2").render(
        t=topology,
        node=node,
        prefix=topology.nginx_prefix("origin", node.name),
        worker_connections=_worker_connections(topology, 16384),
        segment_dir=topology.segment_dir(node.name),
        content_types=CONTENT_TYPES,
        cache_rules=CACHE_RULES,
    )


def _secret(secret_key_file: Path | None) -> str | None:
    """The shared secret key from its file (None: the env files leave it to secret.env)."""
    if secret_key_file is None:
        return None
    try:
        secret = secret_key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValidationError(f"{secret_key_file}: cannot be read ({exc})") from exc
    if len(secret) < 32 or any(char.isspace() for char in secret):
        raise ValidationError(
            f"{secret_key_file}: the secret key must be one line of at least 32 characters"
        )
    return secret


def _trusted(hosts: list[str]) -> str:
    """The proxies a node believes X-Forwarded-* from: the IP addresses among hosts."""
    found: list[str] = []
    for host in hosts:
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            continue  # a host name: Settings takes addresses only (docs/deploy.md says so)
        if address not in found:
            found.append(address)
    return ",".join(found)


def node_env(
    topology: Topology, name: str, broadcast: BroadcastNode | None, secret: str | None = None
) -> dict[str, str]:
    """An app node's SUMMITCAST_* settings (what its env file holds)."""
    node_dir = topology.node_dir(name)
    database = (
        f"postgresql+psycopg://{topology.database_user}@{topology.postgres.address}"
        f"/{topology.database_name}"
    )
    proxies = [topology.balancer.host] + ([broadcast.origin.host] if broadcast else [])
    env = {
        "SUMMITCAST_ENVIRONMENT": "production",
        "SUMMITCAST_NODE_NAME": name,
        "SUMMITCAST_HOST": (broadcast.app if broadcast else _page(topology, name)).host,
        "SUMMITCAST_PORT": str((broadcast.app if broadcast else _page(topology, name)).port),
        "SUMMITCAST_WORKERS": str(topology.app_workers),
        "SUMMITCAST_BASE_URL": topology.base_url,
        "SUMMITCAST_DATABASE_URL": database,
        "SUMMITCAST_REDIS_URL": f"redis://{topology.redis.address}/0",
        "SUMMITCAST_REDIS_PREFIX": topology.redis_prefix,
        "SUMMITCAST_DATA_DIR": str(node_dir / "data"),
        "SUMMITCAST_SEGMENT_DIR": str(node_dir / "hls"),
        # Uploads land on whichever page node the balancer picks and the broadcast nodes'
        # jobs normalise them: one folder every node sees (NFS or the like on real machines).
        "SUMMITCAST_SHARED_DIR": str(topology.shared_dir),
        "SUMMITCAST_UPLOAD_DIR": str(topology.shared_dir / "uploads"),
        "SUMMITCAST_MEDIA_DIR": str(topology.shared_dir / "media"),
        "SUMMITCAST_BROADCAST_WORKERS": "true" if broadcast else "false",
        "SUMMITCAST_JOB_WORKERS": "true" if broadcast else "false",
        "SUMMITCAST_ENCODER_NAMES": ",".join(topology.encoder_names),
        # Every node shows a studio each encoder's ingest (it pushes to both).
        "SUMMITCAST_ENCODER_INGEST_HOSTS": ",".join(
            node.ingest_host for node in topology.broadcast_nodes if topology.encoder_names
        ),
        "SUMMITCAST_TRUSTED_PROXIES": _trusted(proxies),
    }
    if broadcast is not None:
        if topology.encoder_names:
            env["SUMMITCAST_ENCODER_NAME"] = broadcast.name
        env["SUMMITCAST_INGEST_HOST"] = broadcast.ingest_host
        env["SUMMITCAST_INGEST_PUBLIC_HOST"] = broadcast.ingest_host
        if _trusted([broadcast.ingest_host]):
            # The node's WebRTC peer offers this address (aioice skips loopback otherwise).
            env["SUMMITCAST_WEBRTC_HOST_ADDRESSES"] = broadcast.ingest_host
    env.update(topology.extra)
    if secret is not None:
        env["SUMMITCAST_SECRET_KEY"] = secret
    return env


def _page(topology: Topology, name: str) -> Endpoint:
    """The app endpoint of the page node called name."""
    return next(node.app for node in topology.page_nodes if node.name == name)


def _env_file(
    topology: Topology, name: str, broadcast: BroadcastNode | None, secret: str | None
) -> str:
    """An env file (KEY=value lines, as systemd's EnvironmentFile= and the harness read it)."""
    role = "broadcast" if broadcast else "page"
    lines = [
        f"# {role} node {name} of {topology.name}: rendered by `summitcast deploy render`.",
        f"# Used by summitcast-{role}@{name}.service and by `summitcast cluster up`.",
    ]
    if secret is None:
        lines.append(
            "# SUMMITCAST_SECRET_KEY is not here: the same key on every node comes from "
            f"{topology.config_dir}/secret.env (or the environment)."
        )
    env = node_env(topology, name, broadcast, secret)
    lines += [f"{key}={value}" for key, value in env.items()]
    return "\n".join(lines) + "\n"
