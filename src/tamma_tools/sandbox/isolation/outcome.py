"""Turn what an isolated call left behind into the tool's value or one typed error.

The texts are module constants so tests and docs quote the same words. Each error says what
happened and what to change, because the model reads it in the tool message.
"""

from __future__ import annotations

import os
import signal
from typing import Any, NoReturn

import orjson

from tamma_tools.errors import (
    ExecutionCancelled,
    OutputNotSerializable,
    ResourceLimitExceeded,
    SandboxUnavailable,
    SandboxViolation,
    TammaToolsError,
    ToolCrashed,
    ToolTimeout,
)
from tamma_tools.sandbox.config import EffectiveLimits

__all__ = ["interpret"]

TIMEOUT_TEXT = (
    "tool {tool!r} did not finish within {limit:g} s and was stopped; try a smaller request"
)
CANCELLED_TEXT = "tool {tool!r} was cancelled and its process stopped"
OUTPUT_TEXT = "tool {tool!r} printed more than {limit} bytes to stdout/stderr and was stopped"
RESULT_TEXT = (
    "tool {tool!r} returned more than {limit} bytes of JSON and was stopped; ask for less data"
)
LIMIT_TEXTS = {
    "memory": "tool {tool!r} ran out of its {limit} bytes of memory and was stopped",
    "cpu": "tool {tool!r} used up its {limit:g} s of CPU time and was stopped",
    "file_size": "tool {tool!r} tried to write a file larger than {limit} bytes; "
    "the partial file was removed",
    "files": "tool {tool!r} tried to create more than {limit} files or directories; "
    "the ones it created were removed",
    "open_files": "tool {tool!r} tried to keep more than {limit} files open",
    "threads": "tool {tool!r} tried to start more threads than its memory limit allows",
}
DENIED_TEXT = "tool {tool!r} tried something its sandbox forbids and was refused: {detail}"
CRASH_TEXT = "tool {tool!r} failed: {detail}"
SIGNAL_TEXT = "tool {tool!r} crashed: its process was killed by {signal}"
EXIT_TEXT = "tool {tool!r} exited with status {status} before returning a result"
NOT_JSON_TEXT = (
    "tool {tool!r} returned a value that is not JSON ({detail}); "
    "return dicts, lists, str, numbers, bools or None"
)


def _limit_value(limit: str, limits: EffectiveLimits) -> float | int:
    return {
        "memory": limits.max_memory_bytes,
        "cpu": limits.max_cpu_time_s,
        "file_size": limits.max_file_size_bytes,
        "files": limits.max_files_created,
        "open_files": limits.max_open_files,
        "threads": limits.max_memory_bytes,
        "output": limits.max_output_bytes,
        "result_size": limits.max_result_bytes,
    }.get(limit, 0)


def _limit(tool: str, limit: str, limits: EffectiveLimits, **details: Any) -> NoReturn:
    value = _limit_value(limit, limits)
    text = LIMIT_TEXTS.get(limit, "tool {tool!r} hit its {limit} limit")
    raise ResourceLimitExceeded(text.format(tool=tool, limit=value), limit=limit,
                                limit_value=value, **details)  # fmt: skip


def raise_for_kill(reason: str, tool: str, limits: EffectiveLimits) -> NoReturn:
    if reason == "cancelled":
        raise ExecutionCancelled(CANCELLED_TEXT.format(tool=tool))
    if reason == "output":
        cap = limits.max_output_bytes
        raise ResourceLimitExceeded(OUTPUT_TEXT.format(tool=tool, limit=cap),
                                    limit="output", limit_value=cap)  # fmt: skip
    if reason == "result_size":
        cap = limits.max_result_bytes
        raise ResourceLimitExceeded(RESULT_TEXT.format(tool=tool, limit=cap),
                                    limit="result_size", limit_value=cap)  # fmt: skip
    raise ToolTimeout(TIMEOUT_TEXT.format(tool=tool, limit=limits.timeout_s),
                      limit="timeout", timeout_s=limits.timeout_s)  # fmt: skip


def interpret_result(data: bytes, tool: str, limits: EffectiveLimits) -> Any:
    """``OK<json>`` -> the value; ``ER<json>`` -> the matching typed error."""
    try:
        body = orjson.loads(data[2:])
    except orjson.JSONDecodeError as exc:
        raise ToolCrashed(CRASH_TEXT.format(tool=tool, detail="unreadable result")) from exc
    if data[:2] == b"OK":
        return body
    if data[:2] != b"ER" or not isinstance(body, dict):
        raise ToolCrashed(CRASH_TEXT.format(tool=tool, detail="unreadable result"))
    kind = body.get("kind")
    detail = f"{body.get('type') or 'Error'}: {body.get('message', '')}".strip()
    if kind == "resource":
        _limit(tool, str(body.get("limit")), limits, removed=body.get("removed", 0))
    if kind == "denied":
        raise SandboxViolation(DENIED_TEXT.format(tool=tool, detail=detail), rule="sandbox.kernel")
    if kind == "not_serializable":
        raise OutputNotSerializable(NOT_JSON_TEXT.format(tool=tool, detail=detail))
    if kind == "sandbox":
        raise SandboxUnavailable(str(body.get("message")), rule="sandbox.setup")
    raise ToolCrashed(CRASH_TEXT.format(tool=tool, detail=detail), exception_type=body.get("type"))


def interpret_exit(
    status: int | None, cpu_s: float, tool: str, limits: EffectiveLimits, output: bytes
) -> NoReturn:
    """A child that left no result: classify by how it ended."""
    tail = output[-2000:].decode("utf-8", "replace")
    if status is None:
        raise ToolCrashed(EXIT_TEXT.format(tool=tool, status="unknown"), output_tail=tail)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        # SIGXCPU at the soft RLIMIT_CPU, SIGKILL at the hard one (soft + 1 s).
        if sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and cpu_s >= limits.max_cpu_time_s - 0.05
        ):
            _limit(tool, "cpu", limits, cpu_s=round(cpu_s, 3))
        if sig == signal.SIGXFSZ:
            _limit(tool, "file_size", limits)
        raise ToolCrashed(SIGNAL_TEXT.format(tool=tool, signal=signal.Signals(sig).name),
                          signal=signal.Signals(sig).name, output_tail=tail)  # fmt: skip
    raise ToolCrashed(EXIT_TEXT.format(tool=tool, status=os.WEXITSTATUS(status)),
                      exit_status=os.WEXITSTATUS(status), output_tail=tail)  # fmt: skip


def interpret(
    *, tool: str, limits: EffectiveLimits, killed: str | None, result: bytes | None,
    status: int | None = None, cpu_s: float = 0.0, output: bytes = b"",
) -> Any:  # fmt: skip
    """The tool's JSON value, or raise the one error that describes what happened."""
    if killed is not None and killed != "died":
        raise_for_kill(killed, tool, limits)
    if result is not None:
        return interpret_result(result, tool, limits)
    interpret_exit(status, cpu_s, tool, limits, output)


def is_limit_error(exc: TammaToolsError) -> bool:
    return isinstance(exc, ResourceLimitExceeded | ToolTimeout)
