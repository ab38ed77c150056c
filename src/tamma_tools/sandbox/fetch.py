"""Sending a request only to addresses the network policy checked, and following redirects.

``NetworkPolicy`` (``sandbox/network.py``) decides; this module connects. Every hop of a redirect
chain is checked again, credentials are dropped when the origin changes, the connection goes only
to the addresses the check resolved (no second DNS lookup to rebind), and the body is capped.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from tamma_tools.errors import ExecutionError, NetworkDenied, ResourceLimitExceeded, ToolTimeout

if TYPE_CHECKING:
    from tamma_tools.sandbox.network import NetworkPolicy

__all__ = ["FetchResult", "PolicyTransport", "fetch"]

MSG_BAD_LOCATION = "redirect location {url!r} is not a valid URL: {reason}"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
MSG_REDIRECTS = "gave up after {count} redirects (limit {limit}); last location {url!r}"
MSG_NOT_PINNED = "connection to {host}:{port} was not checked by the network policy"
MSG_CONNECT = "request to {url!r} failed: {reason}"
MSG_TIMEOUT = "request to {url!r} did not finish within {timeout:g} s"


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials only the addresses the policy checked for ``(host, port)``; anything else fails.

    httpcore passes the URL's host here and uses it for TLS SNI, so certificates are still
    verified against the name while the socket goes to the pinned IP (research §10.7).
    """

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], tuple[str, ...]] = {}
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self.pins.get((host.lower().rstrip("."), port))
        if not addresses:
            raise httpcore.ConnectError(MSG_NOT_PINNED.format(host=host, port=port))
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from tools")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool swapped for one on ``_PinnedBackend``."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=4,
            network_backend=backend,
        )


MSG_RESPONSE_TOO_LARGE = "the response body is larger than {limit} bytes"


class _CappedStream(httpx.AsyncByteStream):
    """Raw response bytes, stopped with ``ResourceLimitExceeded`` past the cap."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResourceLimitExceeded(
                    MSG_RESPONSE_TOO_LARGE.format(limit=self._limit), limit="max_response_bytes"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class PolicyTransport(_PinnedTransport):
    """An httpx transport that applies a ``NetworkPolicy`` to every request it sends.

    The URL is checked (and resolved once) per request and the connection may only go to the
    addresses that check returned, under both the name as written and its normalised form
    (httpcore dials the URL's host as written, e.g. ``0x7f.1``). Raw body bytes are capped.
    """

    def __init__(self, policy: NetworkPolicy, *, max_response_bytes: int = 10 * 1024 * 1024):
        self._pins = _PinnedBackend()
        super().__init__(self._pins)
        self._policy = policy
        self._max_response_bytes = max_response_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        checked = self._policy.check_url(str(request.url))
        written = request.url.raw_host.decode("ascii", "replace").lower().rstrip(".")
        for host in {checked.host, written}:
            self._pins.pins[(host, checked.port)] = checked.addresses
        response = await super().handle_async_request(request)
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _CappedStream(response.stream, self._max_response_bytes)
        return response


@dataclass(slots=True)
class FetchResult:
    """What came back: status, headers, the (possibly capped) body and where we ended up."""

    status_code: int
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool
    final_url: str
    redirects: list[str] = field(default_factory=list)
    content_type: str = ""


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.raw_host, a.port) == (b.scheme, b.raw_host, b.port)


async def fetch(
    policy: NetworkPolicy,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float = 10.0,
    max_response_bytes: int = 1024 * 1024,
    max_redirects: int = 5,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchResult:
    """Send one request under ``policy``, following redirects by hand and checking every hop.

    ``trust_env=False``: with an environment proxy the policy would check the proxy, not the
    target. The body is streamed (decompressed) and reading stops at ``max_response_bytes``.
    ``ssl_context`` replaces the default (certifi roots, hostname checked against the URL's name).
    """
    backend = _PinnedBackend()
    send_headers = dict(headers or {})
    if not any(k.lower() == "accept-encoding" for k in send_headers):
        # Uncompressed by default: the byte cap then bounds memory too, where a gzip bomb would
        # be inflated a whole network chunk at a time before the cap is checked.
        send_headers["Accept-Encoding"] = "identity"
    redirects: list[str] = []
    current = url
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(
                transport=_PinnedTransport(backend, ssl_context),
                trust_env=False,
                follow_redirects=False,
                timeout=timeout_s,
            ) as client,
        ):
            while True:
                checked = policy.check_url(current)
                backend.pins[(checked.host, checked.port)] = checked.addresses
                request = client.build_request(
                    method, checked.url, headers=send_headers, content=body
                )
                response = await client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        if len(redirects) >= max_redirects:
                            raise NetworkDenied(
                                MSG_REDIRECTS.format(
                                    count=len(redirects), limit=max_redirects, url=location
                                ),
                                rule="network.too_many_redirects",
                            )
                        try:
                            target = request.url.join(location)
                        except (httpx.InvalidURL, ValueError) as exc:
                            raise NetworkDenied(
                                MSG_BAD_LOCATION.format(url=location, reason=str(exc)),
                                rule="network.invalid_url",
                            ) from None
                        if not _same_origin(request.url, target):
                            send_headers = {
                                k: v
                                for k, v in send_headers.items()
                                if k.lower() not in CREDENTIAL_HEADERS
                            }
                        if response.status_code == 303 or (
                            response.status_code in (301, 302) and method == "POST"
                        ):
                            method, body = ("HEAD" if method == "HEAD" else "GET"), None
                        redirects.append(str(target))
                        current = str(target)
                        continue
                    chunks: list[bytes] = []
                    size = 0
                    truncated = False
                    async for chunk in response.aiter_bytes():
                        room = max_response_bytes - size
                        if len(chunk) > room:
                            chunks.append(chunk[:room])
                            truncated = True
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    return FetchResult(
                        status_code=response.status_code,
                        headers=list(response.headers.multi_items()),
                        body=b"".join(chunks),
                        truncated=truncated,
                        final_url=str(request.url),
                        redirects=redirects,
                        content_type=response.headers.get("content-type", ""),
                    )
                finally:
                    await response.aclose()
    except TimeoutError:
        raise ToolTimeout(
            MSG_TIMEOUT.format(url=current, timeout=timeout_s), timeout_s=timeout_s
        ) from None
    except httpx.TimeoutException:
        raise ToolTimeout(
            MSG_TIMEOUT.format(url=current, timeout=timeout_s), timeout_s=timeout_s
        ) from None
    except httpx.HTTPError as exc:
        raise ExecutionError(
            MSG_CONNECT.format(url=current, reason=str(exc) or type(exc).__name__),
            code="http_error",
        ) from None
