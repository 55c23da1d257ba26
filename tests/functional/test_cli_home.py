"""`jevons init`, `jevons testnet`, `jevons genesis validate`: real processes, real files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from genesis.document import load_genesis
from node.home import open_home
from tests.functional.cli import error_line, jevons

pytestmark = pytest.mark.functional


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_init_creates_a_complete_private_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    jevons("init", "--home", home, "--chain-id", "jevons-t1", "--accounts", "3", check=True)
    opened = open_home(home)
    assert opened.genesis.chain_id == "jevons-t1"
    assert opened.genesis.single_validator_dev_chain
    assert len(opened.genesis.accounts) == 3
    assert opened.genesis.validators[0].pubkey == opened.validator_key.public
    for key_file in (home / "keys" / "validator.json", home / "keys" / "node_key",
                     home / "data" / "signer" / "sign_state.bin"):  # created with the key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_init_refuses_to_overwrite_an_existing_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    jevons("init", "--home", home, check=True)
    before = snapshot(home)
    result = jevons("init", "--home", home)
    assert result.returncode == 1
    assert "already exists and is not empty" in error_line(result)
    assert snapshot(home) == before


def test_init_with_a_bad_genesis_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "genesis.json"
    bad.write_text('{"chain_id": "x"}')
    result = jevons("init", "--home", tmp_path / "home", "--genesis", bad)
    assert result.returncode == 1
    assert "missing field" in error_line(result)
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["init", "--home", "{tmp}/h", "--chain-id", "Bad Chain"], 2, "must be 2-48 of a-z"),
    (["init", "--home", "{tmp}/h", "--genesis", "{tmp}/missing.json"], 2, "does not exist"),
    (["init", "--home", "{tmp}/h", "--accounts", "-1"], 2, "-1"),
    (["testnet", "--out", "{tmp}/net", "--validators", "0"], 2, "0"),
    (["testnet", "--out", "{tmp}/net", "--validators", "2"], 1, "at least 4"),
    (["testnet", "--out", "{tmp}/net", "--base-port", "80"], 2, "80"),
    (["genesis", "validate", "{tmp}"], 2, "is a directory"),
    (["node", "start", "--home", "{tmp}/nope"], 1, "no such home directory"),
    (["devnet", "--block-time", "0"], 2, "0"),
])
def test_bad_input_gets_one_line_and_exit_code(tmp_path: Path, args: list[str], code: int,
                                                fragment: str) -> None:
    result = jevons(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == code, result.stderr
    if code == 1:
        assert fragment in error_line(result)
    else:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "h").exists() and not (tmp_path / "net").exists()


def test_genesis_validate_reports_bad_and_good_files(tmp_path: Path) -> None:
    jevons("init", "--home", tmp_path / "h", check=True)
    good = tmp_path / "h" / "genesis.json"
    result = jevons("genesis", "validate", good, check=True)
    assert load_genesis(good).hash().hex() in result.stdout
    doc = json.loads(good.read_text())
    doc["accounts"][0]["balance"] = 1.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = jevons("genesis", "validate", bad)
    assert result.returncode == 1
    assert "accounts[0].balance: expected an integer" in error_line(result)


def test_corrupt_config_is_named(tmp_path: Path) -> None:
    home = tmp_path / "h"
    jevons("init", "--home", home, check=True)
    (home / "config.toml").write_text("[node]\nrole = 'miner'\n")
    result = jevons("node", "start", "--home", home, "--blocks", "1")
    assert result.returncode == 1
    assert "config.toml" in error_line(result) and "role must be one of" in result.stderr


def test_testnet_generates_homes_sharing_one_genesis(tmp_path: Path) -> None:
    out = tmp_path / "net"
    result = jevons("testnet", "--validators", "4", "--providers", "1", "--accounts", "2",
                    "--out", out, "--base-port", "31000", check=True)
    homes = [open_home(out / f"node{i}") for i in range(5)]
    genesis_hashes = {h.genesis.hash() for h in homes}
    assert len(genesis_hashes) == 1
    genesis = homes[0].genesis
    assert len(genesis.validators) == 4 and not genesis.single_validator_dev_chain
    assert [h.config.role for h in homes] == ["validator"] * 4 + ["provider"]
    listens = {h.config.p2p.listen for h in homes} | {h.config.api.listen for h in homes}
    assert len(listens) == 10
    validator_keys = {v.pubkey for v in genesis.validators}
    assert all(h.validator_key.public in validator_keys for h in homes[:4])
    assert all(len(h.config.p2p.bootstrap) == 3 for h in homes[:4])
    assert len(homes[4].config.p2p.bootstrap) == 4
    funded = {a for a, _ in genesis.accounts}
    assert len(funded) == 3  # 2 dev accounts + the provider's account
    accounts = json.loads((out / "accounts.json").read_text())
    assert len(accounts) == 2 and stat.S_IMODE((out / "accounts.json").stat().st_mode) == 0o600
    assert "node4" in result.stdout and "provider" in result.stdout


def test_testnet_refuses_a_non_empty_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "net"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = jevons("testnet", "--out", out)
    assert result.returncode == 1
    assert "already exists and is not empty" in error_line(result)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_corrupt_wal_stops_the_node_with_one_line(tmp_path: Path) -> None:
    import struct
    import zlib

    from tests.functional.framework import free_port_block

    out = tmp_path / "net"
    jevons("testnet", "--out", out, "--base-port", str(free_port_block(8)), check=True)
    wal = out / "node0" / "data" / "consensus.wal"
    first, second = b"\x92\x01\x01", b"a later record"
    wal.write_bytes(struct.pack(">II", len(first), zlib.crc32(first) ^ 1) + first
                    + struct.pack(">II", len(second), zlib.crc32(second)) + second)
    before = wal.read_bytes()
    result = jevons("node", "start", "--home", out / "node0", timeout=60)
    assert result.returncode == 1
    line = [x for x in result.stderr.splitlines() if x.startswith("Error:")]
    assert line and "consensus.wal is corrupt at byte 0" in line[0]
    assert "Traceback" not in result.stderr
    assert wal.read_bytes() == before  # never "repaired" behind the operator's back


def test_a_validator_without_its_own_sign_state_does_not_start(tmp_path: Path) -> None:
    """A wiped data directory or a key moved without its sign state must not look like a
    key that never signed; the operator says so explicitly with --new-sign-state."""
    import signal
    import subprocess
    import time

    from tests.functional.cli import JEVONS
    from tests.functional.framework import free_port_block

    out = tmp_path / "net"
    jevons("testnet", "--out", out, "--base-port", str(free_port_block(8)), check=True)
    state = out / "node0" / "data" / "signer" / "sign_state.bin"
    theirs = out / "node1" / "data" / "signer" / "sign_state.bin"
    state.write_bytes(theirs.read_bytes())  # another key's record
    result = jevons("node", "start", "--home", out / "node0", "--new-sign-state", timeout=60)
    assert result.returncode == 1
    assert "belongs to validator" in error_line(result)
    assert state.read_bytes() == theirs.read_bytes()

    state.unlink()
    result = jevons("node", "start", "--home", out / "node0", timeout=60)
    assert result.returncode == 1
    line = error_line(result)
    assert "sign_state.bin is missing" in line and "--new-sign-state" in line
    assert not state.exists()

    node = subprocess.Popen([JEVONS, "node", "start", "--home", str(out / "node0"),
                             "--new-sign-state"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        status = out / "node0" / "data" / "status.json"  # written once the node runs
        deadline = time.monotonic() + 60
        while not status.exists() and node.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.exists(), node.stderr.read() if node.poll() is not None else "not up"
        assert state.exists()
        node.send_signal(signal.SIGINT)
        stdout, stderr = node.communicate(timeout=60)
    finally:
        node.kill()
    assert node.returncode == 0, stderr
    assert "stopped at height 0" in stdout
