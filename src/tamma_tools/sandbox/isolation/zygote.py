"""The zygote: a clean pre-started interpreter that forks one locked-down child per call.

Started by ``launch.interpreter_argv("zygote")`` with a scrubbed environment, it never imported
the application and never held its secrets, so a fork of it carries nothing worth stealing. Forking
a warm interpreter is what makes a fully isolated call cost milliseconds instead of the 16-40 ms of
a fresh ``python`` (research/sandbox.md §2.4).

Wire: the application talks over a ``SOCK_SEQPACKET`` control socket (fd passed at start). Each
``spawn`` message carries three fds: the per-call channel, the result pipe's write end and the
output pipe's write end. The zygote forks, sends ``{"pid"}`` plus a pidfd back on the channel,
and when the child exits (its pidfd polls readable) reaps it with ``wait4`` and sends
``{"status", "cpu_s"}`` on the channel. The child itself reads the request from the channel.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any

from tamma_tools.sandbox.isolation import child, landlock, protocol, seccomp
from tamma_tools.sandbox.isolation._libc import CLONE_NEWNET, unshare
from tamma_tools.sandbox.isolation.cgroups import PidsCgroups

__all__ = ["main"]


class _Zygote:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)
        self.children: dict[int, tuple[int, socket.socket, str | None]] = {}
        """pidfd -> (pid, channel, pids cgroup)"""
        self.cgroups: PidsCgroups | None = None
        self.rulesets: dict[bytes, int] = {}
        self._netns: int | None = None

    def ruleset_for(self, spec: dict[str, Any]) -> int | None:
        """Landlock rulesets are cached per (paths, ports): building one costs ~0.4 ms."""
        if not spec["landlock"]:
            return None
        key = protocol.encode([spec["landlock_paths"], spec["landlock_ports"]])
        fd = self.rulesets.get(key)
        if fd is None:
            paths = [(p, m) for p, m in spec["landlock_paths"]]
            fd = landlock.create_ruleset(paths, tcp_connect_ports=spec["landlock_ports"])
            self.rulesets[key] = fd
        return fd

    def netns_fd(self) -> int:
        """One empty network namespace shared by every child that gets no network.

        ``unshare(CLONE_NEWNET)`` per call costs ~0.6 ms plus asynchronous teardown work in the
        kernel; joining a ready-made namespace with ``setns`` costs microseconds. Sharing it is
        safe: it has only ``lo``, down, and abstract Unix sockets between children are refused
        by Landlock's scoping (ABI >= 6) and by the children's separate seccomp/Landlock domains.
        """
        if self._netns is None:
            ready_r, ready_w = os.pipe()
            hold_r, hold_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(hold_w)
                    os.close(ready_r)
                    unshare(CLONE_NEWNET)
                    os.write(ready_w, b"1")
                    os.read(hold_r, 1)
                finally:
                    os._exit(0)
            os.close(ready_w)
            os.close(hold_r)
            try:
                if os.read(ready_r, 1) != b"1":
                    raise OSError("could not create the shared network namespace")
                self._netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            finally:
                os.close(ready_r)
                os.close(hold_w)
                os.waitpid(pid, 0)
        return self._netns

    def spawn(self, spec: dict[str, Any], fds: list[int]) -> None:
        channel_fd, result_w, out_w = fds
        channel = socket.socket(fileno=channel_fd)
        try:
            for name in spec.get("preimport", ()):
                # Importing once here means every later fork already has the module.
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
            ruleset = self.ruleset_for(spec)
            netns = self.netns_fd() if spec["netns"] else None
            if spec["seccomp"] is not None:
                seccomp.prepare(seccomp.FilterSpec(**spec["seccomp"]))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except Exception as exc:  # e.g. fork() -> EAGAIN: refuse this call, keep serving
            os.close(result_w)
            os.close(out_w)
            with contextlib.suppress(OSError):
                channel.sendall(protocol.frame(protocol.encode({"error": f"{exc}"})))
            channel.close()
            return
        if pid == 0:
            child.run_child(spec, out_w, result_w, channel.fileno(), ruleset, netns)
        os.close(result_w)
        os.close(out_w)
        cgroup = None
        if spec.get("pids_max"):
            if self.cgroups is None:
                self.cgroups = PidsCgroups()
            cgroup = self.cgroups.create(pid, int(spec["pids_max"]))
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(channel, [protocol.frame(protocol.encode({"pid": pid}))], [pidfd])
        except OSError:
            os.kill(pid, signal.SIGKILL)
        self.children[pidfd] = (pid, channel, cgroup)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)

    def reap(self, pidfd: int) -> None:
        pid, channel, cgroup = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        _, status, usage = os.wait4(pid, 0)
        os.close(pidfd)
        cpu = usage.ru_utime + usage.ru_stime
        with contextlib.suppress(OSError):
            channel.sendall(protocol.frame(protocol.encode({"status": status, "cpu_s": cpu})))
        channel.close()
        if cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(cgroup)

    def handle_control(self) -> bool:
        try:
            msg, fds, _, _ = socket.recv_fds(self.control, protocol.MAX_CONTROL_FRAME, 4)
        except OSError:
            return False
        if not msg:
            return False
        request = protocol.decode(msg)
        op = request.get("op")
        if op == "spawn" and len(fds) == 3:
            self.spawn(request, fds)
        elif op == "hello":
            for entry in reversed(request.get("sys_path", [])):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            for name in request.get("preimport", ()):
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
            self.control.send(protocol.encode({"ok": True, "pid": os.getpid()}))
        else:
            for fd in fds:
                os.close(fd)
        return True

    def serve(self) -> None:
        while True:
            pending = self.cgroups is not None and self.cgroups.sweep()
            for key, _ in self.selector.select(0.2 if pending else None):
                if key.data is None:
                    if not self.handle_control():
                        self.shutdown()
                        return
                else:
                    self.reap(key.fd)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        """The application went away: no call may outlive it."""
        for pidfd, (pid, _, cgroup) in list(self.children.items()):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            if cgroup is not None and self.cgroups is not None:
                self.cgroups.remove(cgroup)
        if self.cgroups is not None:
            for _ in range(20):
                if not self.cgroups.sweep():
                    break
                time.sleep(0.05)
            self.cgroups.close()


def main() -> None:
    control_fd = int(os.environ.pop("TAMMA_CONTROL_FD", "3"))
    control = socket.socket(fileno=control_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Warm the imports every child needs so forks do not pay for them.
    import asyncio  # noqa: F401
    import pickle  # noqa: F401

    _Zygote(control).serve()
