"""Child process of the store crash test: commits blocks to a store as fast as it can.

    python -m tests.functional.store_writer STORE --genesis-seed N --seed N --max-height N

Resumes from the stored tip, prints `ready <height>` once the store is open, then for each
block `writing <height>` just before the commit and `committed <height>` once it is synced,
until `--max-height` or until it is killed.
"""

from __future__ import annotations

import argparse
import random
import sys

from consensus.vote import Commit
from node.store import BlockStore
from tests.chainutil import ChainBuilder, make_genesis

N_ACCOUNTS = 8
TXS_PER_BLOCK = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--genesis-seed", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-height", type=int, required=True)
    return parser.parse_args(argv)


def last_commit_of(store: BlockStore) -> Commit:
    """The commit stored with the tip block: the last commit of the next block."""
    height, _ = store.tip()
    if height == 0:
        return Commit.empty()
    commit = store.get_seen_commit(height)
    if commit is None:
        raise SystemExit(f"no seen commit is stored for the tip block {height}")
    return commit


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    genesis, validator_key, account_keys = make_genesis(N_ACCOUNTS, args.genesis_seed)
    with BlockStore.open(args.store) as store:
        store.init_genesis(genesis.hash(), genesis.initial_state())
        builder = ChainBuilder(store.load_state(), validator_key, account_keys,
                               random.Random(args.seed), last_commit_of(store))
        print(f"ready {builder.state.height}", flush=True)
        while builder.state.height < args.max_height:
            block, state = builder.next_block(TXS_PER_BLOCK)
            print(f"writing {block.height}", flush=True)
            store.commit_block(block, state, seen_commit=builder.last_commit)
            print(f"committed {block.height}", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
