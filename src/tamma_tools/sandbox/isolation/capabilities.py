"""Which isolation layers this kernel offers, probed once in a throwaway process.

Every layer is *tried*, not inferred from version numbers or config files: Docker's default
seccomp profile blocks ``unshare`` without ``CAP_SYS_ADMIN`` (moby/moby#42441), Landlock can be
compiled in but not enabled, and ``/sys/kernel/security/lsm`` is often not mounted
(research/sandbox.md §1, §3). The probe restricts itself, so it runs in a process of its own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

from tamma_tools.sandbox.isolation.launch import interpreter_argv, scrubbed_env

__all__ = ["LAYERS", "SandboxCapabilities", "main", "probe"]

LAYERS = ("rlimits", "netns", "pidns", "landlock", "seccomp", "pidfd")


@dataclass(frozen=True, slots=True)
class SandboxCapabilities:
    """Isolation layers available on this machine (``True`` = probed and working)."""

    rlimits: bool = False
    netns: bool = False
    """``unshare(CLONE_NEWNET)``: an empty network namespace per call."""
    pidns: bool = False
    """``unshare(CLONE_NEWPID)``: the whole process tree of a command dies with the call."""
    landlock: bool = False
    landlock_abi: int = 0
    seccomp: bool = False
    pidfd: bool = False
    arch: str = ""
    kernel: str = ""
    errors: tuple[tuple[str, str], ...] = ()
    """(layer, why it is missing) for every layer that failed its probe."""

    def available(self) -> tuple[str, ...]:
        return tuple(layer for layer in LAYERS if getattr(self, layer))

    def missing(self, required: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(layer for layer in required if not getattr(self, layer, False))

    def reason(self, layer: str) -> str:
        return dict(self.errors).get(layer, "not available")

    def to_dict(self) -> dict[str, object]:
        return {
            **{layer: getattr(self, layer) for layer in LAYERS},
            "landlock_abi": self.landlock_abi,
            "arch": self.arch,
            "kernel": self.kernel,
            "errors": dict(self.errors),
        }


_cached: SandboxCapabilities | None = None
_lock = threading.Lock()


def probe(*, refresh: bool = False) -> SandboxCapabilities:
    """Probe once per application process (the answer does not change while it runs)."""
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = _run_probe()
        return _cached


def _run_probe() -> SandboxCapabilities:
    try:
        proc = subprocess.run(
            interpreter_argv("capabilities"),
            env=scrubbed_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            cwd="/",
            check=False,
        )
        from tamma_tools.sandbox.isolation import protocol

        data = protocol.decode(proc.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return SandboxCapabilities(
            arch=platform.machine(), kernel=platform.release(),
            errors=(("probe", f"the capability probe failed: {exc}"),),
        )  # fmt: skip
    return SandboxCapabilities(
        rlimits=bool(data["rlimits"]),
        netns=bool(data["netns"]),
        pidns=bool(data["pidns"]),
        landlock=bool(data["landlock"]),
        landlock_abi=int(data["landlock_abi"]),
        seccomp=bool(data["seccomp"]),
        pidfd=bool(data["pidfd"]),
        arch=str(data["arch"]),
        kernel=str(data["kernel"]),
        errors=tuple(sorted((str(k), str(v)) for k, v in data["errors"].items())),
    )


def main() -> None:
    """Entry point of the probe process: try each layer, print one JSON line."""
    import resource

    from tamma_tools.sandbox.isolation import landlock, protocol, seccomp
    from tamma_tools.sandbox.isolation._libc import CLONE_NEWNET, CLONE_NEWPID, unshare

    found: dict[str, object] = {layer: False for layer in LAYERS}
    errors: dict[str, str] = {}
    found.update(landlock_abi=0, arch=platform.machine(), kernel=platform.release())

    def attempt(layer: str, fn: object) -> None:
        try:
            fn()  # type: ignore[operator]
            found[layer] = True
        except Exception as exc:
            errors[layer] = f"{type(exc).__name__}: {exc}"

    def rlimits() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        resource.setrlimit(resource.RLIMIT_AS, resource.getrlimit(resource.RLIMIT_AS))

    def pidfd() -> None:
        os.close(os.pidfd_open(os.getpid()))

    def landlock_layer() -> None:
        abi = landlock.abi_version()
        found["landlock_abi"] = abi
        if abi < 1:
            raise OSError(errno.EOPNOTSUPP, "Landlock is not enabled in this kernel")
        fd = landlock.create_ruleset([("/", "ro")], tcp_connect_ports=None, abi=abi)
        landlock.restrict_self(fd)
        os.close(fd)

    def seccomp_layer() -> None:
        seccomp.load(seccomp.FilterSpec())
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        except PermissionError:
            return
        raise OSError(errno.EOPNOTSUPP, "the filter loaded but did not block socket(AF_INET)")

    attempt("rlimits", rlimits)
    attempt("pidfd", pidfd)
    attempt("netns", lambda: unshare(CLONE_NEWNET))
    attempt("pidns", lambda: unshare(CLONE_NEWPID))
    attempt("landlock", landlock_layer)
    attempt("seccomp", seccomp_layer)
    found["errors"] = errors
    with contextlib.suppress(OSError):
        sys.stdout.write(protocol.encode(found).decode() + "\n")
        sys.stdout.flush()
