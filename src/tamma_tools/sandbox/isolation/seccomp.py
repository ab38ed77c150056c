"""A seccomp-BPF syscall filter, assembled once in the zygote and loaded per child with prctl.

Default allow, ``EPERM`` for the calls a tool never needs and an attacker wants: new programs and
processes (``execve``, ``fork``, ``clone`` without ``CLONE_THREAD``), namespaces, mounts,
``ptrace``, keyrings, ``bpf``, ``io_uring``, module loading, uid changes, non-Unix sockets when the
tool has no network, and ``TIOCSTI``. ``clone3`` gets ``ENOSYS`` because its flags live in memory
a filter cannot read; glibc then falls back to ``clone``, whose flags we can inspect, so threads
keep working (research/sandbox.md §2.7). Compiling with libseccomp per call cost 1.2 ms there;
this hand-assembled program costs nothing per call.

Only x86_64 has a syscall table here; on other architectures ``supported()`` is False and the
capability probe reports seccomp as missing rather than loading a filter with wrong numbers.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
from dataclasses import dataclass

from tamma_tools.sandbox.isolation._libc import (
    ARCH,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_SECCOMP,
    prctl,
)

__all__ = ["FilterSpec", "load", "program", "supported"]

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_CLONE_THREAD = 0x00010000
_TIOCSTI = 0x5412

_X86_64 = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435,
    "ptrace": 101, "mount": 165, "umount2": 166, "unshare": 272, "setns": 308,
    "pivot_root": 155, "chroot": 161, "keyctl": 250, "add_key": 248, "request_key": 249,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "process_vm_readv": 310,
    "process_vm_writev": 311, "personality": 135, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "setgroups": 116,
    "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "quotactl": 179, "kcmp": 312,
    "pidfd_getfd": 438, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "socket": 41, "ioctl": 16,
}  # fmt: skip

_ALWAYS_DENIED = (
    "ptrace", "mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "keyctl",
    "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "process_vm_readv", "process_vm_writev", "personality",
    "open_by_handle_at", "name_to_handle_at", "setuid", "setgid", "setreuid", "setregid",
    "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "acct", "swapon", "swapoff",
    "reboot", "sethostname", "setdomainname", "iopl", "ioperm", "quotactl", "kcmp",
    "pidfd_getfd", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr",
)  # fmt: skip
_PROCESS_CREATION = ("execve", "execveat", "fork", "vfork")

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_JGE_K = 0x35
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_OFF_NR, _OFF_ARCH, _OFF_ARG0, _OFF_ARG1 = 0, 4, 16, 24


def _errno(code: int) -> int:
    return 0x00050000 | code


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """Which variant of the filter a call gets."""

    allow_network: bool = False
    """Allow ``socket()`` of any family (the tool has a ``network:*`` permission)."""
    allow_exec: bool = False
    """Allow ``execve``/``fork``/``clone`` (``run_command``; the PID namespace reaps the tree)."""


def supported() -> bool:
    return ARCH == "x86_64"


def program(spec: FilterSpec) -> list[tuple[int, int, int, int]]:
    """The BPF program as (code, jt, jf, k) instructions."""
    nr = _X86_64
    eperm = _errno(errno.EPERM)
    ins: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        # x32 ABI calls reach the same kernel code under other numbers: refuse them all.
        (_JGE_K, 0, 1, _X32_BIT),
        (_RET_K, 0, 0, eperm),
    ]
    denied = list(_ALWAYS_DENIED)
    if not spec.allow_exec:
        denied += _PROCESS_CREATION
    for name in denied:
        ins += [(_JEQ_K, 0, 1, nr[name]), (_RET_K, 0, 0, eperm)]
    # clone3 passes its flags in a struct; ENOSYS makes glibc fall back to clone.
    ins += [(_JEQ_K, 0, 1, nr["clone3"]), (_RET_K, 0, 0, _errno(errno.ENOSYS))]
    if not spec.allow_exec:
        ins += [
            (_JEQ_K, 0, 4, nr["clone"]),
            (_LD_W_ABS, 0, 0, _OFF_ARG0),
            (_JSET_K, 0, 1, _CLONE_THREAD),
            (_RET_K, 0, 0, _RET_ALLOW),
            (_RET_K, 0, 0, eperm),
        ]
    if not spec.allow_network:
        ins += [
            (_JEQ_K, 0, 4, nr["socket"]),
            (_LD_W_ABS, 0, 0, _OFF_ARG0),
            (_JEQ_K, 0, 1, socket.AF_UNIX),
            (_RET_K, 0, 0, _RET_ALLOW),
            (_RET_K, 0, 0, eperm),
        ]
    ins += [
        (_JEQ_K, 0, 4, nr["ioctl"]),
        (_LD_W_ABS, 0, 0, _OFF_ARG1),
        (_JEQ_K, 0, 1, _TIOCSTI),
        (_RET_K, 0, 0, eperm),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    return ins


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_compiled: dict[FilterSpec, tuple[ctypes.Array[ctypes.c_char], _SockFprog]] = {}


def _compiled_for(spec: FilterSpec) -> _SockFprog:
    """Assemble once per variant; the zygote calls this before forking so children only load."""
    hit = _compiled.get(spec)
    if hit is None:
        code = b"".join(struct.pack("<HBBI", *i) for i in program(spec))
        buf = ctypes.create_string_buffer(code, len(code))
        prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
        hit = _compiled[spec] = (buf, prog)
    return hit[1]


def prepare(spec: FilterSpec) -> None:
    _compiled_for(spec)


def load(spec: FilterSpec) -> None:
    """Install the filter on this thread and its future threads and children; irreversible."""
    if not supported():
        raise OSError(0, f"seccomp filter has no syscall table for {ARCH}")
    prog = _compiled_for(spec)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_SECCOMP, 2, ctypes.byref(prog))  # type: ignore[arg-type]
