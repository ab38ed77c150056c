"""The per-call child: forked by the zygote, it locks itself down and runs exactly one call.

Order matters (research/sandbox.md §10.8): first read the request and load the executor (that
needs the filesystem), then rlimits -> network namespace -> (PID namespace) -> Landlock ->
seccomp -> chdir, then the tool. Everything the restricted child needs later is imported before
the restrictions, because afterwards most of the disk is invisible.

File descriptors after ``_rearrange_fds``: 0 ``/dev/null``, 1 and 2 the capped output pipe,
3 the result pipe, 4 the per-call channel (request in), 5 the Landlock ruleset, 6 the shared
empty network namespace. Everything else the zygote had open (other calls' channels and pidfds)
is closed, so a tool cannot forge another call's result or signal its siblings.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import signal
import sys
from typing import Any

from tamma_tools.sandbox.isolation import landlock, protocol, runner, seccomp
from tamma_tools.sandbox.isolation._libc import (
    CLONE_NEWNET,
    CLONE_NEWPID,
    PR_SET_PDEATHSIG,
    prctl,
    setns,
    unshare,
)

__all__ = ["MAX_REQUEST_BYTES", "run_child"]

MAX_REQUEST_BYTES = 256 * 1024 * 1024
"""Largest request (arguments + pickled executor) a child accepts from the application."""

_RESULT_FD, _CHANNEL_FD, _RULESET_FD, _NETNS_FD = 3, 4, 5, 6


def _rearrange_fds(
    out_w: int, result_w: int, channel: int, ruleset: int | None, netns: int | None
) -> None:
    devnull = os.open("/dev/null", os.O_RDWR)
    wanted = [devnull, out_w, out_w, result_w, channel]
    wanted.append(ruleset if ruleset is not None else devnull)
    if netns is not None:
        wanted.append(netns)
    # Above the targets (0-6) but inside the default 64-slot fd table, which 512 would grow.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 16) for fd in wanted]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=target < 3)
    os.closerange(len(wanted), 1 << 20)


def _set_rlimits(limits: dict[str, int]) -> None:
    cpu = limits["cpu"]
    # Soft limit sends SIGXCPU; the hard limit one second later is SIGKILL for tools that
    # ignore SIGXCPU (research/sandbox.md §2.1).
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["as"], limits["as"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _write_result(data: bytes) -> None:
    # OSError: the application stopped reading (result cap or deadline); it already knows.
    with contextlib.suppress(OSError):
        protocol.write_all(_RESULT_FD, data)


def _fail(kind: str, message: str, **extra: Any) -> bytes:
    return b"ER" + protocol.encode({"kind": kind, "type": "", "message": message, **extra})


def run_child(
    spec: dict[str, Any], out_w: int, result_w: int, channel: int, ruleset: int | None,
    netns: int | None = None,
) -> None:  # fmt: skip
    """Never returns: runs the call and ``_exit``s."""
    status = 0
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setpgid(0, 0)
        _rearrange_fds(out_w, result_w, channel, ruleset, netns)
        status = _run(spec)
    except BaseException as exc:  # the child must never fall back into the zygote's loop
        _write_result(_fail("sandbox", f"sandbox setup failed: {type(exc).__name__}: {exc}"))
        status = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(status)


def _run(spec: dict[str, Any]) -> int:
    request = protocol.decode(protocol.read_frame(_CHANNEL_FD, MAX_REQUEST_BYTES))
    blob = protocol.read_frame(_CHANNEL_FD, MAX_REQUEST_BYTES) if request.get("blob") else None
    os.close(_CHANNEL_FD)

    try:
        if request["target"]["kind"] == "command":
            from tamma_tools.sandbox.isolation import command_child

            fn = command_child.make_runner(request["target"], spec)
        else:
            fn = runner.resolve(request["target"], blob)
        del blob
        arguments: dict[str, Any] = request["arguments"]
        if request.get("context_param"):
            arguments[request["context_param"]] = runner.build_context(request["context"])
    except Exception as exc:  # the tool's module failed to import or unpickle: the tool's fault
        _write_result(b"ER" + protocol.encode(runner.describe_failure(exc)))
        return 0

    runner.cap_threads(int(spec["rlimits"]["as"]), int(spec.get("max_threads", 64)))
    _lock_down(spec)
    tracker = runner.FileTracker(int(spec["max_files"]))
    tracker.install()
    try:
        value = runner.invoke(fn, arguments)
    except BaseException as exc:
        failure = runner.describe_failure(exc, tracker)
        if failure.get("limit") in ("files", "file_size"):
            failure["removed"] = tracker.remove_created()
        _write_result(b"ER" + protocol.encode(failure))
        return 0
    _write_result(runner.encode_value(value))
    return 0


def _lock_down(spec: dict[str, Any]) -> None:
    _set_rlimits(spec["rlimits"])
    if spec["netns"]:
        setns(_NETNS_FD, CLONE_NEWNET)
        os.close(_NETNS_FD)
    if spec["pidns"]:
        unshare(CLONE_NEWPID)
    if spec["landlock"]:
        landlock.restrict_self(_RULESET_FD)
        os.close(_RULESET_FD)
    if spec["seccomp"] is not None:
        seccomp.load(seccomp.FilterSpec(**spec["seccomp"]))
    cwd = spec.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES):
                raise
            os.chdir("/")
    else:
        os.chdir("/")
