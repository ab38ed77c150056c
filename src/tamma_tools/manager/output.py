"""Turning a tool's return value into the text the model reads, within the output cap."""

from __future__ import annotations

from typing import Any

import orjson

from tamma_tools.errors import OutputNotSerializable

__all__ = ["TRUNCATION_MARKER", "encode_result", "truncate_text"]

TRUNCATION_MARKER = "\n…[output truncated: {cut} of {total} bytes removed]…\n"


def encode_result(value: Any) -> str:
    """Strings pass through; everything else must be JSON-serialisable."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(
            value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        ).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise OutputNotSerializable(
            f"the tool returned a value that is not JSON-serialisable "
            f"({type(value).__name__}): {exc}. Return str, numbers, bools, None, lists or dicts."
        ) from None


def truncate_text(text: str, max_bytes: int) -> tuple[str, int]:
    """Keep the head and the tail within ``max_bytes`` (UTF-8); return (text, bytes cut)."""
    if len(text) * 4 <= max_bytes:  # cheap exit: even all-4-byte characters fit
        return text, 0
    data = text.encode("utf-8", "surrogatepass")
    total = len(data)
    if total <= max_bytes:
        return text, 0
    marker_room = len(TRUNCATION_MARKER) + 40
    keep = max(max_bytes - marker_room, 0)
    head_len = keep * 2 // 3
    tail_len = keep - head_len
    head = data[:head_len].decode("utf-8", "ignore")
    tail = data[total - tail_len :].decode("utf-8", "ignore") if tail_len else ""
    cut = total - len(head.encode()) - len(tail.encode())
    return head + TRUNCATION_MARKER.format(cut=cut, total=total) + tail, cut
