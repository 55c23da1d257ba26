"""The node's JSON HTTP API (Starlette app served by Hypercorn's trio worker in the node
process). Reads go to the host's in-memory state and the LevelDB store; broadcast goes
through the mempool and tx gossip. See docs/api.md."""
