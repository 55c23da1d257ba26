from __future__ import annotations

from pathlib import Path

import pytest

from node.config import (
    ConsensusConfig,
    MempoolConfig,
    NodeConfig,
    P2PConfig,
    load_config,
    parse_config,
)
from node.errors import ConfigError


def test_round_trip(tmp_path: Path) -> None:
    config = NodeConfig(moniker="n1", role="provider",
                        p2p=P2PConfig("/ip4/127.0.0.1/tcp/4001",
                                      ("/ip4/127.0.0.1/tcp/4002/p2p/x",)),
                        consensus=ConsensusConfig(timeout_commit_ms=0),
                        mempool=MempoolConfig(max_txs=5000, max_bytes=2**24, ttl_blocks=50))
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    assert load_config(path) == config


@pytest.mark.parametrize(("data", "reason"), [
    ({"nodes": {}}, "unknown table"),
    ({"node": {"role": "miner"}}, "role must be one of"),
    ({"node": {"colour": "red"}}, "unknown key 'colour'"),
    ({"p2p": {"bootstrap": "x"}}, "bootstrap must be a list"),
    ({"api": {"listen": "localhost"}}, "HOST:PORT"),
    ({"api": {"listen": "127.0.0.1:99999"}}, "HOST:PORT"),
    ({"api": {"listen": "no such host!:80"}}, "an IP address or host name"),
    ({"api": {"listen": ":8080"}}, "HOST:PORT"),
    ({"api": {"listen": "127.0.0.1:\uff18\uff10"}}, "HOST:PORT"),  # fullwidth: isdigit()
    ({"chain": {"block_time_ms": 1.5}}, "block_time_ms"),
    ({"chain": {"block_time_ms": 1}}, "block_time_ms"),
    ({"consensus": {"timeout_commit_ms": -1}}, r"\[consensus\] timeout_commit_ms must be an "
                                               r"integer in 0\.\.60000, got -1"),
    ({"consensus": {"timeout_commit_ms": "300"}}, "timeout_commit_ms"),
    ({"consensus": {"timeout_propose_ms": 3}}, "unknown key 'timeout_propose_ms'"),
    ({"mempool": {"max_txs": 10}}, r"\[mempool\] max_txs must be an integer in 100\.\."),
    ({"mempool": {"ttl_blocks": 0}}, r"\[mempool\] ttl_blocks must be an integer in 10\.\."),
    ({"mempool": {"max_bytes": "64MiB"}}, r"\[mempool\] max_bytes must be an integer"),
    ({"mempool": {"size": 5}}, "unknown key 'size'"),
    ({"node": {"moniker": ""}}, "moniker must be a non-empty string"),
    ({"node": []}, "must be a table"),
])
def test_bad_values_named(data: dict, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_config(data)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[node\nmoniker = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)


def test_json_log_lines_are_parseable() -> None:
    import json
    import logging

    from node.logging_setup import JsonFormatter

    record = logging.LogRecord("jevons.consensus", logging.INFO, __file__, 1,
                               "committed block %d", (7,), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "committed block 7" and entry["level"] == "info"
    assert entry["logger"] == "jevons.consensus" and entry["ts"].endswith("Z")


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:26601", "[::1]:26601",
                                    "node-1.example.com:80", "0.0.0.0:65535"])
def test_good_api_listen_values(listen: str) -> None:
    assert parse_config({"api": {"listen": listen}}).api.listen == listen


def test_an_api_address_already_taken_is_one_clear_error() -> None:
    """It used to end the node with hypercorn's traceback, consensus already running."""
    import socket

    import trio
    from starlette.applications import Starlette

    from node.api.app import serve_api
    from node.errors import NodeError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(NodeError, match=f"the API cannot listen on {listen}: "
                                            "Address already in use"):
            trio.run(serve_api, Starlette(), listen)
