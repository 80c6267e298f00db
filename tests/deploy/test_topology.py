"""Loading topologies: what a valid file gives, and one clear message for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from summitcast.deploy.topology import Endpoint, load_topology, topology_from_dict
from summitcast.errors import ValidationError
from tests.deploy.conftest import REPO, topology_dict

pytestmark = pytest.mark.unit


def test_load_topology_loopback_small_matches_the_design(tmp_path: Path) -> None:
    topology = load_topology(REPO / "deploy" / "loopback-small.toml")

    assert topology.balancer == Endpoint("127.0.0.10", 8080)
    assert [(n.name, n.app) for n in topology.page_nodes] == [
        ("p1", Endpoint("127.0.0.11", 8000)),
        ("p2", Endpoint("127.0.0.12", 8000)),
    ]
    assert [(n.name, n.app, n.origin) for n in topology.broadcast_nodes] == [
        ("a", Endpoint("127.0.0.21", 8000), Endpoint("127.0.0.21", 8081)),
        ("b", Endpoint("127.0.0.22", 8000), Endpoint("127.0.0.22", 8081)),
    ]
    assert [(e.name, e.listen) for e in topology.edges] == [
        ("e1", Endpoint("127.0.0.31", 8080)),
        ("e2", Endpoint("127.0.0.32", 8080)),
    ]
    assert topology.postgres == Endpoint("127.0.0.41", 5432)
    assert topology.redis == Endpoint("127.0.0.42", 6379)
    assert topology.encoder_names == ("a", "b")
    # Relative to the TOML file's folder: var/cluster at the top of the repository.
    assert topology.root == REPO / "var" / "cluster"
    assert topology.nginx_prefix("edge", "e1") == REPO / "var/cluster/nginx/edge-e1"
    assert topology.nginx_prefix("balancer") == REPO / "var/cluster/nginx/balancer"


def test_load_topology_example_30k_has_the_production_layout() -> None:
    topology = load_topology(REPO / "deploy" / "example-30k.toml")

    sizes = (len(topology.page_nodes), len(topology.broadcast_nodes), len(topology.edges))
    assert sizes == (6, 2, 8)
    assert topology.tls_cert is not None
    assert topology.tls_key is not None
    assert topology.base_url.startswith("https://")
    assert topology.nginx_workers == 0  # one per core


def test_endpoint_url_and_address() -> None:
    assert Endpoint("127.0.0.1", 80).url == "http://127.0.0.1:80"
    assert Endpoint("::1", 8080).address == "[::1]:8080"


def test_topology_from_dict_single_encoder_has_no_encoder_names(tmp_path: Path) -> None:
    data = topology_dict()
    data["broadcast_nodes"] = data["broadcast_nodes"][:1]

    assert topology_from_dict(data, base=tmp_path).encoder_names == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"page_nodes": []}, "page_nodes must list at least one node"),
        ({"edges": [{"name": "E1", "listen": "127.0.0.31:8080"}]}, "name 'E1' must match"),
        ({"edges": [{"name": "e1", "listen": "127.0.0.31"}]}, "must be host:port"),
        ({"edges": [{"name": "e1", "listen": "127.0.0.31:70000"}]}, "port from 1 to 65535"),
        ({"edges": [{"name": "e1", "listen": "not a host:80"}]}, "not an IP address or host name"),
        ({"edges": [{"name": "e1", "listen": "127.0.0.31:1", "cache": 1}]}, "unknown key(s) cache"),
        ({"edges": [{"name": "p1", "listen": "127.0.0.31:8080"}]}, "node name 'p1' is used twice"),
        (
            {"edges": [{"name": "e1", "listen": "127.0.0.21:8081"}]},
            "both listen on 127.0.0.21:8081",
        ),
        ({"segment_s": 0}, "segment_s must be a number from 0.5 to 30"),
        ({"nginx_workers": 1.5}, "nginx_workers must be a whole number"),
        ({"tls_cert": "cert.pem"}, "tls_cert and tls_key go together"),
        ({"base_url": "127.0.0.10:8080"}, "base_url '127.0.0.10:8080' must be http(s)://"),
        ({"root": None}, "root is missing"),
        ({"balancer": None}, "the topology: balancer is missing"),
        ({"bogus": 1}, "the file has unknown key(s) bogus"),
        ({"env": {"PATH": "/bin"}}, "env: 'PATH' must be SUMMITCAST_NAME"),
    ],
)
def test_topology_from_dict_refuses_with_a_clear_message(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    data = {key: value for key, value in topology_dict(**changes).items() if value is not None}

    with pytest.raises(ValidationError) as raised:
        topology_from_dict(data, base=tmp_path)

    assert message in raised.value.message
    assert raised.value.status_code == 422


def test_load_topology_names_the_file_and_the_toml_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x\n', encoding="utf-8")

    with pytest.raises(ValidationError) as raised:
        load_topology(broken)

    assert raised.value.message.startswith(f"{broken}: not valid TOML (")
    with pytest.raises(ValidationError, match="no such file"):
        load_topology(tmp_path / "missing.toml")


def test_load_topology_prefixes_the_file_to_topology_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\nroot = "x"\nbase_url = "http://a"\n', encoding="utf-8")

    with pytest.raises(ValidationError) as raised:
        load_topology(path)

    assert raised.value.message == f"{path}: the topology: balancer is missing"
