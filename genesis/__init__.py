"""Genesis documents and network presets.

Owns the genesis file format (JSON), its loader and validator (every rule names the field it
rejects), the initial state built from it, and generation of node homes for local networks.
May import consensus only (and the stdlib); never node, verifier, kernels, trio, libp2p,
plyvel.
"""
