"""Length-prefixed frames between the application, the zygote, its children and the workers.

A frame is a 4-byte big-endian length and that many bytes. Control data is JSON (``orjson``);
the only non-JSON payload is a cloudpickled executor, which travels parent -> child only. Nothing
that comes back from an isolated process is ever unpickled (DESIGN: "JSON only, never pickle").
"""

from __future__ import annotations

import os
import struct
from typing import Any

import orjson

__all__ = [
    "HEADER",
    "MAX_CONTROL_FRAME",
    "ProtocolError",
    "decode",
    "encode",
    "frame",
    "read_exact",
    "read_frame",
    "write_all",
]

HEADER = struct.Struct(">I")
MAX_CONTROL_FRAME = 64 * 1024
"""Largest control message (spawn request, ack, exit status); arguments travel separately."""


class ProtocolError(Exception):
    """A peer closed the channel early or sent a frame that is not what the protocol expects."""


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj)


def decode(data: bytes) -> Any:
    return orjson.loads(data)


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte to a blocking fd (``os.write`` may write less than asked on pipes)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int) -> bytes:
    """Read exactly ``n`` bytes from a blocking fd; EOF before that is a protocol error."""
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ProtocolError(f"channel closed with {left} of {n} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, limit: int) -> bytes:
    """Read one frame from a blocking fd, refusing frames larger than ``limit`` bytes."""
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size))
    if size > limit:
        raise ProtocolError(f"frame of {size} bytes exceeds the {limit}-byte limit")
    return read_exact(fd, size)
