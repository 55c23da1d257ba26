"""`jevons devnet` and `jevons node start` on a single-validator dev chain: real process,
real LevelDB; the chain is re-verified from genesis by replaying the stored blocks."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from consensus.block import Block
from consensus.transition import apply_block
from consensus.vote import verify_commit
from node.home import open_home
from node.store.blockstore import BlockStore
from tests.functional.cli import JEVONS, jevons
from tests.functional.framework import free_port_block

pytestmark = pytest.mark.functional

BLOCK_LINE = re.compile(r"^#(\d+)\s+([0-9a-f]{16})\s.*txs\s+(\d+)", re.MULTILINE)


def replay_and_check(home_dir: Path) -> int:
    """Replay every stored block from genesis; check roots, commits and supply."""
    home = open_home(home_dir)
    state = home.genesis.initial_state()
    params = state.params
    with BlockStore.open(home.paths.chain_db) as store:
        height, tip_hash = store.tip()
        stored = store.load_state()
        for h in range(1, height + 1):
            block = Block.decode(store.get_block(h), params.max_block_bytes,
                                 params.max_block_txs)
            state = apply_block(state, block, params)
        assert state.root() == stored.root()
        assert state.last_block_hash == tip_hash
        assert state.total_balances_and_stakes() == state.supply.expected_total
        seen = store.get_seen_commit(height)
        verify_commit(seen, state.chain_id, height, tip_hash,
                      state.validator_map(state.validators))
    return height


def test_devnet_produces_blocks_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "dev"
    first = jevons("devnet", "--validators", "1", "--home", home, "--blocks", "3",
                   "--block-time", "0.05", "--tx-rate", "100", "--accounts", "4", check=True)
    blocks = BLOCK_LINE.findall(first.stdout)
    assert [int(h) for h, _, _ in blocks] == [1, 2, 3]
    assert all(int(n) == 5 for _, _, n in blocks)
    assert first.stdout.count("seed ") == 4  # the dev accounts are printed with their keys
    node_home = home / "node0"  # devnet --home holds the node homes
    assert replay_and_check(node_home) == 3
    second = jevons("node", "start", "--home", node_home, "--blocks", "2", "--txs-per-block",
                    "3", check=True)
    assert [int(h) for h, _, _ in BLOCK_LINE.findall(second.stdout)] == [4, 5]
    assert replay_and_check(node_home) == 5


def test_devnet_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    home = tmp_path / "dev"
    proc = subprocess.Popen([JEVONS, "devnet", "--validators", "1", "--home", str(home),
                             "--block-time", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait until two blocks are out, bounded by the timeout below
            if line.startswith("#2 "):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped at height" in out
    assert replay_and_check(home / "node0") >= 2


def test_second_node_on_the_same_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "dev"
    jevons("devnet", "--validators", "1", "--home", home, "--blocks", "1", "--block-time",
           "0.05", check=True)
    home = home / "node0"
    proc = subprocess.Popen([JEVONS, "node", "start", "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("#"):
                break
        result = jevons("node", "start", "--home", home, "--blocks", "1")
        assert result.returncode == 1
        assert "already in use by another process" in result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_devnet_of_four_validators_and_a_provider_agrees_and_stops_cleanly(
        tmp_path: Path) -> None:
    root = tmp_path / "net"
    result = jevons("devnet", "--home", root, "--blocks", "3", "--tx-rate", "20",
                    "--accounts", "3", "--base-port", str(free_port_block(10)), timeout=180,
                    check=True)
    assert "started 5 nodes" in result.stdout and "stopped at height" in result.stdout
    assert result.stdout.count("seed ") == 3
    homes = sorted(root.glob("node*"))
    assert len(homes) == 5
    assert "role = \"provider\"" in (homes[4] / "config.toml").read_text()
    heights = [replay_and_check(h) for h in homes]
    assert min(heights) >= 3
    tips = set()
    for h in homes:
        home = open_home(h)
        with BlockStore.open(home.paths.chain_db) as store:
            tips.add(store.get_block(min(heights)))
    assert len(tips) == 1  # the same block at the common height: no fork
    for h in homes:
        assert "Traceback" not in (h / "node.log").read_text()


def test_a_kept_devnet_that_never_signed_starts_with_new_sign_state(tmp_path: Path) -> None:
    """Homes made before the sign state came with the key have none until their first
    signature. Such a devnet, stopped before its first block, cannot resume: its
    validators refuse to start without their sign state, and `--new-sign-state` (passed to
    each node) starts them. Before, devnet had no way to pass it."""
    root = tmp_path / "net"
    jevons("testnet", "--validators", "4", "--accounts", "2", "--out", root, "--base-port",
           str(free_port_block(8)), check=True)  # the layout devnet keeps under --home
    for state in root.glob("node*/data/signer/sign_state.bin"):
        state.unlink()  # as an earlier version left a home whose key never signed
    refused = jevons("devnet", "--home", root, "--blocks", "2", "--tx-rate", "0",
                     timeout=120)
    assert refused.returncode == 1 and "--new-sign-state" in refused.stdout
    started = jevons("devnet", "--home", root, "--blocks", "2", "--tx-rate", "0",
                     "--new-sign-state", timeout=180, check=True)
    assert "stopped at height" in started.stdout
    assert len(list(root.glob("node*/data/signer/sign_state.bin"))) == 4
