"""The few raw syscalls and prctls the isolation layers need, through ctypes.

No extra dependency: Landlock, seccomp, ``unshare`` and ``prctl`` are plain syscalls, and the
PyPI wrappers either lack network rules and scopes (``landlock`` 1.0.0.dev5) or recompile the
filter on every call (``pyseccomp``; research/sandbox.md §2.6, §2.7).
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = [
    "ARCH",
    "CLONE_NEWNET",
    "CLONE_NEWPID",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "check",
    "libc",
    "prctl",
    "setns",
    "syscall",
    "unshare",
]

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int
libc.unshare.restype = ctypes.c_int
libc.setns.restype = ctypes.c_int

ARCH = platform.machine()

CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22


def check(result: int, what: str) -> int:
    """Turn a C ``-1`` into ``OSError`` with the errno and a readable name of the call."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall(number: int, *args: object) -> int:
    return int(libc.syscall(ctypes.c_long(number), *args))


def prctl(option: int, arg2: object = 0, arg3: object = 0) -> int:
    """``prctl(2)`` with up to two arguments (the rest zero)."""
    if isinstance(arg2, int):
        arg2 = ctypes.c_ulong(arg2)
    if isinstance(arg3, int):
        arg3 = ctypes.c_ulong(arg3)
    zero = ctypes.c_ulong(0)
    return check(libc.prctl(ctypes.c_int(option), arg2, arg3, zero, zero), f"prctl({option})")


def setns(fd: int, nstype: int) -> None:
    """``setns(2)``: join the namespace ``fd`` refers to."""
    check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def unshare(flags: int) -> None:
    """``unshare(2)``; ``os.unshare`` only exists from Python 3.12."""
    check(libc.unshare(ctypes.c_int(flags)), "unshare")
