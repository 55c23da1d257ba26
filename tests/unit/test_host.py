"""The consensus host: its durable writes leave the trio loop free; an unreadable WAL stops
it with the way out.

A validator's signature is persisted (fsync) before it is released, and the WAL is synced
before the node's own messages go out. On a slow disk each fsync takes milliseconds; they
run on a worker thread so gossip, admission and the API keep going meanwhile. The host runs
here on a real LevelDB store and a real (peerless) libp2p node; the signer is the real
FileSigner, gated so the test decides when its write may finish.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import trio

from consensus.bft.engine import TimeoutConfig
from consensus.bft.validators import ValidatorSet
from consensus.hashing import sha256
from node.api.txs import committed_location
from node.chain.signer import FileSigner
from node.cli.main import first_jevons_error
from node.p2p import P2PNode
from node.runtime import events as ev
from node.runtime import wire
from node.runtime.host import ConsensusHost, SyncedBlock
from node.runtime.wal import Wal, WalCorrupt
from node.store.blockstore import BlockStore
from tests.unit.helpers import DEV_STAKE, Chain, addr, make_net

GATE_S = 10.0  # how long the signer waits for the loop before it fails the test


class GatedSigner(FileSigner):
    """FileSigner whose write waits until the test releases it (a disk that is slow)."""

    def __init__(self, *args: object, **kwargs: bool) -> None:
        super().__init__(*args, **kwargs)
        self.entered, self.release = threading.Event(), threading.Event()
        self.ran_on: list[int] = []

    def _sign(self, *args: object) -> bytes:
        self.ran_on.append(threading.get_ident())
        self.entered.set()
        if not self.release.wait(GATE_S):  # on the loop's thread, nothing could release it
            raise AssertionError("the trio loop never ran while the signer was writing")
        return super()._sign(*args)


def test_signing_runs_off_the_trio_loop(tmp_path: Path) -> None:
    net = make_net((DEV_STAKE,) * 4, label="host")
    chain = Chain(net)
    alice, bob = net.user_keys[:2]
    tx = chain.transfer(alice, addr(bob), 5, nonce=0).encode()
    fast = TimeoutConfig(propose_ms=50, prevote_ms=50, precommit_ms=50)

    async def main() -> None:
        with BlockStore.open(tmp_path / "chain") as store:
            store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
            signer = GatedSigner(tmp_path / "signer", net.validator_keys[0], net.chain_id,
                                 new_state=True)
            p2p = P2PNode(sha256(b"host"), "/ip4/127.0.0.1/tcp/0")
            host = ConsensusHost(store, p2p, net.validator_keys[0], signer,
                                 tmp_path / "consensus.wal", fast)
            try:
                async with p2p.running(), trio.open_nursery() as nursery:
                    nursery.start_soon(host.run)
                    # the host's first signature (a proposal or a nil prevote) is being
                    # written: meanwhile the loop admits a transaction
                    assert await trio.to_thread.run_sync(signer.entered.wait, GATE_S)
                    admitted, rejected = await host.admit([tx])
                    assert (len(admitted), rejected) == (1, [])
                    assert signer.state.height == 0  # the write has not finished yet
                    signer.release.set()
                    with trio.fail_after(GATE_S):
                        while signer.state.height != 1:
                            await trio.sleep(0.01)
                    nursery.cancel_scope.cancel()
            finally:
                host.close()
                signer.close()
        assert threading.main_thread().ident not in signer.ran_on
        assert sha256(tx) in host.mempool

    trio.run(main)


@pytest.mark.parametrize("record", [b"", b"\x92\x09\x01"], ids=["zeroed", "unknown kind"])
def test_an_unreadable_wal_record_stops_the_node_with_the_way_out(tmp_path: Path,
                                                                   record: bytes) -> None:
    """A record whose checksums hold but that does not decode (an empty one, another
    version's kind) is reported as WAL corruption, naming the file and what to do, not as
    a bare decoding error."""
    net = make_net((DEV_STAKE,) * 4, label="host")
    wal = tmp_path / "consensus.wal"
    log = Wal(wal)
    log.append(ev.encode_record(ev.StartRecord(1)))
    log.append(record)
    log.close()

    async def main() -> None:
        with BlockStore.open(tmp_path / "chain") as store:
            store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
            p2p = P2PNode(sha256(b"host"), "/ip4/127.0.0.1/tcp/0")
            host = ConsensusHost(store, p2p, net.validator_keys[0], None, wal, TimeoutConfig())
            try:
                async with p2p.running():
                    await host.run()
            finally:
                host.close()

    with pytest.raises(BaseExceptionGroup) as caught:
        trio.run(main)
    error = first_jevons_error(caught.value)
    assert isinstance(error, WalCorrupt)
    assert str(wal) in str(error) and "record 1 is unreadable" in str(error)
    assert "move it aside" in str(error) and "lock" in str(error)


class GatedStore(BlockStore):
    """BlockStore whose block writes return only when the test releases them (a slow
    disk: the batch is in LevelDB, its fsync has not returned)."""

    entered: threading.Event
    release: threading.Event

    def commit_block(self, *args: object, **kwargs: object) -> None:
        super().commit_block(*args, **kwargs)
        self.entered.set()
        if not self.release.wait(GATE_S):
            raise AssertionError("the trio loop never ran while the store was writing")


def test_block_writes_run_off_the_loop_and_next_height_gossip_waits_for_them(
        tmp_path: Path) -> None:
    net = make_net((DEV_STAKE,) * 4, label="host")
    chain = Chain(net)
    alice, bob = net.user_keys[:2]
    tx = chain.transfer(alice, addr(bob), 5, nonce=0).encode()
    late = chain.transfer(alice, addr(bob), 5, nonce=1).encode()
    block = chain.build([tx])
    chain.accept(block)

    async def main() -> None:
        with GatedStore.open(tmp_path / "chain") as store:
            store.entered, store.release = threading.Event(), threading.Event()
            store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
            p2p = P2PNode(sha256(b"host"), "/ip4/127.0.0.1/tcp/0")
            host = ConsensusHost(store, p2p, net.validator_keys[0], None,
                                 tmp_path / "consensus.wal", TimeoutConfig())
            try:
                async with p2p.running(), trio.open_nursery() as nursery:
                    await nursery.start(host.run)
                    await host.submit(SyncedBlock(block, chain.last_commit))
                    assert await trio.to_thread.run_sync(store.entered.wait, GATE_S)
                    # the block is being written: the loop admits a tx meanwhile, the node
                    # still shows the block before (its txs too, though already indexed),
                    # and a height-2 message waits
                    admitted, _ = await host.admit([late])
                    assert len(admitted) == 1
                    assert host.height == 0 and host.committing is not None
                    assert store.get_tx_location(sha256(tx)) == (1, 0)
                    assert committed_location(host, sha256(tx)) is None
                    waited: list[int] = []

                    async def height_2_message() -> None:
                        await host.wait_for_commit(2)
                        waited.append(host.height)

                    nursery.start_soon(height_2_message)
                    await host.wait_for_commit(1)  # the block's own height: no wait
                    for _ in range(10):
                        await trio.lowlevel.checkpoint()
                    assert waited == []
                    store.release.set()
                    with trio.fail_after(GATE_S):
                        while not waited:
                            await trio.sleep(0.01)
                    assert waited == [1] and host.committing is None
                    assert committed_location(host, sha256(tx)) == (1, 0)
                    assert sha256(late) in host.mempool  # still valid after the block
                    nursery.cancel_scope.cancel()
            finally:
                host.close()

    trio.run(main)


def test_a_proposal_reaps_again_past_txs_that_do_not_apply(tmp_path: Path,
                                                           monkeypatch) -> None:
    """With room for 4 txs, alice's 4 come first but only her first applies (the second
    unstakes what she never bonded; the others wait for its nonce). They are dropped and
    the proposer reaps again, so bob's txs fill the block instead of leaving it empty."""
    from consensus.tx import Unstake, make_tx
    from node.runtime import host as host_module

    monkeypatch.setattr(host_module, "MAX_PROPOSAL_TXS", 4)
    net = make_net((DEV_STAKE,), label="reap")
    chain = Chain(net)
    alice, bob = net.user_keys[:2]
    fee = chain.params.min_fee
    alices = [chain.transfer(alice, addr(bob), 1, nonce=0).encode(),
              make_tx(alice, net.chain_id, Unstake(10**12), 1, fee).encode(),
              *(chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in (2, 3))]
    bobs = [chain.transfer(bob, addr(alice), 1, nonce=n).encode() for n in (0, 1)]
    with BlockStore.open(tmp_path / "chain") as store:
        store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
        host = ConsensusHost(store, P2PNode(sha256(b"reap"), "/ip4/127.0.0.1/tcp/0"),
                             net.validator_keys[0], None, tmp_path / "wal", TimeoutConfig())
        try:
            for raw in alices + bobs:
                host.mempool.add(raw, host.state)
            block = host._build_block().block
        finally:
            host.close()
    assert list(block.txs) == [alices[0], *bobs]
    assert len(host.mempool) == 3  # alice's three that did not apply are dropped


def test_only_admitted_txs_enter_the_signature_cache(tmp_path: Path) -> None:
    """A validly signed tx the mempool refuses (its sender has no account) must not take a
    place in the signature cache: a flood of them would push pending txs out, to be
    verified again on the loop when a block carries them."""
    from consensus.crypto import PrivateKey

    net = make_net((DEV_STAKE,), label="cache")
    chain = Chain(net)
    alice, bob = net.user_keys[:2]
    stranger = PrivateKey.from_seed(sha256(b"no account"))
    good = chain.transfer(alice, addr(bob), 1).encode()
    refused = chain.transfer(stranger, addr(bob), 1, nonce=0).encode()

    async def main() -> None:
        with BlockStore.open(tmp_path / "chain") as store:
            store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
            host = ConsensusHost(store, P2PNode(sha256(b"cache"), "/ip4/127.0.0.1/tcp/0"),
                                 net.validator_keys[0], None, tmp_path / "wal",
                                 TimeoutConfig())
            try:
                admitted, rejected = await host.admit([good, refused])
            finally:
                host.close()
        assert admitted == [good]
        assert [(i, exc.code) for i, exc in rejected] == [(1, "unknown_sender")]
        assert sha256(good) in host.cache and sha256(refused) not in host.cache

    trio.run(main)


class Killed(BaseException):
    """Stands for kill -9: nothing after it runs."""


class KilledAfterSigningProposal(FileSigner):
    """A signer whose process dies right after its proposal signature is durable, before
    the host gets to log or send the proposal."""

    def sign_proposal(self, proposal):
        super().sign_proposal(proposal)
        raise Killed


class Published:
    """The host's one need of the network: gossip (here, kept for the test to read)."""

    def __init__(self) -> None:
        self.proposals: list[object] = []

    async def publish(self, topic: str, data: bytes) -> None:
        message = wire.decode_consensus(data)
        if not isinstance(message, wire.Vote):
            self.proposals.append(message.proposal)


def test_a_proposer_killed_between_signing_and_logging_proposes_the_same_block_again(
        tmp_path: Path) -> None:
    """Before, the restarted node built a new block (another time, maybe other txs) for the
    round, its double-sign guard refused to sign it, and the round was lost. Now the block
    is in the WAL before the proposal is signed, and the signer gives the same signature
    again."""
    net = make_net((DEV_STAKE,) * 4, label="rebuilt")
    chain = Chain(net)
    alice, bob = net.user_keys[:2]
    txs = [chain.transfer(alice, addr(bob), 1, nonce=n).encode() for n in range(3)]
    patient = TimeoutConfig(propose_ms=600_000)
    proposer = ValidatorSet(net.genesis.initial_state().validators).proposer(1, 0)
    key = next(k for k in net.validator_keys if addr(k) == proposer)

    async def run_host(store: BlockStore, signer: FileSigner, out: Published,
                       more_txs: list[bytes]) -> ConsensusHost:
        host = ConsensusHost(store, out, key, signer, tmp_path / "consensus.wal", patient)
        await host.admit(more_txs)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(host.run)
                with trio.fail_after(GATE_S):
                    while not out.proposals:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        finally:
            host.close()
        return host

    async def main() -> None:
        with BlockStore.open(tmp_path / "chain") as store:
            store.init_genesis(net.genesis.hash(), net.genesis.initial_state())
            first = KilledAfterSigningProposal(tmp_path / "signer", key, net.chain_id,
                                               new_state=True)
            with pytest.raises(BaseExceptionGroup) as killed:
                await run_host(store, first, Published(), txs[:2])
            assert killed.group_contains(Killed)
            first.close()
            signed = first.state  # what the first life released to nobody
            signer = FileSigner(tmp_path / "signer", key, net.chain_id)
            out = Published()
            try:  # the mempool now holds other txs: a rebuilt block would differ
                host = await run_host(store, signer, out, txs)
            finally:
                signer.close()
        [proposal] = out.proposals
        assert (proposal.height, proposal.round) == (1, 0)
        assert proposal.signature == signed.signature
        assert len(host.candidates[proposal.block_hash].block.txs) == 2

    trio.run(main)


def test_a_system_error_that_stops_the_node_is_one_line_naming_the_file() -> None:
    """A full disk used to end the node with pages of ExceptionGroup traceback."""
    from node.errors import NodeError

    full = OSError(28, "No space left on device", "/home/v/data/status.json")
    group = BaseExceptionGroup("tasks", [ValueError("later"),
                                         BaseExceptionGroup("inner", [full])])
    error = first_jevons_error(group)
    assert isinstance(error, NodeError)
    assert str(error) == ("the node stopped: system error on /home/v/data/status.json: "
                          "No space left on device")
    ours = WalCorrupt("the log is corrupt")
    assert first_jevons_error(BaseExceptionGroup("tasks", [full, ours])) is ours
    assert first_jevons_error(BaseExceptionGroup("tasks", [ValueError("x")])) is None
