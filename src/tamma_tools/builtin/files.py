"""``read_file``, ``write_file`` and ``list_files``: file access through the path policy only.

Every open goes through ``tamma_tools.sandbox.paths.PathPolicy`` (``openat2`` beneath a root,
block list on the resolved path); these executors only shape what the model sees: text or a
clear note for binary content, explicit truncation markers, and entries with their type. Work
runs in a thread so a slow disk never stalls the event loop other calls share.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import mimetypes
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tamma_tools.errors import ArgumentError
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.paths import EntryInfo, PathPolicy
from tamma_tools.types import ToolDefinition

__all__ = [
    "DEFAULT_LIST_DEPTH",
    "DEFAULT_LIST_ENTRIES",
    "LIST_FILES_DEFINITION",
    "READ_FILE_DEFINITION",
    "WRITE_FILE_DEFINITION",
    "content_budget",
    "file_tools",
    "looks_binary",
]

DEFAULT_READ_BYTES = 256 * 1024
"""Default read cap: enough for most source files, small enough for a model's context."""
DEFAULT_LIST_ENTRIES = 1000
DEFAULT_LIST_DEPTH = 8
BINARY_SAMPLE_BYTES = 8192
BINARY_BAD_RATIO = 0.1
"""More than 10% undecodable bytes in the sample: binary, not text with a few bad bytes."""

MSG_TRUNCATED = (
    "\n[truncated: showing the first {shown} of {size} bytes; pass a larger max_bytes "
    "(at most {limit}) to see more]"
)
MSG_BINARY = (
    '[binary file: {size} bytes, type {ctype}; not shown as text. Pass encoding "base64" '
    "to get the bytes]"
)
MSG_MAX_BYTES = "max_bytes must be at least 1, got {value}"
MSG_LIST_CAPPED = "listing stopped at {limit} entries; list a subdirectory or use a pattern"
MSG_DEPTH_CAPPED = "directories deeper than {depth} levels were not entered"

_KINDS = {"file": "file", "directory": "dir", "symlink": "symlink"}

_STRING_OR_NULL = {"type": ["string", "null"]}

READ_FILE_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": (
                "Read a file inside the workspace. Returns its text (binary files as a note, or "
                "base64 when asked), its size, and whether the content was cut at max_bytes."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "File path, relative to the workspace root.",
                    },
                    "max_bytes": {
                        "type": ["integer", "null"],
                        "description": "Read at most this many bytes (null: the default cap).",
                    },
                    "encoding": {
                        "type": ["string", "null"],
                        "enum": ["text", "base64", None],
                        "description": '"text" (default) or "base64" for binary files.',
                    },
                },
                "required": ["path", "max_bytes", "encoding"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        "metadata": {
            "category": "files",
            "permissions": ["file:read"],
            "timeout_s": 10,
            "isolation": "in_process",
            "read_only": True,
            "idempotent": True,
            "tags": ["builtin", "files"],
        },
    }
)

WRITE_FILE_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": (
                "Write text to a file inside the workspace, replacing it atomically (or "
                "appending). Missing parent directories are created. Returns the bytes written."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "File path, relative to the workspace root.",
                    },
                    "content": {"type": "string", "description": "Text to write (UTF-8)."},
                    "append": {
                        "type": ["boolean", "null"],
                        "description": "Append instead of replacing (null: replace).",
                    },
                },
                "required": ["path", "content", "append"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        "metadata": {
            "category": "files",
            "permissions": ["file:write"],
            "timeout_s": 10,
            "isolation": "in_process",
            "destructive": True,
            "tags": ["builtin", "files"],
        },
    }
)

LIST_FILES_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "list_files",
            "description": (
                "List a directory inside the workspace: name, path, type (file/dir/symlink/"
                "other), size and modification time of each entry. Symbolic links are listed, "
                "never followed."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {
                        "type": ["string", "null"],
                        "description": 'Directory, relative to the workspace root (null: ".").',
                    },
                    "pattern": {
                        "type": ["string", "null"],
                        "description": 'Glob matched against entry names, e.g. "*.py".',
                    },
                    "recursive": {
                        "type": ["boolean", "null"],
                        "description": "Also list subdirectories (null: no).",
                    },
                },
                "required": ["path", "pattern", "recursive"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        "metadata": {
            "category": "files",
            "permissions": ["file:read"],
            "timeout_s": 10,
            "isolation": "in_process",
            "read_only": True,
            "idempotent": True,
            "tags": ["builtin", "files"],
        },
    }
)


def content_budget(config: SandboxConfig) -> int:
    """Bytes of file or response content one result may carry.

    Three quarters of ``max_output_bytes``: the rest is room for the JSON envelope and escaping,
    so the manager's output cap never has to cut a result in the middle of its JSON.
    """
    return max(1024, config.max_output_bytes * 3 // 4)


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or a high share of invalid UTF-8, in the first 8 KiB."""
    sample = data[:BINARY_SAMPLE_BYTES]
    if not sample:
        return False
    if b"\0" in sample:
        return True
    good = len(sample.decode("utf-8", "ignore").encode("utf-8"))
    # A multi-byte character cut at the sample's end is not a sign of binary content.
    return (len(sample) - good - 3) / len(sample) > BINARY_BAD_RATIO


def _decode(data: bytes, cut: bool) -> str:
    """UTF-8 text; a character split by the read cap is dropped, not shown as U+FFFD."""
    if cut:
        for back in range(4):
            try:
                return data[: len(data) - back].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return data.decode("utf-8", "replace")


def _read(policy: PathPolicy, path: str, limit: int) -> tuple[bytes, int]:
    fd = policy.open_file(path)
    try:
        size = os.fstat(fd).st_size
        chunks: list[bytes] = []
        got = 0
        while got < limit and (chunk := os.read(fd, min(1 << 20, limit - got))):
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks), max(size, got)
    finally:
        os.close(fd)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _entry(info: EntryInfo, shown: str) -> dict[str, Any]:
    return {
        "name": info.name,
        "path": shown,
        "type": _KINDS.get(info.kind, "other"),
        "size": info.size,
        "modified": _iso(info.mtime),
    }


def file_tools(
    policy: PathPolicy, config: SandboxConfig | None = None
) -> list[tuple[ToolDefinition, Callable[..., Awaitable[dict[str, Any]]]]]:
    """``read_file``, ``write_file`` and ``list_files`` bound to ``policy`` and ``config``."""
    cfg = config or SandboxConfig()
    max_read = content_budget(cfg)
    default_read = min(DEFAULT_READ_BYTES, max_read)

    async def read_file(
        path: str, max_bytes: int | None = None, encoding: str | None = None
    ) -> dict[str, Any]:
        if max_bytes is not None and max_bytes < 1:
            raise ArgumentError(MSG_MAX_BYTES.format(value=max_bytes))
        limit = min(max_bytes or default_read, max_read)
        data, size = await asyncio.to_thread(_read, policy, path, limit)
        truncated = size > len(data)
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if encoding == "base64":
            content, shown_as = base64.b64encode(data).decode("ascii"), "base64"
        elif looks_binary(data):
            content, shown_as = MSG_BINARY.format(size=size, ctype=ctype), "omitted"
        else:
            content, shown_as = _decode(data, truncated), "text"
        if truncated and shown_as == "text":
            content += MSG_TRUNCATED.format(shown=len(data), size=size, limit=max_read)
        return {
            "path": path,
            "size_bytes": size,
            "bytes_read": len(data),
            "encoding": shown_as,
            "content": content,
            "truncated": truncated,
        }

    async def write_file(path: str, content: str, append: bool | None = None) -> dict[str, Any]:
        data = content.encode("utf-8", "surrogatepass")
        resolved = await asyncio.to_thread(
            policy.write_atomic,
            path,
            data,
            max_bytes=cfg.max_file_size_bytes,
            append=bool(append),
            make_parents=True,
        )
        return {
            "path": str(resolved.relative),
            "bytes_written": len(data),
            "appended": bool(append),
        }

    def _list(path: str, pattern: str | None, recursive: bool) -> dict[str, Any]:
        limit = DEFAULT_LIST_ENTRIES
        entries: list[dict[str, Any]] = []
        notes: list[str] = []
        queue: list[tuple[str, str, int]] = [(path, "", 0)]
        depth_capped = False
        while queue:
            where, prefix, depth = queue.pop(0)
            found = policy.list_dir(where, max_entries=limit + 1)
            for info in found:
                shown = prefix + info.name
                if info.kind == "directory" and recursive:
                    if depth + 1 < DEFAULT_LIST_DEPTH:
                        queue.append((f"{where.rstrip('/')}/{info.name}", shown + "/", depth + 1))
                    else:
                        depth_capped = True
                if pattern is not None and not fnmatch.fnmatchcase(info.name, pattern):
                    continue
                if len(entries) >= limit:
                    notes.append(MSG_LIST_CAPPED.format(limit=limit))
                    return {"path": path, "entries": entries, "count": len(entries),
                            "truncated": True, "notes": notes}  # fmt: skip
                entries.append(_entry(info, shown))
        if depth_capped:
            notes.append(MSG_DEPTH_CAPPED.format(depth=DEFAULT_LIST_DEPTH))
        return {"path": path, "entries": entries, "count": len(entries),
                "truncated": depth_capped, "notes": notes}  # fmt: skip

    async def list_files(
        path: str | None = None, pattern: str | None = None, recursive: bool | None = None
    ) -> dict[str, Any]:
        return await asyncio.to_thread(_list, path or ".", pattern, bool(recursive))

    return [
        (READ_FILE_DEFINITION, read_file),
        (WRITE_FILE_DEFINITION, write_file),
        (LIST_FILES_DEFINITION, list_files),
    ]
