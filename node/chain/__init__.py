"""Block production and execution around the pure core: signature pre-verification on both
cores, the single-validator dev chain, and (later) the consensus host loop."""
