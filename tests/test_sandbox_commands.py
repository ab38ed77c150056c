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
from tamma_tools.errors import CommandDenied, ToolTimeout
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
    assert definition.to_openai()["function"]["parameters"]["required"] == ["argv"]
    out = await executor(argv=["echo", "ok"], context=CallerContext())
    assert out == {"exit_code": 0, "stdout": "ok\n", "stderr": "", "truncated": False}


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
