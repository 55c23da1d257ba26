"""The BFT engine: Tendermint's Algorithm 1 ("The latest gossip on BFT consensus",
Buchman, Kwon, Milosevic, 2018) as a pure state machine.

`engine.step(state, event) -> (state, effects)`: no IO, no clock, no randomness. Time
arrives as timeout events the host scheduled; blocks are opaque values identified by their
hash, judged valid or not by the host before the proposal is fed in; votes arrive already
authenticated (the host checks signatures, as CometBFT's reactor does). The double-sign
guard (`guard.py`) is the pure rule the node persists before any signature leaves it.
"""
