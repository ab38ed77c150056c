"""Path policy: nothing outside the roots is ever opened, and every refusal names its rule.

Every table case runs twice: through ``openat2`` and through the ``O_NOFOLLOW`` walk that takes
over on kernels without it (research/sandbox.md §2.8, §3).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamma_tools.errors import PathDenied, ResourceLimitExceeded
from tamma_tools.sandbox import paths as P
from tamma_tools.sandbox._blocklist import Blocklist
from tamma_tools.sandbox._openat2 import openat2_available
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.paths import PathPolicy

MODES = ["openat2", "walk"] if openat2_available() else ["walk"]
BLOCKED = (".env", "**/id_rsa", "secrets/**", "*.pem")
OUTSIDE_TEXT = b"OUTSIDE-SECRET\n"


def build_tree(base: Path) -> Path:
    root = base / "root"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "secrets").mkdir()
    (root / "a.txt").write_bytes(b"inside\n")
    (root / "docs" / "readme.md").write_bytes(b"docs\n")
    (root / ".env").write_bytes(b"KEY=1\n")
    (root / "secrets" / "x").write_bytes(b"x\n")
    (root / "server.pem").write_bytes(b"pem\n")
    (root / "docs" / "sub" / "id_rsa").write_bytes(b"key\n")
    (root / "..\\..\\etc").write_bytes(b"a file with backslashes in its name\n")
    (root / "café.txt").write_bytes(b"nfc\n")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(OUTSIDE_TEXT)
    evil = base / "root_evil"
    evil.mkdir()
    (evil / "x").write_bytes(OUTSIDE_TEXT)
    os.symlink("a.txt", root / "link_in")
    os.symlink("../outside/secret", root / "link_out")
    os.symlink(str(outside / "secret"), root / "link_abs")
    os.symlink("../outside", root / "dir_out")
    os.symlink("docs", root / "dir_in")
    os.symlink(".env", root / "env_link")
    os.symlink("/dev/zero", root / "zero")
    os.symlink("/proc/self/root/etc/passwd", root / "proc_link")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.symlink("missing", root / "dangling")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture(params=MODES)
def policy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PathPolicy]:
    root = build_tree(tmp_path)
    with PathPolicy([root], BLOCKED, resolution=request.param) as pol:
        yield pol


def absolute(policy: PathPolicy, rel: str) -> str:
    return str(policy.roots[0] / rel)


# (path, mode, expected rule or "ok:<resolved relative path>")
CASES: list[tuple[str, str, str]] = [
    ("a.txt", "read", "ok:a.txt"),
    ("./a.txt", "read", "ok:a.txt"),
    ("docs/../a.txt", "read", "ok:a.txt"),
    ("docs//readme.md", "read", "ok:docs/readme.md"),
    ("docs/", "list", "ok:docs"),
    ("docs/readme.md/", "read", "path.not_directory"),
    ("new.txt/", "write", "path.not_directory"),
    (".", "list", "ok:."),
    ("link_in", "read", "ok:a.txt"),
    ("dir_in/readme.md", "read", "ok:docs/readme.md"),
    ("../outside/secret", "read", "path.traversal"),
    ("docs/../../outside/secret", "read", "path.traversal"),
    ("..", "list", "path.traversal"),
    ("/etc/passwd", "read", "path.outside_roots"),
    ("/proc/self/root/etc/passwd", "read", "path.outside_roots"),
    ("/proc/self/fd/0", "read", "path.outside_roots"),
    ("/proc/self/environ", "read", "path.outside_roots"),
    ("EVIL:", "read", "path.outside_roots"),  # "<root>_evil/x": a string prefix, not a parent
    ("ABS:../root_evil/x", "read", "path.traversal"),
    ("ABS:a.txt", "read", "ok:a.txt"),
    ("ABS:docs/../../outside/secret", "read", "path.traversal"),
    ("link_out", "read", "path.symlink_escape"),
    ("link_abs", "read", "path.symlink_escape"),
    ("dir_out/secret", "read", "path.symlink_escape"),
    ("dir_out", "list", "path.symlink_escape"),
    ("zero", "read", "path.symlink_escape"),
    ("proc_link", "read", "path.symlink_escape"),
    ("loop_a", "read", "path.symlink_loop"),
    ("dangling", "read", "path.not_found"),
    ("x\0.txt", "read", "path.nul_byte"),
    ("a.txt\0", "read", "path.nul_byte"),
    ("a\nb", "read", "path.control_character"),
    ("\ud800", "read", "path.encoding"),
    ("fifo", "read", "path.not_regular"),
    ("fifo", "list", "path.not_directory"),
    ("a.txt", "list", "path.not_directory"),
    (".env", "read", "path.blocked"),
    ("./.env", "read", "path.blocked"),
    ("docs/../.env", "read", "path.blocked"),
    ("dir_in/../.env", "read", "path.blocked"),
    (".ENV", "read", "path.blocked"),
    ("env_link", "read", "path.blocked"),
    ("secrets/x", "read", "path.blocked"),
    ("secrets//x", "read", "path.blocked"),
    ("SECRETS/x", "read", "path.blocked"),
    ("server.pem", "read", "path.blocked"),
    ("docs/sub/id_rsa", "read", "path.blocked"),
    ("dir_in/sub/id_rsa", "read", "path.blocked"),
    ("", "read", "path.empty"),
    ("~", "read", "path.not_found"),
    ("~/a.txt", "read", "path.not_found"),
    ("%2e%2e/outside/secret", "read", "path.not_found"),
    ("..%2f..%2fetc", "read", "path.not_found"),
    ("..\\..\\etc", "read", "ok:..\\..\\etc"),
    ("a․txt", "read", "path.not_found"),  # U+2024 ONE DOT LEADER, not "."
    ("．．/outside/secret", "read", "path.not_found"),  # fullwidth dots are names, not ".."
    ("cafe\u0301.txt", "read", "path.not_found"),  # NFD spelling: no normalisation
    ("café.txt", "read", "ok:café.txt"),
    ("a" * 256, "read", "path.too_long"),
    ("d/" * 2100 + "x", "read", "path.too_long"),
    ("new.txt", "write", "ok:new.txt"),
    ("docs/../new.txt", "write", "ok:new.txt"),
    ("nodir/new.txt", "write", "path.not_found"),
    ("docs", "write", "path.not_regular"),
    (".env", "write", "path.blocked"),
    ("link_out", "write", "path.symlink_escape"),
    ("dangling", "write", "path.symlink_escape"),
    ("dir_out/new", "write", "path.symlink_escape"),
    ("../new.txt", "write", "path.traversal"),
]


@pytest.mark.parametrize(("raw", "mode", "expected"), CASES)
def test_path_table(policy: PathPolicy, raw: str, mode: str, expected: str) -> None:
    path = absolute(policy, raw[4:]) if raw.startswith("ABS:") else raw
    if raw == "EVIL:":
        path = str(policy.roots[0]) + "_evil/x"
    if expected.startswith("ok:"):
        resolved = policy.check_path(path, mode)  # type: ignore[arg-type]
        assert str(resolved.relative) == expected[3:]
        assert resolved.root == policy.roots[0]
    else:
        with pytest.raises(PathDenied) as info:
            policy.check_path(path, mode)  # type: ignore[arg-type]
        assert info.value.rule == expected, info.value.message
        assert info.value.code == "path_denied"


def test_outside_message_lists_the_roots(policy: PathPolicy) -> None:
    with pytest.raises(PathDenied) as info:
        policy.check_path("/etc/passwd", "read")
    assert info.value.message == P.MSG_OUTSIDE.format(
        path="/etc/passwd", roots=str(policy.roots[0])
    )
    assert "allowed roots are: " + str(policy.roots[0]) in info.value.message


def test_force_fallback_uses_the_walk(tmp_path: Path) -> None:
    with PathPolicy([build_tree(tmp_path)], force_fallback=True) as pol:
        assert not pol.uses_openat2
        assert str(pol.check_path("link_in", "read").relative) == "a.txt"


def test_magic_links_are_refused(tmp_path: Path) -> None:
    for mode in MODES:
        with PathPolicy(["/proc/self"], resolution=mode) as pol:  # type: ignore[arg-type]
            for path in ("root/etc/passwd", "fd/0", "cwd"):
                with pytest.raises(PathDenied) as info:
                    pol.check_path(path, "read")
                assert info.value.rule == "path.magic_link", (mode, path)


def test_fifo_open_does_not_hang(policy: PathPolicy) -> None:
    started = time.monotonic()
    with pytest.raises(PathDenied) as info:
        policy.open_file("fifo")
    assert info.value.rule == "path.not_regular"
    assert time.monotonic() - started < 2


def test_device_node_inside_root_is_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    for mode in MODES:
        with PathPolicy([root], resolution=mode) as pol:  # type: ignore[arg-type]
            with pytest.raises(PathDenied) as info:
                pol.open_file("null")
            assert info.value.rule == "path.not_regular"


def test_open_file_reads_through_in_root_link(policy: PathPolicy) -> None:
    fd = policy.open_file("link_in")
    try:
        assert os.read(fd, 100) == b"inside\n"
    finally:
        os.close(fd)


def test_disabled_policy_refuses_everything(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    with PathPolicy([root], enabled=False) as pol:
        with pytest.raises(PathDenied) as info:
            pol.check_path("a.txt", "read")
        assert info.value.rule == "path.disabled"
    with PathPolicy([tmp_path / "absent"], enabled=False) as off:  # nothing opened
        with pytest.raises(PathDenied) as info:
            off.check_path("a.txt", "read")
        assert info.value.rule == "path.disabled"
    with PathPolicy([]) as none:
        with pytest.raises(PathDenied) as info:
            none.check_path("a.txt", "read")
        assert info.value.rule == "path.no_roots"


def test_from_config(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    config = SandboxConfig(allowed_paths=(root,), blocked_paths=(".env",))
    with PathPolicy.from_config(config) as pol:
        assert pol.roots == (root,)
        with pytest.raises(PathDenied):
            pol.check_path(".env", "read")
        assert pol.check_path("a.txt", "read").kind == "file"


def test_several_roots_absolute_and_relative(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_bytes(b"o")
    with PathPolicy([root, other]) as pol:
        hit = pol.check_path(str(other / "o.txt"), "read")
        assert hit.root == other
        with pytest.raises(PathDenied) as info:
            pol.check_path("o.txt", "read")  # relative paths belong to the first root
        assert info.value.rule == "path.not_found"
        with pytest.raises(PathDenied) as info:
            pol.check_path("/etc/passwd", "read")
        assert info.value.message.endswith(f"allowed roots are: {root}, {other}")


# --- listing, writing ---------------------------------------------------------------------


def test_list_dir_hides_blocked_and_does_not_follow_links(policy: PathPolicy) -> None:
    names = {e.name: e for e in policy.list_dir(".")}
    assert ".env" not in names and "server.pem" not in names
    assert names["dir_out"].kind == "symlink"
    assert names["a.txt"].kind == "file" and names["a.txt"].size == 7
    assert [e.name for e in policy.list_dir("secrets")] == []
    assert len(policy.list_dir(".", max_entries=3)) == 3


def test_write_atomic_creates_and_replaces(policy: PathPolicy) -> None:
    root = policy.roots[0]
    policy.write_atomic("out/deep/new.txt", b"one", max_bytes=100, make_parents=True)
    assert (root / "out/deep/new.txt").read_bytes() == b"one"
    policy.write_atomic("out/deep/new.txt", b"-two", max_bytes=100, append=True)
    assert (root / "out/deep/new.txt").read_bytes() == b"one-two"
    policy.write_atomic("link_in", b"through link", max_bytes=100)
    assert (root / "a.txt").read_bytes() == b"through link"
    assert os.path.islink(root / "link_in")
    assert not [n for n in os.listdir(root / "out/deep") if n.endswith(".tmp")]


def test_write_refuses_oversize_before_touching_anything(policy: PathPolicy) -> None:
    root = policy.roots[0]
    with pytest.raises(ResourceLimitExceeded):
        policy.write_atomic("a.txt", b"x" * 11, max_bytes=10)
    with pytest.raises(ResourceLimitExceeded):
        policy.write_atomic("a.txt", b"x" * 5, max_bytes=10, append=True)  # 7 + 5 > 10
    assert (root / "a.txt").read_bytes() == b"inside\n"
    assert not [n for n in os.listdir(root) if n.startswith(".tamma-")]


def test_write_refuses_hardlinked_target(policy: PathPolicy) -> None:
    root = policy.roots[0]
    os.link(root.parent / "outside" / "secret", root / "hard")
    with pytest.raises(PathDenied) as info:
        policy.write_atomic("hard", b"owned", max_bytes=100)
    assert info.value.rule == "path.hardlink"
    assert (root.parent / "outside" / "secret").read_bytes() == OUTSIDE_TEXT


def test_make_parents_never_leaves_root(policy: PathPolicy) -> None:
    with pytest.raises(PathDenied) as info:
        policy.write_atomic("dir_out/newdir/f", b"x", max_bytes=10, make_parents=True)
    assert info.value.rule == "path.symlink_escape"
    assert not (policy.roots[0].parent / "outside" / "newdir").exists()
    with pytest.raises(PathDenied) as info:
        policy.mkdir("secrets/inner/deeper", parents=True)
    assert info.value.rule == "path.blocked"


def test_failed_write_leaves_old_file_and_no_temp(policy: PathPolicy, monkeypatch) -> None:
    root = policy.roots[0]

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(Exception) as info:
        policy.write_atomic("a.txt", b"new", max_bytes=10)
    assert getattr(info.value, "code", None) == "io_error"
    assert (root / "a.txt").read_bytes() == b"inside\n"
    assert not [n for n in os.listdir(root) if n.startswith(".tamma-")]


def test_mkdir(policy: PathPolicy) -> None:
    made = policy.mkdir("m1")
    assert made.kind == "directory" and (policy.roots[0] / "m1").is_dir()
    policy.mkdir("m2/a/b", parents=True)
    assert (policy.roots[0] / "m2/a/b").is_dir()
    with pytest.raises(PathDenied) as info:
        policy.mkdir("a.txt")
    assert info.value.rule in ("path.not_directory", "path.not_regular")


# --- races and properties -----------------------------------------------------------------


def _race(policy: PathPolicy, root: Path, seconds: float, swap_dir: bool) -> tuple[int, int]:
    """Flip a link between inside and outside while opening through it; count escapes."""
    outside = root.parent / "outside"
    (root / "race_real").mkdir(exist_ok=True)
    (root / "race_real" / "secret").write_bytes(b"inside\n")
    stop = threading.Event()

    def flipper() -> None:
        tmp = root / "race_tmp"
        targets = [str(outside), "race_real"] if swap_dir else [str(outside / "secret"), "a.txt"]
        i = 0
        while not stop.is_set():
            os.symlink(targets[i % 2], tmp)
            os.replace(tmp, root / "race")
            i += 1

    thread = threading.Thread(target=flipper)
    thread.start()
    escapes = opened = 0
    path = "race/secret" if swap_dir else "race"
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                fd = policy.open_file(path)
            except PathDenied:
                continue
            try:
                opened += 1
                if os.read(fd, 100) == OUTSIDE_TEXT:
                    escapes += 1
            finally:
                os.close(fd)
    finally:
        stop.set()
        thread.join()
    return escapes, opened


def test_symlink_swap_race_never_escapes(policy: PathPolicy) -> None:
    escapes, opened = _race(policy, policy.roots[0], 2.0, swap_dir=False)
    assert escapes == 0
    assert opened > 0  # the race really ran both ways
    escapes, opened = _race(policy, policy.roots[0], 1.0, swap_dir=True)
    assert escapes == 0


_PIECES = st.sampled_from(
    [
        "a.txt", "docs", "..", ".", "", "link_out", "dir_out", "dir_in", "link_in", "secret",
        "outside", "root", "~", "%2e%2e", "\\", ".env", "proc_link", "loop_a", "fifo", "/",
        "é", "\u202e", "sub", "zero",
    ]
)  # fmt: skip
_PATHS = st.one_of(
    st.lists(_PIECES, max_size=8).map("/".join),
    st.lists(_PIECES, max_size=8).map(lambda p: "/" + "/".join(p)),
    st.text(max_size=60),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_PATHS, mode=st.sampled_from(["read", "write", "list"]))
def test_any_path_resolves_inside_root_or_is_denied(
    policy: PathPolicy, path: str, mode: str
) -> None:
    root_real = os.path.realpath(policy.roots[0])
    try:
        resolved = policy.check_path(path, mode)  # type: ignore[arg-type]
    except PathDenied as exc:
        assert exc.rule.startswith("path.")
        return
    real = os.path.realpath(resolved.absolute)
    assert real == root_real or real.startswith(root_real + os.sep)
    assert ".." not in resolved.relative.parts


# --- block-list globs ----------------------------------------------------------------------

GLOB_CASES = [
    (".env", ".env", True),
    (".env", "a/b/.env", True),
    (".env", ".env/inner", True),  # a blocked directory blocks its contents
    (".env", ".envrc", False),
    ("**/.env", "deep/er/.env", True),
    ("**/.env", ".env", True),
    ("secrets/**", "secrets/x", True),
    ("secrets/**", "other/secrets/x", False),  # anchored: has a "/"
    ("/secrets", "secrets/a/b", True),
    ("*.pem", "keys/server.PEM", True),
    ("*.pem", "pem", False),
    ("id_[rd]sa", "home/id_rsa", True),
    ("id_[!rd]sa", "home/id_rsa", False),
    ("?.key", "a.key", True),
    ("?.key", "ab.key", False),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
]


@pytest.mark.parametrize(("pattern", "path", "blocked"), GLOB_CASES)
def test_block_list_glob_semantics(pattern: str, path: str, blocked: bool) -> None:
    assert (Blocklist([pattern]).match(path.split("/")) is not None) is blocked


_NAMES = st.sampled_from([".env", ".ENV", "a", "b.txt", "secrets", "x.pem", ".envx", "é"])


@given(parts=st.lists(_NAMES, min_size=1, max_size=6))
def test_unanchored_pattern_blocks_a_name_at_any_depth(parts: list[str]) -> None:
    hit = Blocklist([".env"]).match(parts) is not None
    assert hit == any(p.casefold() == ".env" for p in parts)
    anchored = Blocklist(["secrets/**"]).match(parts) is not None
    assert anchored == (parts[0] == "secrets" and len(parts) > 1)
