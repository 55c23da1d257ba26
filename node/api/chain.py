"""Chain routes: /status, /params, /validators, /blocks/latest, /blocks/{height}."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consensus.address import to_bech32
from consensus.block import Block
from consensus.params import DENOM, UJEV_PER_JEV
from node.api.errors import ApiError
from node.api.metrics import peer_count
from node.api.routing import MAX_INT64, Api, Operation, Param, Reply, json_response
from node.api.schemas import ref

DECIMALS = len(str(UJEV_PER_JEV)) - 1


@cache
def package_version() -> str:
    """The installed jevons version (read once: the lookup parses package metadata)."""
    try:
        return version("jevons")
    except PackageNotFoundError:
        return "unknown"


async def get_status(api: Api, request: Request, args: dict[str, Any]) -> Response:
    host, services = api.host, api.services
    state, engine = host.state, host.engine
    return json_response({
        **api.node_info, "version": package_version(), "chain_id": host.chain_id,
        "genesis_hash": state.genesis_hash.hex(), "height": host.height,
        "tip": state.last_block_hash.hex(), "time_ms": state.time_ms, "round": engine.round,
        "step": engine.step.name.lower(), "peers": peer_count(services),
        "mempool": len(host.mempool), "mempool_bytes": host.mempool.size_bytes,
        "mempool_queued": host.mempool.queued,
        "catching_up": services.catching_up, "min_fee": host.params.min_fee,
        "address": to_bech32(host.address), "validator": host.address in host.validator_set(),
    })


async def get_params(api: Api, request: Request, args: dict[str, Any]) -> Response:
    host = api.host
    return json_response({"chain_id": host.chain_id,
                          "genesis_hash": host.state.genesis_hash.hex(), "denom": DENOM,
                          "decimals": DECIMALS, "params": host.params.to_dict()})


async def get_validators(api: Api, request: Request, args: dict[str, Any]) -> Response:
    host = api.host
    vset, height, round_ = host.validator_set(), host.height + 1, host.engine.round
    return json_response({
        "height": height, "round": round_, "proposer": to_bech32(vset.proposer(height, round_)),
        "total_stake": vset.total,
        "validators": [{"address": to_bech32(v.address), "pubkey": v.pubkey.hex(),
                        "stake": v.stake, "voting_share": round(v.stake / vset.total, 6)}
                       for v in vset.validators],
    })


def block_json(block: Block) -> dict[str, Any]:
    h = block.header
    return {"height": h.height, "hash": block.hash().hex(), "time_ms": h.time_ms,
            "prev_hash": h.prev_hash.hex(), "proposer": to_bech32(h.proposer),
            "state_root": h.state_root.hex(), "tx_root": h.tx_root.hex(),
            "validators_hash": h.validators_hash.hex(),
            "last_commit_round": block.last_commit.round,
            "last_commit_signers": len(block.last_commit.signatures),
            "tx_count": len(block.txs), "txs": [tx_hash.hex() for tx_hash in block.tx_hashes],
            "evidence": len(block.evidence)}


def load_block(api: Api, height: int) -> Block:
    host = api.host
    raw = host.store.get_block(height) if 0 < height <= host.height else None
    if raw is None:
        raise ApiError(404, "not_found", f"no block at height {height}: the tip is block "
                                         f"{host.height}")
    return Block.decode(raw, host.params.max_block_bytes, host.params.max_block_txs)


async def get_block(api: Api, request: Request, args: dict[str, Any]) -> Response:
    return json_response(block_json(load_block(api, args["height"])))


async def get_latest_block(api: Api, request: Request, args: dict[str, Any]) -> Response:
    if api.host.height == 0:
        raise ApiError(404, "not_found", "no block yet: the chain is at genesis (height 0)")
    return json_response(block_json(load_block(api, api.host.height)))


HEIGHT = Param("height", {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
               "block height", "bad_height", f"a decimal integer 1..{MAX_INT64}")
BLOCK_REPLY = Reply("the block: header fields and its transactions' hashes", ref("Block"))

OPERATIONS = (
    Operation("GET", "/status", "getStatus", "Node and chain status", get_status,
              {200: Reply("height, tip, consensus round and step, peers, mempool, sync state, "
                          "the smallest fee", ref("Status"))},
              description="A wallet reads `chain_id` and `min_fee` here before signing."),
    Operation("GET", "/params", "getParams", "Chain parameters", get_params,
              {200: Reply("the chain id, denomination and every chain parameter",
                          ref("Params"))}),
    Operation("GET", "/validators", "getValidators", "The current validator set",
              get_validators,
              {200: Reply("the set signing the next height, with stake and voting share",
                          ref("Validators"))}),
    Operation("GET", "/blocks/latest", "getLatestBlock", "The last committed block",
              get_latest_block,
              {200: BLOCK_REPLY, 404: Reply("not_found: no block yet (height 0)")}),
    Operation("GET", "/blocks/{height}", "getBlock", "A committed block by height", get_block,
              {200: BLOCK_REPLY, 400: Reply("bad_height: not a decimal integer 1..2^63-1"),
               404: Reply("not_found: above the tip (or a path that names no route)")},
              (HEIGHT,)),
)
