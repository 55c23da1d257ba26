"""A hostile peer for the functional tests: joins a network and misbehaves.

    python -m tests.functional.rogue_peer --bootstrap MADDR --chain-id ID

Publishes undecodable and forged messages on the chain's consensus and tx topics (among them
batches of transfers from funded dev accounts with forged signatures, which every node would
have to verify if they spread), sends an oversized request and garbage requests on the sync
streams, then prints one JSON line with what it saw (how many requests failed, whether it
was disconnected) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import trio

from consensus.codec import encode
from node.p2p import P2PError, P2PNode, configure_libp2p_logging
from node.runtime import wire


async def main(bootstrap: str, chain_id: str) -> dict:
    configure_libp2p_logging()
    node = P2PNode(os.urandom(32), "/ip4/127.0.0.1/tcp/0", [bootstrap])
    consensus, txs = wire.topics(chain_id)
    status_proto, blocks_proto, _, _ = wire.protocols(chain_id)
    for topic in (consensus, txs):
        node.subscribe(topic, lambda peer, origin, data: True, _ignore)
    report = {"published": 0, "failed_requests": 0, "peers_before": 0, "peers_after": 0}
    async with node.running():
        target = (await node.wait_for_peers(1, 30))[0]
        with trio.move_on_after(10):
            await node.wait_for_topic_peers(consensus, 1, 10)
        report["peers_before"] = len(node.peers())
        with trio.move_on_after(10):
            await node.wait_for_topic_peers(txs, 1, 10)
        report["forged_batches"] = 0
        for batch in forged_tx_batches(chain_id, 3):  # first: before the garbage gets us banned
            try:
                await node.publish(txs, batch)
                report["forged_batches"] += 1
            except P2PError:
                pass
        report["pubsub_garbage_sent"] = await send_malformed_pubsub_rpc(node, target)
        garbage = [b"\xc1", b"\x93\x01\x02", encode([1, b"x" * 100, b""]),
                   encode([2, b"\x00" * 200]), encode([9, 9]), os.urandom(500)]
        for round_ in range(20):
            for i, data in enumerate(garbage):
                for topic in (consensus, txs):
                    try:
                        await node.publish(topic, data + bytes([round_, i]))
                        report["published"] += 1
                    except P2PError:
                        pass
        for protocol, payload in ((blocks_proto, b"\x00" * 4_000_000),
                                  (blocks_proto, b"\xff\xfe"), (status_proto, os.urandom(40))):
            try:
                await node.request(target, protocol, payload, 10, 1 << 20)
            except P2PError:
                report["failed_requests"] += 1
        await trio.sleep(1)
        report["peers_after"] = len(node.peers())
    return report


def forged_tx_batches(chain_id: str, count: int) -> list[bytes]:
    """Batches of 500 transfers from the well-known dev accounts, at their first nonces
    (valid but for the signature, whose last byte is flipped)."""
    from consensus.tx import make_transfer
    from genesis.dev import dev_accounts

    keys = dev_accounts(4)
    batches = []
    for b in range(count):
        txs = []
        for n in range(500):
            raw = make_transfer(keys[n % 4], chain_id, bytes(20), 1 + b, n // 4, 1000).encode()
            txs.append(raw[:-1] + bytes([raw[-1] ^ 1]))
        batches.append(wire.encode_tx_batch(txs))
    return batches


async def send_malformed_pubsub_rpc(node: P2PNode, target: str) -> bool:
    """A varint-prefixed frame on the GossipSub stream that is not a protobuf RPC (a field
    claiming 4 GiB): py-libp2p's own handler lets the DecodeError escape, which used to
    kill the receiving node."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    junk = b"\x0a\xff\xff\xff\xff\x0f"
    try:
        stream = await node._require().host.new_stream(ID.from_base58(target),
                                                        [TProtocol("/meshsub/1.1.0")])
        await stream.write(bytes([len(junk)]) + junk)
        await trio.sleep(0.5)
        return True
    except Exception as exc:  # the node may have reset the stream or dropped us already
        print(f"malformed pubsub RPC not sent: {exc!r}", file=sys.stderr)
        return False


async def _ignore(origin: str, data: bytes) -> None:
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--chain-id", required=True)
    args = parser.parse_args()
    print(json.dumps(trio.run(main, args.bootstrap, args.chain_id)), flush=True)
