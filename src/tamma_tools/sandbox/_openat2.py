"""``openat2(2)`` through ctypes: the kernel resolves a path and refuses to leave a directory.

Python has no binding for ``openat2`` (syscall 437 on every architecture since Linux 5.6, see
``include/uapi/linux/openat2.h``). ``RESOLVE_BENEATH`` refuses ``..`` above the directory,
absolute paths and symlinks that leave it (``EXDEV``); ``RESOLVE_NO_MAGICLINKS`` refuses
``/proc/<pid>/fd/N``-style links (``ELOOP``). Measured: 4.2 µs per open and zero escapes under a
symlink-swap race, where realpath-then-open escaped 12,253 times in 5 s (research/sandbox.md §2.8).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import tempfile

__all__ = [
    "RESOLVE_BENEATH",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "openat2",
    "openat2_available",
]

SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

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
