"""Inside the per-call child: run one allowlisted binary as PID 1 of a fresh PID namespace.

The child has already called ``unshare(CLONE_NEWPID)`` (``child._lock_down``), so the process it
forks here is PID 1 of a new namespace. When PID 1 exits or is killed the kernel kills every
process in the namespace, ``setsid`` daemons included, which ``killpg`` does not do
(research/sandbox.md §2.2). PID 1 gets ``PR_SET_PDEATHSIG=SIGKILL``, so when the application
kills this child at the deadline, the whole tree goes with it.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from tamma_tools.sandbox.isolation._libc import PR_SET_PDEATHSIG, prctl

__all__ = ["make_runner"]

_COMMAND_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}


def _die_with_parent() -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def make_runner(target: dict[str, Any], spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    argv = [str(a) for a in target["argv"]]
    binary = str(target["binary"])
    cap = int(target["max_output_bytes"])
    cwd = target.get("cwd") or spec.get("cwd") or "/"

    def run() -> dict[str, Any]:
        proc = subprocess.Popen(
            argv,
            executable=binary,
            cwd=cwd,
            env=_COMMAND_ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdout is not None and proc.stderr is not None
        streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
        truncated = False
        with selectors.DefaultSelector() as sel:
            for fd in streams:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                        continue
                    buf = streams[key.fd]
                    room = cap - sum(len(b) for b in streams.values())
                    buf += chunk[: max(room, 0)]
                    if len(chunk) > room:
                        truncated = True
                        proc.kill()
        exit_code = proc.wait()
        return {
            "exit_code": exit_code,
            "stdout": streams[proc.stdout.fileno()].decode("utf-8", "replace"),
            "stderr": streams[proc.stderr.fileno()].decode("utf-8", "replace"),
            "truncated": truncated,
        }

    return lambda **_: run()
