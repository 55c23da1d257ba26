"""The wallet: encrypted keystores, mnemonic recovery and a client for the node's HTTP API.

Owns key generation and derivation (BIP39 mnemonics, SLIP-0010 Ed25519), the keystore file
format (argon2id + XSalsa20-Poly1305, one JSON file per key), password and mnemonic input,
transaction preparation (local checks, signing with consensus.tx), the HTTP client, and the
buyer's and provider's side of the compute market: job spec files, provider terms, following
a job, checking a result against its committed root. `node/cli/wallet/` is the thin
`jevons wallet` layer over it. May import consensus, node utilities, and kernels and
verifier (only where a result is checked, lazily: numpy is slow to import); must not import
node.runtime, node.p2p or node.api (the wallet talks to a node only over HTTP).
"""
