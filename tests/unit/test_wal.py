from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from node.runtime.wal import (
    HEADER,
    LEGACY_HEADER,
    MAGIC,
    Wal,
    WalCorrupt,
    replay,
)


def write(path: Path, records: list[bytes]) -> None:
    wal = Wal(path)
    for r in records:
        wal.append(r, sync=True)
    wal.close()


def test_round_trip_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write(path, [b"a", b"bb", b""])
    assert list(replay(path)) == [b"a", b"bb", b""]
    wal = Wal(path)
    wal.rotate(b"start-9")
    wal.append(b"x")
    wal.close()
    assert list(replay(path)) == [b"start-9", b"x"]


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 2])
def test_torn_tail_is_dropped_and_truncated(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "wal"
    write(path, [b"first", b"second-record"])
    full = path.read_bytes()
    last_len = HEADER.size + len(b"second-record")
    path.write_bytes(full[: len(full) - last_len + cut])
    assert list(replay(path)) == [b"first"]
    assert path.stat().st_size == len(full) - last_len  # truncated at the torn record
    wal = Wal(path)
    wal.append(b"after")
    wal.close()
    assert list(replay(path)) == [b"first", b"after"]


def test_corruption_before_the_end_stops_loudly(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    write(path, [b"first", b"second", b"third"])
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + HEADER.size + 1] ^= 0xFF  # inside the first payload
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="corrupt at byte 8: checksum mismatch"):
        list(replay(path))


def test_missing_log_is_empty(tmp_path: Path) -> None:
    assert list(replay(tmp_path / "none")) == []


@pytest.mark.parametrize("bit", [0, 7, 31])  # the length's top, a middle and its lowest bit
def test_a_flipped_length_before_the_end_is_corruption_not_a_torn_tail(tmp_path: Path,
                                                                         bit: int) -> None:
    """Before the header had its own checksum, a length made larger by one bit ran past
    the end of the file and read as a torn tail: replay cut every later record, fsynced
    own votes included, and said nothing."""
    path = tmp_path / "wal"
    write(path, [b"r0", b"r1", b"r2", b"r3", b"r4"])
    size = path.stat().st_size
    data = bytearray(path.read_bytes())
    second = len(MAGIC) + HEADER.size + 2
    data[second + bit // 8] ^= 0x80 >> (bit % 8)
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match=f"corrupt at byte {second}: record header checksum"):
        list(replay(path))
    assert path.stat().st_size == size  # nothing cut


@pytest.mark.parametrize("zeros", [1, HEADER.size, 4096])
def test_a_zero_filled_tail_from_a_power_cut_is_dropped(tmp_path: Path, zeros: int) -> None:
    """A power cut can leave the file longer than its data, the rest reading as zeros. In
    the old format eight zeros passed as an empty record (CRC 0) and the node would not
    start until someone cut the file by hand."""
    path = tmp_path / "wal"
    write(path, [b"first", b"second"])
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(zeros))
    assert list(replay(path)) == [b"first", b"second"]
    assert path.stat().st_size == size


def test_a_log_in_the_old_format_is_read_and_rewritten_on_open(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    records = [b"start-3", b"vote", b"proposal"]
    path.write_bytes(b"".join(LEGACY_HEADER.pack(len(r), zlib.crc32(r)) + r for r in records)
                     + bytes(64))  # with a zeroed tail, which it used to refuse
    assert list(replay(path)) == records
    wal = Wal(path)
    wal.append(b"next", sync=True)
    wal.close()
    assert path.read_bytes().startswith(MAGIC)
    assert list(replay(path)) == [*records, b"next"]


def test_an_empty_or_torn_new_log_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    for content in (b"", MAGIC[:3], bytes(5)):
        path.write_bytes(content)
        assert list(replay(path)) == []
        Wal(path).close()
        assert path.read_bytes() == MAGIC


def test_a_write_the_disk_cannot_take_raises_and_leaves_no_fragment(tmp_path: Path) -> None:
    """The file size limit stands in for a full disk: before, os.write wrote part of the
    record and returned, the vote went out, and the next append landed after the fragment,
    which made the next start fail as corruption."""
    path = tmp_path / "wal"
    write(path, [b"first"])
    size = path.stat().st_size
    child = f"""
import resource, signal
from pathlib import Path
from node.runtime.wal import Wal, WalWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 20}, {size + 20}))
wal = Wal(Path({str(path)!r}))
try:
    wal.append(b"x" * 100, sync=True)
except WalWriteError as exc:
    print("refused:", exc)
wal.append(b"fits", sync=True)
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2]).stdout
    assert "refused: cannot write the consensus WAL" in out
    assert "File too large" in out
    assert list(replay(path)) == [b"first", b"fits"]


def test_a_proposal_with_the_largest_block_a_genesis_allows_fits_one_record() -> None:
    from consensus.bft.messages import Proposal
    from consensus.params import MAX_BLOCK_BYTES_LIMIT
    from node.runtime import events as ev
    from node.runtime.wal import MAX_RECORD, encode_record

    proposal = Proposal(2**62, 2**30, bytes(32), 2**30 - 1, bytes(20), bytes(64))
    record = ev.encode_record(ev.ProposalRecord(proposal, True, bytes(MAX_BLOCK_BYTES_LIMIT)))
    assert len(record) <= MAX_RECORD
    assert encode_record(record)


def test_a_genesis_cannot_set_blocks_too_big_for_the_log() -> None:
    """ChainParams accepted 16 MiB blocks; every node would then have crashed on the first
    proposal over 8 MiB, logging it."""
    from consensus.errors import DecodeError
    from consensus.params import MAX_BLOCK_BYTES_LIMIT, ChainParams
    from genesis.presets import DEVNET

    fields = DEVNET.to_dict()
    assert ChainParams.from_dict({**fields, "max_block_bytes": MAX_BLOCK_BYTES_LIMIT})
    with pytest.raises(DecodeError, match="max_block_bytes: 16777216 is over"):
        ChainParams.from_dict({**fields, "max_block_bytes": 16 * 1024 * 1024})
