"""Account routes: /accounts/{address}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from consensus.address import from_bech32, to_bech32
from consensus.errors import InvalidAddress
from node.api.errors import ApiError
from node.api.routing import Api, Operation, Param, Reply, json_response
from node.api.schemas import ref

ADDRESS = Param("address", {"type": "string", "minLength": 1, "maxLength": 90},
                "account address", "bad_address",
                "a bech32 address 'jev1…' (42 characters, valid checksum)")


def parse_address(text: str) -> bytes:
    """The 20-byte address of a bech32 path parameter, or a 400 bad_address."""
    try:
        return from_bech32(text)
    except InvalidAddress as exc:
        raise ApiError(400, "bad_address", f"{exc}; expected {ADDRESS.expect}") from None


async def get_account(api: Api, request: Request, args: dict[str, Any]) -> Response:
    address = parse_address(args["address"])
    state = api.host.state
    account = state.get_account(address)
    entry = state.staking.bonded.get(address)
    unbonding = [{"amount": u.amount, "release_height": u.release_height}
                 for u in state.staking.unbonding if u.address == address]
    return json_response({"address": to_bech32(address),
                          "balance": account.balance if account else 0,
                          "nonce": account.nonce if account else 0,
                          "stake": entry.stake if entry else 0, "unbonding": unbonding})


OPERATIONS = (
    Operation("GET", "/accounts/{address}", "getAccount", "An account's balance, nonce and stake",
              get_account,
              {200: Reply("balance, next nonce, bonded and unbonding stake (an account never "
                          "seen has all zeros)", ref("Account")),
               400: Reply("bad_address: not a bech32 'jev1…' address with a valid checksum"),
               404: Reply("not_found: a path that names no route")},
              (ADDRESS,), tag="accounts"),
)
