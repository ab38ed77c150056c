"""``run_command``: off by default, argv only, allowlisted binaries, and the whole process tree
dies with the call (PID namespace; ``setsid`` grandchildren included)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.builtin.commands import RUN_COMMAND_DEFINITION, run_command_tool
from tamma_tools.errors import CommandDenied, PathDenied, ToolTimeout
from tamma_tools.sandbox.commands import COMMANDS_DISABLED_TEXT, resolve_command
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.sandbox import ExecutionSandbox
from tamma_tools.types import CallerContext, ResourceLimits
from tests.support.processes import processes_with, wait_until

ALLOWED = ("echo", "sh", "pwd", "cat", "ls", "/bin/true")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cmdroot")
    (path / "hello.txt").write_text("hi\n")
    (path / "sub" / "deeper").mkdir(parents=True)
    (path / "sub" / "inner.txt").write_text("inner\n")
    (path / "escape").symlink_to("/etc")
    return path


@pytest.fixture(scope="module")
def sandbox(root: Path) -> Iterator[ExecutionSandbox]:
    sb = ExecutionSandbox(SandboxConfig(enable_system_commands=True, allowed_commands=ALLOWED,
                                        allowed_paths=(root,), max_execution_time_s=5.0))  # fmt: skip
    yield sb
    sb.close()


async def test_commands_are_off_by_default() -> None:
    sb = ExecutionSandbox()
    try:
        with pytest.raises(CommandDenied) as info:
            await sb.run_command(["echo", "hi"])
        assert info.value.message == COMMANDS_DISABLED_TEXT
        assert sb._zygote is None
    finally:
        sb.close()


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["rm", "-rf", "/"], "commands.allowlist"),
        (["./echo"], "commands.relative"),
        (["/usr/bin/../bin/echo"], "commands.allowlist"),
        (["/usr/bin/echo"], "commands.allowlist"),  # listed by name only, not by this path
        ("echo hi", "commands.argv"),
        ([], "commands.argv"),
        (["echo", "a\x00b"], "commands.argv"),
    ],
)
async def test_refusals_name_the_rule(sandbox: ExecutionSandbox, argv: object, rule: str) -> None:
    with pytest.raises(CommandDenied) as info:
        await sandbox.run_command(argv)  # type: ignore[arg-type]
    assert info.value.rule == rule


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4))
def test_only_allowlisted_binaries_resolve(argv: list[str]) -> None:
    try:
        binary = resolve_command(argv, enabled=True, allowed=ALLOWED)
    except CommandDenied:
        return
    assert argv[0] in ALLOWED and "\x00" not in "".join(argv)
    assert binary == argv[0] or binary.endswith("/" + argv[0])


async def test_argv_is_not_interpreted_by_a_shell(sandbox: ExecutionSandbox, root: Path) -> None:
    out = await sandbox.run_command(["echo", "$(touch pwned); `id`", "*"])
    assert out["exit_code"] == 0 and out["stdout"] == "$(touch pwned); `id` *\n"
    assert not (root / "pwned").exists()


async def test_runs_inside_the_root(sandbox: ExecutionSandbox, root: Path) -> None:
    assert (await sandbox.run_command(["pwd"]))["stdout"].strip() == str(root)
    assert (await sandbox.run_command(["cat", "hello.txt"]))["stdout"] == "hi\n"
    denied = await sandbox.run_command(["cat", "/etc/shadow"])
    assert denied["exit_code"] != 0 and "Permission denied" in denied["stderr"]
    # The default command tool has the roots read-only.
    refused = await sandbox.run_command(["sh", "-c", "echo x > new.txt"])
    assert refused["exit_code"] != 0 and not (root / "new.txt").exists()


async def test_cwd_is_a_directory_the_path_policy_accepts(
    sandbox: ExecutionSandbox, root: Path
) -> None:
    out = await sandbox.run_command(["pwd"], cwd="sub/deeper")
    assert out["stdout"].strip() == str(root / "sub" / "deeper")
    assert (await sandbox.run_command(["cat", "inner.txt"], cwd="sub"))["stdout"] == "inner\n"
    assert (await sandbox.run_command(["pwd"], cwd=str(root / "sub")))["stdout"].strip() == str(
        root / "sub"
    )


@pytest.mark.parametrize(
    ("cwd", "rule"),
    [
        ("..", "path.traversal"),
        ("/etc", "path.outside_roots"),
        ("escape", "path.symlink_escape"),
        ("hello.txt", "path.not_directory"),
        ("missing", "path.not_found"),
    ],
)
async def test_cwd_outside_the_roots_is_refused_before_anything_runs(
    sandbox: ExecutionSandbox, cwd: str, rule: str
) -> None:
    with pytest.raises(PathDenied) as info:
        await sandbox.run_command(["pwd"], cwd=cwd)
    assert info.value.rule == rule


async def test_timeout_argument_shortens_the_deadline_but_never_extends_it(
    sandbox: ExecutionSandbox,
) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        await sandbox.run_command(["sh", "-c", "sleep 30"], timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    # A longer timeout than the operator's 5 s is cut to 5 s.
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=0.5))
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        await sandbox.run_command(["sh", "-c", "sleep 30"], timeout_s=3600, context=ctx)
    assert time.monotonic() - started < 1.5
    for bad in (0, -1, float("nan"), float("inf"), "10", True):
        with pytest.raises(CommandDenied) as info:
            await sandbox.run_command(["/bin/true"], timeout_s=bad)  # type: ignore[arg-type]
        assert info.value.rule == "commands.timeout"
        assert "positive number of seconds" in info.value.message


async def test_setsid_grandchild_dies_with_the_command(sandbox: ExecutionSandbox) -> None:
    token = "31.41592"
    out = await sandbox.run_command(["sh", "-c", f"setsid sleep {token} & echo started"])
    assert out["stdout"] == "started\n"
    assert wait_until(lambda: processes_with(token) == []), "a setsid grandchild outlived the call"


async def test_deadline_kills_the_whole_tree(sandbox: ExecutionSandbox) -> None:
    token = "27.18281"
    ctx = CallerContext(resource_limits=ResourceLimits(timeout_s=1.0))
    started = time.monotonic()
    with pytest.raises(ToolTimeout):
        await sandbox.run_command(
            ["sh", "-c", f"setsid sleep {token} & sleep {token} & sleep 30"], context=ctx
        )
    assert time.monotonic() - started < 2.0
    assert wait_until(lambda: processes_with(token) == [])
    assert (await sandbox.run_command(["/bin/true"]))["exit_code"] == 0


async def test_output_is_capped() -> None:
    sb = ExecutionSandbox(SandboxConfig(enable_system_commands=True, allowed_commands=("sh",),
                                        max_output_bytes=10_000))  # fmt: skip
    try:
        out = await sb.run_command(["sh", "-c", "while :; do echo xxxxxxxxxxxxxxxx; done"])
        assert out["truncated"] is True and len(out["stdout"]) <= 10_000
    finally:
        await sb.aclose()


async def test_builtin_tool_definition_and_executor(sandbox: ExecutionSandbox) -> None:
    definition, executor = run_command_tool(sandbox)
    assert definition is RUN_COMMAND_DEFINITION and definition.name == "run_command"
    assert definition.metadata.permissions == ["system:exec", "file:read"]
    assert definition.to_openai()["function"]["parameters"]["required"] == [
        "argv",
        "cwd",
        "timeout",
    ]
    out = await executor(argv=["echo", "ok"], context=CallerContext())
    assert out == {"exit_code": 0, "stdout": "ok\n", "stderr": "", "truncated": False}
    out = await executor(argv=["pwd"], cwd="sub", timeout=2.5, context=CallerContext())
    assert out["exit_code"] == 0 and out["stdout"].endswith("/sub\n")


async def test_fork_bomb_in_a_command_is_capped_by_a_pids_cgroup(root: Path) -> None:
    if not os.access("/sys/fs/cgroup/pids", os.W_OK):
        pytest.skip("no writable pids cgroup here; the PID namespace still reaps the tree")
    sb = ExecutionSandbox(SandboxConfig(enable_system_commands=True, allowed_commands=("sh",),
                                        max_processes=16, allowed_paths=(root,)))  # fmt: skip
    try:
        out = await sb.run_command(
            ["sh", "-c", "for i in $(seq 1 100); do sleep 0.5 & done; wait; echo finished"]
        )
        # dash gives up with "Cannot fork" once the cgroup holds 16 processes.
        assert "fork" in out["stderr"].lower() and out["exit_code"] != 0
        assert "finished" not in out["stdout"]
        base = f"/sys/fs/cgroup/pids/tamma-{sb._zygote.pid}"  # type: ignore[union-attr]
        assert wait_until(lambda: os.path.isdir(base) and os.listdir(base).count("call-1") == 0)
    finally:
        await sb.aclose()
    assert wait_until(lambda: not os.path.exists(base))  # removed with its zygote
