"""``ExecutionSandbox``'s interface as the manager uses it: isolation levels, executors by path
and by value, context, cancellation, restarts, capability refusals and clean shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tamma_tools.errors import (
    ExecutionCancelled,
    SandboxUnavailable,
    SandboxViolation,
    ToolCrashed,
)
from tamma_tools.sandbox.config import SandboxConfig, effective_limits
from tamma_tools.sandbox.isolation.capabilities import SandboxCapabilities
from tamma_tools.sandbox.sandbox import ExecutionSandbox, SandboxEvent
from tamma_tools.types import CallerContext, ResourceLimits, ToolDefinition
from tests.support import isolated_tools as T
from tests.support.processes import children_of, wait_until

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ExecutionSandbox]:
    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=5.0, max_memory_bytes=256 * MiB))
    yield sb
    sb.close()


def tool(name: str, isolation: str = "process", *permissions: str) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {"type": "function", "function": {"name": name},
         "metadata": {"permissions": list(permissions), "isolation": isolation}}
    )  # fmt: skip


async def run(sb: ExecutionSandbox, fn: Any, args: dict[str, Any], isolation: str = "process",
              *, context: CallerContext | None = None, context_param: str | None = None,
              call_id: str = "call_1") -> Any:  # fmt: skip
    ctx = context or CallerContext(user_id="u1")
    definition = tool(getattr(fn, "__name__", "fn"), isolation)
    return await sb.run(
        call_id=call_id, tool=definition, executor=fn, arguments=args, context=ctx,
        context_param=context_param, isolation=isolation,  # type: ignore[arg-type]
        limits=effective_limits(sb.config, definition.metadata, ctx),
    )  # fmt: skip


@pytest.mark.parametrize("isolation", ["process", "worker", "in_process"])
async def test_executors_by_path_by_value_async_and_with_context(
    sandbox: ExecutionSandbox, isolation: str
) -> None:
    offset = 40

    def closure(x: int) -> int:  # lives in no importable module: travels by cloudpickle
        return x + offset

    assert await run(sandbox, T.add, {"a": 1, "b": 2}, isolation) == 3
    assert await run(sandbox, closure, {"x": 2}, isolation) == 42
    assert await run(sandbox, T.async_add, {"a": 2, "b": 2}, isolation) == 4
    ctx = CallerContext(user_id="alice", roles=frozenset({"admin", "dev"}))
    got = await run(sandbox, T.whoami, {}, isolation, context=ctx, context_param="context")
    assert got == {"user": "alice", "roles": ["admin", "dev"]}


async def test_process_calls_are_fresh_and_worker_calls_share_a_process(
    sandbox: ExecutionSandbox,
) -> None:
    assert await run(sandbox, T.remember, {"value": 1}) == [1]
    assert await run(sandbox, T.remember, {"value": 2}) == [2]
    pids = {await run(sandbox, T.pid, {}) for _ in range(3)}
    assert len(pids) == 3 and os.getpid() not in pids
    first = await run(sandbox, T.remember, {"value": 1}, "worker")
    second = await run(sandbox, T.remember, {"value": 2}, "worker")
    assert first[-1] == 1 and second[-1] == 2


async def test_isolated_processes_never_saw_the_applications_secrets(
    sandbox: ExecutionSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # research/sandbox.md §2.12: a child os.fork()ed from the app found the app's API key.
    secret = "sk-live-" + os.urandom(8).hex()
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    holder = {"api_key": secret}
    digest = hashlib.sha256(secret.encode()).hexdigest()
    for isolation in ("process", "worker"):
        env = await run(sandbox, T.environment, {}, isolation)
        assert "OPENAI_API_KEY" not in env and secret not in env.values()
        assert await run(sandbox, T.heap_has_secret, {"digest": digest}, isolation) is False
    assert holder["api_key"] == secret


async def test_tool_errors_carry_type_and_message_without_traceback(
    sandbox: ExecutionSandbox,
) -> None:
    with pytest.raises(ToolCrashed) as info:
        await run(sandbox, T.raises, {"message": "bad input: x must be > 0"})
    assert info.value.code == "tool_error"
    assert "ValueError: bad input: x must be > 0" in info.value.message
    assert "Traceback" not in info.value.message


async def test_unserialisable_and_untransferable(sandbox: ExecutionSandbox) -> None:
    result = await sandbox.execute_function(tool("not_json"), T.not_json, {})
    assert result.error_code == "output_not_serializable"
    lock = threading.Lock()

    def holds_a_lock() -> bool:
        return lock.locked()

    result = await sandbox.execute_function(tool("holds_a_lock"), holds_a_lock, {})
    assert result.error_code == "executor_not_transferable"
    assert "module-level function" in (result.error or "")


@pytest.mark.parametrize("isolation", ["process", "worker", "in_process"])
async def test_cancel_execution_really_stops_the_call(
    sandbox: ExecutionSandbox, isolation: str
) -> None:
    # In-process work can only be cancelled cooperatively, so that case uses a coroutine.
    fn, args = (T.async_sleep_then, {"seconds": 30}) if isolation == "in_process" else (
        T.slow_add, {"a": 1, "b": 2, "seconds": 30})  # fmt: skip
    task = asyncio.create_task(run(sandbox, fn, args, isolation, call_id="cancel_me"))
    assert await asyncio.to_thread(wait_until, lambda: bool(sandbox.get_active_executions()))
    active = {a.execution_id: a for a in sandbox.get_active_executions()}
    assert active["cancel_me"].tool == fn.__name__ and active["cancel_me"].isolation == isolation
    started = time.monotonic()
    assert await sandbox.cancel_execution("cancel_me") is True
    with pytest.raises(ExecutionCancelled):
        await task
    assert time.monotonic() - started < 2.0
    assert await sandbox.cancel_execution("cancel_me") is False
    assert sandbox.get_active_executions() == []
    assert await run(sandbox, T.add, {"a": 1, "b": 1}, isolation) == 2


async def test_cancelling_the_awaiting_task_kills_the_child(sandbox: ExecutionSandbox) -> None:
    task = asyncio.create_task(run(sandbox, T.slow_add, {"a": 1, "b": 2, "seconds": 30}))
    assert await asyncio.to_thread(wait_until, lambda: bool(sandbox.get_active_executions()))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    zygote = sandbox._zygote.pid  # type: ignore[union-attr]
    assert zygote is not None and await asyncio.to_thread(
        wait_until, lambda: not children_of(zygote)
    )


async def test_worker_timeout_and_memory_replace_the_worker(sandbox: ExecutionSandbox) -> None:
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.5))
    before = await run(sandbox, T.pid, {}, "worker")
    result = await sandbox.execute_function(tool("spin", "worker"), T.sleep_ignoring_signals,
                                            {"seconds": 30}, ctx)  # fmt: skip
    assert result.error_code == "timeout"
    result = await sandbox.execute_function(tool("bomb", "worker"), T.memory_bomb, {})
    assert result.error_code == "resource_limit" and result.details["limit"] == "memory"
    assert await run(sandbox, T.add, {"a": 1, "b": 2}, "worker") == 3
    assert wait_until(
        lambda: not os.path.exists(f"/proc/{before}") or before not in children_of(os.getpid())
    )


async def test_parallel_process_calls_run_concurrently(sandbox: ExecutionSandbox) -> None:
    await run(sandbox, T.add, {"a": 0, "b": 0})  # zygote warm
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            run(sandbox, T.slow_add, {"a": i, "b": 1, "seconds": 0.5}, call_id=f"p{i}")
            for i in range(6)
        )
    )
    assert results == [i + 1 for i in range(6)]
    assert time.monotonic() - started < 2.0  # serial would take 3 s


async def test_a_dead_zygote_is_restarted() -> None:
    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=5.0))
    try:
        assert await run(sb, T.add, {"a": 1, "b": 2}) == 3
        old = sb._zygote.pid  # type: ignore[union-attr]
        assert old is not None
        os.kill(old, signal.SIGKILL)
        assert await run(sb, T.add, {"a": 2, "b": 2}) == 4
        assert sb._zygote.pid != old  # type: ignore[union-attr]
    finally:
        await sb.aclose()


async def test_close_reaps_zygote_and_workers() -> None:
    sb = ExecutionSandbox(SandboxConfig(worker_count=2))
    await run(sb, T.add, {"a": 1, "b": 2})
    await asyncio.gather(*(run(sb, T.slow_add, {"a": 1, "b": 2, "seconds": 0.2}, "worker",
                               call_id=f"w{i}") for i in range(2)))  # fmt: skip
    workers = {w.proc.pid for pool in sb._pools.values() for w in pool._all}
    helpers = {sb._zygote.pid} | workers  # type: ignore[union-attr]
    assert len(helpers) == 3 and helpers <= set(children_of(os.getpid()))
    await sb.aclose()
    assert wait_until(lambda: not set(helpers) & set(children_of(os.getpid())))
    with pytest.raises(SandboxUnavailable):
        await run(sb, T.add, {"a": 1, "b": 2})


class _KernelWithout(ExecutionSandbox):
    """The same sandbox on a kernel whose probe found no Landlock (as in old Docker profiles)."""

    def capabilities(self) -> SandboxCapabilities:
        real = super().capabilities()
        return replace(real, landlock=False, landlock_abi=0,
                       errors=(("landlock", "OSError: Landlock is not enabled"),))  # fmt: skip


async def test_missing_layer_refuses_user_tools_unless_weak_isolation_allowed() -> None:
    events: list[SandboxEvent] = []
    strict = _KernelWithout(SandboxConfig())
    strict.add_listener(events.append)
    try:
        with pytest.raises(SandboxUnavailable) as info:
            await run(strict, T.add, {"a": 1, "b": 2})
        assert "landlock" in info.value.message and "allow_weak_isolation" in info.value.message
        assert info.value.details["layer"] == "landlock"
        assert [e.kind for e in events] == ["refused"] and events[0].code == "sandbox_unavailable"
        assert strict._zygote is None  # nothing was started for a refused call
    finally:
        strict.close()
    weak = _KernelWithout(SandboxConfig(allow_weak_isolation=True))
    try:
        assert await run(weak, T.add, {"a": 1, "b": 2}) == 3
        assert "landlock" not in weak.layers_in_force("process", tool("add"))
    finally:
        await weak.aclose()


def test_capabilities_and_layers_on_this_kernel(sandbox: ExecutionSandbox) -> None:
    caps = sandbox.capabilities()
    assert caps.rlimits and caps.pidfd
    assert sandbox.capabilities() is caps  # probed once
    layers = sandbox.layers_in_force("process", tool("t"))
    expected = tuple(x for x in ("rlimits", "netns", "landlock", "seccomp") if getattr(caps, x))
    assert layers == ("clean_interpreter", *expected)
    net_tool = tool("n", "process", "network:http")
    assert "netns" not in ExecutionSandbox(
        SandboxConfig(enable_network_access=True)
    ).layers_in_force("process", net_tool)
    assert sandbox.layers_in_force("in_process", tool("t")) == ()


async def test_limit_hits_are_events(sandbox: ExecutionSandbox) -> None:
    events: list[SandboxEvent] = []
    sandbox.add_listener(events.append)
    try:
        ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.3))
        await sandbox.execute_function(
            tool("slow"), T.slow_add, {"a": 1, "b": 2, "seconds": 5}, ctx
        )
    finally:
        sandbox._listeners.remove(events.append)
    assert [(e.kind, e.code, e.tool) for e in events] == [("limit", "timeout", "slow")]


async def test_in_process_timeout_is_cooperative_but_reported(sandbox: ExecutionSandbox) -> None:
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.2))
    result = await sandbox.execute_function(
        tool("s", "in_process"), T.async_sleep_then, {"seconds": 5}, ctx
    )
    assert result.error_code == "timeout"


async def test_process_calls_without_network_run_in_an_empty_network_namespace(
    sandbox: ExecutionSandbox,
) -> None:
    if not sandbox.capabilities().netns:
        pytest.skip("network namespaces are not available here")
    ours = os.readlink("/proc/self/ns/net")
    theirs = {await run(sandbox, T.network_namespace, {}) for _ in range(2)}
    assert ours not in theirs


APP_THAT_DIES = """
import asyncio, os, sys
sys.path.insert(0, {repo!r})
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.sandbox import ExecutionSandbox
from tamma_tools.types import ToolDefinition
from tests.support import isolated_tools as T

def tool(isolation):
    return ToolDefinition.model_validate(
        {{"type": "function", "function": {{"name": "t"}}, "metadata": {{"isolation": isolation}}}})

async def main():
    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=60))
    busy = [asyncio.create_task(sb.execute_function(tool(i), T.sleep_ignoring_signals, {{"seconds": 60}}))
            for i in ("process", "worker")]
    while len(sb.get_active_executions()) < 2 or any(a.pid is None for a in sb.get_active_executions()):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    print(sb._zygote.pid, *(a.pid for a in sb.get_active_executions() if a.pid), flush=True)
    os._exit(0)  # the application dies without closing anything

asyncio.run(main())
"""


def test_nothing_outlives_an_application_that_dies() -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", APP_THAT_DIES.format(repo=repo)],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 3  # zygote, its busy child and the busy worker
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), 5.0)


async def test_relative_roots_are_relative_to_the_application(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    sb = ExecutionSandbox(SandboxConfig(allowed_paths=("data",)))  # type: ignore[arg-type]
    try:
        writer = tool("write_file", "process", "file:write")
        ctx = CallerContext()
        await sb.run(call_id="w", tool=writer, executor=T.write_file,
                     arguments={"path": "note.txt", "text": "hello"}, context=ctx,
                     context_param=None, isolation="process",
                     limits=effective_limits(sb.config, writer.metadata, ctx))  # fmt: skip
        assert (tmp_path / "data" / "note.txt").read_text() == "hello"
    finally:
        await sb.aclose()


async def test_a_tool_module_that_imports_slowly_cannot_hang_the_call(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_tool_module.py").write_text(
        "import time\ntime.sleep(1.5)\n\ndef ready() -> str:\n    return 'ready'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_tool_module  # type: ignore[import-not-found]

    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=10.0))
    try:
        assert await run(sb, T.add, {"a": 1, "b": 1}) == 2
        ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.3))
        started = time.monotonic()
        result = await sb.execute_function(tool("ready"), slow_tool_module.ready, {}, ctx)
        assert result.error_code == "timeout"
        assert time.monotonic() - started < 0.3 + 1.0 + 0.5
        # Once the zygote has the module, the same tool answers at once.
        assert await run(sb, slow_tool_module.ready, {}) == "ready"
    finally:
        await sb.aclose()


async def test_workers_run_under_the_same_kernel_layers(sandbox: ExecutionSandbox) -> None:
    caps = sandbox.capabilities()
    if not (caps.landlock and caps.seccomp):
        pytest.skip("Landlock and seccomp are needed for this check")
    with pytest.raises(SandboxViolation):
        await run(sandbox, T.read_file, {"path": "/etc/shadow"}, "worker")
    with pytest.raises(SandboxViolation):
        await run(sandbox, T.open_socket, {"host": "127.0.0.1", "port": 9}, "worker")
    with pytest.raises(SandboxViolation):
        await run(sandbox, T.fork_bomb, {}, "worker")
    assert sandbox.layers_in_force("worker", tool("t", "worker")) == sandbox.layers_in_force(
        "process", tool("t")
    )
    assert await run(sandbox, T.add, {"a": 1, "b": 2}, "worker") == 3


async def test_a_tool_module_that_fails_to_import_is_a_tool_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "flaky_tool_module.py"
    module.write_text("def answer() -> int:\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import flaky_tool_module  # type: ignore[import-not-found]

    # The module breaks after the application imported it: the isolated interpreter cannot.
    module.write_text("raise ImportError('missing optional dependency: fancylib')\n")
    sb = ExecutionSandbox()
    try:
        result = await sb.execute_function(tool("answer"), flaky_tool_module.answer, {})
        assert result.error_code == "tool_error"
        assert "missing optional dependency: fancylib" in (result.error or "")
    finally:
        await sb.aclose()


async def test_a_zygote_killed_mid_call_fails_that_call_only() -> None:
    sb = ExecutionSandbox(SandboxConfig(max_execution_time_s=10.0))
    try:
        assert await run(sb, T.add, {"a": 1, "b": 2}) == 3
        task = asyncio.create_task(run(sb, T.slow_add, {"a": 1, "b": 2, "seconds": 30}))
        assert await asyncio.to_thread(
            wait_until, lambda: any(a.pid for a in sb.get_active_executions())
        )
        child = sb.get_active_executions()[0].pid
        started = time.monotonic()
        os.kill(sb._zygote.pid, signal.SIGKILL)  # type: ignore[union-attr,arg-type]
        with pytest.raises(ToolCrashed):
            await task
        assert time.monotonic() - started < 2.0
        assert wait_until(lambda: not os.path.exists(f"/proc/{child}"))
        assert await run(sb, T.add, {"a": 2, "b": 2}) == 4
    finally:
        await sb.aclose()
