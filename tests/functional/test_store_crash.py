"""kill -9 a process that commits blocks: the store must reopen at a whole block every time.

A writer process (tests/functional/store_writer.py) commits blocks of signed transfers as
fast as it can; the test SIGKILLs it after a random number of commits, restarts it on the
same store (it resumes from the stored tip), and at the end replays every stored block from
genesis. The seed is printed; set JEVONS_TEST_SEED to replay a failure.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consensus.hashing import sha256
from consensus.state import State
from consensus.transition import apply_block
from consensus.vote import verify_commit
from genesis.document import Genesis
from node.store import BlockStore
from tests.chainutil import decode_block, make_genesis
from tests.functional.store_writer import N_ACCOUNTS

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 12
MAX_COMMITS_BEFORE_KILL = 40
MAX_HEIGHT = ROUNDS * (MAX_COMMITS_BEFORE_KILL + 1) + 100  # the writer stops by itself here
LINE_TIMEOUT_S = 20.0
TEST_BUDGET_S = 120.0
EXIT_TIMEOUT_S = 10.0
GENESIS_SEED = 11
KILL_POINTS = ("writing", "committed")  # kill during a commit, or while building the next

pytestmark = pytest.mark.functional


class Writer:
    """A store_writer process; a thread moves its stdout lines onto a queue."""

    def __init__(self, store: Path, seed: int, log: Path) -> None:
        self.log = log
        with log.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.functional.store_writer", str(store),
                 "--genesis-seed", str(GENESIS_SEED), "--seed", str(seed),
                 "--max-height", str(MAX_HEIGHT)],
                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.committed = -1  # the last height printed as committed (or ready)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> tuple[str, int]:
        """The next `<word> <height>` line; fail if none comes in time."""
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"writer printed nothing for {LINE_TIMEOUT_S} s; "
                                 f"stderr: {self.stderr()}") from None
        if line is None:
            raise AssertionError(f"writer exited with {self.proc.wait()}: {self.stderr()}")
        return self._record(line)

    def _record(self, line: str) -> tuple[str, int]:
        word, _, height = line.partition(" ")
        assert word in ("ready", *KILL_POINTS), f"unexpected writer output {line!r}"
        if word != "writing":
            self.committed = int(height)
        return word, int(height)

    def wait_for(self, word: str, height: int) -> None:
        """Read lines until `<word> <height>` (two lines per block at most)."""
        for _ in range(2 * (height - self.committed) + 1):
            if self.next_line() == (word, height):
                return
        raise AssertionError(f"writer never printed '{word} {height}'")

    def kill(self) -> None:
        """SIGKILL the writer, then read what it printed before it died."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=EXIT_TIMEOUT_S)
        self._reader.join(timeout=EXIT_TIMEOUT_S)
        while (line := self.lines.get_nowait()) is not None:
            self._record(line)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def pick_seed() -> int:
    """The seed of this run: JEVONS_TEST_SEED if set, else a fresh one (printed)."""
    seed = int(os.environ.get("JEVONS_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"store crash test seed {seed} (replay with JEVONS_TEST_SEED={seed})")
    return seed


def run_kill_round(store: Path, rng: random.Random, committed: int, log: Path) -> int:
    """Start the writer, kill it at a random block, either while it builds the next block
    or while it writes one. Returns the last height it printed as committed."""
    writer = Writer(store, rng.randrange(2**32), log)
    try:
        word, resumed = writer.next_line()
        assert word == "ready", f"expected 'ready <height>', got {word!r}"
        assert committed <= resumed <= committed + 1, (
            f"store reopened at {resumed}; the last commit printed was {committed}")
        writer.wait_for(rng.choice(KILL_POINTS),
                        resumed + rng.randint(1, MAX_COMMITS_BEFORE_KILL))
    finally:
        writer.kill()
    return writer.committed


def replay(store: BlockStore, genesis: Genesis, tip: int) -> State:
    """Apply every stored block from genesis, checking both indices on the way."""
    state = genesis.initial_state()
    for height in range(1, tip + 1):
        raw = store.get_block(height)
        assert raw is not None, f"block {height} is missing below tip {tip}"
        block = decode_block(raw)
        assert block.height == height
        assert store.get_block_by_hash(block.hash()) == raw
        for index, raw_tx in enumerate(block.txs):
            assert store.get_tx_location(sha256(raw_tx)) == (height, index)
        state = apply_block(state, block, state.params)
    return state


def test_kill_9_never_leaves_half_a_block(tmp_path: Path) -> None:
    seed = pick_seed()
    rng = random.Random(seed)
    store_path, log = tmp_path / "db", tmp_path / "writer.log"
    deadline = time.monotonic() + TEST_BUDGET_S
    committed = 0
    for round_ in range(ROUNDS):
        assert time.monotonic() < deadline, f"seed {seed}: over budget at round {round_}"
        committed = run_kill_round(store_path, rng, committed, log)
    genesis = make_genesis(N_ACCOUNTS, GENESIS_SEED)[0]
    with BlockStore.open(store_path) as store:
        tip, tip_hash = store.tip()
        assert committed <= tip <= committed + 1, f"seed {seed}: tip {tip}, printed {committed}"
        replayed = replay(store, genesis, tip)
        loaded = store.load_state()
        seen = store.get_seen_commit(tip)
    assert replayed.last_block_hash == tip_hash
    assert seen is not None, f"seed {seed}: the tip block {tip} has no seen commit"
    verify_commit(seen, replayed.chain_id, tip, tip_hash,
                  replayed.validator_map(replayed.validators))
    assert loaded.root() == replayed.root(), f"seed {seed}: stored state differs from replay"
    assert loaded.total_balances_and_stakes() == loaded.supply.expected_total
    assert len(loaded.accounts) > N_ACCOUNTS + 1, "transfers should have created accounts"


LOCK_PROBE = """
import sys
from node.store import BlockStore, StoreError
try:
    BlockStore.open(sys.argv[1]).close()
    print("opened")
except StoreError as exc:
    print(exc)
"""


def test_store_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path):
        probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(tmp_path)], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=LINE_TIMEOUT_S)
    assert "already in use by another process" in probe.stdout, probe.stdout + probe.stderr
