"""One model turn that calls every built-in at once: results come back in order, each correct,
and slow calls overlap instead of queueing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.builtin import register_builtin_tools
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.network import NetworkPolicy
from tamma_tools.types import CallerContext

SLOW_S = 0.6


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(SLOW_S)
        body = f"page {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _call(i: int, name: str, **args: Any) -> dict[str, Any]:
    return {"id": f"call_{i}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}  # fmt: skip


def _http(url: str) -> dict[str, Any]:
    return {"url": url, "method": None, "headers": None, "body": None, "timeout_s": 5,
            "encoding": None}  # fmt: skip


async def test_one_batch_mixing_every_builtin(tmp_path: Path, port: int) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("read me\n")
    (tmp_path / ".env").write_text("SECRET=1\n")
    cfg = SandboxConfig(
        allowed_paths=(tmp_path,),
        blocked_paths=(".env",),
        enable_network_access=True,
        allowed_ports=(port,),
        enable_system_commands=True,
        allowed_commands=("echo",),
        max_execution_time_s=10,
    )
    policy = NetworkPolicy.from_config(cfg, resolver=lambda host: ["127.0.0.1"])
    policy.allow_private_networks_for_testing = True  # TEST ONLY: the server is on loopback
    ctx = CallerContext(
        permissions={"file:read", "file:write", "network:request", "system:info", "system:exec"}
    )
    async with FunctionCallingManager(sandbox_config=cfg) as mgr:
        names = register_builtin_tools(mgr, config=cfg, network=policy)
        assert sorted(names) == sorted(
            ["read_file", "write_file", "list_files", "get_system_info", "http_request",
             "run_command"]
        )  # fmt: skip
        calls = [
            _call(0, "read_file", path="in/notes.txt", max_bytes=None, encoding=None),
            _call(1, "write_file", path="out/result.txt", content="written", append=None),
            _call(2, "list_files", path="in", pattern=None, recursive=None),
            _call(3, "get_system_info"),
            _call(4, "http_request", **_http(f"http://app.test:{port}/slow")),
            _call(5, "http_request", **_http(f"http://app.test:{port}/slow?second")),
            _call(6, "run_command", argv=["echo", "batch"]),
            _call(7, "read_file", path="../escape", max_bytes=None, encoding=None),
            _call(8, "read_file", path=".env", max_bytes=None, encoding=None),
            _call(9, "http_request", **_http("http://169.254.169.254/latest/")),
            _call(10, "no_such_tool"),
        ]
        started = time.monotonic()
        results = await mgr.process_function_calls({"tool_calls": calls}, ctx)
        elapsed = time.monotonic() - started

    assert [r.tool_call_id for r in results] == [c["id"] for c in calls]
    content = [r.to_message()["content"] for r in results]
    assert [r.success for r in results] == [True] * 7 + [False] * 4, content

    assert json.loads(content[0])["content"] == "read me\n"
    assert json.loads(content[1]) == {
        "path": "out/result.txt",
        "bytes_written": 7,
        "appended": False,
    }
    assert (tmp_path / "out" / "result.txt").read_text() == "written"
    assert [e["name"] for e in json.loads(content[2])["entries"]] == ["notes.txt"]
    assert json.loads(content[3])["cpu_count"] >= 1
    assert json.loads(content[4])["body"] == "page /slow"
    assert json.loads(content[5])["body"] == "page /slow?second"
    command = json.loads(content[6])
    assert command["exit_code"] == 0
    assert command["stdout"].strip() == "batch"
    assert content[7].startswith("Error [path_denied]: ") and "allowed roots" in content[7]
    assert content[8].startswith("Error [path_denied]: ") and "blocked" in content[8]
    assert content[9].startswith("Error [network_denied]: ") and "metadata" in content[9]
    assert content[10].startswith("Error [unknown_tool]")
    # The two slow requests overlapped (serially they would take 2 * SLOW_S).
    assert elapsed < 2 * SLOW_S + 1.5, elapsed


async def test_parallel_writes_to_one_file_leave_one_complete_version(tmp_path: Path) -> None:
    cfg = SandboxConfig(allowed_paths=(tmp_path,))
    ctx = CallerContext(permissions={"file:write", "file:read"})
    mgr = FunctionCallingManager(sandbox_config=cfg)
    register_builtin_tools(mgr, config=cfg, include=["write_file", "read_file"])
    versions = [chr(ord("a") + i) * 20_000 for i in range(8)]
    calls = [_call(i, "write_file", path="same.txt", content=v, append=None)
             for i, v in enumerate(versions)]  # fmt: skip
    results = await mgr.process_function_calls({"tool_calls": calls}, ctx)
    assert all(r.success for r in results), [r.error for r in results]
    assert (tmp_path / "same.txt").read_text() in versions  # atomic: never a mix
    assert sorted(os.listdir(tmp_path)) == ["same.txt"]  # no temp files left
    mgr.close()
