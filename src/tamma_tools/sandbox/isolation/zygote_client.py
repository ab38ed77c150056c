"""The application's side of the zygote: start it, spawn a call, supervise the child to the end.

``ZygoteClient.run_call`` is blocking and meant for a thread: it hands the zygote the per-call
channel and pipes, streams the request to the child, then reads result and output with the
deadline and the caps, killing the child through its pidfd (no PID-reuse race) when one is hit.
It returns only when the zygote has reaped the child, so no call leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tamma_tools.sandbox.isolation import protocol
from tamma_tools.sandbox.isolation.launch import interpreter_argv, scrubbed_env

__all__ = ["ChildOutcome", "KillSwitch", "ZygoteClient", "ZygoteDied"]

_START_TIMEOUT_S = 20.0
_EXIT_GRACE_S = 2.0
"""After a kill, how long to wait for the zygote's exit report before giving up on it."""
_READ_CHUNK = 1 << 16
_ACK_GRACE_S = 1.0


class ZygoteDied(Exception):
    """The zygote is gone (crashed or killed); the caller restarts it."""


class _NotStarted(ZygoteDied):
    """The zygote went away before it forked the child for this call."""


class KillSwitch:
    """Kills one running child; the first reason given wins (deadline, cap, cancel)."""

    def __init__(self, on_pid: Callable[[int], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._pidfd: int | None = None
        self.reason: str | None = None
        self.on_pid = on_pid
        """Told the child's PID once it exists (for ``get_active_executions``)."""

    def attach(self, pidfd: int) -> None:
        with self._lock:
            self._pidfd = pidfd
            if self.reason is not None:
                self._signal()

    def detach(self) -> None:
        with self._lock:
            self._pidfd = None

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._signal()

    def _signal(self) -> None:
        if self._pidfd is not None:
            # The child may already be gone (RLIMIT_CPU fired at the same instant): fine.
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


@dataclass(slots=True)
class ChildOutcome:
    """What one child left behind."""

    status: int | None = None
    cpu_s: float = 0.0
    result: bytes | None = None
    result_overflow: bool = False
    output: bytearray = field(default_factory=bytearray)
    output_overflow: bool = False
    killed: str | None = None
    pid: int | None = None


class ZygoteClient:
    """One zygote process and the control socket to it; restarted when it dies."""

    def __init__(self, sys_path: list[str], preimport: list[str]) -> None:
        self._sys_path = sys_path
        self._preimport = preimport
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start_locked(self) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = scrubbed_env()
        env["TAMMA_CONTROL_FD"] = str(child_end.fileno())
        try:
            proc = subprocess.Popen(
                interpreter_argv("zygote"),
                pass_fds=[child_end.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal must not kill calls mid-write
                cwd="/",
            )
        finally:
            child_end.close()
        parent_end.settimeout(_START_TIMEOUT_S)
        try:
            parent_end.send(
                protocol.encode(
                    {"op": "hello", "sys_path": self._sys_path, "preimport": self._preimport}
                )
            )
            reply = parent_end.recv(protocol.MAX_CONTROL_FRAME)
        except OSError as exc:
            proc.kill()
            proc.wait()
            raise ZygoteDied(f"the zygote did not start: {exc}") from exc
        if not reply:
            proc.wait()
            raise ZygoteDied(f"the zygote exited during start-up with status {proc.returncode}")
        parent_end.settimeout(None)
        self._proc, self._control = proc, parent_end

    def ensure_started(self) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self.restarts += 1
                    self._discard_locked()
                self._start_locked()

    def _discard_locked(self) -> None:
        if self._control is not None:
            self._control.close()
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc = self._control = None

    def close(self) -> None:
        """Closing the control socket makes the zygote kill its children and exit."""
        with self._lock:
            proc, control = self._proc, self._control
            self._proc = self._control = None
        if control is not None:
            control.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _spawn(self, spec: dict[str, Any], fds: list[int]) -> None:
        for attempt in (0, 1):
            self.ensure_started()
            control = self._control
            try:
                assert control is not None
                with self._send_lock:
                    socket.send_fds(control, [protocol.encode(spec)], fds)
                return
            except (OSError, AssertionError):
                if attempt:
                    raise ZygoteDied("the zygote is not accepting calls") from None
                with self._lock:
                    self.restarts += 1
                    self._discard_locked()

    def run_call(
        self,
        spec: dict[str, Any],
        payload: bytes,
        blob: bytes | None,
        *,
        timeout_s: float,
        output_cap: int,
        result_cap: int,
        switch: KillSwitch,
    ) -> ChildOutcome:
        """Run one call in a fresh child and supervise it until the zygote has reaped it.

        A zygote that died before it started the child (killed, crashed) is restarted and the
        call is tried once more; nothing of the call ran, so the retry cannot repeat effects.
        """
        deadline = time.monotonic() + timeout_s
        try:
            return self._run_once(spec, payload, blob, deadline, output_cap, result_cap, switch)
        except _NotStarted:
            with self._lock:
                self.restarts += 1
                self._discard_locked()
            try:
                return self._run_once(spec, payload, blob, deadline, output_cap, result_cap,
                                      switch)  # fmt: skip
            except _NotStarted as exc:
                raise ZygoteDied(str(exc)) from None

    def _run_once(
        self, spec: dict[str, Any], payload: bytes, blob: bytes | None, deadline: float,
        output_cap: int, result_cap: int, switch: KillSwitch,
    ) -> ChildOutcome:  # fmt: skip
        chan, chan_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            try:
                self._spawn(spec, [chan_child.fileno(), result_w, out_w])
            finally:
                chan_child.close()
                os.close(result_w)
                os.close(out_w)
            return self._supervise(chan, result_r, out_r, payload, blob, deadline,
                                   output_cap, result_cap, switch)  # fmt: skip
        finally:
            chan.close()
            os.close(result_r)
            os.close(out_r)

    def _supervise(
        self, chan: socket.socket, result_r: int, out_r: int, payload: bytes, blob: bytes | None,
        deadline: float, output_cap: int, result_cap: int, switch: KillSwitch,
    ) -> ChildOutcome:  # fmt: skip
        outcome = ChildOutcome()
        # The zygote may be busy importing a tool module for this or another call; the call's
        # own deadline (plus a second) bounds the wait. If the child is forked after we gave up,
        # the zygote finds this channel closed and kills it.
        chan.settimeout(max(0.0, deadline - time.monotonic()) + _ACK_GRACE_S)
        try:
            msg, fds, _, _ = socket.recv_fds(chan, protocol.MAX_CONTROL_FRAME, 1)
        except TimeoutError:
            switch.kill("timeout")
            outcome.killed = switch.reason
            return outcome
        except OSError as exc:
            raise _NotStarted(f"no answer from the zygote: {exc}") from exc
        if msg and not fds:
            error = protocol.decode(msg[protocol.HEADER.size :]).get("error", "unknown error")
            raise ZygoteDied(f"the zygote could not start the call: {error}")
        if not msg or not fds:
            raise _NotStarted("the zygote closed the call channel before starting the child")
        pidfd = fds[0]
        try:
            ack = protocol.decode(msg[protocol.HEADER.size :])
            outcome.pid = ack.get("pid")
            switch.attach(pidfd)
            if switch.on_pid is not None and outcome.pid is not None:
                switch.on_pid(outcome.pid)
            try:
                chan.settimeout(max(0.05, deadline - time.monotonic()))
                chan.sendall(protocol.frame(payload))
                if blob is not None:
                    chan.sendall(protocol.frame(blob))
            except TimeoutError:
                switch.kill("timeout")
            except OSError:
                pass  # the child died before reading its request; its exit status says why
            self._collect(chan, result_r, out_r, deadline, output_cap, result_cap, switch, outcome)
        finally:
            switch.detach()
            os.close(pidfd)
        outcome.killed = switch.reason
        return outcome

    def _collect(
        self, chan: socket.socket, result_r: int, out_r: int, deadline: float, output_cap: int,
        result_cap: int, switch: KillSwitch, outcome: ChildOutcome,
    ) -> None:  # fmt: skip
        chan.setblocking(False)
        os.set_blocking(result_r, False)
        os.set_blocking(out_r, False)
        result = bytearray()
        status_buf = bytearray()
        sel = selectors.DefaultSelector()
        sel.register(result_r, selectors.EVENT_READ, "result")
        sel.register(out_r, selectors.EVENT_READ, "output")
        sel.register(chan, selectors.EVENT_READ, "status")
        open_streams = 3
        hard_stop: float | None = None
        try:
            while open_streams:
                now = time.monotonic()
                if switch.reason is None and now >= deadline:
                    switch.kill("timeout")
                if switch.reason is not None and hard_stop is None:
                    hard_stop = now + _EXIT_GRACE_S
                if hard_stop is not None and now >= hard_stop:
                    break
                limit = hard_stop if hard_stop is not None else deadline
                if outcome.status is not None:
                    # The child is reaped; anything still holding a pipe is not ours to wait for.
                    limit = min(limit, now + 0.2)
                    if now >= limit:
                        break
                for key, _ in sel.select(max(0.0, limit - now)):
                    which = key.data
                    try:
                        data = (
                            os.read(key.fd, _READ_CHUNK)
                            if which != "status"
                            else chan.recv(_READ_CHUNK)
                        )
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fd)
                        open_streams -= 1
                        continue
                    if which == "result":
                        result += data
                        if len(result) > result_cap:
                            outcome.result_overflow = True
                            switch.kill("result_size")
                            sel.unregister(key.fd)
                            open_streams -= 1
                    elif which == "output":
                        outcome.output += data
                        if len(outcome.output) > output_cap:
                            outcome.output_overflow = True
                            switch.kill("output")
                            sel.unregister(key.fd)
                            open_streams -= 1
                    else:
                        status_buf += data
                        report = _parse_status(status_buf)
                        if report is not None:
                            outcome.status = int(report["status"])
                            outcome.cpu_s = float(report["cpu_s"])
        finally:
            sel.close()
        if not outcome.result_overflow and result:
            outcome.result = bytes(result)
        if outcome.status is None:
            # No exit report: the zygote died (its children die with it through PDEATHSIG).
            switch.kill("died")


def _parse_status(buf: bytearray) -> dict[str, Any] | None:
    if len(buf) < protocol.HEADER.size:
        return None
    (size,) = protocol.HEADER.unpack_from(buf)
    if len(buf) < protocol.HEADER.size + size:
        return None
    report: dict[str, Any] = protocol.decode(
        bytes(buf[protocol.HEADER.size : protocol.HEADER.size + size])
    )
    return report


def default_sys_path() -> list[str]:
    """The application's import path, minus the current directory (it often holds ``.env``)."""
    return [p for p in sys.path if p and os.path.isdir(p)]
