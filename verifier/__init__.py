"""Spot-check verification of providers' work: output commitments, challenge derivation,
Freivalds' check, opened rows against a Merkle root, and the detection-probability bound.

May import consensus and kernels; never node, genesis, trio, libp2p or plyvel.
The checks arrive with the proof-of-compute work (issue: proof of compute).
"""
