"""The running node: WAL, mempool and the host loop that feeds the BFT engine and executes
its effects over the p2p layer, LevelDB store and signer."""
