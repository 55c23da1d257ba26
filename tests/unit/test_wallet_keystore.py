"""Wallet keys: BIP39 checks, SLIP-0010 derivation against the published vectors, keystore
round trips, every kind of keystore damage, atomic writes, and the local tx checks."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consensus.address import address_from_pubkey, to_bech32
from consensus.crypto import PrivateKey
from consensus.hashing import sha256
from consensus.tx import Stake, Transfer, Unstake
from node.wallet import keystore
from node.wallet.derivation import (
    DEFAULT_PATH,
    check_mnemonic,
    key_from_mnemonic,
    mnemonic_to_seed,
    new_mnemonic,
    parse_path,
    slip10_derive,
)
from node.wallet.errors import (
    ExitCode,
    InvalidMnemonic,
    KeyNotFound,
    KeystoreCorrupt,
    TxRejected,
    WalletError,
    WrongPassword,
)
from node.wallet.inputs import read_private_key_file
from node.wallet.keystore import FAST, MODERATE, Secret, Wallet, write_new_file
from node.wallet.txflow import Plan, chain_min_fee, check_affordable, parse_value

PASSWORD = "correct horse battery"
# BIP39 reference vector (trezor/python-mnemonic vectors.json, entropy 7f7f…7f).
TREZOR_PHRASE = "legal winner thank year wave sausage worth useful legal winner thank yellow"
TREZOR_SEED = ("2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6f"
               "a457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607")

# SLIP-0010 "Test vector 1 for ed25519", seed 000102030405060708090a0b0c0d0e0f:
# (path, chain code, private key, public key without the spec's 00 prefix).
SLIP10_VECTOR_1 = [
    ("m", "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
     "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
     "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"),
    ("m/0'", "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
     "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
     "8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"),
    ("m/0'/1'", "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
     "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
     "1932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"),
    ("m/0'/1'/2'", "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
     "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
     "ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"),
    ("m/0'/1'/2'/2'", "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
     "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
     "8abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"),
    ("m/0'/1'/2'/2'/1000000000'",
     "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
     "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
     "3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"),
]


# --- mnemonics and derivation -------------------------------------------------------------

@pytest.mark.parametrize(("path", "chain_code", "private", "public"), SLIP10_VECTOR_1)
def test_slip10_ed25519_test_vector_1(path: str, chain_code: str, private: str,
                                      public: str) -> None:
    key, chain = slip10_derive(bytes.fromhex("000102030405060708090a0b0c0d0e0f"), path)
    assert (chain.hex(), key.hex()) == (chain_code, private)
    assert PrivateKey.from_seed(key).public.hex() == public


def test_bip39_seed_matches_the_reference_vector() -> None:
    assert mnemonic_to_seed(TREZOR_PHRASE, "TREZOR").hex() == TREZOR_SEED


def test_new_mnemonic_has_24_checked_words_and_is_fresh() -> None:
    first, second = new_mnemonic(), new_mnemonic()
    assert len(first.split()) == 24 and check_mnemonic(first) == first
    assert first != second


def test_mnemonic_is_normalized_before_use() -> None:
    messy = "  " + TREZOR_PHRASE.upper().replace(" ", "   \n") + "\n"
    assert check_mnemonic(messy) == TREZOR_PHRASE
    assert key_from_mnemonic(messy) == key_from_mnemonic(TREZOR_PHRASE)


@pytest.mark.parametrize(("phrase", "reason"), [
    ("legal winner thank year", "has 4 words; expected 12"),
    (TREZOR_PHRASE.replace("wave", "wavy"), r"word 5 \('wavy'\) is not in the BIP39"),
    (TREZOR_PHRASE.replace("yellow", "winner"), "checksum does not match"),
    (" ".join(["abandon"] * 12), "checksum does not match"),
    ("", "has 0 words"),
])
def test_mnemonic_rejections_say_what_is_wrong(phrase: str, reason: str) -> None:
    with pytest.raises(InvalidMnemonic, match=reason):
        check_mnemonic(phrase)
    with pytest.raises(InvalidMnemonic):
        Secret.from_mnemonic(phrase)


def test_default_path_and_path_rules() -> None:
    assert DEFAULT_PATH == "m/44'/7777'/0'/0'/0'"
    assert parse_path("m/44h/0'") == [0x8000_002C, 0x8000_0000]
    for bad, reason in [("44'/0'", "start with 'm'"), ("m/44'/0", "not hardened"),
                        ("m/x'", "bad step"), (f"m/{2**31}'", "bad step")]:
        with pytest.raises(ValueError, match=reason):
            parse_path(bad)


def test_the_wallet_key_is_the_slip10_key_of_the_bip39_seed() -> None:
    key, _ = slip10_derive(mnemonic_to_seed(TREZOR_PHRASE), DEFAULT_PATH)
    assert key_from_mnemonic(TREZOR_PHRASE).seed == key
    assert key_from_mnemonic(TREZOR_PHRASE, "m/44'/7777'/0'/0'/1'").seed != key


# --- keystore round trips -----------------------------------------------------------------

@pytest.fixture
def wallet(tmp_path: Path) -> Wallet:
    return Wallet(tmp_path / "wallet")


def test_round_trip_of_a_mnemonic_key(wallet: Wallet) -> None:
    secret = Secret.from_mnemonic(TREZOR_PHRASE)
    info = wallet.save("alice", secret, PASSWORD, FAST)
    assert info.address == to_bech32(address_from_pubkey(secret.key.public))
    assert (info.name, info.source, info.path) == ("alice", "mnemonic", DEFAULT_PATH)
    assert wallet.info("alice") == info
    back = wallet.unlock("alice", PASSWORD)
    assert back == secret and back.mnemonic == TREZOR_PHRASE
    assert "legal" not in repr(back) and back.seed.hex() not in repr(back)
    assert wallet.names() == ["alice"]


def test_round_trip_of_a_private_key_with_default_limits(wallet: Wallet) -> None:
    seed = sha256(b"some seed")
    info = wallet.save("raw", Secret.from_seed(seed), PASSWORD, MODERATE)
    assert info.limits == MODERATE and not info.weak_kdf
    doc = json.loads(info.file.read_text())
    assert doc["kdf"]["opslimit"] == 3 and doc["kdf"]["memlimit"] == 256 * 1024 * 1024
    assert seed.hex() not in info.file.read_text()
    secret = wallet.unlock("raw", PASSWORD)
    assert (secret.source, secret.seed, secret.mnemonic) == ("private_key", seed, None)


def test_files_are_private_and_each_has_its_own_salt(wallet: Wallet) -> None:
    secret = Secret.from_mnemonic(TREZOR_PHRASE)
    a = wallet.save("a", secret, PASSWORD, FAST)
    b = wallet.save("b", secret, PASSWORD, FAST)
    assert stat.S_IMODE(a.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(wallet.dir.stat().st_mode) == 0o700
    docs = [json.loads(p.read_text()) for p in (a.file, b.file)]
    assert docs[0]["kdf"]["salt"] != docs[1]["kdf"]["salt"]
    assert docs[0]["cipher"]["ciphertext"] != docs[1]["cipher"]["ciphertext"]


def test_kdf_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(keystore.KDF_ENV, raising=False)
    assert keystore.kdf_limits_from_env() == MODERATE
    monkeypatch.setenv(keystore.KDF_ENV, "fast")
    assert keystore.kdf_limits_from_env() == FAST
    monkeypatch.setenv(keystore.KDF_ENV, "quick")
    with pytest.raises(WalletError, match="not understood"):
        keystore.kdf_limits_from_env()


def test_wrong_password_is_its_own_error(wallet: Wallet) -> None:
    wallet.save("alice", Secret.from_mnemonic(TREZOR_PHRASE), PASSWORD, FAST)
    with pytest.raises(WrongPassword, match="wrong password for key 'alice'") as info:
        wallet.unlock("alice", PASSWORD + "!")
    assert info.value.exit_code == ExitCode.KEYSTORE == 3


def test_existing_keys_are_kept_unless_forced(wallet: Wallet) -> None:
    first = wallet.save("k", Secret.from_seed(sha256(b"1")), PASSWORD, FAST)
    before = first.file.read_bytes()
    with pytest.raises(WalletError, match="already exists"):
        wallet.save("k", Secret.from_seed(sha256(b"2")), PASSWORD, FAST)
    assert first.file.read_bytes() == before
    second = wallet.save("k", Secret.from_seed(sha256(b"2")), PASSWORD, FAST, force=True)
    assert second.address != first.address
    assert wallet.unlock("k", PASSWORD).seed == sha256(b"2")


def test_missing_keys_and_bad_names(wallet: Wallet) -> None:
    with pytest.raises(KeyNotFound, match="no key named 'ghost'"):
        wallet.unlock("ghost", PASSWORD)
    for bad in ("", ".hidden", "a/b", "x" * 65, "spaced name"):
        with pytest.raises(WalletError, match="key name"):
            wallet.file(bad)


def test_delete_removes_the_file(wallet: Wallet) -> None:
    info = wallet.save("gone", Secret.from_seed(sha256(b"g")), PASSWORD, FAST)
    assert wallet.delete("gone") == info.file and not info.file.exists()
    with pytest.raises(KeyNotFound):
        wallet.delete("gone")


# --- corruption ---------------------------------------------------------------------------

def _flip_hex(text: str, at: int = 0) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:]


def _other_address() -> str:
    return to_bech32(address_from_pubkey(PrivateKey.from_seed(sha256(b"other")).public))


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        *parents, last = path.split(".")
        target = doc
        for p in parents:
            target = target[p]
        target[last] = value(target[last]) if callable(value) else value
    return edit


def _swap_key(doc: dict) -> None:  # a consistent pubkey/address pair of another key
    other = PrivateKey.from_seed(sha256(b"other")).public
    doc["pubkey"], doc["address"] = other.hex(), to_bech32(address_from_pubkey(other))


CORRUPTIONS: list[tuple[str, Callable[[dict], None], type, str]] = [
    ("version", _set("version", 2), KeystoreCorrupt, "field 'version' is 2"),
    ("source", _set("source", "ledger"), KeystoreCorrupt, "field 'source'"),
    ("path type", _set("path", None), KeystoreCorrupt, "field 'path'"),
    ("path value", _set("path", "m/44'/7777'/0'/0'/9'"), KeystoreCorrupt,
     "decrypted key does not match"),
    ("kdf missing", lambda d: d.pop("kdf"), KeystoreCorrupt, "field 'kdf' must be a dict"),
    ("kdf.name", _set("kdf.name", "scrypt"), KeystoreCorrupt, "field 'kdf.name'"),
    ("kdf.salt not hex", _set("kdf.salt", "zz"), KeystoreCorrupt, "'kdf.salt' is not hex"),
    ("kdf.salt length", _set("kdf.salt", "00" * 15), KeystoreCorrupt, "must be 16 bytes"),
    ("kdf.salt value", _set("kdf.salt", _flip_hex), WrongPassword, "wrong password"),
    ("kdf.opslimit bound", _set("kdf.opslimit", 10**9), KeystoreCorrupt, "outside 1..16"),
    ("kdf.memlimit type", _set("kdf.memlimit", "64M"), KeystoreCorrupt, "must be a int"),
    ("cipher.name", _set("cipher.name", "aes"), KeystoreCorrupt, "field 'cipher.name'"),
    ("cipher.nonce", _set("cipher.nonce", _flip_hex), KeystoreCorrupt,
     "fails authentication"),
    ("cipher.nonce length", _set("cipher.nonce", "00"), KeystoreCorrupt, "must be 24 bytes"),
    ("cipher.ciphertext", _set("cipher.ciphertext", lambda t: _flip_hex(t, 40)),
     KeystoreCorrupt, "fails authentication"),
    ("cipher.ciphertext cut", _set("cipher.ciphertext", lambda t: t[:20]), KeystoreCorrupt,
     "fails authentication"),
    ("password_check", _set("password_check", _flip_hex), KeystoreCorrupt,
     "field 'password_check' does not match"),
    ("pubkey", _set("pubkey", _flip_hex), KeystoreCorrupt, "does not belong to field 'pubkey'"),
    ("address", _set("address", lambda a: _other_address()), KeystoreCorrupt,
     "does not belong to field 'pubkey'"),
    ("address checksum", _set("address", lambda a: a[:-1] + ("q" if a[-1] != "q" else "p")),
     KeystoreCorrupt, "bad checksum"),
    ("pubkey and address", _swap_key, KeystoreCorrupt, "decrypted key does not match"),
]


@pytest.mark.parametrize(("what", "edit", "error", "reason"), CORRUPTIONS,
                         ids=[c[0] for c in CORRUPTIONS])
def test_each_damaged_field_is_named(wallet: Wallet, what: str, edit: Callable[[dict], None],
                                     error: type, reason: str) -> None:
    info = wallet.save("k", Secret.from_mnemonic(TREZOR_PHRASE), PASSWORD, FAST)
    doc = json.loads(info.file.read_text())
    edit(doc)
    info.file.write_text(json.dumps(doc))
    with pytest.raises(error, match=reason) as caught:
        wallet.unlock("k", PASSWORD)
    assert caught.value.exit_code == 3
    if error is KeystoreCorrupt:
        assert str(info.file) in str(caught.value)


def test_a_damaged_private_key_plaintext_is_caught(wallet: Wallet) -> None:
    # a box that opens with the right password but holds garbage: written by hand
    secret = Secret("private_key", sha256(b"s"))
    doc = keystore.encrypt_secret(secret, PASSWORD, FAST)
    doc["source"] = "mnemonic"
    doc["path"] = DEFAULT_PATH
    wallet.ensure_dir()
    wallet.file("k").write_text(json.dumps(doc))
    with pytest.raises(KeystoreCorrupt, match="decrypted secret is not a valid mnemonic"):
        wallet.unlock("k", PASSWORD)


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"version": 1, "address": ', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b"{}", "field 'version' is None"),
    (b" " * (keystore.MAX_FILE_BYTES + 1), "over 65536 bytes"),
])
def test_unparseable_files_are_corrupt(wallet: Wallet, content: bytes, reason: str) -> None:
    wallet.ensure_dir()
    wallet.file("k").write_bytes(content)
    with pytest.raises(KeystoreCorrupt, match=reason):
        wallet.info("k")


# --- atomic writes ------------------------------------------------------------------------

def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(("failing", "force"), [("fchmod", False), ("fsync", False),
                                               ("link", False), ("replace", True)])
def test_a_failed_write_leaves_no_file(wallet: Wallet, monkeypatch: pytest.MonkeyPatch,
                                       failing: str, force: bool) -> None:
    wallet.ensure_dir()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keystore.os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        wallet.save("k", Secret.from_seed(sha256(b"x")), PASSWORD, FAST, force=force)
    monkeypatch.undo()
    assert _leftovers(wallet.dir) == []
    assert wallet.names() == []


def test_a_write_into_a_missing_directory_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "absent" / "k.json"
    with pytest.raises(FileNotFoundError):
        write_new_file(target, b"{}", force=False)
    assert not target.parent.exists() and _leftovers(tmp_path) == []


def test_no_overwrite_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "k.json"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_new_file(target, b"new", force=False)
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == ["k.json"]
    write_new_file(target, b"new", force=True)
    assert target.read_bytes() == b"new" and _leftovers(tmp_path) == ["k.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_names_skip_temporary_and_foreign_files(wallet: Wallet) -> None:
    wallet.save("real", Secret.from_seed(sha256(b"r")), PASSWORD, FAST)
    (wallet.dir / ".real.json.abc.tmp").write_text("{")
    (wallet.dir / "notes.txt").write_text("hi")
    assert wallet.names() == ["real"]


# --- private key files --------------------------------------------------------------------

def test_private_key_file_forms(tmp_path: Path) -> None:
    key = PrivateKey.from_seed(sha256(b"dev"))
    forms = {"hex": key.seed.hex() + "\n", "secret": (key.seed + key.public).hex(),
             "json": json.dumps({"address": "x", "seed": key.seed.hex()})}
    for name, text in forms.items():
        (tmp_path / name).write_text(text)
        assert read_private_key_file(str(tmp_path / name)) == key.seed
    bad = {"short": "00" * 31, "mismatch": (key.seed + bytes(32)).hex(), "nothex": "zz",
           "json": "{\"seed\": 5}"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(WalletError, match="private key file"):
            read_private_key_file(str(tmp_path / name))
    with pytest.raises(WalletError, match="cannot read private key file"):
        read_private_key_file(str(tmp_path / "absent"))
    assert os.path.exists(tmp_path / "hex")


# --- local transaction checks -------------------------------------------------------------

def _plan(body: Any, balance: int, stake: int = 0, fee: int = 100) -> Plan:
    info = keystore.parse_keystore(keystore.encrypt_secret(
        Secret.from_seed(sha256(b"p")), PASSWORD, FAST), Path("p.json"))
    return Plan(info, body, "jevons-test", 0, fee, balance, stake)


def test_local_funds_check() -> None:
    to = bytes(20)
    check_affordable(_plan(Transfer(to, 900), 1_000))
    with pytest.raises(TxRejected, match="insufficient_funds: balance") as caught:
        check_affordable(_plan(Transfer(to, 901), 1_000))
    assert caught.value.exit_code == 5 and "short by" in str(caught.value)
    with pytest.raises(TxRejected, match="never funded"):
        check_affordable(_plan(Stake(1), 0))
    check_affordable(_plan(Unstake(500), 100, stake=500))
    with pytest.raises(TxRejected, match="insufficient_stake"):
        check_affordable(_plan(Unstake(501), 100, stake=500))
    with pytest.raises(TxRejected, match="insufficient_funds"):
        check_affordable(_plan(Unstake(500), 99, stake=500))


def test_amounts_and_fees() -> None:
    assert parse_value("1.5jev", "amount") == 1_500_000
    assert parse_value("2", "amount") == 2_000_000
    assert parse_value("150ujev", "--fee", unit_required=True) == 150
    with pytest.raises(WalletError, match="needs a unit"):
        parse_value("150", "--fee", unit_required=True)
    with pytest.raises(WalletError, match=r"amount: .*finer than 1 ujev"):
        parse_value("0.0000001jev", "amount")
    assert chain_min_fee({"min_fee": 7}) == 7
    assert chain_min_fee({"params": {"min_fee": 9}}) == 9
    assert chain_min_fee({}) == 100
