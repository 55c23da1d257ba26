"""Storage: the node's LevelDB (via plyvel) of blocks, the tx index and the chain state.

Owns the key layout (`keys`) and `BlockStore`, which commits each block in one synced write
batch together with its indices and state changes, so a crash never leaves half a block.
Stores what the consensus core computes; never validates blocks itself (that is
`consensus.transition`). May import consensus and plyvel; must not import other node rooms
(chain, p2p, api, cli), trio or libp2p: it is synchronous and called by the host loop.
"""

from node.store.blockstore import BlockStore, StoreError

__all__ = ["BlockStore", "StoreError"]
