"""Path policy: every file access stays beneath an allowed root, decided by the kernel.

Each root is opened once as an ``O_PATH|O_DIRECTORY`` handle and every open is
``openat2(rootfd, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)``: checking a string and then
opening it races with symlink swaps (12,253 escapes in 5 s, research/sandbox.md §2.8). Where the
kernel lacks ``openat2`` a component-by-component ``O_NOFOLLOW`` walk over directory handles
takes over, resolving symlinks itself and never opening ``..``.

Paths are taken literally (CWE-22/CWE-182): no URL-decoding, no ``~``, no Unicode normalisation,
no backslash conversion. Block-list patterns (``_blocklist.py``: ``.gitignore`` syntax, matched
case-insensitively) apply to both the requested (lexically normalised) and the resolved in-root
path, so ``docs/../.env``, ``./.env``, ``.ENV`` and a symlink to ``.env`` are all refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat as stat_mod
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Literal, ParamSpec, TypeVar

from tamma_tools.errors import ConfigError, PathDenied, ResourceLimitExceeded
from tamma_tools.sandbox._atomic_write import replace_atomically
from tamma_tools.sandbox._blocklist import Blocklist, normalise_components
from tamma_tools.sandbox._openat2 import (
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    BeneathRefused,
    openat2,
    openat2_available,
    walk_beneath,
)
from tamma_tools.sandbox._path_rules import (
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MSG_BLOCKED,
    MSG_CONTROL,
    MSG_DISABLED,
    MSG_EMPTY,
    MSG_ENCODING,
    MSG_HARDLINK,
    MSG_MAGIC_LINK,
    MSG_NO_ROOTS,
    MSG_NOT_DIRECTORY,
    MSG_NOT_FOUND,
    MSG_NOT_REGULAR,
    MSG_NUL,
    MSG_OS_REFUSED,
    MSG_OUTSIDE,
    MSG_SYMLINK_ESCAPE,
    MSG_SYMLINK_LOOP,
    MSG_TOO_LARGE,
    MSG_TOO_LONG,
    MSG_TRAILING_SLASH,
    MSG_TRAVERSAL,
    RULE_BLOCKED,
    RULE_CONTROL,
    RULE_DISABLED,
    RULE_EMPTY,
    RULE_ENCODING,
    RULE_HARDLINK,
    RULE_MAGIC_LINK,
    RULE_NO_ROOTS,
    RULE_NOT_DIRECTORY,
    RULE_NOT_FOUND,
    RULE_NOT_REGULAR,
    RULE_NUL,
    RULE_OS_REFUSED,
    RULE_OUTSIDE,
    RULE_SYMLINK_ESCAPE,
    RULE_SYMLINK_LOOP,
    RULE_TOO_LONG,
    RULE_TRAVERSAL,
)
from tamma_tools.sandbox._path_types import EntryInfo, PathKind, PathMode, ResolvedPath
from tamma_tools.sandbox._path_types import kind_of as _kind
from tamma_tools.sandbox.config import SandboxConfig

__all__ = [
    "EntryInfo",
    "PathKind",
    "PathMode",
    "PathPolicy",
    "ResolvedPath",
]

Resolution = Literal["auto", "openat2", "walk"]

_WALK_RULES = {
    "traversal": (RULE_TRAVERSAL, MSG_TRAVERSAL),
    "symlink_escape": (RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE),
    "magic_link": (RULE_MAGIC_LINK, MSG_MAGIC_LINK),
    "symlink_loop": (RULE_SYMLINK_LOOP, MSG_SYMLINK_LOOP),
}

P = ParamSpec("P")
T = TypeVar("T")

_CONTROL = re.compile(r"[\x01-\x1f\x7f]")


_RACE_RETRIES = 5
"""Attempts when a concurrent rename replaces the file being resolved (never an escape)."""


class _Replaced(Exception):
    """The opened file was renamed over before its path could be read back."""


class _Root:
    __slots__ = ("fd", "parts", "path", "real", "real_parts")

    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.abspath(path))
        try:
            self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(
                f"allowed path {str(path)!r} is not a usable directory: {exc}"
            ) from exc
        self.real = os.path.realpath(self.path)
        self.parts = [p for p in str(self.path).split("/") if p]
        self.real_parts = [p for p in self.real.split("/") if p]


class PathPolicy:
    """Decides and performs file access beneath allowed roots (see the module docstring)."""

    def __init__(
        self,
        roots: Sequence[Path | str],
        blocked: Sequence[str] = (),
        *,
        enabled: bool = True,
        resolution: Resolution = "auto",
        force_fallback: bool = False,
    ) -> None:
        """``resolution="walk"`` (or ``force_fallback=True``) uses the component walk even where
        ``openat2`` exists: for tests and for kernels whose seccomp profile breaks it oddly."""
        self.enabled = enabled
        # A disabled policy opens nothing, so a config naming absent roots still loads.
        self._roots = [_Root(Path(r)) for r in roots] if enabled else []
        self._blocklist = Blocklist(blocked)
        if force_fallback:
            resolution = "walk"
        if resolution == "auto":
            self.uses_openat2 = openat2_available() and os.path.isdir("/proc/self/fd")
        else:
            self.uses_openat2 = resolution == "openat2"
        self._roots_text = ", ".join(str(r.path) for r in self._roots) or "(none)"
        try:
            self._proc_dev: int | None = os.stat("/proc").st_dev
        except OSError:
            self._proc_dev = None

    @classmethod
    def from_config(cls, config: SandboxConfig) -> PathPolicy:
        return cls(
            config.allowed_paths,
            config.blocked_paths,
            enabled=config.enable_file_system_access,
        )

    @property
    def roots(self) -> tuple[Path, ...]:
        return tuple(r.path for r in self._roots)

    def close(self) -> None:
        for root in self._roots:
            if root.fd >= 0:
                os.close(root.fd)
                root.fd = -1

    def __enter__(self) -> PathPolicy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # --- public operations ----------------------------------------------------------------

    def check_path(self, path: str, mode: PathMode) -> ResolvedPath:
        """Resolve ``path`` for ``mode`` without changing anything; raise ``PathDenied``."""
        root, comps = self._locate(path)
        if mode == "write" and path.endswith("/"):
            raise self._deny(RULE_NOT_DIRECTORY, MSG_TRAILING_SLASH, path)
        if mode == "write":
            pfd, parent, name, st = self._resolve_for_write(root, comps, path)
            os.close(pfd)
            kind: PathKind = "missing" if st is None else _kind(st.st_mode)
            return ResolvedPath(root.path, PurePosixPath(*parent, name), kind)
        fd, resolved = self._open(root, comps, os.O_PATH, path)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        kind = _kind(st.st_mode)
        if path.endswith("/") and kind != "directory":
            raise self._deny(RULE_NOT_DIRECTORY, MSG_TRAILING_SLASH, path)
        if mode == "list" and kind != "directory":
            raise self._deny(RULE_NOT_DIRECTORY, MSG_NOT_DIRECTORY, path)
        if mode == "read" and kind not in ("file", "directory"):
            raise self._not_regular(path, kind, "read")
        return ResolvedPath(root.path, PurePosixPath(*resolved), kind)

    def open_file(self, path: str, mode: Literal["read"] = "read") -> int:
        """Open a regular file for reading; the caller owns (and closes) the returned fd.

        The target is first opened ``O_PATH`` (no side effects, never blocks), checked to be a
        regular file, then reopened by its resolved path and compared by inode, so a FIFO or a
        device is never opened for real and a swap in between is caught.
        """
        root, comps = self._locate(path)
        if path.endswith("/"):
            raise self._deny(RULE_NOT_DIRECTORY, MSG_TRAILING_SLASH, path)
        pfd, resolved = self._open(root, comps, os.O_PATH, path)
        try:
            first = os.fstat(pfd)
        finally:
            os.close(pfd)
        if not stat_mod.S_ISREG(first.st_mode):
            raise self._not_regular(path, _kind(first.st_mode), "read")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW
        fd, _ = self._open(root, resolved, flags, path)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (first.st_dev, first.st_ino) or not stat_mod.S_ISREG(
            st.st_mode
        ):
            os.close(fd)
            raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path)
        return fd

    def stat(self, path: str) -> EntryInfo:
        """Stat the resolved target (in-root symlinks are followed)."""
        root, comps = self._locate(path)
        fd, resolved = self._open(root, comps, os.O_PATH, path)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        rel = PurePosixPath(*resolved)
        return EntryInfo(rel.name, rel, _kind(st.st_mode), st.st_size, st.st_mtime)

    def list_dir(self, path: str = ".", *, max_entries: int = 1000) -> list[EntryInfo]:
        """Entries of a directory (never following symlinks), blocked names left out.

        At most ``max_entries`` are read (ask for one more to detect truncation); sorted by name.
        """
        root, comps = self._locate(path)
        flags = os.O_RDONLY | os.O_DIRECTORY
        try:
            fd, resolved = self._open(root, comps, flags, path)
        except PathDenied as exc:
            if exc.details.get("errno") == errno.ENOTDIR:
                raise self._deny(RULE_NOT_DIRECTORY, MSG_NOT_DIRECTORY, path) from None
            raise
        entries: list[EntryInfo] = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if len(entries) >= max_entries:
                        break
                    rel = PurePosixPath(*resolved, entry.name)
                    if self._blocked_by(rel.parts) is not None:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while listing
                    entries.append(
                        EntryInfo(entry.name, rel, _kind(st.st_mode), st.st_size, st.st_mtime)
                    )
        finally:
            os.close(fd)
        entries.sort(key=lambda e: e.name)
        return entries

    def mkdir(self, path: str, *, parents: bool = False) -> ResolvedPath:
        """Create a directory beneath its root; with ``parents``, missing parents too."""
        root, comps = self._locate(path)
        if not comps:
            return ResolvedPath(root.path, PurePosixPath("."), "directory")
        if parents:
            fd, resolved = self._make_dirs(root, comps, path)
            os.close(fd)
            return ResolvedPath(root.path, PurePosixPath(*resolved), "directory")
        pfd, parent, name, st = self._resolve_for_write(root, comps, path)
        try:
            if st is None:
                self._os(path, os.mkdir, name, 0o755, dir_fd=pfd)
            elif not stat_mod.S_ISDIR(st.st_mode):
                raise self._deny(RULE_NOT_DIRECTORY, MSG_NOT_DIRECTORY, path)
        finally:
            os.close(pfd)
        return ResolvedPath(root.path, PurePosixPath(*parent, name), "directory")

    def write_atomic(
        self,
        path: str,
        data: bytes,
        *,
        max_bytes: int,
        append: bool = False,
        make_parents: bool = False,
    ) -> ResolvedPath:
        """Replace (or append to) a file atomically: temp file + ``renameat`` in its directory.

        Readers see the old or the new content, never a partial file; a failure leaves the old
        file untouched and no temp file behind. Hard-linked targets are refused: renaming over
        them would be fine, but the caller asked to change *that* file, which is also elsewhere.
        """
        if len(data) > max_bytes:
            raise ResourceLimitExceeded(
                MSG_TOO_LARGE.format(size=len(data), limit=max_bytes), limit="max_file_size_bytes"
            )
        root, comps = self._locate(path)
        if path.endswith("/"):
            raise self._deny(RULE_NOT_DIRECTORY, MSG_TRAILING_SLASH, path)
        if make_parents and len(comps) > 1:
            fd, _ = self._make_dirs(root, comps[:-1], path)
            os.close(fd)
        pfd, parent, name, st = self._resolve_for_write(root, comps, path)
        try:
            if st is not None and st.st_nlink > 1:
                raise self._deny(RULE_HARDLINK, MSG_HARDLINK, path)
            old_size = st.st_size if (append and st is not None) else 0
            if old_size + len(data) > max_bytes:
                raise ResourceLimitExceeded(
                    MSG_TOO_LARGE.format(size=old_size + len(data), limit=max_bytes),
                    limit="max_file_size_bytes",
                )
            replace_atomically(self, pfd, name, data, st, append, max_bytes, path)
        finally:
            os.close(pfd)
        return ResolvedPath(root.path, PurePosixPath(*parent, name), "file")

    # --- resolution -----------------------------------------------------------------------

    def _locate(self, path: str) -> tuple[_Root, list[str]]:
        """Validate the literal string and split it into a root and in-root components."""
        if not self.enabled:
            raise PathDenied(MSG_DISABLED, rule=RULE_DISABLED, path=path)
        if not self._roots:
            raise PathDenied(MSG_NO_ROOTS, rule=RULE_NO_ROOTS, path=path)
        if not isinstance(path, str) or path == "":
            raise PathDenied(
                MSG_EMPTY.format(roots=self._roots_text), rule=RULE_EMPTY, path=str(path)
            )
        if "\0" in path:
            raise self._deny(RULE_NUL, MSG_NUL, path)
        if _CONTROL.search(path):
            raise self._deny(RULE_CONTROL, MSG_CONTROL, path)
        try:
            raw = path.encode("utf-8")
        except UnicodeEncodeError:
            raise self._deny(RULE_ENCODING, MSG_ENCODING, path) from None
        if len(raw) > MAX_PATH_BYTES or any(len(p) > MAX_NAME_BYTES for p in raw.split(b"/")):
            raise PathDenied(MSG_TOO_LONG, rule=RULE_TOO_LONG, path=path[:200])
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if path.startswith("/"):
            root, comps = self._root_for_absolute(parts, path)
        else:
            root, comps = self._roots[0], parts
        depth = 0
        for comp in comps:
            depth += -1 if comp == ".." else 1
            if depth < 0:
                raise self._deny(RULE_TRAVERSAL, MSG_TRAVERSAL, path)
        return root, comps

    def _root_for_absolute(self, parts: list[str], path: str) -> tuple[_Root, list[str]]:
        # Component prefix, not string prefix: "/srv/root_evil" is not inside "/srv/root".
        best: tuple[int, _Root] | None = None
        for root in self._roots:
            for rparts in (root.parts, root.real_parts):
                if parts[: len(rparts)] == rparts and (best is None or len(rparts) > best[0]):
                    best = (len(rparts), root)
        if best is None:
            raise self._deny(RULE_OUTSIDE, MSG_OUTSIDE, path)
        return best[1], parts[best[0] :]

    def _open(self, root: _Root, comps: list[str], flags: int, path: str) -> tuple[int, list[str]]:
        """Open ``comps`` beneath ``root``; return the fd and its symlink-free in-root path."""
        self._refuse_blocked(
            normalise_components(comps), path
        )  # before any lookup: `.ENV` never probes
        if not self.uses_openat2:
            fd, resolved = self._walk(root, comps, flags, path)
        else:
            rel = "/".join(comps) or "."
            for attempt in range(_RACE_RETRIES):
                try:
                    fd = openat2(root.fd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
                except OSError as exc:
                    if exc.errno in (errno.EXDEV, errno.ELOOP):
                        # The kernel refused; the walk names the reason (escape, loop, magic link).
                        fd, _ = self._walk(root, comps, flags, path)
                        os.close(fd)
                        raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path) from None
                    raise self._os_denial(exc, path) from None
                try:
                    resolved = self._in_root(root, fd, path)
                except _Replaced:
                    # Renamed over between open and readlink (a concurrent atomic write):
                    # open the new file instead of calling it an escape.
                    if attempt == _RACE_RETRIES - 1:
                        raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path) from None
                    continue
                break
        try:
            self._refuse_blocked(resolved, path)
        except PathDenied:
            os.close(fd)
            raise
        return fd, resolved

    def _refuse_blocked(self, parts: Sequence[str], path: str) -> None:
        blocked = self._blocked_by(parts)
        if blocked is not None:
            raise PathDenied(
                MSG_BLOCKED.format(path=path, pattern=blocked), rule=RULE_BLOCKED, path=path
            )

    def _in_root(self, root: _Root, fd: int, path: str) -> list[str]:
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError as exc:
            os.close(fd)
            raise self._os_denial(exc, path) from None
        deleted = real.endswith(" (deleted)")
        parts = [p for p in real.removesuffix(" (deleted)").split("/") if p]
        if parts[: len(root.real_parts)] != root.real_parts:
            os.close(fd)
            raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path)
        if deleted:
            os.close(fd)
            raise _Replaced
        return parts[len(root.real_parts) :]

    def _walk(self, root: _Root, comps: list[str], flags: int, path: str) -> tuple[int, list[str]]:
        """The no-``openat2`` fallback (``walk_beneath``), its refusals named as rules."""
        try:
            return walk_beneath(root.fd, comps, flags, proc_dev=self._proc_dev)
        except BeneathRefused as exc:
            rule, template = _WALK_RULES[exc.reason]
            raise self._deny(rule, template, path) from None
        except OSError as exc:
            raise self._os_denial(exc, path) from None

    def _resolve_for_write(
        self, root: _Root, comps: list[str], path: str
    ) -> tuple[int, list[str], str, os.stat_result | None]:
        """Parent directory handle, its in-root path, the final name, and the target's stat."""
        norm = normalise_components(comps)
        if not norm:
            raise self._not_regular(path, "directory", "written")
        for _ in range(_RACE_RETRIES):
            try:
                fd, resolved = self._open(root, comps, os.O_PATH, path)
            except PathDenied as exc:
                if exc.rule != RULE_NOT_FOUND:
                    raise
            else:
                st = os.fstat(fd)
                os.close(fd)
                if not stat_mod.S_ISREG(st.st_mode):
                    raise self._not_regular(path, _kind(st.st_mode), "written")
                pfd, parent = self._open(root, resolved[:-1], os.O_PATH | os.O_DIRECTORY, path)
                return pfd, parent, resolved[-1], st
            if comps[-1] == "..":
                raise self._deny(RULE_NOT_FOUND, MSG_NOT_FOUND, path, detail="")
            pfd, parent = self._open(root, comps[:-1], os.O_PATH | os.O_DIRECTORY, path)
            name = comps[-1]
            try:
                found = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                break
            except OSError as exc:
                os.close(pfd)
                raise self._os_denial(exc, path) from None
            os.close(pfd)
            if stat_mod.S_ISLNK(found.st_mode):
                # A dangling symlink: writing would create its target somewhere unchecked.
                raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path)
            # Created by a concurrent writer since the open said "not found": resolve again.
        else:
            raise self._deny(RULE_SYMLINK_ESCAPE, MSG_SYMLINK_ESCAPE, path)
        blocked = self._blocked_by([*parent, name])
        if blocked is not None:
            os.close(pfd)
            raise PathDenied(
                MSG_BLOCKED.format(path=path, pattern=blocked), rule=RULE_BLOCKED, path=path
            )
        return pfd, parent, name, None

    def _make_dirs(self, root: _Root, comps: list[str], path: str) -> tuple[int, list[str]]:
        """Open the longest existing prefix, then create the rest one component at a time."""
        fd, resolved = self._open(root, [], os.O_PATH | os.O_DIRECTORY, path)
        for i in range(len(comps), 0, -1):
            try:
                nfd, nres = self._open(root, comps[:i], os.O_PATH | os.O_DIRECTORY, path)
            except PathDenied as exc:
                if exc.rule == RULE_NOT_FOUND:
                    continue
                os.close(fd)
                raise
            os.close(fd)
            fd, resolved, comps = nfd, nres, comps[i:]
            break
        try:
            for name in comps:
                if name == "..":
                    raise self._deny(RULE_NOT_FOUND, MSG_NOT_FOUND, path, detail="")
                blocked = self._blocked_by([*resolved, name])
                if blocked is not None:
                    raise PathDenied(
                        MSG_BLOCKED.format(path=path, pattern=blocked), rule=RULE_BLOCKED
                    )
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise self._os_denial(exc, path) from None
                dflags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                nfd = self._os(path, os.open, name, dflags, dir_fd=fd)
                os.close(fd)
                fd, resolved = nfd, [*resolved, name]
        except BaseException:
            os.close(fd)
            raise
        return fd, resolved

    # --- denials --------------------------------------------------------------------------

    def _blocked_by(self, parts: Sequence[str]) -> str | None:
        return self._blocklist.match(parts)

    def _deny(self, rule: str, template: str, path: str, **extra: object) -> PathDenied:
        return PathDenied(
            template.format(path=path, roots=self._roots_text, **extra), rule=rule, path=path
        )

    def _not_regular(self, path: str, kind: str, verb: str) -> PathDenied:
        return self._deny(RULE_NOT_REGULAR, MSG_NOT_REGULAR, path, kind=kind, verb=verb)

    def _os_denial(self, exc: OSError, path: str) -> PathDenied:
        code = exc.errno
        if code == errno.ENOENT:
            denial = self._deny(RULE_NOT_FOUND, MSG_NOT_FOUND, path, detail="")
        elif code == errno.ENOTDIR:
            detail = " (a component of it is not a directory)"
            denial = self._deny(RULE_NOT_FOUND, MSG_NOT_FOUND, path, detail=detail)
        elif code == errno.ELOOP:
            denial = self._deny(RULE_SYMLINK_LOOP, MSG_SYMLINK_LOOP, path)
        elif code == errno.ENAMETOOLONG:
            denial = PathDenied(MSG_TOO_LONG, rule=RULE_TOO_LONG, path=path[:200])
        elif code in (errno.ENXIO, errno.EISDIR, errno.ENODEV):
            denial = self._not_regular(path, "special file", "opened")
        else:
            reason = os.strerror(code) if code else str(exc)
            denial = self._deny(RULE_OS_REFUSED, MSG_OS_REFUSED, path, reason=reason)
        denial.details["errno"] = code
        return denial

    def _os(self, path: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call an ``os`` function; an ``OSError`` becomes the matching ``PathDenied``."""
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            raise self._os_denial(exc, path) from None
