"""The state transition: `apply_block(state, block, params) -> state`.

Reads like a specification: each `process_*` step changes a working copy, each validity
rule is one line that raises a typed error with a reason. The input state is never
modified, so a block that fails half-way leaves nothing behind.
"""

from __future__ import annotations

from consensus.block import Block
from consensus.crypto import verify_signature
from consensus.errors import (
    AmountOverflow,
    BadTxSignature,
    DecodeError,
    FeeTooLow,
    InsufficientFunds,
    InsufficientStake,
    InvalidBlock,
    InvalidEvidence,
    InvalidTx,
    InvariantViolation,
    MalformedTx,
    NonceGap,
    NonceReused,
    NonPositiveAmount,
    UnknownSender,
    ValidatorTombstoned,
    WouldHaltChain,
    WrongChainId,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.hashing import sha256
from consensus.market_rules import begin_market_block, end_market_block, process_market_tx
from consensus.params import BPS, MAX_AMOUNT, ChainParams
from consensus.sigcache import SigCache
from consensus.staking import Unbonding, Validator, compute_slash, compute_validator_set
from consensus.state import Account, State, validators_hash
from consensus.tx import Stake, Transfer, Tx, Unstake
from consensus.vote import verify_commit


def apply_block(state: State, block: Block, params: ChainParams,
                sig_cache: SigCache | None = None) -> State:
    """Validate `block` against `state` and return the state after it.

    Raises InvalidBlock (or a subclass) naming the broken rule; `state` is untouched.
    `sig_cache` holds hashes of transactions already verified by this node; others are
    verified here (and added).
    """
    if params != state.params:
        raise InvalidBlock("chain parameters differ from the state's parameters")
    work = state.copy()
    process_header(work, block)
    process_last_commit(work, block)
    slashed = process_evidence(work, block, params)
    begin_market_block(work, block.height, block.header.last_commit_hash, params)
    fees = process_transactions(work, block, params, sig_cache)
    compute_minted, market_slashed = end_market_block(work, block.height,
                                                      block.header.time_ms, params)
    process_unbonding(work, block.height)
    minted, burned = process_rewards(work, block.header.proposer, fees, params)
    check_supply_delta(state, work, minted + compute_minted, burned,
                       slashed + market_slashed)
    finish_block(work, block, params)
    return work


# --- header and commit --------------------------------------------------------------------


def process_header(state: State, block: Block) -> None:
    h = block.header
    if h.chain_id != state.chain_id:
        raise InvalidBlock(f"chain id {h.chain_id!r}, expected {state.chain_id!r}")
    if h.height != state.height + 1:
        raise InvalidBlock(f"height {h.height}, expected {state.height + 1}")
    if h.time_ms <= state.time_ms:
        raise InvalidBlock(f"time {h.time_ms} ms is not after the previous {state.time_ms} ms")
    if h.prev_hash != state.last_block_hash:
        raise InvalidBlock("prev_hash does not match the last block")
    if h.state_root != state.root():
        raise InvalidBlock("state_root does not match the state after the previous block")
    if h.validators_hash != validators_hash(state.validators):
        raise InvalidBlock("validators_hash does not match the current validator set")
    if not any(v.address == h.proposer for v in state.validators):
        raise InvalidBlock(f"proposer {h.proposer.hex()} is not a validator")
    mismatch = block.body_mismatch()
    if mismatch is not None:
        raise InvalidBlock(mismatch)
    if len(block.txs) > state.params.max_block_txs:
        raise InvalidBlock(f"{len(block.txs)} txs, limit is {state.params.max_block_txs}")


def process_last_commit(state: State, block: Block) -> None:
    if state.height == 0:
        if not block.last_commit.is_empty():
            raise InvalidBlock("block 1 must carry the empty last commit")
        return
    verify_commit(block.last_commit, state.chain_id, state.height, state.last_block_hash,
                  state.validator_map(state.last_validators))


# --- transactions -------------------------------------------------------------------------


def process_transactions(state: State, block: Block, params: ChainParams,
                         sig_cache: SigCache | None) -> int:
    fees = 0
    for index, (raw, tx_hash) in enumerate(zip(block.txs, block.tx_hashes, strict=True)):
        try:
            tx = get_verified_tx(raw, tx_hash, state.chain_id, params, sig_cache)
            fees += process_tx(state, tx, params)
        except InvalidTx as exc:
            raise InvalidBlock(f"tx {index} ({tx_hash.hex()[:16]}): {exc.reason}") from exc
    return fees


def get_verified_tx(raw: bytes, tx_hash: bytes, chain_id: str, params: ChainParams,
                    sig_cache: SigCache | None) -> Tx:
    """Decode and signature-check `raw`, or take the result from this node's cache."""
    cached = sig_cache.get(tx_hash) if sig_cache is not None else None
    if cached is not None:
        check_chain_id(cached, chain_id)
        return cached
    tx = decode_tx(raw, params)
    check_tx_signature(tx, raw, chain_id, sig_cache, tx_hash)
    return tx


def decode_tx(raw: bytes, params: ChainParams) -> Tx:
    try:
        return Tx.decode(raw, params.max_tx_bytes)
    except DecodeError as exc:
        raise MalformedTx(f"undecodable transaction: {exc}") from exc


def check_chain_id(tx: Tx, chain_id: str) -> None:
    if tx.chain_id != chain_id:
        raise WrongChainId(f"tx is for chain {tx.chain_id!r}, this chain is {chain_id!r}")


BAD_SIGNATURE = "signature does not verify for the sender's key"


def check_tx_signature(tx: Tx, raw: bytes, chain_id: str, sig_cache: SigCache | None,
                       tx_hash: bytes | None = None) -> None:
    """Chain id first (a tx for another chain is not ours to verify), then the signature.
    `tx_hash`, when the caller has it, must be sha256(raw)."""
    check_chain_id(tx, chain_id)
    if tx_hash is None:
        tx_hash = sha256(raw)
    if sig_cache is not None and tx_hash in sig_cache:
        return
    if not verify_signature(tx.sender_pubkey, tx.signature, tx.sign_message()):
        raise BadTxSignature(BAD_SIGNATURE)
    if sig_cache is not None:
        sig_cache.add(tx_hash, tx)


def process_tx(state: State, tx: Tx, params: ChainParams) -> int:
    """Apply one decoded, signature-checked tx; return the fee it paid."""
    sender = tx.sender
    account = state.get_account(sender)
    if account is None:
        raise UnknownSender(f"sender {sender.hex()} has no account")
    if tx.nonce < account.nonce:
        raise NonceReused(f"nonce {tx.nonce} already used; account nonce is {account.nonce}")
    if tx.nonce > account.nonce:
        raise NonceGap(f"nonce {tx.nonce} skips ahead; account nonce is {account.nonce}")
    if tx.fee < params.min_fee:
        raise FeeTooLow(f"fee {tx.fee} is below the minimum {params.min_fee}")
    if isinstance(tx.body, Transfer):
        process_transfer(state, sender, account, tx.body, tx.fee)
    elif isinstance(tx.body, Stake):
        process_stake(state, tx, account, tx.body.amount, params)
    elif isinstance(tx.body, Unstake):
        process_unstake(state, sender, account, tx.body.amount, tx.fee, params)
    else:
        process_market_tx(state, tx, account, params)
    return tx.fee


def check_spend(account: Account, amount: int, fee: int) -> None:
    """`amount` (> 0) plus `fee` leave the sender's balance: the shared amount rules."""
    if amount <= 0:
        raise NonPositiveAmount(f"amount {amount} must be positive")
    if amount > MAX_AMOUNT or fee > MAX_AMOUNT or amount + fee > MAX_AMOUNT:
        raise AmountOverflow(f"amount + fee = {amount + fee} exceeds {MAX_AMOUNT}")
    if amount + fee > account.balance:
        raise InsufficientFunds(f"balance {account.balance} < amount {amount} + fee {fee}")


def process_transfer(state: State, sender: bytes, account: Account, body: Transfer,
                     fee: int) -> None:
    check_spend(account, body.amount, fee)
    debited = Account(account.balance - body.amount - fee, account.nonce + 1)
    recipient = debited if body.to == sender else state.get_account(body.to) or Account()
    if recipient.balance + body.amount > MAX_AMOUNT:
        raise AmountOverflow(f"recipient balance would exceed {MAX_AMOUNT}")
    # Every check is done: only now write, so a rejected tx leaves no trace.
    state.set_account(sender, debited)
    state.set_account(body.to, Account(recipient.balance + body.amount, recipient.nonce))


# --- staking ------------------------------------------------------------------------------


def process_stake(state: State, tx: Tx, account: Account, amount: int,
                  params: ChainParams) -> None:
    sender = tx.sender
    check_spend(account, amount, tx.fee)
    if sender in state.staking.tombstoned:
        raise ValidatorTombstoned(f"validator {sender.hex()} was slashed for double-signing")
    entry = state.staking.bonded.get(sender)
    bonded = (entry.stake if entry else 0) + amount
    if bonded > MAX_AMOUNT:
        raise AmountOverflow(f"bonded stake would exceed {MAX_AMOUNT}")
    state.staking.bonded[sender] = Validator(sender, tx.sender_pubkey, bonded)
    state.set_account(sender, Account(account.balance - amount - tx.fee, account.nonce + 1))


def process_unstake(state: State, sender: bytes, account: Account, amount: int, fee: int,
                    params: ChainParams) -> None:
    if amount <= 0:
        raise NonPositiveAmount(f"amount {amount} must be positive")
    entry = state.staking.bonded.get(sender)
    bonded = entry.stake if entry else 0
    if amount > bonded:
        raise InsufficientStake(f"unstaking {amount} but only {bonded} is bonded")
    if fee > account.balance:
        raise InsufficientFunds(f"balance {account.balance} < fee {fee}")
    staking = state.staking
    if entry is not None and bonded == amount:
        del staking.bonded[sender]
    elif entry is not None:
        staking.bonded[sender] = Validator(sender, entry.pubkey, bonded - amount)
    if not compute_validator_set(staking, params):
        staking.bonded[sender] = entry  # undo: this tx is rejected and must leave no trace
        raise WouldHaltChain("unstaking this would leave the chain without validators")
    release = state.height + 1 + params.unbonding_blocks
    staking.unbonding.append(Unbonding(release, sender, amount))
    state.set_account(sender, Account(account.balance - fee, account.nonce + 1))


def process_unbonding(state: State, height: int) -> None:
    """Pay out unbonding entries that mature at `height` (the list is in release order)."""
    queue = state.staking.unbonding
    done = 0
    while done < len(queue) and queue[done].release_height <= height:
        item = queue[done]
        account = state.get_account(item.address) or Account()
        state.set_account(item.address, Account(account.balance + item.amount, account.nonce))
        done += 1
    if done:
        del queue[:done]


# --- evidence -----------------------------------------------------------------------------


def process_evidence(state: State, block: Block, params: ChainParams) -> int:
    """Verify each piece of evidence and slash its validator; return the total slashed."""
    slashed = 0
    for index, raw in enumerate(block.evidence):
        try:
            evidence = DuplicateVoteEvidence.decode(raw)
        except DecodeError as exc:
            raise InvalidEvidence(f"evidence {index}: {exc}") from exc
        check_evidence(state, evidence, block.height, params, index)
        slashed += slash_validator(state, evidence.validator, block.height, params)
    return slashed


def check_evidence(state: State, ev: DuplicateVoteEvidence, height: int, params: ChainParams,
                   index: int) -> None:
    where = f"evidence {index} against {ev.validator.hex()}"
    if ev.height > height:
        raise InvalidEvidence(f"{where}: votes at height {ev.height} are from the future")
    if height - ev.height > params.evidence_max_age:
        raise InvalidEvidence(f"{where}: {height - ev.height} blocks old, limit "
                              f"{params.evidence_max_age}")
    if ev.validator in state.staking.tombstoned:
        raise InvalidEvidence(f"{where}: already slashed")
    entry = state.staking.bonded.get(ev.validator)
    if entry is None:
        raise InvalidEvidence(f"{where}: not a bonded validator")
    for vote in (ev.vote_a, ev.vote_b):
        if not vote.verify(state.chain_id, entry.pubkey):
            raise InvalidEvidence(f"{where}: a vote's signature does not verify")


def slash_validator(state: State, address: bytes, height: int, params: ChainParams) -> int:
    """Cut `slash_double_sign_bps` of the validator's bonded and unbonding stake, tombstone
    it and start unbonding what is left. Returns the amount slashed (removed from supply)."""
    staking = state.staking
    entry = staking.bonded.pop(address)
    cut = compute_slash(entry.stake, params)
    kept = []
    for item in staking.unbonding:
        if item.address == address:
            item_cut = compute_slash(item.amount, params)
            cut += item_cut
            if item.amount > item_cut:
                kept.append(Unbonding(item.release_height, address, item.amount - item_cut))
        else:
            kept.append(item)
    staking.unbonding = kept
    remaining = entry.stake - compute_slash(entry.stake, params)
    if remaining:
        staking.unbonding.append(Unbonding(height + params.unbonding_blocks, address, remaining))
    staking.tombstoned[address] = height
    state.supply.slashed += cut
    return cut


# --- rewards, supply, bookkeeping ---------------------------------------------------------


def compute_reward_shares(state: State, proposer: bytes, reward: int,
                          params: ChainParams) -> list[tuple[bytes, int]]:
    """Split `reward`: a proposer bonus, the rest by stake; rounding dust to the proposer."""
    bonus = reward * params.proposer_bonus_bps // BPS
    pool = reward - bonus
    total_stake = sum(v.stake for v in state.validators)
    shares = [(v.address, pool * v.stake // total_stake) for v in state.validators]
    dust = pool - sum(amount for _, amount in shares)
    return [*shares, (proposer, bonus + dust)]


def process_rewards(state: State, proposer: bytes, fees: int,
                    params: ChainParams) -> tuple[int, int]:
    """Mint the block reward to validators by stake; burn part of the fees, give the rest
    to the proposer. Returns (minted, burned)."""
    minted = params.block_reward
    if state.supply.expected_total + minted > MAX_AMOUNT:
        minted = 0  # the supply cap is reached: no more issuance
    burned = fees * params.fee_burn_bps // BPS
    credits = compute_reward_shares(state, proposer, minted, params)
    credits.append((proposer, fees - burned))
    for address, amount in credits:
        if amount:
            account = state.get_account(address) or Account()
            state.set_account(address, Account(account.balance + amount, account.nonce))
    state.supply.minted += minted
    state.supply.burned += burned
    return minted, burned


def check_supply_delta(before: State, after: State, minted: int, burned: int,
                       slashed: int = 0) -> None:
    """Balances plus stake changed by exactly minted - burned - slashed (a cheap per-block
    form of the supply invariant: only touched accounts are summed)."""
    old = sum((before.get_account(a) or Account()).balance for a in after.touched)
    new = sum(after.accounts[a].balance for a in after.touched)
    delta = (new - old + after.staking.total() - before.staking.total()
             + after.market.total() - before.market.total())
    if delta != minted - burned - slashed:
        raise InvariantViolation(f"block changes balances and stake by {delta}, but minted - "
                                 f"burned - slashed = {minted - burned - slashed}")


def finish_block(state: State, block: Block, params: ChainParams) -> None:
    """Advance height and rotate validator sets: changes made in this block sign from
    height + 2 (an empty computed set keeps the previous one rather than halting)."""
    state.height = block.header.height
    state.time_ms = block.header.time_ms
    state.last_block_hash = block.hash()
    state.last_validators = state.validators
    state.validators = state.next_validators
    state.next_validators = compute_validator_set(state.staking, params) or state.validators
