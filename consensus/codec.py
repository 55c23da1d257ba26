"""Canonical encoding: msgpack of fixed-order arrays, strict and bounded.

Every object has exactly one byte form. `decode` accepts only that form: maps, floats,
extension types, nil and booleans are refused, every length is bounded, and the bytes must
re-encode to themselves (msgpack always picks the shortest integer/str/bin/array header, so
this also refuses padded or otherwise non-canonical headers and trailing bytes).
"""

from __future__ import annotations

from typing import Any

import msgpack

from consensus.errors import DecodeError

MAX_UINT64 = 2**64 - 1
MAX_INT64 = 2**63 - 1
DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB: a safe default for single objects (tx, vote, header)
MAX_DEPTH = 8

Value = int | bytes | str | list


def encode(obj: list | tuple) -> bytes:
    """Pack a fixed-order array of ints, bytes, str and nested arrays.

    Anything `decode` would refuse (nil, booleans, floats, maps, deeper nesting) is refused
    here too, so every encoding decodes back to its input.
    """
    if not isinstance(obj, (list, tuple)):
        raise DecodeError(f"cannot encode: top level must be an array, got {type(obj).__name__}")
    _check_encodable(obj, 0)
    try:
        return msgpack.packb(obj, use_bin_type=True, default=_refuse)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"cannot encode: {exc}") from exc


def _check_encodable(items: list | tuple, depth: int) -> None:
    """msgpack would pack None, bool, float and dict natively; they have no canonical form."""
    if depth >= MAX_DEPTH:
        raise DecodeError(f"cannot encode: nesting deeper than {MAX_DEPTH}")
    for item in items:
        kind = type(item)
        if kind is int or kind is bytes or kind is str:
            continue
        if isinstance(item, (list, tuple)):
            _check_encodable(item, depth + 1)
        elif isinstance(item, bool) or not isinstance(item, (int, bytes, bytearray, memoryview,
                                                              str)):
            raise DecodeError(f"cannot encode: type {kind.__name__} has no canonical encoding")


def _refuse(obj: Any) -> Any:
    raise TypeError(f"type {type(obj).__name__} has no canonical encoding")


def decode(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list:
    """Unpack canonical bytes into a list; raise DecodeError with the reason otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DecodeError(f"object is {len(data)} bytes, limit is {max_bytes}")
    if len(data) == 0:
        raise DecodeError("empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=max_bytes,
            max_map_len=0,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError("trailing bytes after object") from exc
    except (ValueError, msgpack.UnpackException, UnicodeDecodeError) as exc:
        raise DecodeError(f"malformed msgpack: {exc.__class__.__name__}: {exc}") from exc
    if not isinstance(obj, list):
        raise DecodeError(f"top level must be an array, got {type(obj).__name__}")
    _check_value(obj, 0)
    if msgpack.packb(obj, use_bin_type=True) != bytes(data):
        raise DecodeError("non-canonical encoding")
    return obj


def _check_value(items: list, depth: int) -> None:
    """Every element is an int, bytes, str or (bounded-depth) array of the same."""
    if depth >= MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}")
    for item in items:
        kind = type(item)
        if kind is int or kind is bytes or kind is str:
            continue
        if kind is list:
            _check_value(item, depth + 1)
            continue
        raise DecodeError(f"type {kind.__name__} is not allowed in canonical data")


# --- field helpers used by every type's from_fields() -------------------------------------


def expect_list(value: Any, length: int, what: str) -> list:
    if type(value) is not list:
        raise DecodeError(f"{what}: expected array, got {type(value).__name__}")
    if len(value) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(value)}")
    return value


def expect_array(value: Any, what: str, max_len: int) -> list:
    if type(value) is not list:
        raise DecodeError(f"{what}: expected array, got {type(value).__name__}")
    if len(value) > max_len:
        raise DecodeError(f"{what}: {len(value)} items, limit is {max_len}")
    return value


def expect_int(value: Any, what: str, lo: int = 0, hi: int = MAX_UINT64) -> int:
    if type(value) is not int:
        raise DecodeError(f"{what}: expected integer, got {type(value).__name__}")
    if value < lo or value > hi:
        raise DecodeError(f"{what}: {value} outside [{lo}, {hi}]")
    return value


def expect_bytes(value: Any, what: str, length: int | None = None, max_len: int = 1 << 20) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(value)}")
    if len(value) > max_len:
        raise DecodeError(f"{what}: {len(value)} bytes, limit is {max_len}")
    return value


def expect_str(value: Any, what: str, max_len: int = 64) -> str:
    if type(value) is not str:
        raise DecodeError(f"{what}: expected string, got {type(value).__name__}")
    if len(value) > max_len:
        raise DecodeError(f"{what}: {len(value)} characters, limit is {max_len}")
    return value
