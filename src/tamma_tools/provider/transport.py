"""HTTP through the official SDK, and the SDK's errors turned into ours.

The SDK does what it is good at: auth headers, base URL and Azure deployment routing, retries with
backoff on 408/409/429/5xx and connection errors, and status-to-exception mapping. Its typed stream
is skipped: parsing each chunk into SDK objects costs about 69 µs (research/performance.md §3), so
bodies are requested raw (the SDK's own ``X-Stainless-Raw-Response: stream`` switch, the one its
``with_streaming_response`` uses) and parsed with orjson into the accumulator.

The SDK's request pipeline itself costs about 300-450 µs per request (options models, header and
URL merging, request building), more than the whole rest of a loop turn. So for a plain
``AsyncOpenAI`` client with a string API key, the first attempt of each request is sent through
the SDK's own HTTP client with the SDK's own headers (auth, organization, project, user agent,
custom headers) and timeout, prepared once (about 90 µs). Anything but a 2xx answer is handed to
the SDK as it is: non-retryable statuses become the SDK's status errors, and retryable failures
(connection errors, 408, 409, 429, 5xx) are retried by the SDK with its backoff and the remaining
retry budget. Azure clients, key providers and default query parameters always take the SDK path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import openai
import orjson

from tamma_tools.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamError,
    ProviderUnavailable,
    StreamInterrupted,
)
from tamma_tools.provider.config import ProviderConfig

try:  # openai >= 3 ships its own fork of httpx
    import httpx2 as http
except ImportError:  # pragma: no cover - older SDKs use httpx
    import httpx as http  # type: ignore[no-redef]

__all__ = [
    "HTTP_ERROR_MESSAGE",
    "INTERRUPTED_MESSAGE",
    "NOT_A_STREAM_MESSAGE",
    "NOT_JSON_MESSAGE",
    "RawTransport",
    "http",
    "make_client",
    "map_sdk_error",
]

HTTP_ERROR_MESSAGE = "the model server answered HTTP {status}: {detail}"
UNREACHABLE_MESSAGE = "the model server could not be reached ({detail})"
TIMEOUT_MESSAGE = "the model server did not answer within {timeout_s} s"
INTERRUPTED_MESSAGE = (
    "the response stream broke off before the turn was complete ({detail}); nothing of this "
    "turn was added to the history"
)
NOT_JSON_MESSAGE = "the model server's response body is not a JSON object: {detail}"
NOT_A_STREAM_MESSAGE = "the model server answered a streaming request with JSON: {detail}"

_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}


def make_client(config: ProviderConfig, http_client: Any = None) -> openai.AsyncOpenAI:
    """``AsyncOpenAI``, or ``AsyncAzureOpenAI`` when ``config.azure`` is set.

    Unset ``api_key`` / ``base_url`` fall back to the SDK's defaults (``OPENAI_API_KEY``,
    ``OPENAI_BASE_URL``; ``AZURE_OPENAI_API_KEY`` for Azure).
    """
    common: dict[str, Any] = {
        "organization": config.organization,
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
        "default_headers": config.default_headers or None,
    }
    if http_client is not None:
        common["http_client"] = http_client
    try:
        if config.azure is not None:
            az = config.azure
            return openai.AsyncAzureOpenAI(
                api_key=config.api_key,
                azure_ad_token=az.ad_token,
                azure_endpoint=az.endpoint,
                azure_deployment=az.deployment,
                api_version=az.api_version,
                **common,
            )
        return openai.AsyncOpenAI(api_key=config.api_key, base_url=config.base_url, **common)
    except openai.OpenAIError as exc:  # e.g. no API key anywhere
        raise ConfigError(f"cannot create the OpenAI client: {exc}") from exc


def _server_detail(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    if isinstance(body, str) and body:
        return body[:500]
    return fallback


def _loads(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:2000].decode("utf-8", "replace")


def map_sdk_error(exc: openai.OpenAIError, timeout_s: float) -> ProviderError:
    """One of our ``ProviderError`` subclasses for an SDK error, carrying status and body."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _server_detail(exc.body, exc.message)
        message = HTTP_ERROR_MESSAGE.format(status=status, detail=detail)
        cls: type[ProviderError]
        if status in (401, 403):
            cls = ProviderAuthError
        elif status == 429:
            cls = ProviderRateLimited
        elif status >= 500:
            cls = ProviderUnavailable
        elif 400 <= status < 500:
            cls = ProviderBadRequest
        else:
            cls = ProviderError
        return cls(message, status=status, body=exc.body, request_id=exc.request_id)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable(TIMEOUT_MESSAGE.format(timeout_s=timeout_s))
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProviderUnavailable(UNREACHABLE_MESSAGE.format(detail=f"{cause}"))
    return ProviderError(f"{type(exc).__name__}: {exc}")


_RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_RETRY_AFTER_S = 60.0


def _retry_after_s(headers: Any) -> float:
    """The server's ``retry-after-ms`` / ``retry-after`` (seconds), else the SDK's first backoff."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return min(max(float(value) * scale, 0.0), _MAX_RETRY_AFTER_S)
            except ValueError:
                continue
    return 0.5


class _FastPath:
    """The first attempt of a request, sent with the SDK's headers, timeout and connection pool.

    When the HTTP client adds nothing of its own per request (no auth, event hooks or cookies),
    the request goes straight to the client's transport for the URL (its pool, or the proxy
    mounted for it); ``AsyncClient.send`` itself costs about 60 µs per request. A redirect is
    not followed here: like any other non-2xx answer it goes to the SDK path.
    """

    __slots__ = ("base", "direct", "headers", "http_client", "timeout", "transports", "urls")

    def __init__(self, http_client: Any, base: str, headers: dict[str, str], timeout: Any) -> None:
        self.http_client = http_client
        self.base = base.rstrip("/")
        self.headers = http.Headers(headers)
        self.timeout = http.Timeout(timeout).as_dict()
        self.urls: dict[str, Any] = {}
        self.transports: dict[str, Any] = {}
        hooks = http_client.event_hooks
        self.direct = (
            http_client.auth is None
            and not any(hooks.get("request")) and not any(hooks.get("response"))
            and not http_client.cookies
            and hasattr(http_client, "_transport_for_url")
        )  # fmt: skip

    @classmethod
    def for_client(cls, client: openai.AsyncOpenAI) -> _FastPath | None:
        """Only where the SDK adds nothing per request that we would miss."""
        http_client = getattr(client, "_client", None)
        if (
            type(client) is not openai.AsyncOpenAI
            or not isinstance(client.api_key, str)
            or not client.api_key
            or client.default_query
            or not isinstance(http_client, http.AsyncClient)
        ):
            return None
        try:
            merged = {**client.default_headers, **client.auth_headers}
        except Exception:  # an auth scheme this path does not know: let the SDK do it
            return None
        # The HTTP client's own defaults (Accept-Encoding, Connection) first, as its
        # build_request would merge them.
        headers = dict(http_client.headers.items())
        headers.update((k, v) for k, v in merged.items() if isinstance(v, str))
        if client.timeout is not None and not isinstance(
            client.timeout, float | int | http.Timeout
        ):
            return None
        return cls(http_client, str(client.base_url), headers, client.timeout)

    async def send(self, path: str, body: dict[str, Any], stream: bool) -> Any:
        url = self.urls.get(path)
        if url is None:
            url = self.urls[path] = http.URL(self.base + path)
        request = http.Request(
            "POST",
            url,
            headers=self.headers,
            content=orjson.dumps(body),
            extensions={"timeout": self.timeout},
        )
        if not self.direct:
            return await self.http_client.send(request, stream=stream)
        transport = self.transports.get(path)
        if transport is None:
            transport = self.transports[path] = self.http_client._transport_for_url(url)
        response = await transport.handle_async_request(request)
        response.request = request
        if not stream:
            await response.aread()  # reads to the end and releases the connection
        return response


class RawTransport:
    """POST a body through the SDK and get the raw response: lines for SSE, a dict for JSON."""

    __slots__ = ("_fast", "client", "timeout_s")

    def __init__(self, client: openai.AsyncOpenAI, timeout_s: float, *, fast: bool = True) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._fast = _FastPath.for_client(client) if fast else None

    async def _sdk_post(
        self, path: str, body: dict[str, Any], *, stream: bool, max_retries: int | None = None
    ) -> Any:
        options: dict[str, Any] = {"headers": _RAW_STREAM} if stream else {}
        if max_retries is not None:
            options["max_retries"] = max_retries
        try:
            return await self.client.post(  # type: ignore[call-overload]
                path, cast_to=http.Response, body=body, options=options
            )
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self.timeout_s) from exc

    async def _post(self, path: str, body: dict[str, Any], *, stream: bool) -> Any:
        fast = self._fast
        if fast is None:
            return await self._sdk_post(path, body, stream=stream)
        retries = self.client.max_retries
        try:
            response = await fast.send(path, body, stream)
        except http.TransportError as exc:
            if retries > 0:
                return await self._sdk_post(path, body, stream=stream, max_retries=retries - 1)
            if isinstance(exc, http.TimeoutException):
                raise ProviderUnavailable(TIMEOUT_MESSAGE.format(timeout_s=self.timeout_s)) from exc
            raise ProviderUnavailable(UNREACHABLE_MESSAGE.format(detail=exc)) from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        if 300 <= status < 400:  # the SDK's client follows redirects; let it
            await response.aclose()
            return await self._sdk_post(path, body, stream=stream)
        retryable = status in _RETRYABLE_STATUS or status >= 500
        if retryable and retries > 0:
            await response.aclose()
            await asyncio.sleep(_retry_after_s(response.headers))
            return await self._sdk_post(path, body, stream=stream, max_retries=retries - 1)
        await response.aread()
        await response.aclose()
        raise map_sdk_error(self.client._make_status_error_from_response(response), self.timeout_s)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The parsed JSON object of a non-streaming response; ``ProviderStreamError`` if the
        body is not one (an HTML error page from a proxy, a truncated body)."""
        response = await self._post(path, body, stream=False)
        content = response.content
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise ProviderStreamError(
                NOT_JSON_MESSAGE.format(detail=exc),
                status=response.status_code,
                body=content[:2000].decode("utf-8", "replace"),
            ) from exc
        if not isinstance(parsed, dict):
            raise ProviderStreamError(
                NOT_JSON_MESSAGE.format(detail=f"got {type(parsed).__name__}"),
                status=response.status_code,
                body=parsed,
            )
        return parsed

    async def stream_bytes(self, path: str, body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        """The response body in pieces as they arrive (decompressed; lines and characters may
        be split anywhere: the SSE parser takes care of that, cheaper than httpx's line
        splitting). Closing the iterator closes the connection; a transport error mid-body
        becomes ``StreamInterrupted``."""
        response = await self._post(path, body, stream=True)
        if response.headers.get("content-type", "").startswith("application/json"):
            # A JSON body where a stream was asked for: an error some proxies send with 200.
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            raise ProviderStreamError(
                NOT_A_STREAM_MESSAGE.format(detail=_server_detail(_loads(content), "no detail")),
                status=response.status_code,
                body=_loads(content),
            )
        try:
            # aclosing: an abandoned body iterator would be closed later by the GC hook instead.
            async with contextlib.aclosing(response.aiter_bytes()) as pieces:
                async for piece in pieces:
                    yield piece
        except http.TimeoutException as exc:
            raise StreamInterrupted(
                INTERRUPTED_MESSAGE.format(detail=f"no data for {self.timeout_s} s"),
                status=response.status_code,
            ) from exc
        except http.HTTPError as exc:
            raise StreamInterrupted(
                INTERRUPTED_MESSAGE.format(detail=f"{type(exc).__name__}: {exc}"),
                status=response.status_code,
            ) from exc
        finally:
            await response.aclose()
