"""`jevons wallet …`: keys in an encrypted keystore, balances, transfers, staking and the
compute market (provider registration, jobs, results, market statistics).

A thin layer over node/wallet. Options shared by every command (--node, -o/--output,
--yes, --wallet-dir) are accepted before or after the subcommand. Exit codes are those of
node/wallet/errors.py (docs/wallet.md): every failure prints one `Error: …` line.

The group and its shared plumbing live in base.py; importing keys, txs and market registers
their commands on it.
"""

from node.cli.wallet import keys, market, txs
from node.cli.wallet.base import Settings, wallet

__all__ = ["Settings", "keys", "market", "txs", "wallet"]
