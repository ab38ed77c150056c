"""A local OpenAI-compatible HTTP server on loopback, for tests that go through the real SDK.

Two ways to drive it:

- **replay**: ``server.enqueue(Reply.sse(body))`` / ``Reply.json(body, status=...)``; each request
  takes the next queued reply (recorded bodies from the conformance folder replay byte for byte);
- **scripted**: ``server.script = fn``; ``fn(request_json)`` returns a ``Reply``, or an assistant
  message dict (``content`` and/or ``tool_calls``) that is served as Chat Completions or Responses
  JSON, or as SSE when the request asked for ``stream``, in the fragment shape real servers send.

Streaming replies use real chunked transfer encoding, one chunk per SSE event (or per
``split_bytes``), flushed one by one; ``cut=True`` drops the connection before the terminating
chunk, which is what a client sees when a server dies mid-stream. Every request body is recorded
in ``server.requests``. The server runs in a background thread and binds 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

__all__ = [
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "assert_history_valid",
    "call",
    "chat_chunks",
    "chat_completion",
    "openai_fixture",
    "responses_events",
    "responses_object",
    "serve",
    "sse_body",
    "tool_messages",
]

MODEL = "scripted-model"
USAGE = {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}


@dataclass
class Reply:
    """One HTTP response: a status, headers and a body sent whole or as flushed chunks."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    """When set, the body is sent with chunked transfer encoding, one flush per item."""
    delay_s: float = 0.0
    """Pause before each chunk (and before the headers when ``stall_s`` is not set)."""
    stall_s: float = 0.0
    """Pause before the status line: a server that accepted the request and went silent."""
    cut: bool = False
    """Close the connection before the terminating chunk (a stream cut by the server)."""
    pauses: dict[int, float] = field(default_factory=dict)
    """Extra pause in seconds before chunk ``i``: a server that goes quiet mid-stream."""

    @classmethod
    def json(
        cls, payload: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> Reply:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return cls(status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def sse(
        cls,
        body: str | bytes,
        *,
        split_bytes: int | None = None,
        delay_s: float = 0.0,
        cut_after: int | None = None,
        status: int = 200,
    ) -> Reply:
        """Serve an SSE body as recorded; one chunk per event unless ``split_bytes`` is given.

        ``cut_after`` keeps only the first that many bytes and then drops the connection.
        """
        raw = body.encode() if isinstance(body, str) else body
        cut = cut_after is not None
        if cut_after is not None:
            raw = raw[:cut_after]
        if split_bytes:
            pieces = [raw[i : i + split_bytes] for i in range(0, len(raw), split_bytes)]
        else:
            pieces = [p + b"\n\n" for p in raw.split(b"\n\n") if p]
            if pieces and not raw.endswith(b"\n\n"):
                pieces[-1] = pieces[-1][:-2]
        return cls(
            status=status,
            content_type="text/event-stream",
            chunks=pieces,
            delay_s=delay_s,
            cut=cut,
        )

    @classmethod
    def events(cls, items: list[Any], *, done: bool = True, **kwargs: Any) -> Reply:
        """Serve parsed chunks (dicts) as ``data:`` events, optionally ending with ``[DONE]``."""
        return cls.sse(sse_body(items, done=done), **kwargs)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Script = Callable[[dict[str, Any]], "Reply | dict[str, Any]"]


def sse_body(items: list[Any], *, done: bool = True, event_names: bool = False) -> bytes:
    """``data: <json>\\n\\n`` per item (with ``event: <type>`` lines for Responses events)."""
    out = bytearray()
    for item in items:
        if event_names and isinstance(item, dict) and "type" in item:
            out += b"event: " + item["type"].encode() + b"\n"
        out += b"data: " + (item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n\n"
    if done:
        out += b"data: [DONE]\n\n"
    return bytes(out)


# --- Chat Completions wire shapes ---------------------------------------------------------


def chat_completion(message: dict[str, Any], *, model: str = MODEL) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` body carrying ``message``."""
    finish = message.get("finish_reason") or ("tool_calls" if message.get("tool_calls") else "stop")
    msg = {"role": "assistant", "content": None, **message}
    msg.pop("finish_reason", None)
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
        "usage": USAGE,
    }


def chat_chunks(
    message: dict[str, Any], *, model: str = MODEL, fragment: int = 8
) -> list[dict[str, Any]]:
    """Stream chunks the way OpenAI sends them: role first, text in pieces, each call's id and
    name once, its arguments in ``fragment``-character pieces, an empty finish chunk, usage."""
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0}
    base["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": None if message.get("tool_calls") else ""})]
    content = message.get("content") or ""
    for i in range(0, len(content), fragment * 3):
        out.append(chunk({"content": content[i : i + fragment * 3]}))
    for index, call in enumerate(message.get("tool_calls") or []):
        fn = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        out.append(
            chunk({"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]})
        )
        args = fn["arguments"]
        for i in range(0, len(args), fragment):
            piece = {"index": index, "function": {"arguments": args[i : i + fragment]}}
            out.append(chunk({"tool_calls": [piece]}))
    finish = message.get("finish_reason") or ("tool_calls" if message.get("tool_calls") else "stop")
    out.append(chunk({}, finish))
    out.append({**base, "choices": [], "usage": USAGE})
    return out


# --- Responses API wire shapes ------------------------------------------------------------


def _response_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    # ``reasoning``: summary texts of a reasoning model's items, which come first in its output;
    # ``encrypted_reasoning`` adds the opaque state a ``store: false`` client must send back.
    for n, summary in enumerate(message.get("reasoning") or []):
        reasoning: dict[str, Any] = {
            "type": "reasoning",
            "id": f"rs_scripted_{n}",
            "summary": [{"type": "summary_text", "text": summary}],
        }
        if message.get("encrypted_reasoning"):
            reasoning["encrypted_content"] = f"gAAA-opaque-{n}"
        items.append(reasoning)
    if message.get("content"):
        items.append(
            {
                "type": "message",
                "id": "msg_scripted",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": message["content"], "annotations": []}],
            }
        )
    for call in message.get("tool_calls") or []:
        items.append(
            {
                "type": "function_call",
                "id": "fc_" + call["id"],
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        )
    return items


def responses_object(message: dict[str, Any], *, model: str = MODEL) -> dict[str, Any]:
    """A non-streaming Responses API ``response`` body carrying ``message``."""
    return {
        "id": "resp_scripted",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": "completed",
        "output": _response_items(message),
        "usage": {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70},
    }


def responses_events(message: dict[str, Any], *, fragment: int = 8) -> list[dict[str, Any]]:
    """The Responses API event stream for ``message`` (text deltas, argument deltas, completed)."""
    final = responses_object(message)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**final, "status": "in_progress", "output": []}}
    ]
    for index, item in enumerate(final["output"]):
        if item["type"] == "reasoning":
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "summary": []},
                }
            )
            events.append(
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "summary_index": 0,
                    "delta": item["summary"][0]["text"],
                }
            )
        elif item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "content": [], "status": "in_progress"},
                }
            )
            for i in range(0, len(text), fragment * 3):
                events.append(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "delta": text[i : i + fragment * 3],
                    }
                )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            args = item["arguments"]
            for i in range(0, len(args), fragment):
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "delta": args[i : i + fragment],
                    }
                )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "arguments": args,
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": final})
    return events


# --- the server ---------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that closes its connection early (after [DONE], or on aclose()) is normal.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OpenAIServer:
    """``with OpenAIServer() as server: ... server.base_url`` (ends in ``/v1``)."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.replies: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self.connections_closed_early = 0
        """Streaming replies whose client went away before the last chunk was written."""
        self.closed_early = threading.Event()
        """Set when the first such reply is seen."""
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small SSE chunks must not wait for delayed ACKs

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                with outer._lock:
                    outer.requests.append(
                        RecordedRequest(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )
                reply = outer._reply_for(self.path, body)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.stall_s:
                    time.sleep(reply.stall_s)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.chunks is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for i, piece in enumerate(reply.chunks):
                        if reply.delay_s or i in reply.pauses:
                            time.sleep(reply.delay_s + reply.pauses.get(i, 0.0))
                        if piece:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                            self.wfile.flush()
                    if reply.cut:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with outer._lock:
                        outer.connections_closed_early += 1
                    outer.closed_early.set()
                    self.close_connection = True

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def _reply_for(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            queued = self.replies.popleft() if self.replies else None
        if queued is not None:
            return queued
        if self.script is None:
            return Reply.json(
                {"error": {"message": "no reply queued", "type": "server_error"}}, status=500
            )
        answer = self.script(body)
        if isinstance(answer, Reply):
            return answer
        responses = path.rstrip("/").endswith("/responses")
        if body.get("stream"):
            if responses:
                return Reply.sse(sse_body(responses_events(answer), done=False, event_names=True))
            return Reply.events(chat_chunks(answer, model=str(body.get("model") or MODEL)))
        if responses:
            return Reply.json(responses_object(answer))
        return Reply.json(chat_completion(answer, model=str(body.get("model") or MODEL)))

    def enqueue(self, *replies: Reply) -> OpenAIServer:
        with self._lock:
            self.replies.extend(replies)
        return self

    @property
    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve() -> Iterator[OpenAIServer]:
    """A started server with nothing queued and no script, stopped afterwards.

    Test modules make it a fixture under the name they like: ``server = openai_fixture``.
    """
    with OpenAIServer() as server:
        yield server


openai_fixture = pytest.fixture(serve, name="server")
"""The ``server`` fixture: ``from tests.support.openai_server import openai_fixture`` and then
``server = openai_fixture`` at module level."""


# --- helpers for provider tests -----------------------------------------------------------


def call(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """A tool call as a scripted message carries it."""
    args = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results a request carries, in either API's shape, as ``{id, content}``."""
    out = []
    for item in body.get("messages") or body.get("input") or []:
        if item.get("role") == "tool":
            out.append({"id": item["tool_call_id"], "content": item["content"]})
        elif item.get("type") == "function_call_output":
            out.append({"id": item["call_id"], "content": item["output"]})
    return out


def assert_history_valid(messages: list[dict[str, Any]]) -> None:
    """What the API demands before it takes a history: every assistant tool call is answered by
    exactly one tool message right after it, and no tool message answers nothing."""
    i = 0
    while i < len(messages):
        message = messages[i]
        i += 1
        assert message.get("role") != "tool", f"tool message without a call: {message}"
        if message.get("role") != "assistant" or not message.get("tool_calls"):
            continue
        wanted = [c["id"] for c in message["tool_calls"]]
        answered = []
        while i < len(messages) and messages[i].get("role") == "tool":
            answered.append(messages[i]["tool_call_id"])
            i += 1
        assert sorted(answered) == sorted(wanted), f"calls {wanted} answered by {answered}"
