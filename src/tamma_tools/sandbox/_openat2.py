"""Opening a path beneath a directory: ``openat2(2)`` through ctypes, or a careful walk.

Python has no binding for ``openat2`` (syscall 437 on every architecture since Linux 5.6, see
``include/uapi/linux/openat2.h``). ``RESOLVE_BENEATH`` refuses ``..`` above the directory,
absolute paths and symlinks that leave it (``EXDEV``); ``RESOLVE_NO_MAGICLINKS`` refuses
``/proc/<pid>/fd/N``-style links (``ELOOP``). Measured: 4.2 µs per open and zero escapes under a
symlink-swap race, where realpath-then-open escaped 12,253 times in 5 s (research/sandbox.md §2.8).
Kernels before 5.6 (and some container seccomp profiles) lack it: ``walk_beneath`` then does the
same job one ``O_NOFOLLOW`` component at a time.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import functools
import os
import stat
import tempfile
from collections.abc import Sequence
from typing import Literal

__all__ = [
    "MAX_SYMLINK_HOPS",
    "RESOLVE_BENEATH",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "BeneathRefused",
    "openat2",
    "openat2_available",
    "walk_beneath",
]

SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
MAX_SYMLINK_HOPS = 40  # the kernel's own limit (MAXSYMLINKS)

RefusalReason = Literal["traversal", "symlink_escape", "magic_link", "symlink_loop"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    """``struct open_how``: three ``__u64``; its size is passed so the kernel knows the version."""

    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_HOW_SIZE = ctypes.sizeof(_OpenHow)


def openat2(dir_fd: int, path: str | bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """Open ``path`` relative to ``dir_fd``; raise ``OSError`` with the kernel's errno.

    ``O_CLOEXEC`` is always added so no descriptor leaks into a child process. ``EAGAIN`` is
    retried: the kernel returns it for ``RESOLVE_*`` lookups that raced a rename and wants a retry.
    """
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    for _ in range(16):
        fd = int(
            _libc.syscall(
                ctypes.c_long(SYS_OPENAT2),
                ctypes.c_int(dir_fd),
                ctypes.c_char_p(raw),
                ctypes.byref(how),
                ctypes.c_size_t(_HOW_SIZE),
            )
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err), raw.decode("utf-8", "surrogateescape"))
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))


@functools.cache
def openat2_available() -> bool:
    """Whether this kernel (and any seccomp profile around us) lets us call ``openat2``.

    Old kernels answer ``ENOSYS``; some container seccomp profiles answer ``EPERM`` or
    ``ENOSYS`` for syscalls they do not know. Either way the component walk takes over.
    """
    try:
        fd = os.open(tempfile.gettempdir(), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        probe = openat2(
            fd, ".", os.O_PATH | os.O_DIRECTORY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
        )
    except OSError:
        return False
    finally:
        os.close(fd)
    os.close(probe)
    return True


class BeneathRefused(Exception):
    """``walk_beneath`` refused to leave the directory; ``reason`` says how it would have."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason: RefusalReason = reason


def walk_beneath(
    root_fd: int, comps: Sequence[str], flags: int, *, proc_dev: int | None
) -> tuple[int, list[str]]:
    """Open ``comps`` beneath ``root_fd`` without ``openat2``; return the fd and its real path.

    One ``O_NOFOLLOW`` open per component over directory handles; symlinks are read and
    resolved here (relative ones only: absolute links are escapes, as under
    ``RESOLVE_BENEATH``). ``..`` pops our own stack of handles instead of opening ``..``, so a
    directory moved out of the root mid-walk cannot take us with it. A symlink on procfs
    (``proc_dev``) is treated as a magic link. ``O_NOFOLLOW`` in ``flags`` keeps a final
    symlink unresolved. Syscall failures raise ``OSError``.
    """
    stack = [os.dup(root_fd)]
    names: list[str] = []
    queue = collections.deque(comps)
    hops = 0
    via_link = False
    try:
        while queue:
            name = queue.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    raise BeneathRefused("symlink_escape" if via_link else "traversal")
                os.close(stack.pop())
                names.pop()
                continue
            last = not queue
            st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and not (last and flags & os.O_NOFOLLOW):
                if proc_dev is not None and st.st_dev == proc_dev:
                    raise BeneathRefused("magic_link")
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise BeneathRefused("symlink_loop")
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    raise BeneathRefused("symlink_escape")
                queue.extendleft(reversed(target.split("/")))
                via_link = True
                continue
            if last:
                fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                return fd, [*names, name]
            dflags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            stack.append(os.open(name, dflags, dir_fd=stack[-1]))
            names.append(name)
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[-1]), names
    finally:
        for fd in stack:
            os.close(fd)
