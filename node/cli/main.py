"""The `jevons` command: a thin layer over node/, genesis/ and consensus/.

Exit codes: 0 success; 1 the command failed (bad file contents, a refused operation, a node
error), with a one-line `Error: …` on stderr; 2 usage error (unknown flag, bad flag value,
missing path), printed by click.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from consensus.address import address_from_pubkey, to_bech32
from consensus.errors import JevonsError
from genesis.dev import dev_addresses, make_genesis
from genesis.document import CHAIN_ID_RE, load_genesis
from node.cli.wallet import wallet
from node.config import ROLES, ChainConfig, NodeConfig
from node.errors import NodeError, first_of
from node.home import write_home
from node.keys import new_private_key
from node.testnet import create_testnet


class JevonsGroup(click.Group):
    """Turns every deliberate error into `Error: <reason>` and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except JevonsError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def check_chain_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not CHAIN_ID_RE.match(value):
        raise click.BadParameter(f"{value!r} must be 2-48 of a-z, 0-9 and '-'")
    return value


home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                           required=True, help="Node home directory.")
chain_id_option = click.option("--chain-id", default="jevons-devnet", show_default=True,
                               callback=check_chain_id, help="Chain identifier.")


@click.group(cls=JevonsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jevons")
def cli() -> None:
    """Jevons: a proof-of-compute blockchain node."""


@cli.command()
@home_option
@chain_id_option
@click.option("--moniker", default="node0", show_default=True, help="This node's name.")
@click.option("--genesis", "genesis_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Join the chain of this genesis file instead of "
              "creating a single-validator dev chain.")
@click.option("--accounts", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="Dev accounts funded in a new dev genesis.")
def init(home: Path, chain_id: str, moniker: str, genesis_file: Path | None,
         accounts: int) -> None:
    """Create a node home: keys, config and genesis.

    Without --genesis the home gets a new single-validator dev chain with this node as its
    validator and the well-known dev accounts funded.
    """
    key = new_private_key()
    if genesis_file is not None:
        genesis = load_genesis(genesis_file)
    else:
        genesis = make_genesis(chain_id, now_ms(), [(moniker, key.public)],
                               dev_addresses(accounts))
    write_home(home, NodeConfig(moniker=moniker), genesis, key)
    click.echo(f"initialised {home} for chain {genesis.chain_id} "
               f"(validator {to_bech32(address_from_pubkey(key.public))})")


@cli.command()
@click.option("--validators", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--providers", type=click.IntRange(0, 63), default=0, show_default=True)
@click.option("--accounts", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="Funded dev accounts (well-known keys, written to OUT/accounts.json).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to create (must not exist or be empty).")
@chain_id_option
@click.option("--base-port", type=click.IntRange(1024, 65535), default=26600,
              show_default=True, help="Node i uses base+2i (p2p) and base+2i+1 (API).")
def testnet(validators: int, providers: int, accounts: int, out: Path, chain_id: str,
            base_port: int) -> None:
    """Generate homes for a local network sharing one genesis."""
    nodes = create_testnet(out, validators, providers, accounts, chain_id, base_port, now_ms())
    for n in nodes:
        click.echo(f"{n.name:8} {n.role:9} {n.address}  p2p {n.p2p}  api {n.api}")
    click.echo(f"wrote {len(nodes)} homes and accounts.json to {out}")


@cli.group()
def genesis() -> None:
    """Inspect genesis files."""


@genesis.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def genesis_validate(file: Path) -> None:
    """Check a genesis file; print its chain id and hash."""
    g = load_genesis(file)
    click.echo(f"ok: chain {g.chain_id}, {len(g.validators)} validator(s), "
               f"{len(g.accounts)} account(s), hash {g.hash().hex()}")


@cli.group()
def node() -> None:
    """Run a node."""


@node.command("start")
@home_option
@click.option("--blocks", type=click.IntRange(0), default=0,
              help="Stop after this many new blocks (0: run until Ctrl-C).")
@click.option("--txs-per-block", type=click.IntRange(0, 10_000), default=0,
              help="Single-validator dev chains: demo transfers per block.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one JSON object per line (structured logs).")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="Override [node] role of config.toml for this run: validator (signs "
                   "blocks, checks jobs it is drawn for), provider (runs jobs, terms from "
                   "[provider]) or full (follows the chain).")
@click.option("--new-sign-state", is_flag=True,
              help="Validators: start from a fresh sign state if data/signer/sign_state.bin "
                   "is missing. Only when it is truly lost and the chain is past the last "
                   "height this key signed: signing twice at one height is slashed.")
def node_start(home: Path, blocks: int, txs_per_block: int, log_level: str,
               log_format: str, role: str | None, new_sign_state: bool) -> None:
    """Start the node of HOME.

    A single-validator dev home produces blocks locally; any other home joins its network
    over libp2p and runs BFT consensus (validator role) or follows it (full, provider).
    """
    import dataclasses

    from node.home import open_home
    from node.logging_setup import setup_logging

    setup_logging(log_level, log_format)
    opened = open_home(home)
    if role is not None:
        opened = dataclasses.replace(
            opened, config=dataclasses.replace(opened.config, role=role))
    if opened.genesis.single_validator_dev_chain:
        from node.runner import run_dev_chain

        run_dev_chain(home, blocks, txs_per_block, echo=click.echo)
        return
    import trio

    from node.runtime.node import run_node

    try:
        height = trio.run(run_node, opened, None, blocks, new_sign_state)
    except BaseExceptionGroup as group:  # trio wraps task errors; show ours as one line
        raise first_jevons_error(group) or group from None
    click.echo(f"stopped at height {height}")


def first_jevons_error(group: BaseExceptionGroup) -> JevonsError | None:
    """The error to show for a node that stopped: ours, or else a system error (a full
    disk, a directory made read-only) as one line naming the file, not a traceback."""
    found = first_of(group, JevonsError)
    if found is not None:
        return found
    system = first_of(group, OSError)
    if system is None:
        return None
    where = f" on {system.filename}" if system.filename else ""
    return NodeError(f"the node stopped: system error{where}: {system.strerror or system}")


@cli.command()
@click.option("--validators", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Validators, each its own process (1: a single in-process dev chain).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the network here and resume it on the next run "
                   "(default: a temporary directory, deleted on exit).")
@click.option("--accounts", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="Funded dev accounts to create and print.")
@click.option("--blocks", type=click.IntRange(0), default=0,
              help="Stop after this many new blocks (0: run until Ctrl-C).")
@click.option("--tx-rate", type=click.FloatRange(0, 10_000), default=5.0, show_default=True,
              help="Demo transfers per second between dev accounts.")
@click.option("--base-port", type=click.IntRange(1024, 65535), default=26600,
              show_default=True, help="Node i uses base+2i (p2p) and base+2i+1 (API).")
@click.option("--block-time", type=click.FloatRange(0.01, 600), default=1.0, show_default=True,
              help="Single-validator dev chain only: seconds between blocks.")
@click.option("--providers", type=click.IntRange(0, 16), default=1, show_default=True,
              help="Compute providers, each its own process (with 2+ validators).")
@click.option("--jobs", "job_rate", type=click.FloatRange(0, 60), default=0.0,
              help="Demo compute jobs to submit per minute (0: none); their progress through "
                   "the market is shown.")
@click.option("--new-sign-state", is_flag=True,
              help="Start validators whose sign state is missing from a fresh one: a kept "
                   "--home made by an earlier version and stopped before its first block "
                   "(see `jevons node start --new-sign-state`).")
@chain_id_option
def devnet(validators: int, home: Path | None, accounts: int, blocks: int, tx_rate: float,
           base_port: int, block_time: float, providers: int, job_rate: float,
           new_sign_state: bool, chain_id: str) -> None:
    """Run a local network: N validators on loopback, funded dev accounts, demo traffic."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jevons-devnet-") as tmp:
        root = home or Path(tmp)
        if validators == 1:
            run_single(root / "node0", accounts, blocks, block_time, tx_rate, chain_id)
            return
        if not (root / "node0" / "config.toml").exists():
            create_testnet(root, validators, providers, accounts, chain_id, base_port,
                           now_ms())
        click.echo(f"devnet home: {root}" + ("" if home else " (temporary)"))
        keys = print_accounts(root / "node0")
        from node.devnet import run_devnet

        code = run_devnet(root, tx_rate, blocks, click.echo, keys, job_rate, new_sign_state)
    if code:
        raise SystemExit(code)


def print_accounts(home: Path) -> list:
    from node.home import open_home
    from node.runner import known_dev_keys

    keys = known_dev_keys(open_home(home).genesis)
    if keys:
        click.echo(f"Dev accounts ({len(keys)}), funded at genesis. Their seeds are public "
                   "test keys: never send real value to them.")
        for i, key in enumerate(keys):
            click.echo(f"  ({i}) {to_bech32(address_from_pubkey(key.public))}  "
                       f"seed {key.seed.hex()}")
    return keys


def run_single(root: Path, accounts: int, blocks: int, block_time: float, tx_rate: float,
               chain_id: str) -> None:
    from node.runner import run_dev_chain

    if not (root / "config.toml").exists():
        key = new_private_key()
        genesis = make_genesis(chain_id, now_ms(), [("node0", key.public)],
                               dev_addresses(accounts))
        write_home(root, NodeConfig(moniker="node0", chain=ChainConfig(int(block_time * 1000))),
                   genesis, key)
    click.echo(f"single-validator dev chain: {root}")
    print_accounts(root)
    run_dev_chain(root, blocks, int(tx_rate * block_time), echo=click.echo,
                  block_time_ms=int(block_time * 1000))


cli.add_command(wallet)


def main() -> None:
    cli(prog_name="jevons")


if __name__ == "__main__":
    main()
