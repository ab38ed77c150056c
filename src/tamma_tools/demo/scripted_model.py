"""A scripted stand-in for a model, served over real HTTP on loopback.

It speaks the Chat Completions wire format (JSON and SSE streaming, in the fragment shape real
servers send), so the demo goes through the real ``openai`` SDK and the real provider loop. It is
not a model: it follows a fixed script, and says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["Script", "ScriptedModelServer", "demo_script"]

Script = Callable[[dict[str, Any]], dict[str, Any]]
"""Gets the request body, returns the assistant message to send (content and/or tool_calls)."""


def demo_script(request: dict[str, Any]) -> dict[str, Any]:
    """Turn 1: ask for five tools in parallel (two of them refused by policy). Turn 2: answer."""
    messages = request.get("messages", [])
    tool_messages = [m for m in messages if m.get("role") == "tool"]
    if not tool_messages:
        calls = [
            ("list_files", {"path": ".", "recursive": True}),
            ("read_file", {"path": "notes/todo.md"}),
            (
                "write_file",
                {"path": "reports/summary.md", "content": "# Summary\n\n3 tasks open.\n"},
            ),
            ("read_file", {"path": "../../etc/passwd"}),
            ("http_request", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ]
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_demo_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(args).decode()},
                }
                for i, (name, args) in enumerate(calls)
            ],
        }
    ok = sum(1 for m in tool_messages if not str(m.get("content", "")).startswith("Error"))
    refused = len(tool_messages) - ok
    return {
        "role": "assistant",
        "content": (
            f"(scripted answer) I ran {len(tool_messages)} tool calls: {ok} succeeded and "
            f"{refused} were refused by policy. The workspace has an open to-do list and I wrote "
            "a summary to reports/summary.md. I could not read files outside the workspace or "
            "reach the cloud metadata address, as expected."
        ),
    }


def _chunks(message: dict[str, Any], model: str, fragment: int = 12) -> list[dict[str, Any]]:
    """Split a message into streaming chunks the way OpenAI does (arguments in fragments)."""
    base = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": None if message.get("tool_calls") else ""})]
    content = message.get("content")
    if content:
        for i in range(0, len(content), 24):
            out.append(chunk({"content": content[i : i + 24]}))
    for index, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        args = fn["arguments"]
        for i in range(0, len(args), fragment):
            out.append(
                chunk(
                    {
                        "tool_calls": [
                            {"index": index, "function": {"arguments": args[i : i + fragment]}}
                        ]
                    }
                )
            )
    out.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    usage = {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    out.append({**base, "choices": [], "usage": usage})
    return out


class ScriptedModelServer:
    """``with ScriptedModelServer(script) as server: ... server.base_url``; loopback only."""

    def __init__(self, script: Script = demo_script, *, model: str = "scripted-demo-model") -> None:
        self.script = script
        self.model = model
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = orjson.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "only /v1/chat/completions is scripted"}})
                    return
                message = outer.script(body)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for item in _chunks(message, outer.model):
                        self.wfile.write(b"data: " + orjson.dumps(item) + b"\n\n")
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                finish = "tool_calls" if message.get("tool_calls") else "stop"
                self._send(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": outer.model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
