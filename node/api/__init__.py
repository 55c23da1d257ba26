"""The node's JSON HTTP API (Starlette app served by Hypercorn's trio worker in the node
process) and its Prometheus metrics. Reads go to the host's in-memory state and the
LevelDB store; broadcast goes through the mempool and tx gossip. See docs/api.md.

`routing` declares operations (the single source of /openapi.json and of parameter
checks), `schemas` the bodies' JSON schemas, `chain`/`accounts`/`txs`/`market` the
route groups, `metrics` the per-node registry, `app` the composition. It reaches the p2p
layer only through the services (never libp2p itself).
"""
