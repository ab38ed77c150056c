"""Process-table helpers for the isolation tests: who is alive, and whose child is it."""

from __future__ import annotations

import os
import time


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return rest[0], int(rest[1])


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) direct children of ``pid``."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[1] == pid and st[0] != "Z":
                out.append(int(name))
    return out


def processes_with(token: str) -> list[int]:
    """Live processes whose command line contains ``token``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        st = _stat(int(name))
        if token in cmdline and st is not None and st[0] != "Z":
            out.append(int(name))
    return out


def wait_until(predicate, timeout_s: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true (the kernel reaps asynchronously) or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
