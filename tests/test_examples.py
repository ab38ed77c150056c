"""The examples run as documented: against a scripted model on loopback where they need one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tamma_tools.demo.scripted_model import ScriptedModelServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, cwd: Path, base_url: str | None = None) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    if base_url is not None:
        env["OPENAI_BASE_URL"] = base_url
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def call_then_answer(name: str, arguments: dict[str, Any]) -> Any:
    def script(request: dict[str, Any]) -> dict[str, Any]:
        if not any(m.get("role") == "tool" for m in request["messages"]):
            offered = [t["function"]["name"] for t in request.get("tools", [])]
            assert name in offered, offered
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_ex", "type": "function",
                     "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}
                ],
            }  # fmt: skip
        result = next(m for m in request["messages"] if m.get("role") == "tool")
        return {"role": "assistant", "content": f"done: {result['content'][:200]}"}

    return script


def test_approval_example_approves_and_rejects(tmp_path: Path) -> None:
    approved = run_example("approval.py", "--approve", cwd=tmp_path)
    assert "approval_pending" in approved and '"refunded_eur":25.0' in approved
    assert "('approved', 'alice')" in approved
    rejected = run_example("approval.py", "--reject", cwd=tmp_path)
    assert "approval_rejected" in rejected and "('rejected', 'alice')" in rejected


def test_file_assistant_reads_inside_its_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.md").write_text("remember the milk\n")
    script = call_then_answer("read_file", {"path": "notes.md"})
    with ScriptedModelServer(script) as server:
        out = run_example(
            "file_assistant.py", str(workspace), "What do my notes say?",
            cwd=tmp_path, base_url=server.base_url,
        )  # fmt: skip
    assert "[read_file] ok" in out and "remember the milk" in out
    assert (tmp_path / "file-assistant-audit.db").exists()


def test_http_research_refuses_what_is_not_allowlisted(tmp_path: Path) -> None:
    script = call_then_answer("http_request", {"url": "http://169.254.169.254/latest/"})
    with ScriptedModelServer(script) as server:
        out = run_example("http_research.py", "metadata?", cwd=tmp_path, base_url=server.base_url)
    assert "[http_request] network_denied" in out
