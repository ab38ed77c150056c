"""Inside an isolated process: find the executor, call it, and turn the outcome into JSON bytes.

Shared by the per-call child and the persistent worker. The result is ``OK`` + the JSON value or
``ER`` + a JSON description of the failure (kind, exception type, message, which limit). The
application parses it with a JSON parser and nothing else.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import json
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["FileTracker", "describe_failure", "encode_value", "invoke", "resolve"]

MESSAGE_LIMIT = 1000
"""Characters of an exception message sent back; enough to act on, no traceback spam."""

_THREAD_LIMIT_TEXT = "can't start new thread"


class FileLimitHit(OSError):
    """Raised inside ``open()``/``mkdir()`` once a call has created its quota of new entries."""


def resolve(target: dict[str, Any], blob: bytes | None) -> Callable[..., Any]:
    """The executor named by ``module:qualname``, or the one cloudpickled by the application."""
    if target["kind"] == "import":
        module_name, _, qualname = str(target["ref"]).partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj  # type: ignore[no-any-return]
    if target["kind"] == "pickle":
        if blob is None:
            raise ValueError("pickled executor missing from the request")
        # Parent -> child only: the application pickled its own executor. Nothing is ever
        # unpickled in the other direction.
        return pickle.loads(blob)  # type: ignore[no-any-return]
    raise ValueError(f"unknown executor kind {target['kind']!r}")


def build_context(data: dict[str, Any]) -> Any:
    from tamma_tools.types import CallerContext, ResourceLimits

    return CallerContext(
        user_id=data["user_id"],
        session_id=data["session_id"],
        roles=frozenset(data["roles"]),
        permissions=frozenset(data["permissions"]),
        resource_limits=ResourceLimits(**data["resource_limits"]),
    )


def invoke(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    value = fn(**arguments)
    if inspect.isawaitable(value):
        import asyncio

        async def _await() -> Any:
            return await value

        value = asyncio.run(_await())
    return value


def encode_value(value: Any) -> bytes:
    """``OK`` + strict JSON (no NaN/Infinity).

    The standard library encoder, not orjson: under ``RLIMIT_AS`` orjson crashed with SIGSEGV
    encoding a 20 MiB string, where ``json`` raises ``MemoryError`` like any other allocation.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return b"OK" + text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        return b"ER" + orjson.dumps(
            {
                "kind": "not_serializable",
                "type": type(value).__name__,
                "message": str(exc)[:MESSAGE_LIMIT],
            }
        )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 8 and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def describe_failure(exc: BaseException, tracker: FileTracker | None = None) -> dict[str, Any]:
    """Classify an exception that escaped the tool: a limit, a kernel refusal, or a plain error."""
    out: dict[str, Any] = {
        "kind": "error",
        "type": type(exc).__name__,
        "message": str(exc)[:MESSAGE_LIMIT],
    }
    if tracker is not None and tracker.limit_hit:
        out.update(kind="resource", limit="files")
        return out
    for e in _chain(exc):
        if isinstance(e, MemoryError):
            out.update(kind="resource", limit="memory")
            return out
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            out.update(kind="resource", limit="file_size")
            return out
        if isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE):
            out.update(kind="resource", limit="open_files")
            return out
        if isinstance(e, RuntimeError) and _THREAD_LIMIT_TEXT in str(e):
            out.update(kind="resource", limit="threads")
            return out
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.EPERM, errno.EACCES, errno.EXDEV):
            out.update(kind="denied", type=type(e).__name__, message=str(e)[:MESSAGE_LIMIT])
            return out
    return out


THREAD_STACK_BYTES = 2 * 1024 * 1024
THREAD_LIMIT_TEXT = "can't start new thread: this call may run at most {limit} threads"


def cap_threads(address_space: int, max_threads: int) -> int:
    """Refuse new threads cleanly before the address space runs out; returns the cap.

    Under ``RLIMIT_AS`` a thread whose stack was mapped but whose interpreter state could not be
    allocated never reports that it started, and ``Thread.start()`` waits forever: the thread
    bomb then ended in a timeout instead of an error. Smaller stacks (2 MiB) and a cap at half of
    the remaining address space keep thread creation failing with ``RuntimeError`` instead.
    """
    import _thread
    import threading

    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        used = 0
    free = max(address_space - used, 0)
    limit = max(1, min(max_threads, free // (2 * (THREAD_STACK_BYTES + 1024 * 1024))))
    threading.stack_size(THREAD_STACK_BYTES)
    start = _thread.start_new_thread

    def guarded(function: Any, args: Any, kwargs: Any = None) -> int:
        if _thread._count() >= limit:  # type: ignore[attr-defined]
            raise RuntimeError(THREAD_LIMIT_TEXT.format(limit=limit))
        return start(function, args, kwargs or {})

    threading._start_new_thread = guarded  # type: ignore[attr-defined]
    _thread.start_new_thread = guarded
    return limit


class FileTracker:
    """Counts the files and directories a call creates, through an audit hook (PEP 578).

    ``RLIMIT_FSIZE`` caps the size of one file, not how many a tool makes: the research prototype
    created 69,335 empty files in 2 s (research/sandbox.md §2.12). Past ``limit`` new entries every
    further creation fails. The paths are remembered so that a call that failed on a file limit can
    remove what it created (DESIGN: "no partial writes").
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.created: list[str] = []
        self.limit_hit = False

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def _note(self, path: Any) -> None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or os.path.lexists(path):
            return
        if len(self.created) >= self.limit:
            self.limit_hit = True
            raise FileLimitHit(
                errno.EDQUOT, f"this call may create at most {self.limit} files and directories"
            )
        self.created.append(os.path.abspath(path))

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(mode, str):
                writes = any(c in mode for c in "wax+")
            else:
                writes = bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writes:
                self._note(path)
        elif event == "os.mkdir":
            self._note(args[0])

    def remove_created(self) -> int:
        """Delete what this call created, newest first; returns how many entries went."""
        removed = 0
        for path in reversed(self.created):
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                removed += 1
            except OSError:
                pass
        return removed
