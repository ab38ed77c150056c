"""HTTP through the official SDK, and the SDK's errors turned into ours.

The SDK does what it is good at: auth headers, base URL and Azure deployment routing, retries with
backoff on 408/409/429/5xx and connection errors, and status-to-exception mapping. Its typed stream
is skipped: parsing each chunk into SDK objects costs about 69 µs (research/performance.md §3), so
bodies are requested raw (the SDK's own ``X-Stainless-Raw-Response: stream`` switch, the one its
``with_streaming_response`` uses) and parsed with orjson into the accumulator.
"""

from __future__ import annotations

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


class RawTransport:
    """POST a body through the SDK and get the raw response: lines for SSE, a dict for JSON."""

    __slots__ = ("client", "timeout_s")

    def __init__(self, client: openai.AsyncOpenAI, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def _post(self, path: str, body: dict[str, Any], *, stream: bool) -> Any:
        try:
            return await self.client.post(
                path,
                cast_to=http.Response,
                body=body,
                options={"headers": _RAW_STREAM} if stream else {},
            )
        except openai.OpenAIError as exc:
            raise map_sdk_error(exc, self.timeout_s) from exc

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

    async def stream_lines(self, path: str, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        """The response's lines as they arrive. Closing the iterator closes the connection;
        a transport error mid-body becomes ``StreamInterrupted``."""
        response = await self._post(path, body, stream=True)
        try:
            async for line in response.aiter_lines():
                yield line
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
