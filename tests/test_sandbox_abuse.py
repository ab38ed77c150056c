"""Hostile or buggy tool bodies in the ``process`` sandbox: each is stopped within its limit
plus one second with the right error code, leaves no process behind, and the same sandbox
serves the next call (the issue's "done when" list)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.sandbox.config import SandboxConfig, effective_limits
from tamma_tools.sandbox.sandbox import ExecutionSandbox
from tamma_tools.types import CallerContext, ResourceLimits, ToolDefinition
from tests.support import isolated_tools as T
from tests.support.processes import children_of, wait_until

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def sandbox(root: Path) -> Iterator[ExecutionSandbox]:
    config = SandboxConfig(
        max_execution_time_s=3.0,
        max_memory_bytes=256 * MiB,
        max_file_size_bytes=4 * MiB,
        max_output_bytes=256 * 1024,
        max_result_bytes=8 * MiB,
        max_files_created=500,
        allowed_paths=(root,),
    )
    sb = ExecutionSandbox(config)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def cpu_sandbox() -> Iterator[ExecutionSandbox]:
    """CPU limit (1 s) below the deadline (3 s), so the CPU limit is what stops a spin."""
    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=3.0, max_cpu_time_s=1.0))
    yield sb
    sb.close()


def tool(name: str, *permissions: str) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {"type": "function", "function": {"name": name},
         "metadata": {"permissions": list(permissions), "isolation": "process"}}
    )  # fmt: skip


async def call(
    sb: ExecutionSandbox, fn: Any, args: dict[str, Any], *perms: str, timeout_s: float | None = None
) -> tuple[Any, float]:
    ctx = CallerContext(user_id="tester", resource_limits=ResourceLimits(timeout_s=timeout_s))
    definition = tool(fn.__name__, *perms)
    started = time.monotonic()
    result = await sb.execute_function(definition, fn, args, ctx)
    return result, time.monotonic() - started


async def assert_still_serves(sb: ExecutionSandbox) -> None:
    result, _ = await call(sb, T.add, {"a": 2, "b": 3})
    assert result.success and result.result == 5
    zygote = sb._zygote.pid if sb._zygote is not None else None
    assert zygote is not None
    assert wait_until(lambda: children_of(zygote) == []), "a call left a process behind"


CASES = [
    # (case, executor, arguments, permissions, caller timeout, expected code, limit in s)
    ("memory bomb", T.memory_bomb, {}, (), None, "resource_limit", 3.0),
    ("sleep ignoring signals", T.sleep_ignoring_signals, {"seconds": 60}, (), 1.0, "timeout", 1.0),
    ("fork bomb", T.fork_bomb, {}, (), None, "sandbox_violation", 3.0),
    (
        "setsid grandchild",
        T.setsid_grandchild,
        {"marker": "escaped"},
        ("file:write",),
        None,
        "sandbox_violation",
        3.0,
    ),
    ("huge stdout", T.huge_stdout, {}, (), None, "resource_limit", 3.0),
    ("thread bomb", T.thread_bomb, {}, (), None, "resource_limit", 3.0),
    (
        "reading /etc/shadow",
        T.read_file,
        {"path": "/etc/shadow"},
        ("file:read",),
        None,
        "sandbox_violation",
        3.0,
    ),
    ("20 MB result", T.big_result, {"megabytes": 20}, (), None, "resource_limit", 3.0),
]


@pytest.mark.parametrize(("case", "fn", "args", "perms", "timeout_s", "code", "limit_s"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
async def test_abuse_is_stopped_within_its_limit(
    sandbox: ExecutionSandbox, case: str, fn: Any, args: dict[str, Any], perms: tuple[str, ...],
    timeout_s: float | None, code: str, limit_s: float,
) -> None:  # fmt: skip
    result, elapsed = await call(sandbox, fn, args, *perms, timeout_s=timeout_s)
    assert not result.success, f"{case}: {result.result!r:.200}"
    assert result.error_code == code, result.error
    assert elapsed <= limit_s + 1.0, f"{case} took {elapsed:.2f} s"
    await assert_still_serves(sandbox)


async def test_cpu_spin_is_stopped_by_the_cpu_limit(cpu_sandbox: ExecutionSandbox) -> None:
    # RLIMIT_CPU counts CPU seconds, not wall time: on a busy machine the wall-clock bound is the
    # 3 s deadline, and the CPU seconds used are checked against the 1 s limit.
    result, elapsed = await call(cpu_sandbox, T.cpu_spin, {})
    assert result.error_code == "resource_limit"
    assert elapsed <= 3.0 + 1.0
    assert result.details["limit"] == "cpu"
    assert result.details["cpu_s"] <= 1.0 + 1.0
    await assert_still_serves(cpu_sandbox)
    assert "CPU time" in (result.error or "")


async def test_memory_bomb_reports_the_memory_limit(sandbox: ExecutionSandbox) -> None:
    result, _ = await call(sandbox, T.memory_bomb, {})
    assert result.details["limit"] == "memory"


async def test_huge_file_is_stopped_and_the_partial_file_removed(
    sandbox: ExecutionSandbox, root: Path
) -> None:
    result, elapsed = await call(sandbox, T.huge_file, {"name": "big.bin"}, "file:write")
    assert result.error_code == "resource_limit" and result.details["limit"] == "file_size"
    assert elapsed <= 3.0 + 1.0
    assert not (root / "big.bin").exists()
    await assert_still_serves(sandbox)


async def test_100k_empty_files_are_capped_and_removed(
    sandbox: ExecutionSandbox, root: Path
) -> None:
    before = set(os.listdir(root))
    result, elapsed = await call(sandbox, T.many_files, {"count": 100_000}, "file:write")
    assert result.error_code == "resource_limit" and result.details["limit"] == "files"
    assert elapsed <= 3.0 + 1.0
    assert set(os.listdir(root)) == before
    await assert_still_serves(sandbox)


async def test_os_system_cannot_start_a_program(sandbox: ExecutionSandbox, root: Path) -> None:
    result, _ = await call(sandbox, T.system_call, {"marker": str(root / "pwned")}, "file:write")
    # glibc's system() reports a failed spawn as exit status 127 (32512); nothing ran.
    assert result.success and result.result != 0
    assert not (root / "pwned").exists()
    await assert_still_serves(sandbox)


async def test_writing_outside_the_root_is_refused(sandbox: ExecutionSandbox, root: Path) -> None:
    outside = root.parent / "outside.txt"
    result, _ = await call(sandbox, T.write_file, {"path": str(outside), "text": "x"}, "file:write")
    assert result.error_code == "sandbox_violation"
    assert not outside.exists()
    inside, _ = await call(
        sandbox, T.write_file, {"path": "inside.txt", "text": "ok"}, "file:write"
    )
    assert inside.success and (root / "inside.txt").read_text() == "ok"
    await assert_still_serves(sandbox)


async def test_read_only_permission_cannot_write_the_root(
    sandbox: ExecutionSandbox, root: Path
) -> None:
    result, _ = await call(sandbox, T.write_file, {"path": "ro.txt", "text": "x"}, "file:read")
    assert result.error_code == "sandbox_violation"
    assert not (root / "ro.txt").exists()


async def test_socket_without_network_permission_is_refused(sandbox: ExecutionSandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[Any] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()
    try:
        result, _ = await call(sandbox, T.open_socket, {"host": "127.0.0.1", "port": port})
        assert result.error_code == "sandbox_violation"
        assert accepted == []
        # The same tool run in-process reaches the server: the refusal is the sandbox's doing.
        assert T.open_socket("127.0.0.1", port)
    finally:
        server.close()
    await assert_still_serves(sandbox)


async def test_limits_are_the_smallest_of_config_tool_and_caller(sandbox: ExecutionSandbox) -> None:
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.5, max_memory_bytes=64 * MiB))
    limits = effective_limits(sandbox.config, tool("x").metadata, ctx)
    assert (limits.timeout_s, limits.max_memory_bytes) == (0.5, 64 * MiB)
    started = time.monotonic()
    result = await sandbox.execute_function(
        tool("slow"), T.slow_add, {"a": 1, "b": 2, "seconds": 5}, ctx
    )
    assert result.error_code == "timeout"
    assert time.monotonic() - started < 1.5
