"""Landlock rulesets through raw syscalls (444-446 on every architecture).

Landlock is unprivileged, stackable and checks the *resolved* object, so a symlink inside a root
that points at ``/etc/passwd`` is refused (research/sandbox.md §2.6). It is best-effort by design:
we ask the kernel for its ABI and only handle the rights it knows; the ruleset attribute size
must match the ABI (8, 16 or 24 bytes).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from typing import Literal

from tamma_tools.sandbox.isolation._libc import PR_SET_NO_NEW_PRIVS, check, prctl, syscall

__all__ = ["AccessMode", "abi_version", "create_ruleset", "restrict_self"]

AccessMode = Literal["ro", "rw"]

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | _TRUNCATE | _IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1, 2
READ_ACCESS = EXECUTE | READ_FILE | READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def abi_version() -> int:
    """The kernel's Landlock ABI, or 0 when Landlock is missing or disabled."""
    result = syscall(_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(result, 0)


def _all_fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


def create_ruleset(
    paths: Iterable[tuple[str, AccessMode]],
    *,
    tcp_connect_ports: Iterable[int] | None,
    abi: int | None = None,
) -> int:
    """A ruleset fd allowing ``paths`` (read-only or read-write) and nothing else on disk.

    ``tcp_connect_ports``: ``None`` leaves TCP unrestricted by Landlock (the network namespace or
    seccomp decides); an iterable allows connecting to exactly those ports (ABI >= 4).
    Paths that do not exist are skipped. Signals and abstract Unix sockets are scoped to the
    sandbox (ABI >= 6), so a tool cannot signal the zygote or its siblings.
    """
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise OSError(0, "Landlock is not available on this kernel")
    fs_rights = _all_fs_rights(abi)
    handle_net = tcp_connect_ports is not None and abi >= 4
    attr = _RulesetAttr(
        fs_rights,
        (_NET_BIND_TCP | _NET_CONNECT_TCP) if handle_net else 0,
        (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = check(syscall(_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
               "landlock_create_ruleset")  # fmt: skip
    try:
        for path, mode in paths:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                access = fs_rights if mode == "rw" else READ_ACCESS
                if not os.path.isdir(f"/proc/self/fd/{pfd}"):
                    access &= _FILE_ONLY
                rule = _PathBeneath(access, pfd)
                check(syscall(_ADD_RULE, fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0),
                      f"landlock_add_rule({path})")  # fmt: skip
            finally:
                os.close(pfd)
        if handle_net:
            for port in sorted(set(tcp_connect_ports or ())):
                net = _NetPort(_NET_CONNECT_TCP, port)
                check(syscall(_ADD_RULE, fd, _RULE_NET_PORT, ctypes.byref(net), 0),
                      f"landlock_add_rule(port {port})")  # fmt: skip
    except BaseException:
        os.close(fd)
        raise
    return fd


def restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on this process and every process it creates; irreversible."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    check(syscall(_RESTRICT, ruleset_fd, 0), "landlock_restrict_self")
