"""Rendering: every nginx file passes the real `nginx -t`, env files are valid Settings."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from summitcast.config import Settings
from summitcast.deploy.check import check_nginx
from summitcast.deploy.render import render, write
from summitcast.deploy.topology import Topology, load_topology, topology_from_dict
from tests.deploy.conftest import REPO, make_topology, topology_dict

pytestmark = pytest.mark.integration

COMMITTED = REPO / "deploy" / "rendered" / "loopback-small"
# The committed files are rendered with this root (`--root`), so they read the same in
# every checkout: `summitcast deploy render deploy/loopback-small.toml --root ... --out ...`.
COMMITTED_ROOT = Path("/var/lib/summitcast/loopback-small")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key made by openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=summit.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def assert_nginx_accepts(topology: Topology, out: Path, nginx: str) -> None:
    """Render topology into out and let nginx -t judge every nginx file."""
    write(render(topology), out)
    results = check_nginx(out, nginx=nginx)
    assert [(r.path.name, r.ok, r.message) for r in results] == [
        (r.path.name, True, "ok") for r in results
    ]
    assert len(results) == 1 + len(topology.edges) + len(topology.broadcast_nodes)


def test_render_loopback_small_passes_nginx_t(tmp_path: Path, nginx: str) -> None:
    assert_nginx_accepts(load_topology(REPO / "deploy" / "loopback-small.toml"), tmp_path, nginx)


def test_render_example_30k_with_tls_passes_nginx_t(tmp_path: Path, nginx: str) -> None:
    cert, key = self_signed(tmp_path)
    topology = load_topology(REPO / "deploy" / "example-30k.toml")
    topology = dataclasses.replace(topology, tls_cert=cert, tls_key=key)

    assert_nginx_accepts(topology, tmp_path / "out", nginx)

    balancer = (tmp_path / "out/nginx/balancer.conf").read_text()
    edge = (tmp_path / "out/nginx/edge-e8.conf").read_text()
    assert "listen 10.0.0.10:443 ssl http2;" in balancer
    assert f"ssl_certificate {cert};" in balancer
    assert "proxy_pass https://edges;" in balancer  # the edges listen TLS too
    assert "listen 10.0.3.38:443 ssl http2;" in edge
    assert "worker_processes auto;" in edge


def test_render_single_encoder_routes_hls_as_is(tmp_path: Path, nginx: str) -> None:
    data = topology_dict()
    data["broadcast_nodes"] = data["broadcast_nodes"][:1]
    topology = topology_from_dict(data, base=tmp_path)

    assert_nginx_accepts(topology, tmp_path / "out", nginx)

    edge = (tmp_path / "out/nginx/edge-e1.conf").read_text()
    origin = (tmp_path / "out/nginx/origin-a.conf").read_text()
    assert "enc-" not in edge.replace("enc-<name>", "")
    assert "enc-" not in origin
    env = (tmp_path / "out/env/a.env").read_text()
    assert "SUMMITCAST_ENCODER_NAMES=\n" in env
    assert "SUMMITCAST_ENCODER_NAME=" not in env.replace("SUMMITCAST_ENCODER_NAMES=", "")


def test_check_nginx_names_the_file_and_nginx_s_complaint(tmp_path: Path, nginx: str) -> None:
    write(render(make_topology(tmp_path)), tmp_path / "out")
    broken = tmp_path / "out/nginx/edge-e1.conf"
    broken.write_text(broken.read_text().replace("proxy_cache_lock on;", "proxy_cache_lock maybe;"))

    results = {r.path.name: r for r in check_nginx(tmp_path / "out", nginx=nginx)}

    assert not results["edge-e1.conf"].ok
    assert results["edge-e1.conf"].message.startswith(
        'invalid value "maybe" in "proxy_cache_lock" directive'
    )
    assert results["balancer.conf"].ok


def test_committed_loopback_render_equals_a_fresh_render() -> None:
    topology = load_topology(REPO / "deploy" / "loopback-small.toml")
    fresh = render(dataclasses.replace(topology, root=COMMITTED_ROOT)).files

    committed = {
        str(path.relative_to(COMMITTED)): path.read_text(encoding="utf-8")
        for path in sorted(COMMITTED.rglob("*"))
        if path.is_file()
    }

    assert sorted(committed) == sorted(fresh)
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} differs: run the command in docs/deploy.md"


def test_render_env_files_are_valid_production_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "secret"
    key_file.write_text("k" * 40 + "\n")
    topology = load_topology(REPO / "deploy" / "loopback-small.toml")
    files = render(topology, secret_key_file=key_file).files

    for node in ("p1", "a"):
        with monkeypatch.context() as patched:
            for line in files[f"env/{node}.env"].splitlines():
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    patched.setenv(key, value)
            settings = Settings(_env_file=None)  # type: ignore[call-arg]

        assert settings.environment == "production"
        assert settings.secret_key.get_secret_value() == "k" * 40
        assert settings.effective_database_url == (
            "postgresql+psycopg://summitcast@127.0.0.41:5432/summitcast"
        )
        assert settings.redis_url == "redis://127.0.0.42:6379/0"
        assert settings.encoder_names == ["a", "b"]
        assert str(settings.trusted_proxies[0]) == "127.0.0.10/32"
    assert "SUMMITCAST_BROADCAST_WORKERS=false" in files["env/p1.env"]
    assert "SUMMITCAST_ENCODER_NAME=a\n" in files["env/a.env"]
    assert "SUMMITCAST_SEGMENT_DIR=" + str(topology.segment_dir("a")) in files["env/a.env"]
    assert f"alias {topology.segment_dir('a')}/$1/$2/$3;" in files["nginx/origin-a.conf"]


def test_render_balancer_takes_an_upload_chunk(tmp_path: Path) -> None:
    balancer = render(make_topology(tmp_path)).files["nginx/balancer.conf"]

    body_mib = int(re.search(r"client_max_body_size (\d+)m;", balancer).group(1))  # type: ignore[union-attr]
    settings = Settings()
    assert body_mib * 1024 * 1024 >= settings.upload_chunk_bytes + 64 * 1024
    assert body_mib * 1024 * 1024 >= settings.max_import_bytes + 64 * 1024


def test_render_systemd_units_run_the_harness_commands(tmp_path: Path) -> None:
    files = render(make_topology(tmp_path, command="/opt/sc/bin/summitcast")).files
    root = tmp_path / "cluster"

    assert "ExecStart=/opt/sc/bin/summitcast serve\n" in files["systemd/summitcast-page@.service"]
    assert (
        "EnvironmentFile=/etc/summitcast/env/%i.env"
        in files["systemd/summitcast-broadcast@.service"]
    )
    assert (
        f"ExecStart=/usr/sbin/nginx -p {root}/nginx/%i/ -c /etc/summitcast/nginx/%i.conf "
        '-g "daemon off;"'
    ) in files["systemd/summitcast-nginx@.service"]


def test_guide_names_the_commands_and_addresses_of_loopback_small() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    topology = load_topology(REPO / "deploy" / "loopback-small.toml")

    assert "summitcast cluster up deploy/loopback-small.toml" in guide
    assert "summitcast deploy render deploy/loopback-small.toml --out $W/rendered" in guide
    assert f"--root {COMMITTED_ROOT}\n--out deploy/rendered/loopback-small" in guide
    for node in (*topology.page_nodes, *topology.broadcast_nodes):
        assert node.app.host in guide
    for edge in topology.edges:
        assert edge.listen.url in guide
    for role in ("origin-a", "origin-b", "edge-e1", "edge-e2", "balancer"):
        assert role in guide
