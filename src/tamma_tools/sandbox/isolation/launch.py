"""Start a clean interpreter that runs one of this package's entry points.

The zygote and the workers must never be forked from the application: a fork carries the
application's heap, and with it its API keys (research/sandbox.md §2.12: a child forked from the
app found ``sk-live-memory-canary-123`` with ``gc.get_objects()``). So they are fresh interpreters
started with ``-I`` (no ``PYTHON*`` variables, no user site, no current directory on ``sys.path``)
and a scrubbed environment.

``import tamma_tools`` pulls in pydantic and the whole library (~120 ms, +15 MiB resident), which
every fork would then copy. The bootstrap below registers the two parent packages as bare
namespace stubs, imports only the isolation entry point, and removes the stubs again so that a
tool module that does ``import tamma_tools`` later gets the real package.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["SCRUBBED_ENV", "interpreter_argv", "package_root"]

SCRUBBED_ENV: dict[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    # RLIMIT_AS counts virtual memory and glibc reserves 64 MiB per thread arena; without this a
    # thread-using tool hits a 256 MiB limit after ~6 threads (research/sandbox.md §2.1).
    "MALLOC_ARENA_MAX": "2",
    "PYTHONHASHSEED": "random",
}

_BOOT = """\
import sys, types
_root = {root!r}
for _name, _path in (("tamma_tools", _root), ("tamma_tools.sandbox", _root + "/sandbox")):
    _stub = types.ModuleType(_name)
    _stub.__path__ = [_path]
    sys.modules[_name] = _stub
from tamma_tools.sandbox.isolation.{entry} import main as _main
del sys.modules["tamma_tools"], sys.modules["tamma_tools.sandbox"]
_main()
"""


def package_root() -> str:
    """Directory of the ``tamma_tools`` package (where ``__init__.py`` lives)."""
    return str(Path(__file__).resolve().parent.parent.parent)


def interpreter_argv(entry: str) -> list[str]:
    """argv for a clean interpreter running ``tamma_tools.sandbox.isolation.<entry>.main()``."""
    return [sys.executable, "-I", "-c", _BOOT.format(root=package_root(), entry=entry)]


def scrubbed_env() -> dict[str, str]:
    """The environment isolated interpreters start with: nothing of the application's."""
    env = dict(SCRUBBED_ENV)
    tz = os.environ.get("TZ")
    if tz is not None and "\n" not in tz:
        env["TZ"] = tz
    return env
