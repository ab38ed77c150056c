"""The lean request path sends what the SDK would send, and hands failures to the SDK."""

from __future__ import annotations

import openai
import pytest

from tamma_tools.errors import ProviderRateLimited
from tamma_tools.provider import ProviderConfig
from tamma_tools.provider.transport import RawTransport, make_client
from tests.support.openai_server import OpenAIServer, Reply, openai_fixture

server = openai_fixture

# Per-attempt bookkeeping headers the SDK adds; they describe the attempt, not the request.
PER_ATTEMPT = {"x-stainless-retry-count", "x-stainless-read-timeout", "content-length"}


def _client(server: OpenAIServer, max_retries: int = 0) -> openai.AsyncOpenAI:
    config = ProviderConfig(
        api_key="sk-parity",
        base_url=server.base_url,
        organization="org-parity",
        default_headers={"X-Team": "search"},
        max_retries=max_retries,
    )
    return make_client(config)


async def test_the_lean_path_sends_the_sdks_headers_and_body(server: OpenAIServer) -> None:
    client = _client(server)
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo"}], "n": 1}
    server.enqueue(Reply.json({"choices": []}), Reply.json({"choices": []}))
    assert await RawTransport(client, 30.0).post_json("/chat/completions", body) == {"choices": []}
    assert await RawTransport(client, 30.0, fast=False).post_json("/chat/completions", body) == {
        "choices": []
    }
    lean, sdk = server.requests
    assert lean.path == sdk.path == "/v1/chat/completions"
    assert lean.body == sdk.body == body
    drop = PER_ATTEMPT
    assert {k: v for k, v in lean.headers.items() if k not in drop} == {
        k: v for k, v in sdk.headers.items() if k not in drop
    }
    assert lean.headers["authorization"] == "Bearer sk-parity"
    assert lean.headers["openai-organization"] == "org-parity"
    assert lean.headers["x-team"] == "search"


async def test_azure_and_default_query_clients_always_take_the_sdk_path(
    server: OpenAIServer,
) -> None:
    assert RawTransport(_client(server), 1.0)._fast is not None
    azure = openai.AsyncAzureOpenAI(
        api_key="k", azure_endpoint="http://127.0.0.1:9", api_version="2024-10-21"
    )
    assert RawTransport(azure, 1.0)._fast is None
    queried = openai.AsyncOpenAI(
        api_key="k", base_url=server.base_url, default_query={"tenant": "a"}
    )
    assert RawTransport(queried, 1.0)._fast is None


async def test_a_retryable_failure_is_retried_by_the_sdk_with_the_remaining_budget(
    server: OpenAIServer,
) -> None:
    client = _client(server, max_retries=2)
    fast = {"retry-after-ms": "1"}
    limited = {"error": {"message": "slow down", "type": "rate_limit"}}
    server.enqueue(*(Reply.json(limited, status=429, headers=fast) for _ in range(3)))
    with pytest.raises(ProviderRateLimited, match="slow down"):
        await RawTransport(client, 30.0).post_json(
            "/chat/completions", {"model": "m", "messages": []}
        )
    assert len(server.requests) == 3  # one lean attempt + the SDK's two retries, not more
    assert server.requests[2].headers["x-stainless-retry-count"] == "1"


async def test_a_redirect_is_followed_by_the_sdk(server: OpenAIServer) -> None:
    client = _client(server)
    moved = {"Location": "/v1/chat/completions?moved=1"}
    server.enqueue(
        Reply(status=307, headers=moved),  # the lean attempt hands the request to the SDK...
        Reply(status=307, headers=moved),  # ...whose client follows the redirect
        Reply.json({"choices": [], "moved": True}),
    )
    got = await RawTransport(client, 30.0).post_json(
        "/chat/completions", {"model": "m", "messages": []}
    )
    assert got == {"choices": [], "moved": True}
    paths = [r.path for r in server.requests]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions?moved=1"]
    assert server.requests[2].body == {"model": "m", "messages": []}
