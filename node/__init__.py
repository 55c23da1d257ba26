"""The node: all IO and the composition root.

Rooms: node/store (LevelDB), node/home (a node's directory: config, keys, genesis),
node/chain (block production and execution around the pure core), node/cli (the `jevons`
command, a thin layer over the rest). Networking, API, wallet, provider and validator
duties get rooms of their own as they arrive. May import every package.
"""
