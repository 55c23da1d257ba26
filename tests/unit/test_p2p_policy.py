"""node/p2p pieces that need no network: misbehaviour scores and bans (fake clock), message
ids, names, settings checks and the libp2p log format. Fast; not marked functional."""

from __future__ import annotations

import io
import logging

import pytest
from libp2p.pubsub.pb import rpc_pb2

from node.errors import ConfigError
from node.keys import peer_id_from_seed
from node.p2p import GossipParams, P2PError, P2PNode, PeerPolicy, protocol_id, topic_name
from node.p2p.gossip import message_id
from node.p2p.logs import LIBP2P_LOGGER, _AdapterHandler, configure_libp2p_logging
from node.p2p.peers import BAD_FRAME_WEIGHT, MAX_TRACKED_PEERS, PeerBook


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(clock: FakeClock) -> PeerBook:
    return PeerBook(PeerPolicy(ban_threshold=100, score_half_life_s=60, ban_s=300), clock)


def test_scores_halve_every_half_life() -> None:
    clock = FakeClock()
    peers = book(clock)
    assert not peers.report("p", 40)
    clock.now += 60
    assert peers.score("p") == pytest.approx(20)
    clock.now += 120
    assert peers.score("p") == pytest.approx(5)


def test_two_bad_frames_close_together_ban_and_the_ban_expires() -> None:
    clock = FakeClock()
    peers = book(clock)
    assert not peers.report("p", BAD_FRAME_WEIGHT)
    clock.now += 30
    assert peers.report("p", BAD_FRAME_WEIGHT)  # 60 * 0.5**0.5 + 60 = 102
    assert peers.is_banned("p") and peers.banned() == ["p"]
    assert not peers.report("p", BAD_FRAME_WEIGHT)  # already banned: not banned again
    clock.now += 299
    assert peers.ban_left("p") == pytest.approx(1)
    clock.now += 1
    assert not peers.is_banned("p") and peers.banned() == []


def test_two_bad_frames_far_apart_do_not_ban() -> None:
    clock = FakeClock()
    peers = book(clock)
    peers.report("p", BAD_FRAME_WEIGHT)
    clock.now += 60
    assert not peers.report("p", BAD_FRAME_WEIGHT)  # 30 + 60 < 100
    assert peers.score("p") == pytest.approx(90)


def test_the_book_stays_bounded_under_fresh_identities_and_keeps_what_matters() -> None:
    """Gossip misbehaviour is charged to a message's origin, and anyone can sign with a
    fresh key per message: before, every one of them stayed in the book for good."""
    clock = FakeClock()
    peers = book(clock)
    peers.connected = lambda: {"connected"}
    for n in range(3 * MAX_TRACKED_PEERS):
        peers.report(f"fresh-{n}", 1.5)  # each decays below 1 within a half-life
        clock.now += 0.01
        assert len(peers._scores) <= MAX_TRACKED_PEERS
    peers.report("close-to-a-ban", 90)
    peers.report("connected", 30)
    peers.report("old-and-mild", 30)
    for n in range(3 * MAX_TRACKED_PEERS):  # and those whose scores have not decayed yet
        peers.report(f"sybil-{n}", 50)
        assert len(peers._scores) <= MAX_TRACKED_PEERS
    # a flood of fresh identities cannot wipe the record of a peer closer to a ban than
    # they are, nor of one we are connected to; among equals the oldest go first
    assert peers.score("close-to-a-ban") == pytest.approx(90)
    assert peers.score("connected") == pytest.approx(30)
    assert peers.score("old-and-mild") == 0
    assert peers.score("sybil-0") == 0
    assert peers.score(f"sybil-{3 * MAX_TRACKED_PEERS - 1}") == pytest.approx(50)
    for n in range(3 * MAX_TRACKED_PEERS):  # bans too, the soonest to expire first
        peers.report(f"banned-{n}", 200)
        clock.now += 0.01
        assert len(peers._bans) <= MAX_TRACKED_PEERS
    assert peers.is_banned(f"banned-{3 * MAX_TRACKED_PEERS - 1}")
    assert peers.any_banned()
    clock.now += 301
    assert not peers.banned() and not peers.any_banned()


def test_message_id_covers_topic_and_data() -> None:
    def msg(topic: str, data: bytes, seqno: bytes) -> rpc_pb2.Message:
        return rpc_pb2.Message(data=data, topicIDs=[topic], seqno=seqno)

    assert message_id(msg("a", b"x", b"1")) == message_id(msg("a", b"x", b"2"))
    assert message_id(msg("a", b"x", b"1")) != message_id(msg("b", b"x", b"1"))
    assert message_id(msg("a", b"x", b"1")) != message_id(msg("a", b"y", b"1"))


def test_names_follow_the_convention_and_refuse_bad_parts() -> None:
    assert topic_name("jevons-t1", "tx") == "/jevons/jevons-t1/tx/1"
    assert protocol_id("jevons-t1", "sync", 2) == "/jevons/jevons-t1/sync/2"
    for chain, part in (("", "tx"), ("a/b", "tx"), ("c", "t x"), ("c", "")):
        with pytest.raises(ConfigError):
            topic_name(chain, part)


def test_node_settings_are_checked_at_construction() -> None:
    seed = bytes(range(32))
    assert P2PNode(seed).peer_id == peer_id_from_seed(seed)
    with pytest.raises(P2PError, match="32 bytes"):
        P2PNode(b"short")
    with pytest.raises(ConfigError, match="bootstrap"):
        P2PNode(seed, bootstrap=["/ip4/127.0.0.1/tcp/1"])  # no /p2p/<id>
    with pytest.raises(ConfigError, match="listen"):
        P2PNode(seed, listen="/ip4/127.0.0.1/udp/1")
    with pytest.raises(ConfigError, match="queue_high_water"):
        GossipParams(queue_high_water=32)
    with pytest.raises(P2PError, match="start with '/'"):
        P2PNode(seed).set_handler("sync", lambda p, r: r, max_request=1)  # type: ignore[arg-type,return-value]


def test_libp2p_warnings_carry_time_level_and_logger() -> None:
    configure_libp2p_logging()
    logger = logging.getLogger(LIBP2P_LOGGER)
    [handler] = [h for h in logger.handlers if isinstance(h, _AdapterHandler)]
    stream = io.StringIO()
    old = handler.setStream(stream)
    try:
        logging.getLogger("libp2p.pubsub.pubsub").warning("fail to deliver")
        logging.getLogger("libp2p.network.auto_connector").info("AUTO_CONNECTOR_STATE")
        logging.getLogger("libp2p.transport.tcp.tcp").error("Failed to open TCP stream: x")
    finally:
        handler.setStream(old)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING libp2p.pubsub.pubsub: fail to deliver")
    configure_libp2p_logging()
    assert len([h for h in logger.handlers if isinstance(h, _AdapterHandler)]) == 1


def test_a_failing_list_of_connected_peers_does_not_stop_a_ban() -> None:
    clock = FakeClock()
    peers = book(clock)

    def broken() -> set[str]:
        raise RuntimeError("connections unavailable")

    peers.connected = broken
    for n in range(MAX_TRACKED_PEERS):
        peers.report(f"fresh-{n}", 10)
    assert peers.report("offender", 120)  # its report prunes the book, and still bans
    assert peers.is_banned("offender") and len(peers._scores) <= MAX_TRACKED_PEERS
