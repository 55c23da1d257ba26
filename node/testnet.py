"""Generate homes for a local network that share one genesis (`jevons testnet`).

    OUT/node0 … OUT/node{N-1}        validators
    OUT/node{N} … OUT/node{N+M-1}    providers (full nodes with a funded account)
    OUT/accounts.json                 dev accounts and their (public, test-only) seeds
Node i listens for p2p on base_port + 2i and serves its API on base_port + 2i + 1; each
node's bootstrap list names every validator but itself. The whole tree is built under a
temporary name and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import SEED_LEN
from genesis.dev import dev_accounts, make_genesis
from node.config import ApiConfig, NodeConfig, P2PConfig
from node.errors import HomeError
from node.fsutil import atomic_write, staged_directory
from node.home import write_home
from node.keys import new_private_key, peer_id_from_seed

MAX_NODES = 64


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    address: str
    p2p: str
    api: str


def create_testnet(out: Path, validators: int, providers: int, accounts: int, chain_id: str,
                   base_port: int, genesis_time_ms: int) -> list[NodeInfo]:
    total = validators + providers
    if not 1 <= total <= MAX_NODES:
        raise HomeError(f"--validators + --providers must be 1..{MAX_NODES}, got {total}")
    if not 1024 <= base_port <= 65535 - 2 * total:
        raise HomeError(f"--base-port {base_port} leaves no room for {total} nodes "
                        f"(need 1024..{65535 - 2 * total})")
    keys = [new_private_key() for _ in range(total)]
    seeds = [os.urandom(SEED_LEN) for _ in range(total)]
    names = [f"node{i}" for i in range(total)]
    roles = ["validator"] * validators + ["provider"] * providers
    p2p = [f"/ip4/127.0.0.1/tcp/{base_port + 2 * i}" for i in range(total)]
    peer_ids = [peer_id_from_seed(s) for s in seeds]
    funded = [address_from_pubkey(k.public) for k in dev_accounts(accounts)]
    funded += [address_from_pubkey(k.public) for k in keys[validators:]]
    genesis = make_genesis(chain_id, genesis_time_ms,
                           [(names[i], keys[i].public) for i in range(validators)], funded)
    infos = []
    with staged_directory(out) as staging:
        for i in range(total):
            bootstrap = tuple(f"{p2p[j]}/p2p/{peer_ids[j]}" for j in range(validators) if j != i)
            config = NodeConfig(moniker=names[i], role=roles[i],
                                p2p=P2PConfig(p2p[i], bootstrap),
                                api=ApiConfig(f"127.0.0.1:{base_port + 2 * i + 1}"))
            write_home(staging / names[i], config, genesis, keys[i], seeds[i])
            address = to_bech32(address_from_pubkey(keys[i].public))
            infos.append(NodeInfo(names[i], roles[i], address, f"{p2p[i]}/p2p/{peer_ids[i]}",
                                  config.api.listen))
        write_accounts_file(staging / "accounts.json", accounts)
    return infos


def write_accounts_file(path: Path, count: int) -> None:
    doc = [{"address": to_bech32(address_from_pubkey(k.public)), "seed": k.seed.hex()}
           for k in dev_accounts(count)]
    atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)
