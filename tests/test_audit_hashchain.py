"""The hash chain on its own: any edit, deletion, insertion or swap shows at the right row."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.observability.audit import AuditLog
from tamma_tools.observability.hashchain import GENESIS_HASH, HASHED_COLUMNS, verify_chain

N = 12


def chained_rows(n: int = N) -> list[list[Any]]:
    rows = []
    for i in range(n):
        rows.append([0, 1_700_000_000.0 + i, f"call_{i}", "read_file", "u1", "s1", '["analyst"]',
                     "executed", None, None, None, "[]", f'{{"i": {i}}}', "ab" * 32, 0.5 * i, i,
                     "process", '["rlimits"]', "", ""])  # fmt: skip
    AuditLog.chain(rows, 0, GENESIS_HASH)
    return rows


def test_an_untouched_chain_verifies() -> None:
    report = verify_chain(chained_rows())
    assert report.ok and report.checked == N and report.head_seq == N


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, N - 1),
    column=st.integers(0, len(HASHED_COLUMNS) - 1),
    value=st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.none()),
)
def test_property_editing_any_column_of_any_row_is_reported_at_that_row(
    index: int, column: int, value: Any
) -> None:
    rows = chained_rows()
    if rows[index][column] == value:
        value = f"edited-{value!r}"
    edited = copy.deepcopy(rows)
    edited[index][column] = value
    report = verify_chain(edited)
    assert not report.ok
    assert report.checked == index
    expected = index + 1
    if column == 0:  # a renumbered row is named by its new number, if it still is one
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            expected = int(value)
    assert report.first_bad_seq == expected


@settings(max_examples=100, deadline=None)
@given(index=st.integers(0, N - 2))
def test_property_deleting_or_swapping_rows_is_reported(index: int) -> None:
    rows = chained_rows()
    deleted = rows[:index] + rows[index + 1 :]
    report = verify_chain(deleted)
    assert (report.ok, report.checked) == (False, index)
    swapped = copy.deepcopy(rows)
    swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
    report = verify_chain(swapped)
    assert (report.ok, report.checked) == (False, index)


def test_rehashing_an_edited_row_still_breaks_the_next_link() -> None:
    rows = chained_rows()
    rows[4][7] = "denied"  # an insider edits a row and recomputes its own hash...
    AuditLog.chain(rows[4:5], 4, rows[3][19])
    report = verify_chain(rows)
    assert (report.ok, report.first_bad_seq) == (False, 6)  # ...the next row no longer links
    assert "prev_hash" in (report.reason or "")
