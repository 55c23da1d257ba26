"""JSON schemas of the API's bodies (the `components/schemas` of /openapi.json).

Handlers build their bodies to these shapes; the functional fuzz test checks every response
the node gives against them. Amounts are integers in base units (ujev).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from consensus.params import ChainParams

MAX_BATCH = 2_000  # transactions in one POST /txs batch

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes, hex"}
ADDRESS = {"type": "string", "pattern": "^jev1[02-9ac-hj-np-z]{38}$",
           "description": "bech32 account address"}
UINT = {"type": "integer", "minimum": 0}
HEX_TX = {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$", "maxLength": 2 * 64 * 1024,
          "description": "a signed transaction's canonical bytes, hex"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: list[str] | None = None,
        extra: bool = False, description: str = "") -> dict[str, Any]:
    """An object schema; every property is required unless `required` says otherwise."""
    schema: dict[str, Any] = {
        "type": "object", "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": extra,
    }
    if description:
        schema["description"] = description
    return schema


def params_schema() -> dict[str, Any]:
    """Chain parameters, one integer property per ChainParams field (so parameters added to
    the chain appear here without an edit)."""
    return obj({f.name: UINT for f in fields(ChainParams)}, extra=True)


ERROR = obj({"error": {"type": "string", "description": "stable, machine-readable code"},
             "message": {"type": "string", "description": "what happened and how to fix it"}},
            extra=True, description="Every 4xx/5xx body; some add fields (e.g. `rejected`).")

STATUS = obj({
    "moniker": {"type": "string"}, "role": {"type": "string"}, "peer_id": {"type": "string"},
    "version": {"type": "string"}, "chain_id": {"type": "string"}, "genesis_hash": HEX32,
    "height": {**UINT, "description": "last committed block (0: only genesis)"},
    "tip": {**HEX32, "description": "hash of the last committed block (genesis hash at 0)"},
    "time_ms": {**UINT, "description": "time of the last committed block, ms since epoch"},
    "round": UINT, "step": {"type": "string"},
    "peers": UINT, "mempool": {**UINT, "description": "pending transactions"},
    "mempool_bytes": UINT,
    "mempool_queued": {**UINT, "description": "pending transactions that wait for a missing "
                                              "nonce of their sender"},
    "catching_up": {"type": "boolean"},
    "min_fee": {**UINT, "description": "smallest fee a transaction may pay, ujev"},
    "address": {**ADDRESS, "description": "the node key's account address"},
    "validator": {"type": "boolean", "description": "the node key is in the current set"},
}, extra=True)

PARAMS = obj({
    "chain_id": {"type": "string"}, "genesis_hash": HEX32,
    "denom": {"type": "string", "description": "base unit name (ujev)"},
    "decimals": {**UINT, "description": "1 JEV = 10^decimals base units"},
    "params": ref("ChainParams"),
})

VALIDATOR = obj({
    "address": ADDRESS, "pubkey": {**HEX32, "description": "Ed25519 public key, hex"},
    "stake": UINT,
    "voting_share": {"type": "number", "minimum": 0, "maximum": 1,
                     "description": "stake / total stake of the set"},
})

VALIDATORS = obj({
    "height": {**UINT, "description": "the height this set signs (tip + 1)"},
    "round": UINT, "proposer": {**ADDRESS, "description": "proposer of (height, round)"},
    "total_stake": UINT, "validators": {"type": "array", "items": ref("Validator")},
})

ACCOUNT = obj({
    "address": ADDRESS, "balance": UINT,
    "nonce": {**UINT, "description": "nonce of the account's next transaction"},
    "stake": {**UINT, "description": "bonded stake"},
    "unbonding": {"type": "array", "items": obj({"amount": UINT, "release_height": UINT})},
})

BLOCK = obj({
    "height": {"type": "integer", "minimum": 1}, "hash": HEX32, "time_ms": UINT,
    "prev_hash": HEX32, "proposer": ADDRESS, "state_root": HEX32, "tx_root": HEX32,
    "validators_hash": HEX32, "last_commit_round": UINT,
    "last_commit_signers": {**UINT, "description": "precommits certifying the previous block"},
    "tx_count": UINT, "txs": {"type": "array", "items": HEX32, "description": "tx hashes"},
    "evidence": {**UINT, "description": "pieces of double-sign evidence"},
})

TX = obj({
    "hash": HEX32, "status": {"type": "string", "enum": ["committed", "pending"]},
    "height": {"type": "integer", "minimum": 1}, "index": UINT,
    "kind": {"type": "string", "description": "transfer, stake, unstake, …"},
    "sender": ADDRESS, "nonce": UINT, "fee": {"type": "integer"},
}, required=["hash", "status"], extra=True,
    description="A transaction by hash. `height`/`index` when committed; the decoded fields "
                "(kind, sender, nonce, fee and the kind's own fields, addresses in bech32, "
                "bytes in hex) whenever this node knows them.")

TX_PENDING = obj({"hash": HEX32, "status": {"type": "string", "enum": ["pending"]}})

BATCH_RESULT = obj({
    "accepted": {**UINT, "description": "transactions admitted to the mempool and gossiped"},
    "rejected": {"type": "array", "items": ref("TxRejection")},
})

TX_REJECTION = obj({"index": UINT, "error": {"type": "string"}, "message": {"type": "string"}})

SUBMIT_ONE = obj({"tx": HEX_TX, "wait": {
    "type": "boolean", "default": False,
    "description": "answer when the tx is committed (200), or 202 after 60 s"}},
    required=["tx"])

SUBMIT_BATCH = obj({"txs": {"type": "array", "items": HEX_TX, "minItems": 1,
                            "maxItems": MAX_BATCH}})

SCHEMAS: dict[str, Any] = {
    "Error": ERROR, "Status": STATUS, "Params": PARAMS, "ChainParams": params_schema(),
    "Validator": VALIDATOR, "Validators": VALIDATORS, "Account": ACCOUNT, "Block": BLOCK,
    "Tx": TX, "TxPending": TX_PENDING, "BatchResult": BATCH_RESULT,
    "TxRejection": TX_REJECTION, "SubmitTx": SUBMIT_ONE, "SubmitTxs": SUBMIT_BATCH,
}
