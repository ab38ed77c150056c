"""``read_file``, ``write_file`` and ``list_files`` through the manager, as the model sees them."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.builtin import register_builtin_tools
from tamma_tools.builtin.files import DEFAULT_LIST_DEPTH, DEFAULT_LIST_ENTRIES, looks_binary
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.types import CallerContext

CTX = CallerContext(permissions={"file:read", "file:write"})
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello\n")
    (root / "docs" / "sub" / "b.py").write_text("print('b')\n")
    (root / "docs" / "utf8.txt").write_text("naïve café ✓\n")
    (root / "image.png").write_bytes(PNG)
    (root / ".env").write_text("SECRET=1\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "key.pem").write_text("-----BEGIN-----\n")
    (root / "link_out").symlink_to("/etc")
    (root / "link_env").symlink_to(".env")
    (root / "link_a").symlink_to("docs/a.txt")
    os.mkfifo(root / "pipe")
    (tmp_path / "outside.txt").write_text("outside\n")
    return root


@pytest.fixture
def mgr(ws: Path) -> Iterator[FunctionCallingManager]:
    cfg = SandboxConfig(
        allowed_paths=(ws,),
        blocked_paths=(".env", "secrets/**", "*.pem"),
        max_file_size_bytes=4096,
        max_output_bytes=256 * 1024,
    )
    manager = FunctionCallingManager(sandbox_config=cfg)
    assert register_builtin_tools(
        manager, config=cfg, include=["read_file", "write_file", "list_files"]
    ) == [
        "read_file",
        "write_file",
        "list_files",
    ]
    yield manager
    manager.close()


async def call(
    mgr: FunctionCallingManager, name: str, ctx: CallerContext = CTX, **args: Any
) -> tuple[bool, str]:
    defaults = {
        "read_file": {"max_bytes": None, "encoding": None},
        "write_file": {"append": None},
        "list_files": {"path": None, "pattern": None, "recursive": None},
    }[name]
    payload = {**defaults, **args}
    msg = {"id": "c", "type": "function",
           "function": {"name": name, "arguments": json.dumps(payload)}}  # fmt: skip
    result = await mgr.execute_function_call(msg, ctx)
    content = result.to_message()["content"]
    assert isinstance(content, str)
    return result.success, content


async def ok(mgr: FunctionCallingManager, name: str, **args: Any) -> dict[str, Any]:
    success, content = await call(mgr, name, **args)
    assert success, content
    out = json.loads(content)
    assert isinstance(out, dict)
    return out


async def refused(mgr: FunctionCallingManager, name: str, **args: Any) -> str:
    success, content = await call(mgr, name, **args)
    assert not success, content
    return content


# --- read_file ------------------------------------------------------------------------------


async def test_read_text_file(mgr: FunctionCallingManager) -> None:
    out = await ok(mgr, "read_file", path="docs/a.txt")
    assert out == {"path": "docs/a.txt", "size_bytes": 6, "bytes_read": 6, "encoding": "text",
                   "content": "hello\n", "truncated": False}  # fmt: skip


async def test_read_utf8_and_in_root_symlink(mgr: FunctionCallingManager) -> None:
    assert (await ok(mgr, "read_file", path="docs/utf8.txt"))["content"] == "naïve café ✓\n"
    assert (await ok(mgr, "read_file", path="link_a"))["content"] == "hello\n"


async def test_read_absolute_path_inside_the_root(mgr: FunctionCallingManager, ws: Path) -> None:
    out = await ok(mgr, "read_file", path=str(ws / "docs" / "a.txt"))
    assert out["content"] == "hello\n"


async def test_read_cap_cuts_with_a_marker_and_never_splits_a_character(
    mgr: FunctionCallingManager, ws: Path
) -> None:
    (ws / "long.txt").write_text("é" * 100)  # 200 bytes
    out = await ok(mgr, "read_file", path="long.txt", max_bytes=51)
    assert out["truncated"] is True
    assert out["size_bytes"] == 200
    assert out["bytes_read"] == 51
    text, marker = out["content"].split("\n[truncated: ", 1)
    assert text == "é" * 25  # the half character at byte 51 is dropped, not shown as U+FFFD
    assert marker.startswith("showing the first 51 of 200 bytes")


async def test_max_bytes_above_the_limit_is_capped_at_the_limit(
    mgr: FunctionCallingManager, ws: Path
) -> None:
    (ws / "huge.txt").write_bytes(b"a" * 300_000)
    out = await ok(mgr, "read_file", path="huge.txt", max_bytes=10**9)
    assert out["bytes_read"] == 192 * 1024  # three quarters of max_output_bytes
    assert out["truncated"] is True
    assert "at most 196608" in out["content"]


async def test_max_bytes_below_one_is_an_argument_error(mgr: FunctionCallingManager) -> None:
    content = await refused(mgr, "read_file", path="docs/a.txt", max_bytes=0)
    assert content == "Error [invalid_arguments]: max_bytes must be at least 1, got 0"


async def test_binary_file_is_a_note_or_base64(mgr: FunctionCallingManager) -> None:
    out = await ok(mgr, "read_file", path="image.png")
    assert out["encoding"] == "omitted"
    assert out["content"].startswith(f"[binary file: {len(PNG)} bytes, type image/png")
    out = await ok(mgr, "read_file", path="image.png", encoding="base64")
    assert base64.b64decode(out["content"]) == PNG


async def test_a_few_invalid_bytes_are_replaced_not_garbled(
    mgr: FunctionCallingManager, ws: Path
) -> None:
    (ws / "latin.txt").write_bytes(b"mostly ascii text with one bad byte \xff here\n")
    out = await ok(mgr, "read_file", path="latin.txt")
    assert out["encoding"] == "text"
    assert out["content"] == "mostly ascii text with one bad byte \ufffd here\n"


def test_binary_detection() -> None:
    assert looks_binary(b"abc\0def")
    assert looks_binary(bytes(range(128, 256)) * 4)
    assert not looks_binary("ü".encode() * 1000)
    assert not looks_binary(b"")


async def test_fifo_is_refused_without_hanging(mgr: FunctionCallingManager) -> None:
    started = time.monotonic()
    content = await refused(mgr, "read_file", path="pipe")
    assert time.monotonic() - started < 2
    assert content.startswith("Error [path_denied]: ")
    assert "fifo" in content or "FIFO" in content or "pipe" in content
    assert "not a regular file" in content


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        (".env", "blocked"),
        ("docs/../.env", "blocked"),
        ("./.env", "blocked"),
        ("link_env", "blocked"),
        ("secrets/key.pem", "blocked"),
        ("../outside.txt", "allowed roots"),
        ("/etc/passwd", "outside the allowed roots; allowed roots are: "),
        ("link_out/passwd", "allowed roots"),
        ("missing.txt", "does not exist"),
        ("docs", "directory"),
        ("", "empty"),
        ("docs/a.txt\x00.png", "NUL"),
    ],
)
async def test_read_refusals_are_precise(
    mgr: FunctionCallingManager, path: str, phrase: str
) -> None:
    content = await refused(mgr, "read_file", path=path)
    assert content.startswith("Error [path_denied]: "), content
    assert phrase in content, content


async def test_outside_message_lists_the_roots(mgr: FunctionCallingManager, ws: Path) -> None:
    content = await refused(mgr, "read_file", path="/etc/passwd")
    assert str(ws) in content


# --- write_file -----------------------------------------------------------------------------


def _no_temp_files(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if re.search(r"\.tmp$", p.name)]
    assert leftovers == []


async def test_write_creates_parents_and_replaces(mgr: FunctionCallingManager, ws: Path) -> None:
    out = await ok(mgr, "write_file", path="new/deep/file.txt", content="one")
    assert out == {"path": "new/deep/file.txt", "bytes_written": 3, "appended": False}
    assert (ws / "new/deep/file.txt").read_text() == "one"
    await ok(mgr, "write_file", path="new/deep/file.txt", content="two")
    assert (ws / "new/deep/file.txt").read_text() == "two"
    _no_temp_files(ws)


async def test_append_extends_the_file(mgr: FunctionCallingManager, ws: Path) -> None:
    out = await ok(mgr, "write_file", path="docs/a.txt", content="more\n", append=True)
    assert out["appended"] is True
    assert (ws / "docs/a.txt").read_text() == "hello\nmore\n"


async def test_write_over_the_size_cap_changes_nothing(
    mgr: FunctionCallingManager, ws: Path
) -> None:
    content = await refused(mgr, "write_file", path="docs/a.txt", content="x" * 5000)
    assert "5000 bytes; the limit is 4096 bytes" in content
    (ws / "docs/a.txt").write_text("y" * 4000)
    content = await refused(mgr, "write_file", path="docs/a.txt", content="z" * 200, append=True)
    assert "the limit is 4096 bytes" in content
    assert (ws / "docs/a.txt").read_text() == "y" * 4000
    _no_temp_files(ws)


async def test_hard_linked_target_is_refused(mgr: FunctionCallingManager, ws: Path) -> None:
    os.link(ws / "docs/a.txt", ws / "hard.txt")
    content = await refused(mgr, "write_file", path="hard.txt", content="x")
    assert content.startswith("Error [path_denied]: ")
    assert "hard link" in content
    assert (ws / "docs/a.txt").read_text() == "hello\n"


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        (".env", "blocked"),
        ("docs/../.env", "blocked"),
        ("secrets/new.txt", "blocked"),
        ("x.pem", "blocked"),
        ("../outside.txt", "allowed roots"),
        ("{outside}/escape.txt", "outside the allowed roots"),
        ("link_out/escape.txt", "allowed roots"),
        ("docs", "directory"),
        ("pipe", "not a regular file"),
    ],
)
async def test_write_refusals_leave_everything_unchanged(
    mgr: FunctionCallingManager, ws: Path, path: str, phrase: str
) -> None:
    before = (ws / ".env").read_text(), (ws.parent / "outside.txt").read_text()
    path = path.format(outside=ws.parent)
    content = await refused(mgr, "write_file", path=path, content="pwned")
    assert content.startswith("Error [path_denied]: "), content
    assert phrase in content, content
    assert ((ws / ".env").read_text(), (ws.parent / "outside.txt").read_text()) == before
    assert not (ws.parent / "escape.txt").exists()
    assert not (ws / "secrets/new.txt").exists()
    _no_temp_files(ws)


async def test_write_needs_the_write_permission(mgr: FunctionCallingManager, ws: Path) -> None:
    success, content = await call(
        mgr, "write_file", CallerContext(permissions={"file:read"}), path="n.txt", content="x"
    )
    assert not success
    assert content.startswith("Error [permission_denied]")
    assert not (ws / "n.txt").exists()


# --- list_files -----------------------------------------------------------------------------


async def test_list_top_level(mgr: FunctionCallingManager) -> None:
    out = await ok(mgr, "list_files")
    names = [e["name"] for e in out["entries"]]
    assert names == sorted(names)
    assert {"docs", "image.png", "link_out", "link_env", "link_a", "pipe"} <= set(names)
    assert ".env" not in names  # blocked entries are not revealed
    kinds = {e["name"]: e["type"] for e in out["entries"]}
    assert kinds["docs"] == "dir"
    assert kinds["image.png"] == "file"
    assert kinds["link_out"] == "symlink"
    assert kinds["pipe"] == "other"
    png = next(e for e in out["entries"] if e["name"] == "image.png")
    assert png["size"] == len(PNG)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", png["modified"])
    assert out["truncated"] is False


async def test_list_recursive_with_pattern_never_follows_links(
    mgr: FunctionCallingManager,
) -> None:
    out = await ok(mgr, "list_files", path=".", recursive=True, pattern="*.py")
    assert [e["path"] for e in out["entries"]] == ["docs/sub/b.py"]
    everything = await ok(mgr, "list_files", recursive=True)
    paths = {e["path"] for e in everything["entries"]}
    assert "docs/sub/b.py" in paths
    assert not any(p.startswith("link_out/") for p in paths)  # /etc was not listed


async def test_blocked_directory_contents_are_hidden(mgr: FunctionCallingManager) -> None:
    success, content = await call(mgr, "list_files", path="secrets")
    if success:  # the directory itself may be listed, its contents never
        assert json.loads(content)["entries"] == []
    else:
        assert content.startswith("Error [path_denied]: ") and "blocked" in content
    everything = await ok(mgr, "list_files", recursive=True)
    assert not any(e["name"] in (".env", "key.pem") for e in everything["entries"])


async def test_list_entry_cap_says_so(mgr: FunctionCallingManager, ws: Path) -> None:
    many = ws / "many"
    many.mkdir()
    for i in range(DEFAULT_LIST_ENTRIES + 5):
        (many / f"f{i:05}").touch()
    out = await ok(mgr, "list_files", path="many")
    assert out["count"] == DEFAULT_LIST_ENTRIES
    assert out["truncated"] is True
    assert any("stopped at 1000 entries" in n for n in out["notes"])


async def test_list_depth_cap_says_so(mgr: FunctionCallingManager, ws: Path) -> None:
    deep = ws / "deep"
    for i in range(DEFAULT_LIST_DEPTH + 3):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    out = await ok(mgr, "list_files", path="deep", recursive=True)
    assert out["truncated"] is True
    assert any(f"deeper than {DEFAULT_LIST_DEPTH} levels" in n for n in out["notes"])
    assert max(e["path"].count("/") for e in out["entries"]) == DEFAULT_LIST_DEPTH - 1


@pytest.mark.parametrize(
    ("path", "phrase"),
    [
        ("docs/a.txt", "not a directory"),
        ("link_out", "allowed roots"),
        ("..", "allowed roots"),
        ("nope", "does not exist"),
    ],
)
async def test_list_refusals(mgr: FunctionCallingManager, path: str, phrase: str) -> None:
    content = await refused(mgr, "list_files", path=path)
    assert content.startswith("Error [path_denied]: "), content
    assert phrase in content, content


async def test_file_access_disabled_refuses_every_file_tool(ws: Path) -> None:
    cfg = SandboxConfig(allowed_paths=(ws,), enable_file_system_access=False)
    manager = FunctionCallingManager(sandbox_config=cfg)
    register_builtin_tools(manager, config=cfg)
    for name, args in [("read_file", {"path": "docs/a.txt"}), ("list_files", {}),
                       ("write_file", {"path": "x.txt", "content": "x"})]:  # fmt: skip
        content = await refused(manager, name, **args)
        assert content.startswith("Error [path_denied]: file access is disabled"), content
    assert not (ws / "x.txt").exists()
    manager.close()


def test_definitions_are_truthful() -> None:
    from tamma_tools.builtin.files import (
        LIST_FILES_DEFINITION,
        READ_FILE_DEFINITION,
        WRITE_FILE_DEFINITION,
    )

    assert READ_FILE_DEFINITION.metadata.read_only is True
    assert LIST_FILES_DEFINITION.metadata.read_only is True
    assert WRITE_FILE_DEFINITION.metadata.destructive is True
    assert WRITE_FILE_DEFINITION.metadata.read_only is False
    assert list(WRITE_FILE_DEFINITION.metadata.permissions) == ["file:write"]
    for d in (READ_FILE_DEFINITION, WRITE_FILE_DEFINITION, LIST_FILES_DEFINITION):
        assert d.metadata.isolation == "in_process"
        assert d.function.strict is True
