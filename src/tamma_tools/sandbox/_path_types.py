"""What the path policy answers with: the resolved path, a directory entry, their kinds."""

from __future__ import annotations

import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = ["EntryInfo", "PathKind", "PathMode", "ResolvedPath", "kind_of"]

PathMode = Literal["read", "write", "list"]
PathKind = Literal["file", "directory", "symlink", "fifo", "socket", "device", "missing"]


@dataclass(frozen=True, slots=True)
class ResolvedPath:
    """Where a path really leads: its root and the symlink-free path below that root."""

    root: Path
    relative: PurePosixPath
    kind: PathKind

    @property
    def absolute(self) -> Path:
        return self.root / self.relative

    def __str__(self) -> str:
        return f"{self.absolute} ({self.kind})"


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """One directory entry or stat result, as the built-in tools report it."""

    name: str
    path: PurePosixPath
    kind: PathKind
    size: int
    mtime: float


def kind_of(mode: int) -> PathKind:
    if stat_mod.S_ISREG(mode):
        return "file"
    if stat_mod.S_ISDIR(mode):
        return "directory"
    if stat_mod.S_ISLNK(mode):
        return "symlink"
    if stat_mod.S_ISFIFO(mode):
        return "fifo"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    return "device"
