"""Writing a file atomically in a directory handle: temp file, fsync, rename, fsync the directory.

A failure at any point removes the temp file and leaves the target unchanged; appending copies
the existing content first (checked to be the same inode that was resolved) within the size cap.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat as stat_mod
from typing import TYPE_CHECKING

from tamma_tools.errors import ExecutionError, ResourceLimitExceeded
from tamma_tools.sandbox._path_rules import MSG_SYMLINK_ESCAPE, MSG_TOO_LARGE, RULE_SYMLINK_ESCAPE

if TYPE_CHECKING:
    from tamma_tools.sandbox.paths import PathPolicy

__all__ = ["replace_atomically"]


def replace_atomically(
    policy: PathPolicy,
    pfd: int,
    name: str,
    data: bytes,
    st: os.stat_result | None,
    append: bool,
    max_bytes: int,
    path: str,
) -> None:
    tmp = f".tamma-{secrets.token_hex(8)}.tmp"
    mode = stat_mod.S_IMODE(st.st_mode) if st is not None else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        out = os.open(tmp, flags, mode, dir_fd=pfd)
    except OSError as exc:
        raise policy._os_denial(exc, path) from None
    try:
        try:
            if st is not None:
                os.fchmod(out, mode)
            if append and st is not None:
                _copy_existing(policy, pfd, name, st, out, max_bytes - len(data), path)
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=pfd)
        if isinstance(exc, OSError):
            raise ExecutionError(
                f"writing {path!r} failed: {exc.strerror}; the file is unchanged",
                code="io_error",
            ) from exc
        raise
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _copy_existing(
    policy: PathPolicy, pfd: int, name: str, st: os.stat_result, out: int, budget: int, path: str
) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    src = os.open(name, flags, dir_fd=pfd)
    try:
        now = os.fstat(src)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise policy._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path)
        copied = 0
        while chunk := os.read(src, 1 << 20):
            copied += len(chunk)
            if copied > budget:
                raise ResourceLimitExceeded(
                    MSG_TOO_LARGE.format(size=copied, limit=budget), limit="max_file_size_bytes"
                )
            os.write(out, chunk)
    finally:
        os.close(src)
