"""Every Python block in the README runs, against a scripted model on loopback where it needs one.

The quick start talks to ``OPENAI_BASE_URL``; here that is a scripted server that asks for the
first tool the request offers (with arguments made from its schema) and then answers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tamma_tools.demo.scripted_model import ScriptedModelServer

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _example_value(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": "Oslo", "integer": 1, "number": 1.0, "boolean": True, "array": []}.get(
        kind or "string", "x"
    )


def first_tool_then_answer(request: dict[str, Any]) -> dict[str, Any]:
    tools = request.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in request["messages"]):
        fn = tools[0]["function"]
        params = fn.get("parameters") or {}
        args = {
            name: _example_value(prop)
            for name, prop in params.get("properties", {}).items()
            if name in params.get("required", [])
        }
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_readme", "type": "function",
                 "function": {"name": fn["name"], "arguments": orjson.dumps(args).decode()}}
            ],
        }  # fmt: skip
    return {"role": "assistant", "content": "It is clear in Oslo."}


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, tmp_path: Path) -> None:
    with ScriptedModelServer(first_tool_then_answer) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "test-key"}
        proc = subprocess.run(
            [sys.executable, "-c", BLOCKS[index]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, f"README block {index} failed:\n{BLOCKS[index]}\n{proc.stderr}"
    if "provider.complete" in BLOCKS[index]:
        assert "get_forecast ok" in proc.stdout and "clear in Oslo" in proc.stdout
