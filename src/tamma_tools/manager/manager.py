"""``FunctionCallingManager``: the one place every tool call goes through.

Steps, in order (DESIGN step 4): lookup -> argument intake -> validation -> authorization
(incl. approval) -> rate limit -> execution (in-process or in the sandbox) -> result cap ->
record. A failure at any step becomes a ``FunctionResult`` with ``success=False``, a stable
``error_code`` and a message the model can act on; bad input never raises out of
``execute_function_call``.

The per-call path avoids per-call reflection: everything derivable from a tool's definition is
computed once (``Prepared``) and reused until the registry entry changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from tamma_tools.errors import (
    ApprovalRequired,
    ArgumentError,
    ArgumentValidationError,
    CallRejected,
    ExecutorMissing,
    LoopDetected,
    PermissionDenied,
    RateLimited,
    RetryBudgetExhausted,
    TammaToolsError,
    ToolDisabled,
    ToolNotFound,
)
from tamma_tools.events import CallObserver, CallRecord, Outcome
from tamma_tools.manager.approvals import ApprovalQueue, PendingApproval
from tamma_tools.manager.arguments import parse_arguments
from tamma_tools.manager.batch import plan_batch, run_sync, share_duplicates
from tamma_tools.manager.calls import ensure_tool_messages, extract_calls, unpack_call
from tamma_tools.manager.config import ManagerConfig
from tamma_tools.manager.conversation import ConversationTracker
from tamma_tools.manager.deadline import DeadlineWatch, watch_for
from tamma_tools.manager.failures import crash_error, failure_parts, timeout_error
from tamma_tools.manager.output import encode_result, truncate_text
from tamma_tools.manager.policy import Policy
from tamma_tools.manager.prepared import Prepared
from tamma_tools.manager.ratelimit import InMemoryRateLimiter, RateLimiter
from tamma_tools.manager.recorder import DecisionRecorder
from tamma_tools.sandbox.config import SandboxConfig, effective_limits
from tamma_tools.types import (
    NO_RESOURCE_LIMITS,
    CallerContext,
    FunctionCall,
    FunctionCallFunction,
    FunctionResult,
    ToolDefinition,
    ValidationResult,
)

if TYPE_CHECKING:
    from tamma_tools.registry import ToolRegistry
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__all__ = ["FunctionCallingManager"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ANONYMOUS = CallerContext()
_NO_LIMITS = NO_RESOURCE_LIMITS


class FunctionCallingManager:
    """Validates, authorizes, rate-limits, executes and records the model's tool calls."""

    def __init__(
        self,
        registry: ToolRegistry | None = None,
        *,
        config: ManagerConfig | None = None,
        sandbox: ExecutionSandbox | None = None,
        sandbox_config: SandboxConfig | None = None,
        policy: Policy | None = None,
        rate_limiter: RateLimiter | None = None,
        observers: Iterable[CallObserver] = (),
    ) -> None:
        from tamma_tools.registry import ToolRegistry

        self.registry: ToolRegistry = registry if registry is not None else ToolRegistry()
        self.config = config or ManagerConfig()
        self._sandbox = sandbox
        self.sandbox_config: SandboxConfig = (
            sandbox.config if sandbox is not None else (sandbox_config or SandboxConfig())
        )
        self.policy = policy or Policy()
        self.rate_limiter: RateLimiter = rate_limiter or InMemoryRateLimiter()
        self._try_acquire = (
            self.rate_limiter.try_acquire
            if isinstance(self.rate_limiter, InMemoryRateLimiter)
            else None
        )
        self._recorder = DecisionRecorder(self.config.history_size, observers)
        self._record = self._recorder.record
        self.history = self._recorder.history
        self._prepared: dict[str, Prepared] = {}
        self._approvals = ApprovalQueue(self.config.max_pending_approvals)
        self._conversations = ConversationTracker(
            retry_budget=self.config.retry_budget,
            loop_threshold=self.config.loop_threshold,
            max_conversations=self.config.max_conversations,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._watch: DeadlineWatch | None = None
        self._sync_loops = threading.local()

    # --- registry facade ------------------------------------------------------------------

    def register_tool(self, defn: Any, executor: Callable[..., Any] | None = None) -> Any:
        """Register a ``ToolDefinition`` (or dict, or ``@tool`` function) with its executor."""
        return self.registry.register(defn, executor)

    def register_executor(self, name: str, fn: Callable[..., Any]) -> None:
        self.registry.bind_executor(name, fn)

    def unregister_tool(self, name: str) -> None:
        self.registry.unregister(name)
        self._prepared.pop(name, None)

    def get_available_tools(self, context: CallerContext | None = None) -> list[dict[str, Any]]:
        """OpenAI tool dicts of enabled tools; with a context, only those it may call."""
        out: list[dict[str, Any]] = []
        for entry in self.registry.all():
            if not entry.enabled or entry.executor is None:
                continue
            perms = frozenset(entry.definition.metadata.permissions)
            if context is not None and self.policy.missing(context, perms):
                continue
            out.append(entry.definition.to_openai())
        return out

    @staticmethod
    def validate_tool_definition(defn: ToolDefinition | dict[str, Any]) -> ValidationResult:
        from tamma_tools.schema.definition import validate_tool_definition

        return validate_tool_definition(defn)

    # --- observation ----------------------------------------------------------------------

    def add_observer(self, observer: CallObserver) -> None:
        self._recorder.add(observer)

    def on(self, kind: Outcome | str, callback: Callable[[CallRecord], None]) -> Callable[[], None]:
        """Call ``callback`` for every decision of ``kind`` (an outcome, or ``"*"`` for all);
        returns a function that unsubscribes it."""
        return self._recorder.on(kind, callback)

    # --- the call path --------------------------------------------------------------------

    async def execute_function_call(
        self, call: Any, context: CallerContext | None = None, *, dry_run: bool = False
    ) -> FunctionResult:
        """Run one tool call through every step; never raises for bad input."""
        started = time.perf_counter()
        ctx = context if context is not None else ANONYMOUS
        try:
            call_id, name, raw = unpack_call(call)
        except (ValueError, TypeError) as exc:
            call_id = str(
                getattr(call, "id", None)
                or (call.get("id") if isinstance(call, dict) else "")
                or ""
            )
            return self._failure(
                call_id, "", "", ctx, ArgumentError(f"malformed tool call: {exc}"), started
            )
        try:
            prep, arguments, repairs = self._authorize(call_id, name, raw, ctx, dry_run, started)
            return await self._admit_and_execute(
                prep, call_id, raw, arguments, repairs, ctx, dry_run, started
            )
        except asyncio.CancelledError:
            self._record(call_id, name, raw, ctx, "cancelled", started, error_code="cancelled")
            raise
        except TammaToolsError as exc:
            return self._failure(call_id, name, raw, ctx, exc, started)
        except Exception as exc:  # a bug in a tool or an observer must not take the caller down
            log.exception("unexpected error in tool call %s (%s)", call_id, name)
            crash = crash_error(None, exc)
            return self._failure(call_id, name, raw, ctx, crash, started)

    def _authorize(
        self, call_id: str, name: str, raw: str, ctx: CallerContext, dry_run: bool, started: float
    ) -> tuple[Prepared, dict[str, Any], list[str]]:
        """Lookup, argument intake, validation, permissions, approval: every check before the
        rate limit. Synchronous, so the happy path costs no extra coroutine."""
        prep = self._lookup(name)
        arguments, repairs = self._intake(prep, raw, ctx)
        if repairs:
            self._record(call_id, name, raw, ctx, "repaired", started, repairs=tuple(repairs))
        missing = self.policy.missing(ctx, prep.permissions)
        if missing:
            raise PermissionDenied(
                f"the caller lacks the permission(s) {', '.join(missing)} required by tool "
                f"{name!r}; do not retry, tell the user the call was not allowed",
                rule="permission",
                missing=missing,
            )
        if prep.requires_approval and not dry_run:
            self._approvals.add(
                PendingApproval(
                    call=FunctionCall(
                        id=call_id, function=FunctionCallFunction(name=name, arguments=raw)
                    ),
                    context=ctx,
                    arguments=arguments,
                    repairs=repairs,
                )
            )
            raise ApprovalRequired(
                f"tool {name!r} needs a human's approval; the call is queued as {call_id!r}. "
                "Do not call it again; wait for the result or tell the user it awaits approval",
                rule="approval",
            )
        return prep, arguments, repairs

    def _lookup(self, name: str) -> Prepared:
        entry = self.registry.find(name)
        if entry is None:
            names = self.registry.names()
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            available = ", ".join(sorted(names)[:20]) or "none"
            raise ToolNotFound(
                f"unknown tool {name!r}.{hint} Available tools: {available}", tool=name, close=close
            )
        if not entry.enabled:
            raise ToolDisabled(f"tool {name!r} is disabled; do not call it", tool=name)
        if entry.executor is None:
            raise ExecutorMissing(f"tool {name!r} has no executor bound and cannot run", tool=name)
        prep = self._prepared.get(name)
        if prep is None or prep.entry is not entry or prep.version != entry.version:
            prep = Prepared(entry, self.config, self.sandbox_config)
            self._prepared[name] = prep
        return prep

    def _intake(
        self, prep: Prepared, raw: str, ctx: CallerContext
    ) -> tuple[dict[str, Any], list[str]]:
        """Parse, validate and check for loops; counts bad-argument retries per conversation."""
        session = ctx.session_id
        try:
            parsed = parse_arguments(
                raw,
                has_parameters=prep.has_params,
                max_bytes=self.config.max_argument_bytes,
                max_depth=self.config.max_argument_depth,
                repair=self.config.repair,
                complete_truncated=prep.read_only,
            )
            arguments = parsed.value
            if not prep.validator.is_valid(arguments) and not self._fill_nulls(prep, arguments):
                issues = prep.validator.errors(arguments)
                detail = "; ".join(f"{i.path}: {i.message}" for i in issues)
                raise ArgumentValidationError(
                    f"arguments for {prep.name!r} do not match its schema: {detail}. "
                    "Fix these and call again",
                    issues=issues,
                )
        except ArgumentError as exc:
            if session is not None and self.config.retry_budget:
                left = self._conversations.argument_error(session, prep.name)
                if left == 0:
                    raise RetryBudgetExhausted(
                        f"{exc.message}. You have used all {self.config.retry_budget} attempts "
                        f"for {prep.name!r} in this conversation: stop calling it and tell the "
                        "user what went wrong",
                        issues=getattr(exc, "issues", None),
                    ) from None
            raise
        if session is not None:
            self._conversations.arguments_ok(session, prep.name)
            if self.config.loop_threshold:
                canonical = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
                count = self._conversations.repeat_count(session, prep.name, canonical)
                if count >= self.config.loop_threshold:
                    raise LoopDetected(
                        f"tool {prep.name!r} was already called {count - 1} times with these same "
                        "arguments in this conversation; the result will not change. Use the "
                        "earlier results or answer the user",
                    )
        return arguments, parsed.repairs

    @staticmethod
    def _fill_nulls(prep: Prepared, arguments: dict[str, Any]) -> bool:
        """For a strict tool, send null for omitted optional fields (see ``Prepared``);
        True when that makes the arguments valid."""
        missing = [name for name in prep.nullable_required if name not in arguments]
        if not missing:
            return False
        filled = {**arguments, **dict.fromkeys(missing)}
        if not prep.validator.is_valid(filled):
            return False
        arguments.update(filled)
        return True

    async def _admit_and_execute(
        self,
        prep: Prepared,
        call_id: str,
        raw: str,
        arguments: dict[str, Any],
        repairs: list[str],
        ctx: CallerContext,
        dry_run: bool,
        started: float,
    ) -> FunctionResult:
        if prep.windows and not dry_run:
            key = f"{prep.name}\x00{ctx.user_id}"
            if self._try_acquire is not None:
                retry_after = self._try_acquire(key, prep.windows)
            else:
                retry_after = await self.rate_limiter.acquire(key, prep.windows)
            if retry_after > 0:
                raise RateLimited(
                    f"rate limited: tool {prep.name!r} may not be called again yet; "
                    f"retry after {retry_after:.1f} s",
                    retry_after_s=retry_after,
                    rule="rate_limit",
                )
        if dry_run:
            result = FunctionResult(
                tool_call_id=call_id,
                function_name=prep.name,
                success=True,
                result={"dry_run": True, "tool": prep.name, "arguments": arguments},
                repairs=repairs,
            )
            self._record(call_id, prep.name, raw, ctx, "dry_run", started, repairs=tuple(repairs))
            return result

        timeout_s, max_output = prep.timeout_s, prep.max_output_bytes
        limits = ctx.resource_limits
        if limits is not _NO_LIMITS and limits != _NO_LIMITS:
            if limits.timeout_s is not None:
                timeout_s = min(timeout_s, limits.timeout_s)
            if limits.max_output_bytes is not None:
                max_output = min(max_output, limits.max_output_bytes)
        kwargs = arguments
        if prep.context_param is not None:
            kwargs = {**arguments, prep.context_param: ctx}

        recorder = self._recorder
        if recorder.starters:
            recorder.started(call_id, prep.name, ctx)
        try:
            layers: tuple[str, ...] = ()
            if prep.isolation == "in_process" and prep.is_async:
                # The hot path, inlined (one coroutine less): an async tool under a deadline.
                loop = asyncio.get_running_loop()
                watch = self._watch
                if watch is None or watch.loop is not loop:
                    watch = self._watch = watch_for(loop)
                deadline = watch.arm(timeout_s)
                try:
                    value = await prep.executor(**kwargs)  # type: ignore[misc]
                except asyncio.CancelledError:
                    if not watch.disarm(deadline):
                        raise  # someone else cancelled us: propagate
                    raise timeout_error(prep.name, timeout_s) from None
                except TammaToolsError:
                    raise
                except Exception as exc:
                    raise crash_error(prep.name, exc) from exc
                finally:
                    watch.disarm(deadline)
            elif prep.isolation == "in_process":
                value = await self._run_in_process(prep, kwargs, timeout_s)
            else:
                value, layers = await self._run_isolated(prep, call_id, arguments, ctx, timeout_s)
        except TammaToolsError as exc:
            exc.details.setdefault("isolation", prep.isolation)
            raise

        content = encode_result(value)
        content, cut = truncate_text(content, max_output)
        result = FunctionResult(
            tool_call_id=call_id,
            function_name=prep.name,
            success=True,
            result=content if cut else value,
            content=content,
            truncated_bytes=cut,
            repairs=repairs,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
        )
        if recorder.active:  # DecisionRecorder.record, inlined: positional, one call less
            recorder.emit(CallRecord(
                call_id, prep.name, "executed", ctx, raw, time.time(),
                (time.perf_counter() - started) * 1000.0, None, None, None, len(content),
                prep.isolation, layers, (), None, {"result": content},
            ))  # fmt: skip
        return result

    async def _run_in_process(
        self, prep: Prepared, kwargs: dict[str, Any], timeout_s: float
    ) -> Any:
        """A sync tool on the thread pool; its timeout is cooperative (a thread cannot be
        killed), which is why user tools default to process isolation."""
        executor = prep.executor
        assert executor is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                # In a copy of the caller's context, as asyncio.to_thread does: context
                # variables (a request id, the current trace span) reach the tool.
                call = functools.partial(contextvars.copy_context().run, executor, **kwargs)
                return await loop.run_in_executor(self._thread_pool(), call)
        except TimeoutError:
            raise timeout_error(prep.name, timeout_s) from None
        except TammaToolsError:
            raise
        except Exception as exc:
            raise crash_error(prep.name, exc) from exc

    async def _run_isolated(
        self, prep: Prepared, call_id: str, arguments: dict[str, Any], ctx: CallerContext,
        timeout_s: float,
    ) -> tuple[Any, tuple[str, ...]]:  # fmt: skip
        sandbox = self.sandbox
        limits = replace(
            effective_limits(self.sandbox_config, prep.definition.metadata, ctx),
            timeout_s=timeout_s,
        )
        assert prep.executor is not None
        value = await sandbox.run(
            call_id=call_id,
            tool=prep.definition,
            executor=prep.executor,
            arguments=arguments,
            context=ctx,
            context_param=prep.context_param,
            limits=limits,
            isolation=prep.isolation,
        )
        return value, sandbox.layers_in_force(prep.isolation, prep.definition)

    def _thread_pool(self) -> ThreadPoolExecutor:
        # Sized to the concurrency cap: the default pool (cpu_count + 4 = 6 workers on 2 cores)
        # makes 10 parallel sync calls take two waves.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.config.max_concurrent_calls, thread_name_prefix="tamma-tool"
            )
        return self._pool

    @property
    def sandbox(self) -> ExecutionSandbox:
        """The sandbox isolated tools run in; started lazily on first use."""
        if self._sandbox is None:
            from tamma_tools.sandbox.sandbox import ExecutionSandbox

            self._sandbox = ExecutionSandbox(self.sandbox_config)
        return self._sandbox

    # --- results and records --------------------------------------------------------------

    def _failure(
        self, call_id: str, name: str, raw: str, ctx: CallerContext, exc: TammaToolsError,
        started: float, approver: str | None = None,
    ) -> FunctionResult:  # fmt: skip
        outcome, details, rule, isolation = failure_parts(exc)
        self._record(
            call_id, name, raw, ctx, outcome, started,
            error_code=exc.code, error=exc.message, rule=rule, isolation=isolation,
            approver=approver,
        )  # fmt: skip
        return FunctionResult(
            tool_call_id=call_id,
            function_name=name,
            success=False,
            error=exc.message,
            error_code=exc.code,
            execution_time_ms=(time.perf_counter() - started) * 1000.0,
            details=details,
        )

    # --- batches --------------------------------------------------------------------------

    async def process_function_calls(
        self, response: Any, context: CallerContext | None = None
    ) -> list[FunctionResult]:
        """Execute every call in ``response`` concurrently (capped); results in call order.

        One failure, timeout or denial never cancels its siblings. Identical calls (same tool,
        same arguments) of an ``idempotent`` tool run once and share the result.
        """
        calls = extract_calls(response)
        if not calls:
            return []
        if len(calls) == 1:
            return [await self.execute_function_call(calls[0], context)]
        plan = plan_batch(calls, self.registry)

        semaphore = asyncio.Semaphore(self.config.max_concurrent_calls)

        async def one(call: Any) -> FunctionResult:
            async with semaphore:
                return await self.execute_function_call(call, context)

        runs = [(i, call) for i, (call, dup) in enumerate(plan) if dup is None]
        done = await asyncio.gather(*(one(call) for _, call in runs))
        results: list[FunctionResult | None] = [None] * len(plan)
        for (i, _), result in zip(runs, done, strict=True):
            results[i] = result
        share_duplicates(plan, results)
        return [r for r in results if r is not None]

    @staticmethod
    def ensure_tool_messages(messages: Iterable[Any]) -> list[Any]:
        """Add a stub tool message for each unanswered ``tool_call_id`` (see ``calls``)."""
        return ensure_tool_messages(messages)

    # --- approvals ------------------------------------------------------------------------

    def pending_approvals(self) -> list[PendingApproval]:
        return self._approvals.list()

    async def approve(self, call_id: str, *, approver: str) -> FunctionResult:
        """Run a call that waited for approval; records who approved it."""
        item = self._approvals.pop(call_id)
        started = time.perf_counter()
        name, raw = item.call.function.name, item.call.function.arguments
        self._record(call_id, name, raw, item.context, "approved", started, approver=approver)
        try:
            prep = self._lookup(name)
            return await self._admit_and_execute(
                prep, call_id, raw, item.arguments, item.repairs, item.context, False, started
            )
        except TammaToolsError as exc:
            return self._failure(call_id, name, raw, item.context, exc, started)

    def reject(
        self, call_id: str, reason: str = "", *, approver: str | None = None
    ) -> FunctionResult:
        """Refuse a call that waited for approval; its tool message tells the model so."""
        item = self._approvals.pop(call_id)
        why = f": {reason}" if reason else ""
        exc = CallRejected(
            f"a human rejected this call of {item.call.function.name!r}{why}. Do not retry it",
            rule="approval",
        )
        started = time.perf_counter()
        call = item.call.function
        return self._failure(
            call_id, call.name, call.arguments, item.context, exc, started, approver=approver
        )

    # --- sync wrappers and lifecycle ------------------------------------------------------

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        return run_sync(self._sync_loops, coro)

    def execute_function_call_sync(
        self, call: Any, context: CallerContext | None = None, *, dry_run: bool = False
    ) -> FunctionResult:
        return self._run_sync(self.execute_function_call(call, context, dry_run=dry_run))

    def process_function_calls_sync(
        self, response: Any, context: CallerContext | None = None
    ) -> list[FunctionResult]:
        return self._run_sync(self.process_function_calls(response, context))

    def approve_sync(self, call_id: str, *, approver: str) -> FunctionResult:
        return self._run_sync(self.approve(call_id, approver=approver))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        loop = getattr(self._sync_loops, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.close()
        if self._sandbox is not None:
            self._sandbox.close()

    def __enter__(self) -> FunctionCallingManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> FunctionCallingManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sandbox is not None:
            await self._sandbox.aclose()
        self.close()
