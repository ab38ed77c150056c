"""How a call travels to an isolated interpreter: its executor, its context, its import path.

Executors go by import path (``module:qualname``, importable in the zygote/worker) when they are
module-level functions, else by value with cloudpickle (closures, ``__main__``), application ->
child only. What the tool may read besides its roots is decided here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

from tamma_tools.errors import ExecutorNotTransferable
from tamma_tools.types import CallerContext

__all__ = ["context_dict", "context_param", "executor_target", "import_path", "readable_paths"]

Target = tuple[dict[str, Any], bytes | None, tuple[str, ...]]
"""(target description, pickled executor or None, modules the zygote should import first)."""

NOT_TRANSFERABLE_TEXT = (
    "tool {tool!r} cannot run isolated: its executor is neither importable by path "
    "(module-level function in an importable module) nor serialisable with cloudpickle ({why}). "
    "Move it to a module-level function in an importable module, or set its isolation to "
    "'in_process' if it is trusted and bounded"
)

_SYSTEM_READ_PATHS = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ssl", "/etc/ca-certificates",
    "/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types", "/usr/share/zoneinfo",
)  # fmt: skip


def executor_target(tool: str, executor: Callable[..., Any], cache: dict[Any, Target]) -> Target:
    """How ``executor`` reaches the isolated process; cached per executor object."""
    try:
        hit = cache.get(executor)
    except TypeError:
        hit = None
    if hit is not None:
        return hit
    module = getattr(executor, "__module__", None)
    qualname = getattr(executor, "__qualname__", None)
    target: tuple[dict[str, Any], bytes | None, tuple[str, ...]] | None = None
    if module and qualname and module != "__main__" and "<locals>" not in qualname:
        obj: Any = sys.modules.get(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if obj is executor:
            target = ({"kind": "import", "ref": f"{module}:{qualname}"}, None, (module,))
    if target is None:
        try:
            import cloudpickle

            blob = cloudpickle.dumps(executor)
        except Exception as exc:
            raise ExecutorNotTransferable(
                NOT_TRANSFERABLE_TEXT.format(tool=tool, why=f"{type(exc).__name__}: {exc}")
            ) from exc
        target = ({"kind": "pickle"}, blob, ("cloudpickle",))
    with contextlib.suppress(TypeError):
        if len(cache) > 4096:
            cache.clear()
        cache[executor] = target
    return target


def context_dict(context: CallerContext) -> dict[str, Any]:
    return {
        "user_id": context.user_id,
        "session_id": context.session_id,
        "roles": sorted(context.roles),
        "permissions": sorted(context.permissions),
        "resource_limits": dataclasses.asdict(context.resource_limits),
    }


def context_param(executor: Callable[..., Any]) -> str | None:
    with contextlib.suppress(TypeError, ValueError):
        for name, param in inspect.signature(executor).parameters.items():
            ann = param.annotation
            if (
                ann is CallerContext
                or ann == "CallerContext"
                or getattr(ann, "__name__", "") == "CallerContext"
            ):
                return name
    return None


def import_path() -> list[str]:
    """The application's import path for the isolated interpreters (``''`` made absolute)."""
    out: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if path not in out and os.path.isdir(path):
            out.append(path)
    return out


def readable_paths() -> list[str]:
    """What an isolated tool may read besides its roots: the interpreter and its libraries.

    The application's working directory is left out on purpose: it usually holds ``.env`` and
    the like. Modules imported from it are imported in the zygote before the child locks down.
    """
    cwd = os.path.abspath(os.getcwd())
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *_SYSTEM_READ_PATHS}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(sysconfig.get_paths()[key])
    for entry in sys.path:
        if entry and os.path.abspath(entry) != cwd and os.path.isdir(entry):
            paths.add(os.path.abspath(entry))
    return sorted(p for p in paths if os.path.exists(p))
