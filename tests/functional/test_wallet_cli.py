"""`jevons wallet` as a user runs it: a real subprocess per command, against a real network
of 4 validators and 1 compute provider (one network for the module) through the node's
HTTP API: keys, transfers, staking, provider registration, a job from spec file to checked
result, and the failures.

Every failure case asserts the documented exit code (node/wallet/errors.py) and a single
`Error: …` line on stderr (no traceback).
"""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels.jobs import run_job
from tests.functional.cli import JEVONS, error_line
from tests.functional.framework import TestNetwork, free_port_block, wait_until

pytestmark = pytest.mark.functional

PASSWORD = "functional-test-password"
JEV = 1_000_000
MIN_FEE = 100


class Wallet:
    """Runs `jevons wallet …` with a wallet dir, a node URL and a password in the env."""

    def __init__(self, directory: Path, node_url: str) -> None:
        self.dir = directory
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "JEVONS_WALLET_DIR": str(directory),
                    "JEVONS_NODE": node_url, "JEVONS_WALLET_PASSWORD": PASSWORD,
                    "JEVONS_KDF": "fast"}

    def run(self, *args: str | Path,
            env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
        """stdin is never a terminal here; `env` values of None remove a variable."""
        merged = {**self.env, **(env or {})}
        return subprocess.run([JEVONS, "wallet", *map(str, args)], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL,
                              env={k: v for k, v in merged.items() if v is not None})

    def ok(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def json(self, *args: str | Path, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "-o", "json", **kwargs).stdout)

    def fails(self, code: int, *args: str | Path, **kwargs: Any) -> str:
        result = self.run(*args, **kwargs)
        assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        line = error_line(result)
        assert line.startswith("Error: ")
        return line


def on_terminal(w: Wallet, args: list[str], answers: list[tuple[str, str]],
                timeout: float = 60) -> tuple[int, str]:
    """Run `jevons wallet ARGS` on a pseudo-terminal (no password in the env), typing each
    answer when the last output line contains its prompt. Returns (exit code, output)."""
    env = {k: v for k, v in w.env.items() if k != "JEVONS_WALLET_PASSWORD"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.execve(JEVONS, [JEVONS, "wallet", *args], env)
    out, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
        if pending and pending[0][0].encode() in out.rsplit(b"\n", 1)[-1]:
            os.write(fd, pending.pop(0)[1].encode() + b"\n")
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def account(net: TestNetwork, address: str) -> dict:
    return net.nodes[0].get(f"/accounts/{address}")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNetwork]:
    net = TestNetwork(tmp_path_factory.mktemp("wallet"), validators=4, full_nodes=1,
                      accounts=2)
    net.start_all()
    try:
        net.wait_for_height(2)
        wait_until(lambda: net.nodes[0].get("/providers")["providers"], 60,
                   "the provider node (node4) to register")
        yield net
    finally:
        net.stop_all()


@pytest.fixture
def chain(network: TestNetwork, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[tuple[TestNetwork, Wallet]]:
    """The module's network and a fresh wallet holding dev account 0 as `dev`."""
    w = Wallet(tmp_path / "wallet", f"http://{network.nodes[0].api}")
    key_file = tmp_path / "dev0.json"
    key_file.write_text(json.dumps(network.accounts[0]))
    imported = w.json("keys", "import", "dev", "--private-key-file", key_file)
    assert imported["address"] == network.accounts[0]["address"]
    yield network, w
    call = getattr(request.node, "rep_call", None)  # set by tests/functional/conftest.py
    if call is not None and call.failed:
        print(network.dump_logs())


def new_funded_key(net: TestNetwork, w: Wallet, name: str, amount_jev: int) -> str:
    address = w.json("keys", "new", name)["address"]
    sent = w.json("send", "--from", "dev", address, f"{amount_jev}jev", "--wait", "--yes")
    assert sent["status"] == "committed"
    assert account(net, address)["balance"] == amount_jev * JEV
    return address


# --- keys: no node needed -------------------------------------------------------------------

def test_keys_new_list_show_export_import(tmp_path: Path) -> None:
    w = Wallet(tmp_path / "wallet", "http://127.0.0.1:1")
    created = w.json("keys", "new", "alice")
    phrase, address = created["mnemonic"], created["address"]
    assert len(phrase.split()) == 24 and address.startswith("jev1")
    key_file = w.dir / "alice.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(w.dir.stat().st_mode) == 0o700
    assert phrase not in key_file.read_text()

    text = w.ok("keys", "new", "bob")  # text mode: the phrase goes to stderr, once
    bob_phrase = text.stderr.split("\n\n")[1].strip()
    assert len(bob_phrase.split()) == 24 and bob_phrase not in text.stdout
    assert "created key 'bob'" in text.stdout

    listed = w.json("keys", "list")
    assert [(k["name"], k["source"]) for k in listed] == [("alice", "mnemonic"),
                                                          ("bob", "mnemonic")]
    assert w.ok("keys", "show", "alice", "-a").stdout.strip() == address
    shown = w.json("keys", "show", "alice")
    assert shown["address"] == address and len(shown["pubkey"]) == 64

    assert "pass --yes" in w.fails(1, "keys", "export", "alice")
    assert w.ok("keys", "export", "alice", "--yes").stdout.strip() == phrase
    exported = w.json("keys", "export", "alice", "--yes")
    assert exported["mnemonic"] == phrase and len(exported["private_key"]) == 64

    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(phrase.upper() + "\n")
    assert w.json("keys", "import", "again", "--mnemonic-file", phrase_file)["address"] \
        == address
    assert "already exists" in w.fails(1, "keys", "import", "again", "--mnemonic-file",
                                       phrase_file)
    assert w.json("keys", "import", "again", "--mnemonic-file", phrase_file,
                  "--force")["address"] == address
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text(exported["private_key"])
    raw = w.json("keys", "import", "raw", "--private-key-file", seed_file)
    assert raw["address"] == address and raw["source"] == "private_key"

    password_file = tmp_path / "password"
    password_file.write_text("another-password\n")
    w.ok("keys", "new", "carol", "--password-file", password_file)
    assert w.ok("keys", "export", "carol", "--yes", "--private-key", "--password-file",
                password_file).stdout.strip()
    assert "wrong password" in w.fails(3, "keys", "export", "carol", "--yes")

    w.ok("keys", "delete", "raw", "--yes")
    assert [k["name"] for k in w.json("keys", "list")] == ["again", "alice", "bob", "carol"]


def test_prompts_on_a_terminal(tmp_path: Path) -> None:
    w = Wallet(tmp_path / "wallet", "http://127.0.0.1:1")
    code, out = on_terminal(w, ["keys", "new", "tty"], [("New password", "tty-password"),
                                                       ("Repeat", "tty-password")])
    assert code == 0 and "created key 'tty'" in out, out
    assert "tty-password" not in out  # hidden input
    phrases = [line.strip() for line in out.splitlines() if line.startswith("    ")]
    assert len(phrases) == 1, out  # shown once
    phrase = phrases[0]
    assert len(phrase.split()) == 24

    code, out = on_terminal(w, ["keys", "export", "tty"], [("[y/N]", "n")])
    assert code == 1 and "Aborted" in out
    code, out = on_terminal(w, ["keys", "export", "tty"], [("[y/N]", "y"),
                                                          ("Password", "tty-password")])
    assert code == 0 and phrase in out
    code, out = on_terminal(w, ["keys", "export", "tty", "--yes"], [("Password", "nope")])
    assert code == 3 and "wrong password for key 'tty'" in out

    code, out = on_terminal(w, ["keys", "import", "copy"], [("Recovery phrase", phrase),
                                                           ("New password", "copy-password"),
                                                           ("Repeat", "copy-password")])
    assert code == 0 and phrase not in out, out
    assert w.json("keys", "show", "copy")["address"] == w.json("keys", "show", "tty")["address"]


def test_keys_bad_input(tmp_path: Path) -> None:
    w = Wallet(tmp_path / "wallet", "http://127.0.0.1:1")
    w.ok("keys", "new", "alice")
    words = w.json("keys", "export", "alice", "--yes")["mnemonic"].split()

    bad = tmp_path / "bad.txt"
    bad.write_text(" ".join(["abandon"] * 24))  # the valid zero-entropy phrase ends in "art"
    assert "checksum does not match" in w.fails(1, "keys", "import", "x", "--mnemonic-file",
                                                bad)
    bad.write_text(" ".join([*words[:5], "notaword", *words[6:]]))
    assert "word 6 ('notaword') is not in the BIP39" in w.fails(
        1, "keys", "import", "x", "--mnemonic-file", bad)
    bad.write_text(" ".join(words[:23]))
    assert "has 23 words" in w.fails(1, "keys", "import", "x", "--mnemonic-file", bad)
    assert not (w.dir / "x.json").exists()

    line = w.fails(3, "keys", "export", "alice", "--yes",
                   env={"JEVONS_WALLET_PASSWORD": "not-the-password"})
    assert "wrong password for key 'alice'" in line
    assert "no key named 'ghost'" in w.fails(3, "keys", "show", "ghost")
    assert "stdin is not a terminal" in w.fails(
        1, "keys", "new", "nopass", env={"JEVONS_WALLET_PASSWORD": None})
    assert "at least 8" in w.fails(1, "keys", "new", "short",
                                   env={"JEVONS_WALLET_PASSWORD": "short"})
    assert "key name" in w.fails(1, "keys", "new", ".hidden")

    doc = json.loads((w.dir / "alice.json").read_text())
    ciphertext = doc["cipher"]["ciphertext"]  # flip its first byte (setting it to 00 was
    # no change at all when it already was 00: one run in 256 failed)
    doc["cipher"]["ciphertext"] = f"{int(ciphertext[:2], 16) ^ 0xFF:02x}" + ciphertext[2:]
    (w.dir / "broken.json").write_text(json.dumps(doc))
    line = w.fails(3, "keys", "export", "broken", "--yes")
    assert "is corrupt: the ciphertext fails authentication" in line
    (w.dir / "garbled.json").write_text("{not json")
    assert "not valid JSON" in w.fails(3, "keys", "show", "garbled")
    listed = w.run("keys", "list", "-o", "json")  # damaged files are reported, not fatal
    assert listed.returncode == 0 and "garbled.json is corrupt" in listed.stderr
    assert [k["name"] for k in json.loads(listed.stdout) if "error" not in k] == \
        ["alice", "broken"]


# --- against the network ----------------------------------------------------------------------

def test_send_stake_unstake_and_tx_status(chain: tuple[TestNetwork, Wallet]) -> None:
    net, w = chain
    dev = net.accounts[0]["address"]
    alice = new_funded_key(net, w, "alice", 10)
    shown = w.json("balance", "alice")  # the node's account document, passed through
    assert (shown["address"], shown["balance"], shown["stake"], shown["nonce"]) == \
        (alice, 10 * JEV, 0, 0)
    assert "balance: 10 JEV (10000000 ujev)" in w.ok("balance", alice).stdout

    sent = w.json("send", "--from", "alice", dev, "1.5jev", "--fee", "250ujev", "--wait",
                  "--yes")
    assert (sent["status"], sent["amount"], sent["fee"], sent["nonce"]) == \
        ("committed", 1_500_000, 250, 0)
    assert account(net, alice)["balance"] == 10 * JEV - 1_500_000 - 250

    staked = w.ok("stake", "--from", "alice", "2jev", "--wait", "--yes")
    assert "committed at height" in staked.stdout
    after_stake = account(net, alice)
    assert after_stake["stake"] == 2 * JEV
    assert after_stake["balance"] == 10 * JEV - 1_500_250 - 2 * JEV - MIN_FEE

    unstaked = w.json("unstake", "--from", "alice", "0.5jev", "--wait", "--yes")
    assert unstaked["kind"] == "unstake" and unstaked["nonce"] == 2
    assert account(net, alice)["stake"] == 1_500_000

    status = w.json("tx", "status", unstaked["hash"])
    assert status["status"] == "committed" and status["height"] == unstaked["height"]
    assert f"committed at height {unstaked['height']}" in w.ok(
        "tx", "status", unstaked["hash"]).stdout

    pending = w.json("send", "--from", "alice", "alice", "1ujev", "--yes")  # no --wait
    assert pending["status"] == "pending"
    wait_until(lambda: w.json("tx", "status", pending["hash"])["status"] == "committed", 30,
               "the unawaited transfer to commit")
    unknown = "ab" * 32
    assert "neither committed nor pending" in w.fails(1, "tx", "status", unknown)
    assert "64 hex characters" in w.fails(1, "tx", "status", "xyz")


def test_rejections_and_failures(chain: tuple[TestNetwork, Wallet]) -> None:
    net, w = chain
    dev = net.accounts[0]["address"]
    bob = new_funded_key(net, w, "bob", 3)

    bad_checksum = dev[:-1] + ("q" if dev[-1] != "q" else "p")
    line = w.fails(1, "send", "--from", "bob", bad_checksum, "1jev", "--yes")
    assert "bad checksum" in line
    assert "bad checksum" in w.fails(1, "balance", bad_checksum)

    line = w.fails(5, "send", "--from", "bob", dev, "5jev", "--yes")
    assert "insufficient_funds" in line and "short by" in line
    assert "insufficient_stake" in w.fails(5, "unstake", "--from", "bob", "1jev", "--yes")
    w.ok("keys", "new", "empty")
    assert "never funded" in w.fails(5, "stake", "--from", "empty", "1jev", "--yes")

    w.ok("send", "--from", "dev", bob, "1ujev", "--wait", "--yes")
    line = w.fails(5, "send", "--from", "dev", bob, "1ujev", "--nonce", "0", "--yes")
    assert "nonce_reused" in line and "already used" in line

    line = w.fails(3, "send", "--from", "bob", dev, "1jev", "--yes",
                   env={"JEVONS_WALLET_PASSWORD": "wrong-password"})
    assert "wrong password for key 'bob'" in line

    line = w.fails(1, "send", "--from", "bob", dev, "1jev")  # stdin is not a terminal
    assert "pass --yes" in line
    assert "needs a unit" in w.fails(1, "send", "--from", "bob", dev, "1jev", "--fee", "100",
                                     "--yes")
    assert "no key named 'nobody'" in w.fails(3, "send", "--from", "nobody", dev, "1jev",
                                              "--yes")
    assert account(net, bob)["balance"] == 3 * JEV + 1  # nothing above moved any value

    dead = f"http://127.0.0.1:{free_port_block(1)}"
    line = w.fails(4, "balance", "bob", "--node", dead)
    assert "cannot reach node" in line and dead in line
    assert "cannot reach node" in w.fails(4, "send", "--from", "bob", dev, "1jev", "--yes",
                                          env={"JEVONS_NODE": dead})


# --- the compute market -------------------------------------------------------------------------

PRICE = 10  # the provider node's default price per unit (node/config.py ProviderConfig)
JOB_SEED = "5e" * 32
# A syntactically valid endpoint where nothing listens: a provider registered from the
# wallet with no node behind it, which therefore misses every deadline.
NOWHERE = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWMrcujA86svnn5cMYNxMK5YR8G8y2KN11KHGj7s2DAqES"


def last_error(result: subprocess.CompletedProcess[str]) -> str:
    """The `Error: …` line that ends a command whose progress display also wrote to
    stderr (job --wait / --watch)."""
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.rstrip().splitlines()[-1]
    assert line.startswith("Error: "), result.stderr
    return line


def spec_file(tmp_path: Path, name: str, doc: dict | str) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_a_buyer_session_from_spec_file_to_checked_result(
        chain: tuple[TestNetwork, Wallet], tmp_path: Path) -> None:
    net, w = chain
    dev = net.accounts[0]["address"]
    (node_provider,) = w.json("provider", "list")["providers"]
    assert "matmul-int8" in w.ok("provider", "list").stdout
    buyer = new_funded_key(net, w, "buyer", 20)
    w.ok("send", "--from", "buyer", dev, "1jev", "--wait", "--yes")
    w.ok("stake", "--from", "buyer", "2jev", "--wait", "--yes")
    assert account(net, buyer)["stake"] == 2 * JEV

    dims = [64, 128, 64]  # 524,288 multiply-accumulates: 1 unit
    spec = spec_file(tmp_path, "job.json", {"kernel": "matmul-int8", "dims": dims,
                                            "seed": JOB_SEED, "max_price": "0.00002jev",
                                            "deadline_blocks": 50})
    before = account(net, buyer)
    submitted = w.json("job", "submit", "--from", "buyer", spec, "--yes")
    job_id = submitted["job_id"]
    assert submitted["job"]["units"] == 1 and submitted["job"]["escrow"] == 20
    assert submitted["fee"] == MIN_FEE and len(job_id) == 64

    watched = w.run("job", "status", job_id, "--watch", "--interval", "0.5", "-o", "json")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    job = json.loads(watched.stdout)
    assert (job["status"], job["provider"], job["price"]) == \
        ("accepted", node_provider["address"], PRICE)
    stages = [line.split()[2] for line in watched.stderr.splitlines() if line.strip()]
    assert stages[0] == "queued" and stages[-1] == "accepted", watched.stderr
    assert [s for s in ("queued", "assigned", "committed", "accepted") if s in stages] == \
        ["queued", "assigned", "committed", "accepted"], watched.stderr  # in that order
    assert stages == sorted(stages, key=["queued", "assigned", "committed",
                                         "accepted"].index)
    after = account(net, buyer)
    assert after["balance"] == before["balance"] - PRICE * 1 - MIN_FEE  # the rest refunded
    assert job["refunded"] == 20 - PRICE
    assert "status:    accepted" in w.ok("job", "status", job_id).stdout

    out = tmp_path / "result.npy"
    result = w.json("job", "result", job_id, "--out", out, "--check-recompute")
    assert (result["status"], result["root"], result["shape"]) == \
        ("accepted", job["root"], [64, 64])
    expected = run_job("matmul-int8", dims, bytes.fromhex(JOB_SEED))
    assert np.array_equal(np.load(out), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["dev0.json", "job.json", "result.npy", "wallet"]  # no temporary file left

    kernels = {k["kernel"]: k for k in w.json("market")["kernels"]}
    assert kernels["matmul-int8"]["accepted"] >= 1 and kernels["matmul-int8"]["providers"] >= 1
    assert "price index" in w.ok("market").stdout


def test_a_provider_registered_without_a_node_fails_its_job(
        chain: tuple[TestNetwork, Wallet], tmp_path: Path) -> None:
    net, w = chain
    prov = new_funded_key(net, w, "prov", 150)
    terms = ["--from", "prov", "--kernels", "mlp-int8", "--price", "5", "--capacity", "1",
             "--region", "nowhere", "--carbon", "20", "--endpoint", NOWHERE]
    assert "a new provider needs --stake" in w.fails(1, "provider", "register", *terms,
                                                     "--yes")
    assert "min_provider_stake" in w.fails(1, "provider", "register", *terms, "--stake",
                                           "50jev", "--yes")
    assert "unknown: conv" in w.fails(1, "provider", "register", *terms[:3], "mlp-int8,conv",
                                      *terms[4:], "--stake", "100jev", "--yes")
    assert "--endpoint" in w.fails(1, "provider", "register", *terms[:-1], "/ip4/1.2.3.4",
                                   "--stake", "100jev", "--yes")
    assert account(net, prov)["nonce"] == 0  # nothing above was sent
    registered = w.json("provider", "register", *terms, "--stake", "100jev", "--wait", "--yes")
    assert registered["status"] == "committed" and registered["amount"] == 100 * JEV
    shown = w.json("provider", "show", "prov")
    assert (shown["address"], shown["stake"], shown["kernels"], shown["price"]) == \
        (prov, 100 * JEV, ["mlp-int8"], 5)
    w.ok("provider", "register", "--from", "prov", "--price", "6", "--wait", "--yes")
    shown = w.json("provider", "show", prov)
    assert (shown["price"], shown["stake"], shown["endpoint"]) == (6, 100 * JEV, NOWHERE)
    assert prov in w.ok("provider", "list").stdout

    # At 6 ujev/unit only `prov` takes the job (the provider node asks 10); nothing runs
    # it, so it misses its 2-block deadline: the provider is slashed, the buyer refunded.
    spec = spec_file(tmp_path, "mlp.toml", 'kernel = "mlp-int8"\ndims = [8, 32, 16]\n'
                                           'max_price = 6\ndeadline_blocks = 2\n')
    submitted = w.run("job", "submit", "--from", "dev", spec, "--wait", "--yes", "-o", "json")
    assert submitted.returncode == 6, submitted.stdout + submitted.stderr
    job = json.loads(submitted.stdout)["job"]
    assert (job["status"], job["outcome"], job["provider"]) == \
        ("failed", "missed_deadline", prov)
    assert f"job {job['id']} failed: missed_deadline" in last_error(submitted)
    assert "seed" in submitted.stderr  # none in the file: a random one, printed
    line = w.fails(6, "job", "result", job["id"], "--out", tmp_path / "never.npy")
    assert "job is failed: no result" in line and not (tmp_path / "never.npy").exists()
    watched = w.run("job", "status", job["id"], "--watch")
    assert watched.returncode == 6 and "failed: missed_deadline" in last_error(watched)
    slashed = w.json("provider", "show", "prov")
    assert (slashed["jobs_failed"], slashed["stake"]) == (1, 50 * JEV)


BAD_SPECS = [
    ({"kernel": "matmul-int8", "dims": [64, 128], "max_price": 20}, "field 'dims': "
     "matmul-int8 takes 3 dimensions"),
    ({"kernel": "matmul-int8", "dims": [64, 128, 64], "max_price": 20, "gpu": True},
     "unknown field 'gpu'"),
    ({"kernel": "conv-int8", "dims": [64, 128, 64], "max_price": 20},
     "field 'kernel': unknown kernel 'conv-int8'"),
    ({"kernel": "matmul-int8", "dims": [64, 0, 64], "max_price": 20},
     "field 'dims': every dimension must be in 1..65536, got 0"),
    ({"kernel": "matmul-int8", "dims": [64, 128, 64], "seed": "abc", "max_price": 20},
     "field 'seed': expected 64 hex characters"),
    ({"kernel": "matmul-int8", "dims": [64, 128, 64], "max_price": "20"},
     "field 'max_price': expected integer ujev per unit"),
    ({"kernel": "matmul-int8", "dims": [64, 128, 64], "max_price": 20,
      "deadline_blocks": "soon"}, "field 'deadline_blocks': expected an integer"),
    ({"kernel": "matmul-int8", "dims": [65536, 65536, 65536], "max_price": 1},
     "units of work (2^20 multiply-accumulates each), the chain's limit is max_job_units"),
    ({"kernel": "matmul-int8", "dims": [64, 128, 64], "max_price": 20,
      "deadline_blocks": 5000}, "over the chain's max_job_deadline_blocks = 1000"),
    ('{"kernel": "matmul-int8",', "is not valid JSON"),
]


def test_bad_job_specs_are_refused_before_anything_is_sent(
        chain: tuple[TestNetwork, Wallet], tmp_path: Path) -> None:
    net, w = chain
    carol = new_funded_key(net, w, "carol", 1)
    for i, (doc, expected) in enumerate(BAD_SPECS):
        spec = spec_file(tmp_path, f"bad{i}.json", doc)
        line = w.fails(1, "job", "submit", "--from", "carol", spec, "--yes")
        assert expected in line and f"bad{i}.json" in line, (expected, line)
    spec = spec_file(tmp_path, "dear.json", {"kernel": "matmul-int8", "dims": [64, 128, 64],
                                             "max_price": "1jev"})
    assert "insufficient_funds" in w.fails(5, "job", "submit", "--from", "carol", spec,
                                           "--yes")
    net.wait_for_height(net.nodes[0].height() + 2)
    after = account(net, carol)
    assert (after["balance"], after["nonce"]) == (1 * JEV, 0)  # nothing was sent

    unknown = "ab" * 32
    assert "neither on chain nor pending" in w.fails(1, "job", "status", unknown)
    assert "neither on chain nor pending" in w.fails(1, "job", "result", unknown, "--out",
                                                     tmp_path / "x.npy")
    transfer = w.json("send", "--from", "carol", "carol", "1ujev", "--wait", "--yes")["hash"]
    assert "is a transfer transaction, not a job" in w.fails(1, "job", "status", transfer)
    assert "is not a registered provider" in w.fails(1, "provider", "show", "carol")
