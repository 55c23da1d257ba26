"""node/p2p: the node's adapter over py-libp2p 0.8.1 (trio). Nothing else in the project
imports libp2p; everything network-facing goes through `P2PNode`.

Owns: the libp2p identity from the node key seed, host/pubsub construction (Noise, Yamux,
GossipSub), gossip topics with safe validators and publish backpressure, length-prefixed
request/response streams, misbehaviour scores and bans, bootstrap redialing, and the
formatting of libp2p's log output. May import consensus (constants), node.config and
node.errors; must not import node.chain, node.runtime or anything above it.
"""

from node.p2p.errors import (
    GossipTooLarge,
    NotRunning,
    P2PError,
    PeerUnavailable,
    ProtocolError,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    ResponseTooLarge,
)
from node.p2p.gossip import Deliver, TopicCounters, Validator
from node.p2p.logs import configure_libp2p_logging
from node.p2p.node import P2PNode
from node.p2p.reqresp import Handler
from node.p2p.settings import (
    MAX_FRAME_BYTES,
    MAX_GOSSIP_BYTES,
    GossipParams,
    PeerPolicy,
    protocol_id,
    topic_name,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_GOSSIP_BYTES",
    "Deliver",
    "GossipParams",
    "GossipTooLarge",
    "Handler",
    "NotRunning",
    "P2PError",
    "P2PNode",
    "PeerPolicy",
    "PeerUnavailable",
    "ProtocolError",
    "RemoteError",
    "RequestRejected",
    "RequestTimeout",
    "RequestTooLarge",
    "ResponseTooLarge",
    "TopicCounters",
    "Validator",
    "configure_libp2p_logging",
    "protocol_id",
    "topic_name",
]
