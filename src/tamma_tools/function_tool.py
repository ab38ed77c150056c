"""``@tool``: a Python function becomes a tool definition plus the executor that runs it.

Everything that needs reflection (signature, type hints, docstring, schema, strict form, which
parameter takes the ``CallerContext``) happens once, at decoration. The manager's hot path then
calls ``FunctionTool.executor(**arguments)``: the tool itself (which calls the function) when
its parameters are all JSON-native, or a thin adapter that converts the few that need it.

Strict mode default (``strict=None``): strict when the schema converts cleanly to OpenAI's strict
subset (closed objects, every property typed); otherwise not strict, and ``strict_error`` says
why. ``strict=True`` makes an unconvertible schema an error; ``strict=False`` never converts.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from tamma_tools._docstrings import parse_docstring
from tamma_tools._function_schema import build_function_schema, find_context_param
from tamma_tools.errors import ArgumentValidationError, ToolDefinitionError
from tamma_tools.types import FunctionDefinition, ToolDefinition, ToolMetadata

__all__ = [
    "CallPlan",
    "ExecutorInfo",
    "FunctionTool",
    "describe_executor",
    "tool",
    "tool_from_function",
]

P = ParamSpec("P")
R = TypeVar("R")

# OpenAI: "^[a-zA-Z0-9_-]{1,64}$" for Chat Completions tool names (openai-tool-rules.md s.1).
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
INVALID_NAME = (
    "tool name {name!r} is not allowed: OpenAI takes 1 to 64 characters from a-z A-Z 0-9 _ -; "
    "pass name=... to @tool"
)
METHOD_NOT_BOUND = (
    "{name!r} takes {first!r} first: decorate a plain function, or pass a bound method "
    "(instance.method) to tool_from_function"
)


@dataclass(frozen=True, slots=True)
class ExecutorInfo:
    """How to call an executor: await it or not, and which keyword gets the caller context."""

    is_async: bool
    context_param: str | None


class CallPlan:
    """Per-call work between validated JSON arguments and the Python function, fixed at build.

    Pickles as its inputs (annotations, names, defaults) and rebuilds its ``TypeAdapter``s on
    the other side: a worker process gets the plan with the function through cloudpickle.
    """

    __slots__ = ("_adapters", "converters", "fill", "null_means_default")

    def __init__(
        self,
        converters: tuple[tuple[str, Any], ...] = (),
        null_means_default: frozenset[str] = frozenset(),
        fill: tuple[tuple[str, Any, Callable[[], Any] | None], ...] = (),
    ) -> None:
        self.converters = converters
        """(parameter, annotation) whose JSON value becomes a model, dataclass, enum member..."""
        self.null_means_default = null_means_default
        """Strict mode only: ``null`` for these parameters means "leave out, use the default"."""
        self.fill = fill
        """(parameter, default, default factory) for defaults written ``= Field(...)``, which
        Python alone would pass as the FieldInfo; a factory runs per call (no shared list)."""
        adapters: list[tuple[str, TypeAdapter[Any]]] = []
        for name, tp in converters:
            try:
                adapters.append((name, TypeAdapter(tp)))
            except Exception as exc:
                raise ToolDefinitionError(
                    f"parameter {name!r}: cannot convert JSON to {tp!r}: {exc}. On Python 3.11 "
                    "a TypedDict that holds models must come from typing_extensions",
                    code="unsupported_type",
                ) from None
        self._adapters = tuple(adapters)

    def __reduce__(self) -> tuple[Any, ...]:
        return (CallPlan, (self.converters, self.null_means_default, self.fill))

    def __repr__(self) -> str:
        converted = [name for name, _ in self.converters]
        return (
            f"CallPlan(converters={converted!r}, null_means_default="
            f"{sorted(self.null_means_default)!r}, fill={self.fill!r})"
        )

    @property
    def empty(self) -> bool:
        return not (self.converters or self.null_means_default or self.fill)

    def apply(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Turn validated JSON arguments into the function's keyword arguments."""
        out = dict(kwargs)
        for name in self.null_means_default:
            if name in out and out[name] is None:
                del out[name]
        for name, value, factory in self.fill:
            if name not in out:
                out[name] = factory() if factory is not None else value
        for name, adapter in self._adapters:
            if name in out:
                try:
                    out[name] = adapter.validate_python(out[name])
                except ValidationError as exc:
                    detail = "; ".join(
                        f"{'.'.join(str(p) for p in (name, *e['loc']))}: {e['msg']}"
                        for e in exc.errors()
                    )
                    raise ArgumentValidationError(
                        f"argument {name!r} does not fit its type: {detail}. Fix it and call again"
                    ) from None
        return out


class _Adapter:
    """Applies a ``CallPlan`` before calling the function; only built when the plan has work."""

    __slots__ = ("context_param", "fn", "plan")

    def __init__(self, fn: Callable[..., Any], plan: CallPlan, context_param: str | None) -> None:
        self.fn = fn
        self.plan = plan
        self.context_param = context_param

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.fn!r}, {self.plan!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # By reference when the tool is importable, so a worker imports it (and its module's
        # state) instead of receiving a by-value copy of the function and its globals.
        ref = _importable(self.fn)
        if ref is not None:
            return (_by_reference, (*ref, "executor"))
        return (type(self), (self.fn, self.plan, self.context_param))


class _SyncAdapter(_Adapter):
    __slots__ = ()

    def __call__(self, /, **kwargs: Any) -> Any:
        return self.fn(**self.plan.apply(kwargs))


class _AsyncAdapter(_Adapter):
    __slots__ = ()

    async def __call__(self, /, **kwargs: Any) -> Any:
        return await self.fn(**self.plan.apply(kwargs))


def _importable(fn: Callable[..., Any]) -> tuple[str, str] | None:
    """(module, qualname) when importing them gives the ``@tool`` made of ``fn``."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<locals>" in qualname:
        return None
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (module, qualname) if isinstance(obj, FunctionTool) and obj.fn is fn else None


def _by_reference(module: str, qualname: str, part: str) -> Any:
    """Unpickling side of ``_importable``: the tool, or its executor, imported by name."""
    obj: Any = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    return obj.executor if part == "executor" else obj


def _is_async(fn: Callable[..., Any]) -> bool:
    if isinstance(fn, _AsyncAdapter):
        return True
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return not inspect.isfunction(fn) and call is not None and inspect.iscoroutinefunction(call)


def describe_executor(fn: Callable[..., Any]) -> ExecutorInfo:
    """How the manager should call ``fn``; used once at registration, never per call."""
    if isinstance(fn, FunctionTool):
        return ExecutorInfo(is_async=fn.is_async, context_param=fn.context_param)
    if isinstance(fn, _Adapter):
        return ExecutorInfo(is_async=_is_async(fn), context_param=fn.context_param)
    return ExecutorInfo(is_async=_is_async(fn), context_param=find_context_param(fn))


class FunctionTool(Generic[P, R]):
    """A function made a tool: callable like the function, plus its definition and executor."""

    definition: ToolDefinition
    fn: Callable[P, R]
    """The original function (what import-path or cloudpickle isolation ships to a worker)."""
    executor: Callable[..., Any]
    """What the manager calls with validated JSON arguments (and the context, if taken)."""
    is_async: bool
    context_param: str | None
    strict: bool
    strict_error: str | None
    """Why the schema is not strict, when it is not."""
    plan: CallPlan

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
        metadata: ToolMetadata | None = None,
        **metadata_fields: Any,
    ) -> None:
        # A partial describes its function; a callable object, its class.
        inner = fn.func if isinstance(fn, functools.partial) else fn
        tool_name = name if name is not None else getattr(inner, "__name__", type(fn).__name__)
        if not isinstance(tool_name, str) or not _NAME.match(tool_name):
            raise ToolDefinitionError(INVALID_NAME.format(name=tool_name), code="invalid_name")
        _refuse_unbound_method(fn, tool_name)
        meta = _metadata(tool_name, metadata, metadata_fields)
        # description= replaces the summary only: parameter texts still come from the docstring.
        doc = parse_docstring(inspect.getdoc(inner))
        built = build_function_schema(fn, name=tool_name, docstring=doc, strict=strict)
        function = FunctionDefinition(name=tool_name, parameters=built.parameters)
        text = description if description is not None else built.description
        if text:
            function.description = text
        if built.strict:
            function.strict = True
        self.definition = ToolDefinition(function=function, metadata=meta)
        self.fn = fn
        self.is_async = _is_async(fn)
        self.context_param = built.context_param
        self.strict = built.strict
        self.strict_error = built.strict_error
        self.plan = CallPlan(built.converters, built.null_means_default, built.fill)
        if self.plan.empty:
            # Calling the tool is calling the function; being the executor also lets the
            # sandbox ship it by import path (``module.name`` is this object, not ``fn``).
            self.executor = self
        elif self.is_async:
            self.executor = _AsyncAdapter(fn, self.plan, built.context_param)
        else:
            self.executor = _SyncAdapter(fn, self.plan, built.context_param)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.definition.function.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionTool({self.name!r}, strict={self.strict}, is_async={self.is_async})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        ref = _importable(self.fn)
        if ref is not None:
            return (_by_reference, (*ref, "tool"))
        return super().__reduce_ex__(protocol)

    def to_openai(self) -> dict[str, Any]:
        """The tool as the Chat Completions API takes it."""
        return self.definition.to_openai()


def _refuse_unbound_method(fn: Callable[..., Any], name: str) -> None:
    """``@tool`` on a method inside a class body would put ``self`` in the schema."""
    if not inspect.isfunction(fn):
        return
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls") and params[0].annotation is params[0].empty:
        raise ToolDefinitionError(
            METHOD_NOT_BOUND.format(name=name, first=params[0].name), code="unsupported_signature"
        )


def _metadata(name: str, metadata: ToolMetadata | None, fields: dict[str, Any]) -> ToolMetadata:
    try:
        if metadata is None:
            return ToolMetadata(**fields)
        if fields:
            return metadata.model_copy(update=ToolMetadata(**fields).model_dump(exclude_unset=True))
        return metadata.model_copy()
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        allowed = ", ".join(ToolMetadata.model_fields)
        raise ToolDefinitionError(
            f"tool {name!r} has invalid metadata: {detail}. Metadata fields are: {allowed}",
            code="invalid_metadata",
        ) from None


def tool_from_function(
    fn: Callable[P, R],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    metadata: ToolMetadata | None = None,
    **metadata_fields: Any,
) -> FunctionTool[P, R]:
    """Make a tool of ``fn``; keyword arguments are ``ToolMetadata`` fields (category, ...)."""
    return FunctionTool(
        fn, name=name, description=description, strict=strict, metadata=metadata,
        **metadata_fields,
    )  # fmt: skip


@overload
def tool(fn: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    metadata: ToolMetadata | None = None,
    **metadata_fields: Any,
) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    metadata: ToolMetadata | None = None,
    **metadata_fields: Any,
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Decorator: ``@tool`` or ``@tool(category="filesystem", permissions=["file:read"], ...)``.

    Args:
        fn: The function, when used bare as ``@tool``.
        name: Tool name; the function's ``__name__`` by default.
        description: Overrides the docstring's summary.
        strict: ``None`` (strict when the schema converts cleanly), ``True`` or ``False``.
        metadata: A ``ToolMetadata`` to start from; keyword fields override it.
        **metadata_fields: Any ``ToolMetadata`` field (``timeout_s``, ``rate_limit``, ...).
    """

    def decorate(f: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(
            f, name=name, description=description, strict=strict, metadata=metadata,
            **metadata_fields,
        )  # fmt: skip

    if fn is not None:
        return decorate(fn)
    return decorate
