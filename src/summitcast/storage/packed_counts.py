"""The packed arrays of an `attendance_counts` row: location ids and their heartbeats.

`location_ids` holds int32 and `heartbeats` uint32 (one per id, same order), both
little-endian on every machine, as migration 0007 first wrote them.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["beats_array", "ids_array", "pack_beats", "pack_ids", "unpack_beats", "unpack_ids"]

_LITTLE_ENDIAN = sys.byteorder == "little"


def _pack(typecode: str, values: Iterable[int]) -> bytes:
    packed = array(typecode, values)
    if not _LITTLE_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _unpack(typecode: str, data: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


def pack_ids(ids: Iterable[int]) -> bytes:
    """Return location ids packed as a row holds them."""
    return _pack("i", ids)


def pack_beats(beats: Iterable[int]) -> bytes:
    """Return heartbeat counts packed as a row holds them."""
    return _pack("I", beats)


def unpack_ids(data: bytes) -> array[int]:
    """Return a row's location ids."""
    return _unpack("i", data)


def unpack_beats(data: bytes) -> array[int]:
    """Return a row's heartbeat counts."""
    return _unpack("I", data)


def ids_array(data: bytes) -> npt.NDArray[np.int32]:
    """Return a row's location ids as a read-only numpy view (no copy)."""
    return np.frombuffer(data, "<i4")


def beats_array(data: bytes) -> npt.NDArray[np.uint32]:
    """Return a row's heartbeat counts as a read-only numpy view (no copy)."""
    return np.frombuffer(data, "<u4")
