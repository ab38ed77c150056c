"""Tamper evidence for the audit log: every row carries the hash of the row before it.

``hash = SHA-256(prev_hash || canonical JSON of the row's stored columns)``, hex-encoded. The
sequence number is part of the hashed content, so editing, deleting, inserting or reordering any
row breaks the link at that row and every later one; ``verify_chain`` reports the first break.

What a chain cannot show on its own: removal of the *newest* rows (the remaining prefix is still a
valid chain). Compare ``head()`` (seq and hash of the last row) against a copy kept elsewhere, e.g.
the log line the writer emits at each flush, when that matters.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["GENESIS_HASH", "HASHED_COLUMNS", "ChainReport", "chain_hash", "verify_chain"]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row."""

HASHED_COLUMNS: tuple[str, ...] = (
    "seq",
    "ts",
    "call_id",
    "tool",
    "user_id",
    "session_id",
    "roles",
    "outcome",
    "rule",
    "error_code",
    "approver",
    "repairs",
    "args_preview",
    "args_sha256",
    "duration_ms",
    "result_size",
    "isolation",
    "sandbox_layers",
)
"""Every stored column except the two hash columns, in a fixed order; a stored row is these
followed by ``prev_hash`` and ``hash``."""
_N_HASHED = len(HASHED_COLUMNS)
_PREV, _HASH = _N_HASHED, _N_HASHED + 1

_NULLABLE = frozenset({"session_id", "rule", "error_code", "approver"})
_KINDS: tuple[type, ...] = tuple(
    int if c in ("seq", "result_size") else float if c in ("ts", "duration_ms") else str
    for c in HASHED_COLUMNS
)
"""Each hashed column's type. The JSON encoding of the hash maps ``inf``/``nan`` to ``null``
like ``None`` (orjson), so ``verify_chain`` also checks types: a database with dynamic typing
(SQLite) could otherwise hold an ``inf`` where the writer stored ``NULL`` and still verify."""


def _type_error(row: Sequence[Any]) -> str | None:
    for column, kind, value in zip(HASHED_COLUMNS, _KINDS, row, strict=False):
        if value is None and column in _NULLABLE:
            continue
        if type(value) is not kind or (isinstance(value, float) and not math.isfinite(value)):
            expected = "finite float" if kind is float else kind.__name__
            return f"column {column} holds {value!r}, not a {expected}"
    return None


def chain_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """The hash of a row chained to ``prev_hash``; ``values`` are the ``HASHED_COLUMNS`` in order
    (a stored row's first 18 columns)."""
    # A list in fixed order rather than a dict: no key sorting per row, and a column added
    # later cannot silently change the hash of old rows.
    payload = orjson.dumps(values[:_N_HASHED])  # a list or a tuple: both encode as an array
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + payload).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of ``AuditLog.verify()``: ``ok``, rows checked, and the first broken row if any."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def verify_chain(rows: Iterable[Sequence[Any]]) -> ChainReport:
    """Walk stored rows (column order: ``HASHED_COLUMNS``, ``prev_hash``, ``hash``) in ``seq``
    order and report the first whose link or content does not match."""
    prev = GENESIS_HASH
    expected_seq: int | None = None
    checked = 0
    last_seq: int | None = None
    for row in rows:
        try:
            seq = int(row[0])
        except (TypeError, ValueError, OverflowError):
            at = expected_seq if expected_seq is not None else 1
            return ChainReport(False, checked, at, f"row has no valid sequence number: {row[0]!r}")
        if expected_seq is not None and seq != expected_seq:
            return ChainReport(
                False, checked, seq, f"sequence gap: expected row {expected_seq}, found {seq}"
            )
        wrong = _type_error(row)
        if wrong is not None:
            return ChainReport(False, checked, seq, f"row content has the wrong type: {wrong}")
        if row[_PREV] != prev:
            return ChainReport(
                False, checked, seq, "prev_hash does not match the previous row's hash"
            )
        try:
            intact = chain_hash(prev, row) == row[_HASH]
        except (TypeError, ValueError) as exc:  # a value no writer could have stored
            return ChainReport(False, checked, seq, f"row content cannot be hashed: {exc}")
        if not intact:
            return ChainReport(False, checked, seq, "row content does not match its hash")
        prev = row[_HASH]
        expected_seq = seq + 1
        last_seq = seq
        checked += 1
    return ChainReport(True, checked, head_seq=last_seq, head_hash=prev if checked else None)
