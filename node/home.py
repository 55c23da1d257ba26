"""A node home directory: its layout, creation (atomic) and opening (checked).

    HOME/config.toml            node settings (node/config.py)
    HOME/genesis.json           the chain's genesis (genesis/document.py)
    HOME/keys/validator.json    validator signing key (0600)
    HOME/keys/node_key          libp2p identity seed (0600)
    HOME/data/                  LevelDB chain store and, later, the consensus WAL
    HOME/data/signer/           the validator key's sign state (node/chain/signer.py),
                                created with the key: it must travel with keys/validator.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from consensus.crypto import SEED_LEN, PrivateKey
from genesis.document import Genesis, dump_genesis, load_genesis
from node.chain.signer import create_sign_state
from node.config import NodeConfig, load_config
from node.errors import HomeError
from node.fsutil import atomic_write, staged_directory
from node.keys import read_node_key, read_validator_key, write_node_key, write_validator_key


@dataclass(frozen=True)
class HomePaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def genesis(self) -> Path:
        return self.root / "genesis.json"

    @property
    def validator_key(self) -> Path:
        return self.root / "keys" / "validator.json"

    @property
    def node_key(self) -> Path:
        return self.root / "keys" / "node_key"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def chain_db(self) -> Path:
        return self.data / "chain.db"

    @property
    def signer(self) -> Path:
        return self.data / "signer"


def write_home(root: Path, config: NodeConfig, genesis: Genesis, validator_key: PrivateKey,
               node_seed: bytes | None = None) -> HomePaths:
    """Create a complete home at `root` atomically; refuse to touch an existing one."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise HomeError(f"{root} already exists and is not empty; refusing to overwrite keys "
                        "(choose another --home or remove it yourself)")
    try:
        with staged_directory(root) as staging:
            paths = HomePaths(staging)
            (staging / "keys").mkdir(mode=0o700)
            paths.data.mkdir(mode=0o700)
            atomic_write(paths.config, config.to_toml().encode())
            atomic_write(paths.genesis, dump_genesis(genesis).encode())
            write_validator_key(paths.validator_key, validator_key)
            create_sign_state(paths.signer, validator_key.public)
            write_node_key(paths.node_key, node_seed or os.urandom(SEED_LEN))
    except OSError as exc:
        raise HomeError(f"cannot create home {root}: {exc.strerror or exc}") from exc
    return HomePaths(root)


@dataclass(frozen=True)
class Home:
    paths: HomePaths
    config: NodeConfig
    genesis: Genesis
    validator_key: PrivateKey
    node_seed: bytes


def open_home(root: str | Path) -> Home:
    """Load and check every file of a home; HomeError/ConfigError/InvalidGenesis say which."""
    paths = HomePaths(Path(root))
    if not paths.root.is_dir():
        raise HomeError(f"{paths.root}: no such home directory (create one with `jevons init`)")
    config = load_config(paths.config)
    genesis = load_genesis(paths.genesis)
    return Home(paths, config, genesis, read_validator_key(paths.validator_key),
                read_node_key(paths.node_key))
