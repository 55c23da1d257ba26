"""Jevons consensus core: everything every honest node must compute bit for bit.

Owns canonical encoding, hashing, signatures, addresses, Merkle roots, the chain's types
(transactions, headers, blocks, votes, commits), chain parameters and the state transition.

Must not import: node, verifier, kernels, genesis, trio, libp2p, plyvel, numpy, cupy; must
not read the wall clock or global randomness (time and randomness come in as arguments).
The rule is checked by import-linter (see pyproject.toml) in the test suite.
"""
