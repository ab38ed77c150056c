"""A pids cgroup per command call: the cap on processes that ``RLIMIT_NPROC`` is not for root.

Root ignores ``RLIMIT_NPROC`` (research/sandbox.md §2.1: 300 of 300 forks succeeded with a limit
of 20), while a v1 ``pids.max`` stopped a root fork bomb at 19 (§2.3). Commands are the only
isolated calls allowed to fork (seccomp refuses it to Python tools), so only they get one.

Optional by nature: ``/sys/fs/cgroup`` is read-only in most containers and pure cgroup v2 hosts
need delegation; when the directory cannot be created the call runs without it (the PID
namespace still kills the whole tree at the deadline).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["PidsCgroups"]

_V1_ROOT = "/sys/fs/cgroup/pids"


def _own_v1_path() -> str | None:
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if "pids" in controllers.split(","):
                    return path
    except OSError:
        return None
    return None


class PidsCgroups:
    """Creates, fills and removes the per-call cgroups of one zygote."""

    def __init__(self) -> None:
        self.base: str | None = None
        self._pending: list[str] = []
        self._counter = 0
        own = _own_v1_path()
        if own is None or not os.path.isdir(_V1_ROOT):
            return
        base = os.path.join(_V1_ROOT + own, f"tamma-{os.getpid()}")
        with contextlib.suppress(OSError):
            os.makedirs(base, exist_ok=True)
            self.base = base

    def create(self, pid: int, max_pids: int) -> str | None:
        """Put ``pid`` (not yet running anything) into a fresh cgroup capped at ``max_pids``."""
        if self.base is None:
            return None
        self._counter += 1
        path = os.path.join(self.base, f"call-{self._counter}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "pids.max"), "w") as fh:
                fh.write(str(max_pids))
            with open(os.path.join(path, "cgroup.procs"), "w") as fh:
                fh.write(str(pid))
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            return None
        return path

    def remove(self, path: str) -> None:
        """Remove once empty; processes of a dying PID namespace can take a moment to go."""
        try:
            os.rmdir(path)
        except OSError:
            self._pending.append(path)

    def sweep(self) -> bool:
        """Retry removals; True while some are still pending."""
        still = []
        for path in self._pending:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                still.append(path)
        self._pending = still
        return bool(still)

    def close(self) -> None:
        self.sweep()
        if self.base is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self.base)
