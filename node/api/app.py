"""JSON HTTP API routes. Every bad request gets a 4xx with {"error": code, "message": …}."""

from __future__ import annotations

import json
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from consensus.address import from_bech32, to_bech32
from consensus.block import Block
from consensus.errors import DecodeError, InvalidAddress
from consensus.hashing import sha256
from consensus.tx import Stake, Transfer, Tx, Unstake
from node.runtime.mempool import MempoolReject
from node.runtime.services import NodeServices

MAX_BATCH = 2_000
MAX_BODY_BYTES = 2 * 4096 * MAX_BATCH + 1024  # hex doubles each tx (<= 4 KiB)
WAIT_LIMIT_S = 60.0


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def tx_json(tx: Tx) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": type(tx.body).__name__.lower()}
    if isinstance(tx.body, Transfer):
        body |= {"to": to_bech32(tx.body.to), "amount": tx.body.amount}
    elif isinstance(tx.body, Stake | Unstake):
        body |= {"amount": tx.body.amount}
    return {"hash": tx.hash().hex(), "sender": to_bech32(tx.sender), "nonce": tx.nonce,
            "fee": tx.fee, **body}


def build_app(services: NodeServices, node_info: dict[str, Any]) -> Starlette:
    host = services.host

    async def status(request: Request) -> JSONResponse:
        e = host.engine
        return JSONResponse({
            **node_info, "chain_id": host.chain_id, "height": host.height,
            "tip": host.state.last_block_hash.hex(), "time_ms": host.state.time_ms,
            "round": e.round, "step": e.step.name.lower(), "peers": len(services.net.peers()),
            "mempool": len(host.mempool), "catching_up": services.catching_up,
        })

    async def account(request: Request) -> JSONResponse:
        try:
            address = from_bech32(request.path_params["address"])
        except InvalidAddress as exc:
            return error(400, "bad_address", str(exc))
        acct = host.state.get_account(address)
        entry = host.state.staking.bonded.get(address)
        return JSONResponse({"address": to_bech32(address),
                             "balance": acct.balance if acct else 0,
                             "nonce": acct.nonce if acct else 0,
                             "stake": entry.stake if entry else 0})

    async def block(request: Request) -> JSONResponse:
        try:
            height = int(request.path_params["height"])
        except ValueError:
            return error(400, "bad_height", "height must be an integer")
        raw = host.store.get_block(height) if 0 < height <= host.height else None
        if raw is None:
            return error(404, "not_found", f"no block at height {height} (tip {host.height})")
        b = Block.decode(raw, host.params.max_block_bytes, host.params.max_block_txs)
        return JSONResponse({"height": b.height, "hash": b.hash().hex(),
                             "time_ms": b.header.time_ms, "proposer": to_bech32(b.header.proposer),
                             "txs": [sha256(t).hex() for t in b.txs],
                             "evidence": len(b.evidence)})

    async def tx_status(request: Request) -> JSONResponse:
        try:
            tx_hash = bytes.fromhex(request.path_params["hash"])
        except ValueError:
            return error(400, "bad_hash", "tx hash must be 64 hex characters")
        location = host.store.get_tx_location(tx_hash)
        if location is not None:
            return JSONResponse({"hash": tx_hash.hex(), "status": "committed",
                                 "height": location[0], "index": location[1]})
        if tx_hash in host.mempool:
            return JSONResponse({"hash": tx_hash.hex(), "status": "pending"})
        return error(404, "not_found", "transaction is neither committed nor pending here")

    async def broadcast(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
            if "txs" in data:
                return await broadcast_batch([bytes.fromhex(t) for t in data["txs"]])
            raw = bytes.fromhex(data["tx"])
            wait = bool(data.get("wait", False))
        except (ValueError, KeyError, TypeError):
            return error(400, "bad_request",
                         'body must be {"tx": "<hex>", "wait": false} or {"txs": ["<hex>", …]}')
        try:
            tx_hash = host.mempool.add(raw, host.state)
            tx = Tx.decode(raw, host.params.max_tx_bytes)
        except MempoolReject as exc:
            return error(422, exc.code, exc.reason)
        except DecodeError as exc:
            return error(422, "malformed", str(exc))
        await services.broadcast_txs([raw])
        if not wait:
            return JSONResponse({"hash": tx_hash.hex(), "status": "pending"}, status_code=202)
        with trio.move_on_after(WAIT_LIMIT_S):
            while host.store.get_tx_location(tx_hash) is None:
                await host.progress.wait()
        location = host.store.get_tx_location(tx_hash)
        if location is None:
            return JSONResponse({"hash": tx_hash.hex(), "status": "pending"}, status_code=202)
        return JSONResponse({**tx_json(tx), "status": "committed", "height": location[0]})

    async def broadcast_batch(raws: list[bytes]) -> JSONResponse:
        if len(raws) > MAX_BATCH:
            return error(413, "too_large", f"at most {MAX_BATCH} transactions per batch")
        host.verifier.verify_raw(raws, host.params.max_tx_bytes)  # on all cores, once
        accepted, rejected = [], []
        for index, raw in enumerate(raws):
            try:
                host.mempool.add(raw, host.state)
                accepted.append(raw)
            except MempoolReject as exc:
                rejected.append({"index": index, "error": exc.code, "message": exc.reason})
        await services.broadcast_txs(accepted)
        return JSONResponse({"accepted": len(accepted), "rejected": rejected},
                            status_code=202 if accepted else 422)

    return Starlette(routes=[
        Route("/status", status),
        Route("/accounts/{address}", account),
        Route("/blocks/{height}", block),
        Route("/txs/{hash}", tx_status),
        Route("/txs", broadcast, methods=["POST"]),
    ])


async def serve_api(app: Starlette, listen: str,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [listen]
    config.accesslog = None
    config.errorlog = None
    task_status.started()
    await serve(app, config)
