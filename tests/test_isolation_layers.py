"""The isolation building blocks on their own: frames, the seccomp program, Landlock rules, the
file quota, the capability probe and the mapping from child outcomes to typed errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tamma_tools.errors import (
    OutputNotSerializable,
    ResourceLimitExceeded,
    SandboxViolation,
    ToolCrashed,
)
from tamma_tools.sandbox.config import SandboxConfig, effective_limits
from tamma_tools.sandbox.isolation import outcome, protocol, seccomp
from tamma_tools.sandbox.isolation.capabilities import probe
from tamma_tools.types import ToolMetadata

SRC = str(Path(__file__).resolve().parents[1] / "src")
LIMITS = effective_limits(SandboxConfig(max_cpu_time_s=2.0), ToolMetadata(), None)


def run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (restrictions are irreversible, so never in pytest)."""
    prelude = f"import sys; sys.path.insert(0, {SRC!r})\n"
    return subprocess.run([sys.executable, "-I", "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_frames_round_trip_through_a_pipe(value: object) -> None:
    r, w = os.pipe()
    try:
        protocol.write_all(w, protocol.frame(protocol.encode(value)))
        assert protocol.decode(protocol.read_frame(r, 1 << 20)) == value
    finally:
        os.close(r)
        os.close(w)


def test_oversized_and_truncated_frames_are_refused() -> None:
    r, w = os.pipe()
    try:
        os.write(w, protocol.HEADER.pack(10_000) + b"x" * 10)
        with pytest.raises(protocol.ProtocolError, match="exceeds"):
            protocol.read_frame(r, 100)
    finally:
        os.close(r)
        os.close(w)
    r, w = os.pipe()
    os.write(w, protocol.HEADER.pack(50) + b"short")
    os.close(w)
    try:
        with pytest.raises(protocol.ProtocolError, match="closed"):
            protocol.read_frame(r, 100)
    finally:
        os.close(r)


@pytest.mark.parametrize("spec", [seccomp.FilterSpec(), seccomp.FilterSpec(True, True)])
def test_seccomp_program_is_well_formed(spec: seccomp.FilterSpec) -> None:
    program = seccomp.program(spec)
    assert len(program) < 4096
    for i, (code, jt, jf, _) in enumerate(program):
        if code & 0x07 == 0x05:  # BPF_JMP: both targets inside the program
            assert i + 1 + max(jt, jf) < len(program)
    assert program[-1][0] == 0x06  # ends in a return


def test_seccomp_blocks_processes_and_inet_sockets_but_not_threads() -> None:
    proc = run_isolated("""
        import os, socket, threading
        from tamma_tools.sandbox.isolation import seccomp
        seccomp.load(seccomp.FilterSpec())
        out = []
        for name, fn in (("fork", os.fork), ("inet", lambda: socket.socket()),
                         ("exec", lambda: os.execv("/bin/true", ["true"]))):
            try:
                fn(); out.append(name + ":allowed")
            except PermissionError:
                out.append(name + ":EPERM")
        t = threading.Thread(target=lambda: out.append("thread:ok")); t.start(); t.join()
        a, b = socket.socketpair(); out.append("unix:ok")
        print(" ".join(out))
    """)
    assert proc.stdout.split() == [
        "fork:EPERM",
        "inet:EPERM",
        "exec:EPERM",
        "thread:ok",
        "unix:ok",
    ], proc.stderr


def test_landlock_confines_reads_and_writes_to_the_rules(tmp_path: Path) -> None:
    if not probe().landlock:
        pytest.skip("Landlock is not available on this kernel")
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "data.txt").write_text("readable")
    (rw / "link").symlink_to("/etc/hostname")
    proc = run_isolated(f"""
        import os, sys
        from tamma_tools.sandbox.isolation import landlock
        rules = [(p, "ro") for p in (sys.prefix, sys.base_prefix, "/usr", "/lib", "/lib64")]
        rules += [({str(ro)!r}, "ro"), ({str(rw)!r}, "rw")]
        landlock.restrict_self(landlock.create_ruleset(rules, tcp_connect_ports=[]))
        def attempt(fn):
            try:
                fn(); return "ok"
            except PermissionError:
                return "EACCES"
        print(attempt(lambda: open({str(ro / "data.txt")!r}).read()),
              attempt(lambda: open({str(ro / "new.txt")!r}, "w")),
              attempt(lambda: open({str(rw / "new.txt")!r}, "w").write("x")),
              attempt(lambda: open("/etc/hostname").read()),
              attempt(lambda: open({str(rw / "link")!r}).read()))
    """)
    assert proc.stdout.split() == ["ok", "EACCES", "ok", "EACCES", "EACCES"], proc.stderr
    assert (rw / "new.txt").read_text() == "x"


def test_file_tracker_counts_only_new_entries_and_removes_them(tmp_path: Path) -> None:
    (tmp_path / "existing.txt").write_text("keep")
    proc = run_isolated(f"""
        import os
        os.chdir({str(tmp_path)!r})
        from tamma_tools.sandbox.isolation.runner import FileTracker
        t = FileTracker(3); t.install()
        open("existing.txt", "a").close(); open("existing.txt").read()
        open("a", "w").close(); os.mkdir("d"); open("d/b", "w").close()
        try:
            open("c", "w")
        except OSError as exc:
            print("refused", t.limit_hit, t.remove_created())
    """)
    assert proc.stdout.split() == ["refused", "True", "3"], proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["existing.txt"]


def test_probe_reports_each_layer() -> None:
    caps = probe()
    assert set(caps.available()) <= {"rlimits", "netns", "pidns", "landlock", "seccomp", "pidfd"}
    assert caps.rlimits and caps.pidfd
    for layer in ("netns", "landlock", "seccomp"):
        assert getattr(caps, layer) or caps.reason(layer) != ""
    assert caps.to_dict()["kernel"] == os.uname().release
    assert caps.missing(("rlimits", "landlock")) == (() if caps.landlock else ("landlock",))


def _er(kind: str, **extra: object) -> bytes:
    return b"ER" + orjson.dumps({"kind": kind, "type": "X", "message": "m", **extra})


@pytest.mark.parametrize(
    ("payload", "error", "code"),
    [
        (_er("resource", limit="memory"), ResourceLimitExceeded, "resource_limit"),
        (_er("denied"), SandboxViolation, "sandbox_violation"),
        (_er("not_serializable"), OutputNotSerializable, "output_not_serializable"),
        (_er("error"), ToolCrashed, "tool_error"),
        (b"ER{not json", ToolCrashed, "tool_error"),
    ],
)
def test_child_failures_map_to_typed_errors(
    payload: bytes, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as info:
        outcome.interpret(tool="t", limits=LIMITS, killed=None, result=payload)
    assert info.value.code == code  # type: ignore[attr-defined]


def test_exit_statuses_map_to_typed_errors() -> None:
    killed_by_cpu = signal.SIGKILL  # the hard RLIMIT_CPU, one second after SIGXCPU
    with pytest.raises(ResourceLimitExceeded) as info:
        outcome.interpret(
            tool="t", limits=LIMITS, killed=None, result=None, status=killed_by_cpu, cpu_s=3.0
        )
    assert info.value.details["limit"] == "cpu"
    with pytest.raises(ToolCrashed, match="SIGSEGV"):
        outcome.interpret(tool="t", limits=LIMITS, killed=None, result=None, status=signal.SIGSEGV)
    with pytest.raises(ToolCrashed, match="status 3"):
        outcome.interpret(tool="t", limits=LIMITS, killed=None, result=None, status=3 << 8)
    assert outcome.interpret(tool="t", limits=LIMITS, killed=None, result=b'OK{"a":1}') == {"a": 1}
