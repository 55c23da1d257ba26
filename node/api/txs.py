"""Transaction routes: GET /txs/{hash} and POST /txs (one transaction, optionally waiting
for its inclusion, or a batch)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response

from consensus.address import ADDRESS_LEN, to_bech32
from consensus.block import Block
from consensus.hashing import sha256
from consensus.tx import Tx, TxKind
from node.api.errors import ApiError, echo
from node.api.routing import Api, Operation, Param, Reply, json_response
from node.api.schemas import HEX32, MAX_BATCH, ref
from node.runtime.mempool import BUSY, MempoolReject

MAX_TX_HEX_BYTES = 64 * 1024  # refused before decoding (the mempool checks max_tx_bytes)
MAX_BODY_BYTES = 2 * 4096 * MAX_BATCH + 1024 * 1024  # a full batch of 4 KiB txs, in hex
WAIT_LIMIT_S = 60.0
ADDRESS_FIELDS = frozenset({"to", "provider", "buyer", "validator", "address"})
SUBMIT_HELP = 'expected {"tx": "<hex>", "wait": false} or {"txs": ["<hex>", …]}'


def value_json(name: str, value: Any) -> Any:
    """A tx body field for JSON: addresses in bech32, other bytes in hex, nested values
    field by field (so new transaction kinds render without an edit here)."""
    if isinstance(value, bytes):
        return (to_bech32(value) if name in ADDRESS_FIELDS and len(value) == ADDRESS_LEN
                else value.hex())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: value_json(f.name, getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [value_json(name, v) for v in value]
    return value


def tx_json(tx: Tx) -> dict[str, Any]:
    kind = TxKind(tx.kind).name.lower()
    body = value_json("body", tx.body)
    return {"kind": kind, "sender": to_bech32(tx.sender), "nonce": tx.nonce, "fee": tx.fee,
            **{k: v for k, v in body.items() if k not in {"hash", "status", "kind"}}}


def committed_tx(api: Api, tx_hash: bytes, height: int, index: int) -> dict[str, Any]:
    host = api.host
    found: dict[str, Any] = {"hash": tx_hash.hex(), "status": "committed", "height": height,
                             "index": index}
    raw_block = host.store.get_block(height)
    if raw_block is None:
        return found
    block = Block.decode(raw_block, host.params.max_block_bytes, host.params.max_block_txs)
    if index < len(block.txs) and sha256(block.txs[index]) == tx_hash:
        found.update(tx_json(Tx.decode(block.txs[index], host.params.max_tx_bytes)))
    return found


def committed_location(host: Any, tx_hash: bytes) -> tuple[int, int] | None:
    """Where the tx was committed, once this node has moved onto that block: while a block
    is being written (its fsync runs off the loop) its txs are already in the store's index
    but the node, its accounts and /blocks still show the block before."""
    location = host.store.get_tx_location(tx_hash)
    return location if location is not None and location[0] <= host.height else None


async def get_tx(api: Api, request: Request, args: dict[str, Any]) -> Response:
    host = api.host
    tx_hash = bytes.fromhex(args["hash"])
    location = committed_location(host, tx_hash)
    if location is not None:
        return json_response(committed_tx(api, tx_hash, *location))
    if tx_hash in host.mempool:
        tx = host.cache.get(tx_hash)
        details = tx_json(tx) if tx is not None else {}
        return json_response({"hash": tx_hash.hex(), "status": "pending", **details})
    raise ApiError(404, "not_found", f"transaction {tx_hash.hex()} is neither committed nor "
                                     "pending on this node")


# --- POST /txs ----------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"request body is over {limit} bytes; send at most "
                                      f"{MAX_BATCH} transactions per request")


HEX_DIGITS = re.compile("[0-9a-fA-F]*")


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "bad_json", f"body is not JSON ({exc}); {SUBMIT_HELP}") from None


def parse_hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{what} must be a hex string, got "
                                           f"{type(value).__name__}; {SUBMIT_HELP}")
    if len(value) > 2 * MAX_TX_HEX_BYTES:
        raise ApiError(400, "bad_tx", f"{what} is {len(value) // 2} bytes, over the "
                                      f"{MAX_TX_HEX_BYTES}-byte limit of a transaction")
    if len(value) % 2 or not HEX_DIGITS.fullmatch(value):
        raise ApiError(400, "bad_tx", f"{what} must be an even number of hex digits, got "
                                      f"{echo(value)}")
    return bytes.fromhex(value)


def check_keys(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s) {', '.join(map(echo, unknown))}; "
                                           f"{SUBMIT_HELP}")


async def post_txs(api: Api, request: Request, args: dict[str, Any]) -> Response:
    data = parse_json(await read_body(request, MAX_BODY_BYTES))
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", f"body must be a JSON object, got "
                                           f"{type(data).__name__}; {SUBMIT_HELP}")
    if "txs" in data:
        check_keys(data, {"txs"})
        return await submit_batch(api, data["txs"])
    if "tx" not in data:
        raise ApiError(400, "bad_request", f"body has neither 'tx' nor 'txs'; {SUBMIT_HELP}")
    check_keys(data, {"tx", "wait"})
    wait = data.get("wait", False)
    if not isinstance(wait, bool):
        raise ApiError(400, "bad_request", f"wait must be true or false, got {echo(wait)}")
    return await submit_one(api, parse_hex(data["tx"], "tx"), wait)


async def submit_one(api: Api, raw: bytes, wait: bool) -> Response:
    host = api.host
    try:
        tx_hash = host.mempool.add(raw, host.state)
    except MempoolReject as exc:
        raise ApiError(503 if exc.code in BUSY else 422, exc.code, exc.reason) from None
    await gossip(api, [raw])
    if wait:
        with trio.move_on_after(WAIT_LIMIT_S):
            while committed_location(host, tx_hash) is None:
                await host.progress.wait()
        location = committed_location(host, tx_hash)
        if location is not None:
            return json_response(committed_tx(api, tx_hash, *location))
    return json_response({"hash": tx_hash.hex(), "status": "pending"}, 202)


async def submit_batch(api: Api, items: object) -> Response:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        got = f"{len(items)} items" if isinstance(items, list) else type(items).__name__
        raise ApiError(400, "bad_request", f"txs must be a list of 1..{MAX_BATCH} hex strings, "
                                           f"got {got}")
    raws = [parse_hex(item, f"txs[{i}]") for i, item in enumerate(items)]
    accepted, refused = await api.host.admit(raws)  # signatures verified on all cores, once
    rejected = [{"index": index, "error": exc.code, "message": exc.reason}
                for index, exc in refused]
    await gossip(api, accepted)
    if not accepted and all(exc.code in BUSY for _, exc in refused):
        code = ("queue_full" if all(exc.code == "queue_full" for _, exc in refused)
                else "mempool_full")
        raise ApiError(503, code, f"none of the {len(raws)} transactions was admitted: "
                                  f"{refused[0][1].reason}", accepted=0, rejected=rejected)
    if not accepted:
        raise ApiError(422, "all_rejected", f"none of the {len(raws)} transactions was "
                                            "admitted; see `rejected`", accepted=0,
                       rejected=rejected)
    return json_response({"accepted": len(accepted), "rejected": rejected}, 202)


async def gossip(api: Api, raws: list[bytes]) -> None:
    """Queue admitted transactions for gossip (waits only while the node's gossip outbox is
    full). A failed publish is logged by the node, not the client's problem: they stay in
    the mempool, which this node proposes from and re-gossips while a height stalls."""
    await api.services.broadcast_txs(raws)


HASH = Param("hash", HEX32 | {"pattern": "^[0-9a-fA-F]{64}$"}, "transaction hash (SHA-256 of "
             "its bytes)", "bad_hash", "64 hex characters")
SUBMIT_BODY = {"oneOf": [ref("SubmitTx"), ref("SubmitTxs")]}

OPERATIONS = (
    Operation("GET", "/txs/{hash}", "getTx", "A transaction by hash: committed or pending",
              get_tx,
              {200: Reply("committed (with height and index) or pending, with its decoded "
                          "fields", ref("Tx")),
               400: Reply("bad_hash: not 64 hex characters"),
               404: Reply("not_found: neither committed nor in this node's mempool (or a "
                          "path that names no route)")},
              (HASH,), tag="txs"),
    Operation("POST", "/txs", "submitTxs", "Submit one signed transaction or a batch",
              post_txs,
              {200: Reply("committed: `wait` was true and the tx was included", ref("Tx")),
               202: Reply("pending: admitted to the mempool and gossiped (a single tx), or "
                          "the batch's count of admitted txs and each rejection",
                          {"oneOf": [ref("TxPending"), ref("BatchResult")]}),
               400: Reply("bad_json: the body is not JSON; bad_request: not one of the two "
                          "shapes (wrong types, unknown fields, 0 or over 2000 txs); bad_tx: "
                          "not an even number of hex digits, or over 64 KiB"),
               413: Reply("too_large: the body is over the limit"),
               422: Reply("the tx was refused, with the mempool's code: malformed, "
                          "too_large, wrong_chain_id, bad_tx_signature, fee_too_low, "
                          "unknown_sender, nonce_reused, nonce_too_far, nonce_pending, "
                          "cannot_pay, duplicate, …; a batch none of which was "
                          "admitted: all_rejected, with `rejected` as in a 202"),
               503: Reply("mempool_full: this node's mempool is full; queue_full: too many "
                          "txs already wait for a missing nonce (send it first); a batch "
                          "gets one of them when every tx was refused so (`rejected` as in "
                          "a 202); retry later")},
              body=SUBMIT_BODY, tag="txs",
              description="A single tx with `wait: true` answers when it is committed (200), "
                          "or after 60 s with 202 pending. A batch never waits."),
)
