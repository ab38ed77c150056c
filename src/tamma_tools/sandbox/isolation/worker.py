"""A persistent worker: a clean interpreter that runs calls one after another.

For tools marked ``isolation="worker"``: cheaper than a fork per call (tens of microseconds), at
the price of no isolation *between* calls of the same worker. The application enforces the
deadline and the memory limit by killing and replacing the whole worker; a worker that hit
``MemoryError`` asks to be replaced because its heap may be left in a bad state.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tamma_tools.sandbox.isolation import protocol, runner

__all__ = ["main"]

_MAX_REQUEST_BYTES = 256 * 1024 * 1024
SPIN_S = 200e-6
"""How long a worker polls for its next request before sleeping in ``read``.

The application's side polls for the answer the same way (``worker_pool.SPIN_S``): waking a
sleeping process costs ~30-40 µs on a VM, more than the trivial call itself. Back-to-back calls
then find the worker awake; an idle worker spends at most this much CPU per call, then sleeps.
"""


def _serve(fd: int) -> None:
    hello = protocol.decode(protocol.read_frame(fd, protocol.MAX_CONTROL_FRAME))
    for entry in reversed(hello.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    memory = int(hello["memory_bytes"])
    for name in hello.get("preimport", ()):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    reader = _FrameReader(fd)  # before the lock-down: it wraps the channel in a socket object
    if hello.get("lockdown"):
        _lock_down(hello["lockdown"])
    protocol.write_all(fd, protocol.frame(protocol.encode({"ok": True, "pid": os.getpid()})))
    cache: dict[str, Callable[..., Any]] = {}
    while True:
        try:
            request = protocol.decode(reader.frame())
        except protocol.ProtocolError:
            return  # the application closed the channel
        blob = reader.frame() if request.get("blob") else None
        protocol.write_all(fd, protocol.frame(_one_call(request, blob, cache, memory)))


class _FrameReader:
    """Frames from a blocking fd with one ``read`` per small frame (the per-call hot path)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        # A second handle on the same socket for MSG_DONTWAIT polls; the fd itself stays blocking.
        self._poller = socket.socket(fileno=os.dup(fd))

    def _read(self) -> bytes:
        until = time.perf_counter() + SPIN_S
        while True:
            try:
                return self._poller.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() >= until:
                    return os.read(self.fd, 1 << 20)

    def frame(self) -> bytes:
        head = protocol.HEADER.size
        while True:
            if len(self.buf) >= head:
                (size,) = protocol.HEADER.unpack_from(self.buf)
                if size > _MAX_REQUEST_BYTES:
                    raise protocol.ProtocolError(f"frame of {size} bytes is too large")
                if len(self.buf) >= head + size:
                    data = bytes(self.buf[head : head + size])
                    del self.buf[: head + size]
                    return data
            chunk = self._read()
            if not chunk:
                raise protocol.ProtocolError("channel closed")
            self.buf += chunk


def _lock_down(spec: dict[str, Any]) -> None:
    """The per-call child's kernel layers, applied once for the worker's whole life.

    One worker serves one permission profile (network or not, roots read-only, read-write or
    absent), so the rules fit every tool it runs. Unlike the per-call child, tool modules are
    imported lazily here, so the application's import path stays readable.
    """
    from tamma_tools.sandbox.isolation import landlock, seccomp
    from tamma_tools.sandbox.isolation._libc import CLONE_NEWNET, unshare

    if spec["netns"]:
        unshare(CLONE_NEWNET)
    if spec["landlock"]:
        paths = [(p, m) for p, m in spec["landlock_paths"]]
        ruleset = landlock.create_ruleset(paths, tcp_connect_ports=spec["landlock_ports"])
        landlock.restrict_self(ruleset)
        os.close(ruleset)
    if spec["seccomp"] is not None:
        seccomp.load(seccomp.FilterSpec(**spec["seccomp"]))
    os.chdir(spec.get("cwd") or "/")


def _one_call(
    request: dict[str, Any], blob: bytes | None, cache: dict[str, Callable[..., Any]], hard: int
) -> bytes:
    soft = min(int(request.get("memory_bytes", hard)), hard)
    if resource.getrlimit(resource.RLIMIT_AS)[0] != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    try:
        target = request["target"]
        key = target.get("ref") or hashlib.sha256(blob or b"").hexdigest()
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = runner.resolve(target, blob)
        arguments: dict[str, Any] = request["arguments"]
        if request.get("context_param"):
            arguments[request["context_param"]] = runner.build_context(request["context"])
        return runner.encode_value(runner.invoke(fn, arguments))
    except BaseException as exc:
        failure = runner.describe_failure(exc)
        if failure.get("kind") == "resource":
            failure["recycle"] = True
        return b"ER" + protocol.encode(failure)


def _exit_with_parent(parent: int) -> None:
    """A worker busy in a call never reads the channel's EOF, so watch the parent instead.

    ``PR_SET_PDEATHSIG`` would fire when the *thread* that started the worker exits, which for
    a worker started from an executor thread is not the application's death.
    """
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    fd = int(os.environ.pop("TAMMA_CONTROL_FD", "3"))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        _serve(fd)
    os._exit(0)
