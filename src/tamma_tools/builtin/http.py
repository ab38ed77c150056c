"""``http_request``: fetch a URL under the network policy (``tamma_tools.sandbox.network``).

Everything the model controls is checked before a byte is sent: the URL by the policy (again at
every redirect hop and at connect time), the method by the schema's enum, the headers here.
A model-supplied ``Host`` would let it pick the virtual host behind a checked address, hop-by-hop
headers would let it smuggle a second request, and CR/LF in a header is response splitting.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from tamma_tools.errors import ArgumentError
from tamma_tools.sandbox.network import NetworkPolicy, fetch
from tamma_tools.types import ToolDefinition

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "FORBIDDEN_HEADERS",
    "HTTP_REQUEST_DEFINITION",
    "MAX_TIMEOUT_S",
    "http_request_tool",
]

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 30.0
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
"""``Host`` picks the virtual host; the rest are hop-by-hop (RFC 9110 §7.6.1) or framing."""
RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "content-language",
        "content-disposition",
        "location",
        "last-modified",
        "etag",
        "cache-control",
        "expires",
        "date",
        "retry-after",
        "allow",
        "link",
        "www-authenticate",
    }
)
"""Shown to the model; ``Set-Cookie`` and server internals are left out."""

MSG_HEADER_FORBIDDEN = (
    "header {name!r} cannot be set by a tool call (Host, hop-by-hop and framing headers are "
    "managed by the HTTP client); remove it"
)
MSG_HEADER_NAME = "header name {name!r} is not a valid HTTP token; use letters, digits and '-'"
MSG_HEADER_CRLF = "header {name!r} contains CR, LF or NUL characters; remove them"
MSG_BODY_TOO_LARGE = "request body is {size} bytes; the limit is {limit} bytes"
MSG_BODY_METHOD = "a {method} request cannot carry a body; use POST, PUT or PATCH"
MSG_TIMEOUT = "timeout_s must be greater than 0 and at most {limit:g}"
TRUNCATION_MARKER = (
    "\n[truncated: the response is longer than {limit} bytes; only the start is shown]"
)
BINARY_NOTE = (
    "[binary content: {size} bytes, type {ctype}; not shown as text. Ask again with "
    'encoding "base64" to get the bytes]'
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")

HTTP_REQUEST_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "http_request",
            "description": (
                "Send an HTTP(S) request to a public URL and return the status, selected response "
                "headers, the body (text; binary as a note or base64) and the final URL after "
                "redirects. Private, loopback and cloud-metadata addresses are refused; the "
                "sandbox may restrict domains and ports."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "url": {
                        "type": "string",
                        "description": "Absolute http:// or https:// URL.",
                    },
                    "method": {
                        "type": ["string", "null"],
                        "enum": [*METHODS, None],
                        "description": "HTTP method; null means GET.",
                    },
                    "headers": {
                        "type": ["array", "null"],
                        "description": "Request headers as name/value pairs (no Host, no "
                        "hop-by-hop headers).",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "value": {"type": "string"},
                            },
                            "required": ["name", "value"],
                            "additionalProperties": False,
                        },
                    },
                    "body": {
                        "type": ["string", "null"],
                        "description": "Request body as text (UTF-8), for POST, PUT or PATCH.",
                    },
                    "timeout_s": {
                        "type": ["number", "null"],
                        "description": f"Seconds to wait for the whole response (default "
                        f"{DEFAULT_TIMEOUT_S:g}, at most {MAX_TIMEOUT_S:g}).",
                    },
                    "encoding": {
                        "type": ["string", "null"],
                        "enum": ["text", "base64", None],
                        "description": 'Body encoding in the result: "text" (default) or '
                        '"base64" for binary content.',
                    },
                },
                "required": ["url", "method", "headers", "body", "timeout_s", "encoding"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        "metadata": {
            "category": "network",
            "permissions": ["network:request"],
            "timeout_s": MAX_TIMEOUT_S + 5,
            "isolation": "in_process",
            "open_world": True,
            "tags": ["builtin", "network"],
        },
    }
)


def _check_headers(headers: list[dict[str, str]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in headers or []:
        name, value = str(item.get("name", "")), str(item.get("value", ""))
        if any(c in name or c in value for c in "\r\n\0"):
            raise ArgumentError(MSG_HEADER_CRLF.format(name=name))
        if not _TOKEN.match(name):
            raise ArgumentError(MSG_HEADER_NAME.format(name=name))
        if name.lower() in FORBIDDEN_HEADERS:
            raise ArgumentError(MSG_HEADER_FORBIDDEN.format(name=name))
        out[name] = value
    return out


def _looks_binary(data: bytes, content_type: str) -> bool:
    """NUL bytes or many undecodable bytes mean binary; a declared text type is trusted."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype.startswith("text/") or ctype.endswith(("+json", "+xml", "/json", "/xml")):
        return False
    if b"\0" in data[:8192]:
        return True
    sample = data[:8192]
    if not sample:
        return False
    bad = len(sample) - len(sample.decode("utf-8", "ignore").encode("utf-8"))
    return bad / len(sample) > 0.1


def http_request_tool(
    policy: NetworkPolicy,
    *,
    max_response_bytes: int = 1024 * 1024,
    max_body_bytes: int = 1024 * 1024,
) -> tuple[ToolDefinition, Callable[..., Awaitable[dict[str, Any]]]]:
    """The definition and an executor bound to ``policy`` (register both with the manager)."""

    async def http_request(
        url: str,
        method: str | None = None,
        headers: list[dict[str, str]] | None = None,
        body: str | None = None,
        timeout_s: float | None = None,
        encoding: str | None = None,
    ) -> dict[str, Any]:
        verb = (method or "GET").upper()
        send_headers = _check_headers(headers)
        timeout = DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise ArgumentError(MSG_TIMEOUT.format(limit=MAX_TIMEOUT_S))
        payload = None
        if body is not None:
            if verb in ("GET", "HEAD", "OPTIONS"):
                raise ArgumentError(MSG_BODY_METHOD.format(method=verb))
            payload = body.encode("utf-8", "replace")
            if len(payload) > max_body_bytes:
                raise ArgumentError(
                    MSG_BODY_TOO_LARGE.format(size=len(payload), limit=max_body_bytes)
                )
        result = await fetch(
            policy,
            verb,
            url,
            headers=send_headers,
            body=payload,
            timeout_s=timeout,
            max_response_bytes=max_response_bytes,
        )
        shown: dict[str, str] = {}
        for name, value in result.headers:
            key = name.lower()
            if key in RESPONSE_HEADERS or key.startswith("x-ratelimit-"):
                shown[key] = f"{shown[key]}, {value}" if key in shown else value
        data = result.body
        ctype = result.content_type or "unknown"
        if encoding == "base64":
            text = base64.b64encode(data).decode("ascii")
            body_encoding = "base64"
        elif _looks_binary(data, result.content_type):
            text = BINARY_NOTE.format(size=len(data), ctype=ctype)
            body_encoding = "omitted"
        else:
            text = data.decode("utf-8", "replace")
            body_encoding = "text"
        if result.truncated:
            text += TRUNCATION_MARKER.format(limit=max_response_bytes)
        return {
            "status": result.status_code,
            "url": result.final_url,
            "redirects": result.redirects,
            "headers": shown,
            "body": text,
            "body_encoding": body_encoding,
            "body_bytes": len(data),
            "truncated": result.truncated,
        }

    return HTTP_REQUEST_DEFINITION, http_request
