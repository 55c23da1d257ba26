"""A deterministic simulator for the BFT engine: N validators in one process.

Owns: a seeded fake network with a virtual clock (`network`), the simulated host around the
real engine with its durable WAL, sign state and chain (`node`, `storage`, `wire`), swapped
Byzantine hooks (`byzantine`), named fault scenarios (`scenarios`), the safety and liveness
checker (`checker`) and the run/replay entry points (`runner`).

Pure Python: no threads, no wall clock, no global randomness. Every random choice comes from
one `random.Random(seed)`, so `runner.replay(seed, scenario)` reproduces a run exactly (same
event trace hash). Imports the project's packages; nothing in the project imports this.
"""
