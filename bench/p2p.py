"""Bench: CPU cost of one gossip message through py-libp2p (Noise, Yamux, GossipSub) as
node/p2p configures it, between two processes on 127.0.0.1.

One process publishes --messages messages of --size bytes on a topic as fast as the
adapter lets it, the other delivers them. Each side measures its own CPU time (user +
system) from its first message to its last. Repeats --runs times and prints one JSON line
with the medians: send_cpu_us_per_msg, recv_cpu_us_per_msg, msgs_per_s (receiver's rate),
plus the per-run figures. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402

from node.p2p import P2PNode  # noqa: E402

TOPIC = "bench-p2p"
DEADLINE_S = 120.0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receiver(queue: mp.Queue, count: int) -> None:
    async def main() -> None:
        node, got, done, start = P2PNode(b"r" * 32), [0], trio.Event(), {}

        async def deliver(origin: str, data: bytes) -> None:
            if not got[0]:
                start.update(cpu=cpu_s(), wall=time.monotonic())
            got[0] += 1
            if got[0] == count:
                done.set()

        node.subscribe(TOPIC, lambda forwarder, origin, data: True, deliver)
        async with node.running():
            queue.put(node.listen_addrs()[0])
            with trio.move_on_after(DEADLINE_S):
                await done.wait()
            queue.put(("recv", got[0], cpu_s() - start.get("cpu", cpu_s()),
                       time.monotonic() - start.get("wall", time.monotonic())))

    trio.run(main)


def sender(addr: str, queue: mp.Queue, count: int, size: int) -> None:
    async def main() -> None:
        node = P2PNode(b"s" * 32)
        node.subscribe(TOPIC, lambda forwarder, origin, data: True,
                       lambda origin, data: trio.sleep(0))
        async with node.running():
            with trio.fail_after(DEADLINE_S):
                await node.connect(addr)
                await node.wait_for_topic_peers(TOPIC, 1, 10)
                await trio.sleep(1)  # let the mesh settle
                payload = os.urandom(max(0, size - 8))
                cpu0, wall0 = cpu_s(), time.monotonic()
                for i in range(count):
                    await node.publish(TOPIC, i.to_bytes(8, "big") + payload)
                queue.put(("send", count, cpu_s() - cpu0, time.monotonic() - wall0))
                await trio.sleep(2)  # keep serving until the receiver has drained

    trio.run(main)


def one_run(count: int, size: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=receiver, args=(queue, count))]
    procs[0].start()
    try:
        addr = queue.get(timeout=30)
        procs.append(ctx.Process(target=sender, args=(addr, queue, count, size)))
        procs[1].start()
        result = {}
        for _ in range(2):
            kind, got, cpu, wall = queue.get(timeout=DEADLINE_S + 30)
            if got != count:
                raise SystemExit(f"{kind}: {got} of {count} messages")
            result[f"{kind}_cpu_us_per_msg"] = round(cpu / count * 1e6, 1)
            if kind == "recv":
                result["msgs_per_s"] = round(count / wall, 1) if wall else 0.0
        return result
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=200, help="payload bytes (>= 8)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.messages < 1 or args.size < 8 or args.runs < 1:
        parser.error("--messages and --runs must be >= 1 and --size >= 8")
    runs = [one_run(args.messages, args.size) for _ in range(args.runs)]
    keys = ("send_cpu_us_per_msg", "recv_cpu_us_per_msg", "msgs_per_s")
    print(json.dumps({"messages": args.messages, "size": args.size, "runs": args.runs,
                      **{k: statistics.median(r[k] for r in runs) for k in keys},
                      "per_run": runs}))


if __name__ == "__main__":
    main()
