"""``ExecutionSandbox``: runs a tool where its isolation level says, under limits that hold.

Three levels (``ToolMetadata.isolation``):

* ``in_process``: trusted, bounded tools (the built-ins). Cooperative timeout only; a thread
  cannot be stopped (research/sandbox.md §2.9), which is why user tools never run here by default.
* ``worker``: persistent clean interpreters (``isolation/worker.py``), one pool per permission
  profile, locked down at start with the same kernel layers as ``process`` (the application's
  import path stays readable: modules load lazily). No isolation *between* calls of one worker.
  Deadline and memory limit are enforced by killing and replacing the worker.
* ``process`` (default for user tools): a fresh child forked per call from a clean zygote, with
  rlimits, an empty network namespace, Landlock, seccomp, pidfd kill and capped pipes
  (``isolation/zygote.py``, ``isolation/child.py``).

Executors reach an isolated process by import path (``module:qualname`` importable there) or, for
closures and functions in ``__main__``, by value with cloudpickle (application -> child only).
Results come back as JSON and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tamma_tools.errors import (
    ExecutionCancelled,
    SandboxUnavailable,
    TammaToolsError,
    ToolCrashed,
    ToolTimeout,
)
from tamma_tools.sandbox.config import EffectiveLimits, SandboxConfig, effective_limits
from tamma_tools.sandbox.isolation import outcome as _outcome
from tamma_tools.sandbox.isolation import protocol
from tamma_tools.sandbox.isolation.capabilities import SandboxCapabilities, probe
from tamma_tools.sandbox.isolation.transfer import (
    context_dict,
    executor_target,
    import_path,
    readable_paths,
)
from tamma_tools.sandbox.isolation.transfer import context_param as find_context_param
from tamma_tools.sandbox.isolation.worker_pool import Worker, WorkerPool
from tamma_tools.sandbox.isolation.zygote_client import ChildOutcome, KillSwitch, ZygoteClient
from tamma_tools.types import CallerContext, FunctionResult, Isolation, ToolDefinition

__all__ = ["ActiveExecution", "ExecutionSandbox", "SandboxCapabilities", "SandboxEvent"]

WEAK_ISOLATION_TEXT = (
    "tool {tool!r} needs isolation layer(s) {missing} that this machine does not offer ({why}); "
    "it was not run. Set SandboxConfig(allow_weak_isolation=True) to run it without them"
)


@dataclass(slots=True)
class ActiveExecution:
    """One call running in the sandbox right now."""

    execution_id: str
    tool: str
    isolation: Isolation
    started_at: float
    user_id: str
    pid: int | None = None
    _stop: Callable[[str], None] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class SandboxEvent:
    """A refusal or a limit hit, for metrics and alerts (``code`` is the error's stable code)."""

    kind: str
    """``refused`` (policy or missing layer), ``limit`` (timeout, memory, CPU, output...),
    ``crashed`` or ``cancelled``."""
    call_id: str
    tool: str
    isolation: Isolation
    code: str
    detail: dict[str, Any]


def _event_kind(exc: TammaToolsError) -> str:
    if _outcome.is_limit_error(exc):
        return "limit"
    if isinstance(exc, ExecutionCancelled):
        return "cancelled"
    if isinstance(exc, ToolCrashed):
        return "crashed"
    return "refused"


class ExecutionSandbox:
    """Policy checks and isolation for tool calls; one per manager (or shared)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._lock = threading.Lock()
        self._zygote: ZygoteClient | None = None
        self._pools: dict[tuple[bool, str | None], WorkerPool] = {}
        self._threads: ThreadPoolExecutor | None = None
        self._active: dict[str, ActiveExecution] = {}
        self._targets: dict[Any, tuple[dict[str, Any], bytes | None, tuple[str, ...]]] = {}
        self._listeners: list[Callable[[SandboxEvent], None]] = []
        self._missing: dict[tuple[str, bool, bool], tuple[str, ...]] = {}
        self._caps: SandboxCapabilities | None = None
        self._path_policy: Any = None
        self._network_policy: Any = None
        self._closed = False
        # Runs when the sandbox is collected and, via weakref.finalize's own hook, at exit.
        self._finalizer = weakref.finalize(self, _shutdown, self.__dict__)

    # --- capabilities and layers ------------------------------------------------------------

    def capabilities(self) -> SandboxCapabilities:
        """Layers this kernel offers (probed once per process, in a throwaway child)."""
        caps = self._caps
        if caps is None:
            caps = self._caps = probe()
        return caps

    def _network_allowed(self, tool: ToolDefinition) -> bool:
        perms = tool.metadata.permissions
        wants = any(p == "network" or p.startswith("network:") for p in perms)
        return wants and self.config.enable_network_access

    def _required_layers(self, isolation: Isolation, tool: ToolDefinition, *,
                         command: bool = False) -> tuple[str, ...]:  # fmt: skip
        if isolation == "in_process":
            return ()
        layers = ["rlimits", "pidfd", "landlock", "seccomp"]
        if not self._network_allowed(tool):
            layers.insert(1, "netns")
        if command:
            layers.append("pidns")
        return tuple(layers)

    def layers_in_force(self, isolation: Isolation, tool: ToolDefinition) -> tuple[str, ...]:
        """The layers a call of ``tool`` actually runs under on this machine."""
        if isolation == "in_process":
            return ()
        caps = self.capabilities()
        layers = [x for x in self._required_layers(isolation, tool) if x != "pidfd"]
        return ("clean_interpreter", *(x for x in layers if getattr(caps, x, False)))

    def _check_layers(self, call_id: str, isolation: Isolation, tool: ToolDefinition,
                      *, command: bool = False) -> tuple[str, ...]:  # fmt: skip
        """Missing layers; raises unless the config allows weak isolation."""
        caps = self.capabilities()
        key = (isolation, self._network_allowed(tool), command)
        missing = self._missing.get(key)
        if missing is None:
            missing = self._missing[key] = caps.missing(
                self._required_layers(isolation, tool, command=command)
            )
        if missing and not self.config.allow_weak_isolation:
            why = "; ".join(f"{m}: {caps.reason(m)}" for m in missing)
            raise SandboxUnavailable(
                WEAK_ISOLATION_TEXT.format(tool=tool.name, missing=", ".join(missing), why=why),
                rule="sandbox.missing_layer",
                layer=missing[0],
                missing=list(missing),
            )
        return missing

    # --- policy delegation ------------------------------------------------------------------

    def check_path(self, path: Any, mode: str = "read") -> Any:
        """Delegate to the path policy (``sandbox/paths.py``) built from this config."""
        if self._path_policy is None:
            from tamma_tools.sandbox import paths  # type: ignore[attr-defined,unused-ignore]

            self._path_policy = _build_policy(paths.PathPolicy, self.config)
        return self._path_policy.check_path(path, mode)

    def check_url(self, url: str, *, resolver: Any = None) -> Any:
        """Delegate to the network policy (``sandbox/network.py``) built from this config."""
        if self._network_policy is None:
            from tamma_tools.sandbox import network  # type: ignore[attr-defined,unused-ignore]

            self._network_policy = _build_policy(network.NetworkPolicy, self.config)
        return self._network_policy.check_url(url, resolver=resolver)

    # --- events -----------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[SandboxEvent], None]) -> None:
        """Called for every refusal and limit hit; must be fast and must not raise."""
        self._listeners.append(listener)

    def _emit(self, exc: TammaToolsError, call_id: str, tool: str, isolation: Isolation) -> None:
        if not self._listeners:
            return
        event = SandboxEvent(
            _event_kind(exc), call_id, tool, isolation, exc.code, dict(exc.details)
        )
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(event)

    # --- executors ----------------------------------------------------------------------------

    def _target(
        self, tool: str, executor: Callable[..., Any]
    ) -> tuple[dict[str, Any], bytes | None, tuple[str, ...]]:
        return executor_target(tool, executor, self._targets)

    # --- running ------------------------------------------------------------------------------

    async def run(
        self, *, call_id: str, tool: ToolDefinition, executor: Callable[..., Any],
        arguments: dict[str, Any], context: CallerContext, context_param: str | None,
        limits: EffectiveLimits, isolation: Isolation,
    ) -> Any:  # fmt: skip
        """Run one call; return its JSON value or raise one typed error. Never hangs."""
        if self._closed:
            raise SandboxUnavailable("the sandbox is closed", rule="sandbox.closed")
        active = ActiveExecution(call_id, tool.name, isolation, time.time(), context.user_id)
        self._active[call_id] = active
        try:
            if isolation == "in_process":
                return await self._run_in_process(active, tool, executor, arguments, context,
                                                  context_param, limits)  # fmt: skip
            self._check_layers(call_id, isolation, tool)
            target, blob, preimport = self._target(tool.name, executor)
            request = {
                "target": target,
                "arguments": arguments,
                "context": context_dict(context) if context_param else None,
                "context_param": context_param,
                "blob": blob is not None,
                "memory_bytes": limits.max_memory_bytes,
            }
            if context_param:
                preimport = (*preimport, "tamma_tools.types")
            if isolation == "worker":
                return await self._run_in_worker(active, tool, request, blob, limits, preimport)
            spec = self._process_spec(tool, limits, preimport)
            return await self._run_in_child(active, tool.name, spec, request, blob, limits)
        except TammaToolsError as exc:
            self._emit(exc, call_id, tool.name, isolation)
            raise
        finally:
            self._active.pop(call_id, None)

    async def _run_in_process(
        self, active: ActiveExecution, tool: ToolDefinition, executor: Callable[..., Any],
        arguments: dict[str, Any], context: CallerContext, context_param: str | None,
        limits: EffectiveLimits,
    ) -> Any:  # fmt: skip
        kwargs = dict(arguments)
        if context_param:
            kwargs[context_param] = context
        task = asyncio.current_task()
        cancelled: list[str] = []

        def stop(reason: str) -> None:
            cancelled.append(reason)
            if task is not None:
                task.get_loop().call_soon_threadsafe(task.cancel)

        active._stop = stop
        try:
            async with asyncio.timeout(limits.timeout_s):
                if inspect.iscoroutinefunction(executor):
                    return await executor(**kwargs)
                value = await asyncio.to_thread(executor, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                return value
        except TimeoutError:
            raise ToolTimeout(_outcome.TIMEOUT_TEXT.format(tool=tool.name, limit=limits.timeout_s),
                              limit="timeout", timeout_s=limits.timeout_s) from None  # fmt: skip
        except asyncio.CancelledError:
            if cancelled:
                raise ExecutionCancelled(_outcome.CANCELLED_TEXT.format(tool=tool.name)) from None
            raise
        except TammaToolsError:
            raise
        except Exception as exc:
            raise ToolCrashed(
                _outcome.CRASH_TEXT.format(
                    tool=tool.name, detail=f"{type(exc).__name__}: {str(exc)[:1000]}"
                )
            ) from exc

    def _worker_pool(self, tool: ToolDefinition, preimport: tuple[str, ...]) -> WorkerPool:
        """The pool for the tool's permission profile: workers are locked down once, at start,
        so each profile (network or not; roots read-only, read-write or absent) has its own."""
        network = self._network_allowed(tool)
        roots, mode = self._roots(tool)
        key = (network, mode)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    caps = self.capabilities()
                    paths = [[p, "ro"] for p in (*readable_paths(), *import_path())]
                    paths += [["/dev/null", "rw"]] + ([[r, mode] for r in roots] if mode else [])
                    lockdown = {
                        "netns": caps.netns and not network,
                        "landlock": caps.landlock,
                        "landlock_paths": paths,
                        "landlock_ports": list(self.config.allowed_ports) if network else [],
                        "seccomp": {"allow_network": network, "allow_exec": False}
                        if caps.seccomp
                        else None,
                        "cwd": roots[0] if roots else None,
                    }
                    pool = self._pools[key] = WorkerPool(
                        self.config.worker_count, import_path(), self.config.max_memory_bytes,
                        lockdown,
                    )  # fmt: skip
        if not set(preimport) <= set(pool.preimport):
            pool.preimport = tuple(dict.fromkeys((*pool.preimport, *preimport)))
        return pool

    def _roots(self, tool: ToolDefinition) -> tuple[list[str], str | None]:
        """The roots a tool may touch and how: ``file:write`` read-write, ``file:read``
        read-only, anything else none."""
        perms = tool.metadata.permissions
        mode = "rw" if "file:write" in perms else "ro" if "file:read" in perms else None
        if mode is None or not self.config.enable_file_system_access:
            return [], None
        # Absolute: the zygote's working directory is "/", not the application's.
        return [os.path.abspath(p) for p in self.config.allowed_paths], mode

    async def _run_in_worker(
        self, active: ActiveExecution, tool: ToolDefinition, request: dict[str, Any],
        blob: bytes | None, limits: EffectiveLimits, preimport: tuple[str, ...],
    ) -> Any:  # fmt: skip
        reasons: list[str] = []
        current: list[Worker] = []

        def on_start(worker: Worker) -> None:
            active.pid = worker.proc.pid
            current.append(worker)

        def stop(reason: str) -> None:
            reasons.append(reason)
            if current:
                current[0].terminate()

        active._stop = stop
        result = await self._worker_pool(tool, preimport).call(
            protocol.encode(request), blob, timeout_s=limits.timeout_s,
            result_cap=limits.max_result_bytes, on_start=on_start,
        )  # fmt: skip
        killed = reasons[0] if reasons else result.killed
        return _outcome.interpret(tool=tool.name, limits=limits, killed=killed,
                                  result=result.result)  # fmt: skip

    def _process_spec(
        self, tool: ToolDefinition, limits: EffectiveLimits, preimport: tuple[str, ...],
        *, command: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        caps = self.capabilities()
        network = self._network_allowed(tool)
        roots, mode = self._roots(tool)
        paths = [[p, "ro"] for p in readable_paths()] + [["/dev/null", "rw"]]
        if mode is not None:
            paths += [[r, mode] for r in roots]
        return {
            "op": "spawn",
            "landlock": caps.landlock,
            "landlock_paths": paths,
            "landlock_ports": list(self.config.allowed_ports) if network else [],
            "seccomp": {"allow_network": network, "allow_exec": command} if caps.seccomp else None,
            "netns": caps.netns and not network,
            "pidns": caps.pidns and command,
            "rlimits": {
                "cpu": max(1, math.ceil(limits.max_cpu_time_s)),
                "as": limits.max_memory_bytes,
                "fsize": limits.max_file_size_bytes,
                "nofile": limits.max_open_files,
            },
            "cwd": roots[0] if roots else None,
            "max_files": limits.max_files_created,
            "max_threads": limits.max_processes,
            # Only commands may fork; root ignores RLIMIT_NPROC, a pids cgroup does not.
            "pids_max": limits.max_processes if command else None,
            "preimport": list(preimport),
        }

    def _zygote_client(self) -> ZygoteClient:
        with self._lock:
            if self._zygote is None:
                self._zygote = ZygoteClient(import_path(), [])
                self._threads = ThreadPoolExecutor(max_workers=64,
                                                   thread_name_prefix="tamma-sandbox")  # fmt: skip
            return self._zygote

    async def _run_in_child(
        self, active: ActiveExecution, tool: str, spec: dict[str, Any], request: dict[str, Any],
        blob: bytes | None, limits: EffectiveLimits,
    ) -> Any:  # fmt: skip
        zygote = self._zygote_client()
        switch = KillSwitch(on_pid=lambda pid: setattr(active, "pid", pid))
        active._stop = switch.kill
        payload = protocol.encode(request)
        loop = asyncio.get_running_loop()
        assert self._threads is not None
        future = loop.run_in_executor(self._threads, lambda: zygote.run_call(
            spec, payload, blob, timeout_s=limits.timeout_s, output_cap=limits.max_output_bytes,
            result_cap=limits.max_result_bytes, switch=switch))  # fmt: skip
        try:
            child: ChildOutcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            switch.kill("cancelled")
            with contextlib.suppress(BaseException):
                await future  # the supervisor returns once the zygote reaped the child
            raise
        except Exception as exc:
            raise SandboxUnavailable(f"the sandbox could not run tool {tool!r}: {exc}",
                                     rule="sandbox.zygote") from exc  # fmt: skip
        return _outcome.interpret(tool=tool, limits=limits, killed=child.killed,
                                  result=child.result, status=child.status, cpu_s=child.cpu_s,
                                  output=bytes(child.output))  # fmt: skip

    async def run_command(
        self, argv: list[str], *, context: CallerContext | None = None,
        call_id: str | None = None, limits: EffectiveLimits | None = None,
        tool: ToolDefinition | None = None, cwd: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Run an allowlisted binary; see ``sandbox/commands.py``."""
        from tamma_tools.sandbox.commands import run_command

        return await run_command(self, argv, context=context, call_id=call_id, limits=limits,
                                 tool=tool, cwd=cwd, timeout_s=timeout_s)  # fmt: skip

    async def _run_command_child(
        self, *, call_id: str, tool: ToolDefinition, target: dict[str, Any],
        context: CallerContext, limits: EffectiveLimits,
    ) -> Any:  # fmt: skip
        """The ``process`` path with exec allowed and a PID namespace (used by commands.py)."""
        active = ActiveExecution(call_id, tool.name, "process", time.time(), context.user_id)
        self._active[call_id] = active
        try:
            self._check_layers(call_id, "process", tool, command=True)
            spec = self._process_spec(tool, limits, ("subprocess", "selectors"), command=True)
            request = {"target": target, "arguments": {}, "context": None, "context_param": None}
            return await self._run_in_child(active, tool.name, spec, request, None, limits)
        except TammaToolsError as exc:
            self._emit(exc, call_id, tool.name, "process")
            raise
        finally:
            self._active.pop(call_id, None)

    # --- the seed API -------------------------------------------------------------------------

    async def execute_function(
        self, tool: ToolDefinition, executor: Callable[..., Any], args: dict[str, Any],
        context: CallerContext | None = None,
    ) -> FunctionResult:  # fmt: skip
        """Run ``executor(**args)`` under this sandbox and wrap the outcome as a result."""
        ctx = context or CallerContext()
        isolation: Isolation = tool.metadata.isolation or self.config.default_isolation
        call_id = f"exec_{uuid.uuid4().hex[:16]}"
        context_param = find_context_param(executor)
        started = time.perf_counter()
        try:
            value = await self.run(
                call_id=call_id, tool=tool, executor=executor, arguments=dict(args), context=ctx,
                context_param=context_param, isolation=isolation,
                limits=effective_limits(self.config, tool.metadata, ctx),
            )  # fmt: skip
        except TammaToolsError as exc:
            return FunctionResult(
                tool_call_id=call_id, function_name=tool.name, success=False, error=exc.message,
                error_code=exc.code, execution_time_ms=(time.perf_counter() - started) * 1000,
                details=dict(exc.details),
            )  # fmt: skip
        return FunctionResult(tool_call_id=call_id, function_name=tool.name, success=True,
                              result=value,
                              execution_time_ms=(time.perf_counter() - started) * 1000)  # fmt: skip

    def get_active_executions(self) -> list[ActiveExecution]:
        return list(self._active.values())

    async def cancel_execution(self, execution_id: str) -> bool:
        """Stop a running call for real (its process is killed); False if it is not running."""
        active = self._active.get(execution_id)
        if active is None or active._stop is None:
            return False
        active._stop("cancelled")
        return True

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the zygote, its children and the workers. Idempotent."""
        self._closed = True
        for active in list(self._active.values()):
            if active._stop is not None:
                active._stop("cancelled")
        _shutdown(self.__dict__)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> ExecutionSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _shutdown(state: dict[str, Any]) -> None:
    pools, zygote, threads = state.get("_pools") or {}, state.get("_zygote"), state.get("_threads")
    state["_pools"], state["_zygote"], state["_threads"] = {}, None, None
    for pool in list(pools.values()):
        pool.close()
    if zygote is not None:
        zygote.close()
    if threads is not None:
        threads.shutdown(wait=False)


def _build_policy(cls: Any, config: SandboxConfig) -> Any:
    factory = getattr(cls, "from_config", None)
    return factory(config) if factory is not None else cls(config)
