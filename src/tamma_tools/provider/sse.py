"""Server-sent events: lines in, ``(event, data)`` messages out, per the WHATWG event-stream rules.

A real parser rather than ``line[6:]``, because OpenAI-compatible servers differ in the framing:
OpenRouter sends ``: OPENROUTER PROCESSING`` comment lines (QUIRKS A1), TGI 1.4 sends ``data:``
with no space (A2), Groq ends a failed stream with ``event: error`` and no ``[DONE]`` (A3, A9), and
some servers end lines with CRLF. Pure and synchronous: the caller does the I/O.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["DONE", "SSEMessage", "SSEParser"]

DONE = "[DONE]"
"""The OpenAI end-of-stream sentinel payload. It is not guaranteed (QUIRKS A9)."""


@dataclass(slots=True)
class SSEMessage:
    """One dispatched event: ``event`` is ``""`` when the server sent no ``event:`` field."""

    event: str
    data: str


class SSEParser:
    """Incremental event-stream parser.

    Feed it one line at a time (:meth:`feed_line`, what ``httpx.Response.aiter_lines`` gives) or raw
    text/bytes in arbitrary pieces (:meth:`feed`); call :meth:`flush` at end of input so that a last
    event without its blank line is not lost.
    """

    __slots__ = ("_data", "_decoder", "_event", "_pending_cr", "_tail", "comment_count")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._tail = ""
        self._pending_cr = False
        # Body pieces may split a UTF-8 character; an incremental decoder carries the rest over.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.comment_count = 0
        """Comment lines seen (keep-alives); useful as a liveness signal."""

    def feed_line(self, line: str | bytes) -> SSEMessage | None:
        """Take one line (a trailing CR, LF or CRLF is stripped); return a message on dispatch."""
        if not isinstance(line, str):
            line = bytes(line).decode("utf-8", "replace")
        if line.startswith("data: "):  # the common case first
            if line[-1] in "\r\n":
                line = line.rstrip("\r\n")
            self._data.append(line[6:])
            return None
        if line and line[-1] in "\r\n":
            line = line.rstrip("\r\n")
        if not line:
            if self._data:
                return self._dispatch()
            self._event = ""
            return None
        if line.startswith("data:"):
            # At most one space after the colon is syntax (QUIRKS A2); the rest is payload.
            self._data.append(line[6:] if line.startswith(" ", 5) else line[5:])
            return None
        if line[0] == ":":
            self.comment_count += 1
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        # "id" and "retry" only matter for reconnecting EventSource clients; a chat completion
        # stream cannot be resumed, and unknown fields are ignored by the specification.
        return None

    def feed(self, text: str | bytes) -> list[SSEMessage]:
        """Take any piece of the body; lines may be split anywhere, also between CR and LF."""
        if not isinstance(text, str):
            text = self._decoder.decode(bytes(text))
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        if not text:
            return []
        buffer = self._tail + text
        # Normalise CRLF and lone CR to LF; a CR at the very end may be half of a CRLF.
        if buffer.endswith("\r"):
            self._pending_cr = True
        buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        lines = buffer.split("\n")
        self._tail = lines.pop()
        out: list[SSEMessage] = []
        for line in lines:
            message = self.feed_line(line)
            if message is not None:
                out.append(message)
        return out

    def flush(self) -> SSEMessage | None:
        """End of input: dispatch a pending event whose blank line never came."""
        self._tail += self._decoder.decode(b"", final=True)
        if self._tail:
            tail, self._tail = self._tail, ""
            message = self.feed_line(tail)
            if message is not None:
                return message
        return self._dispatch()

    def _dispatch(self) -> SSEMessage | None:
        data = self._data
        if not data:
            self._event = ""
            return None
        payload = data[0] if len(data) == 1 else "\n".join(data)
        message = SSEMessage(self._event, payload)
        self._data = []
        self._event = ""
        return message
