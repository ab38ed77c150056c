"""Provider configuration: where the model server is, and how the function-calling loop runs.

Which setting wins when several decide one thing:

| what | order (first set wins) |
|---|---|
| model | ``MessageRequest.model``, ``ProviderConfig.model`` |
| tool_choice | ``MessageRequest.tool_choice``, ``FunctionCallingConfig.tool_choice`` |
| API key / base URL | ``ProviderConfig.api_key`` / ``base_url``, then the SDK's defaults, the
  ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` environment variables |
| concurrent tool calls | the smaller of ``FunctionCallingConfig.max_concurrent_calls`` and the
  manager's ``ManagerConfig.max_concurrent_calls`` |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from tamma_tools.errors import ConfigError

__all__ = ["Api", "AzureConfig", "FunctionCallingConfig", "ProviderConfig", "ToolChoice"]

Api: TypeAlias = Literal["chat", "responses"]
"""``chat``: Chat Completions (``/chat/completions``). ``responses``: the Responses API."""

ToolChoice: TypeAlias = Literal["auto", "none", "required"] | dict[str, Any]
"""OpenAI's ``tool_choice``: a mode, or ``{"type": "function", "function": {"name": ...}}``."""


@dataclass(frozen=True)
class FunctionCallingConfig:
    """How the provider loop treats tools and tool calls."""

    enabled: bool = True
    """Send tools at all. Off: plain chat, ``tools`` are never sent."""
    auto_execute: bool = True
    """Execute tool calls through the manager and send the results back. Off: the loop stops at
    the first tool calls and returns them unexecuted."""
    max_concurrent_calls: int = 10
    """Tool calls of one turn running at once."""
    max_turns: int = 10
    """Model requests per run. Tool calls of the last allowed turn are answered with stubs, not
    executed: nothing the model asked for runs after the limit."""
    parallel_tool_calls: bool | None = None
    """Sent as ``parallel_tool_calls`` when set; ``None`` leaves the server's default (true)."""
    tool_choice: ToolChoice | None = None
    """The default ``tool_choice``; a forced choice is reset to ``auto`` once it was honoured."""
    loop_threshold: int = 3
    """The run stops when one tool is called with the same arguments in this many turns
    (identical calls within one turn count once)."""

    def __post_init__(self) -> None:
        for name in ("max_concurrent_calls", "max_turns", "loop_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"FunctionCallingConfig.{name} must be an int > 0, got {value!r}")
        _check_tool_choice(self.tool_choice, "FunctionCallingConfig.tool_choice")


@dataclass(frozen=True)
class AzureConfig:
    """Azure OpenAI: the SDK's ``AsyncAzureOpenAI`` is used when this is set."""

    endpoint: str
    """``https://<resource>.openai.azure.com``."""
    api_version: str
    deployment: str | None = None
    """Fixes the deployment; otherwise the request's model names it."""
    ad_token: str | None = field(default=None, repr=False)
    """A Microsoft Entra ID token instead of an API key."""


@dataclass(frozen=True)
class ProviderConfig:
    """Where the model server is and how to talk to it. Any OpenAI-compatible server works by
    ``base_url`` (vLLM, Ollama, OpenRouter, LM Studio, Groq, ...)."""

    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    organization: str | None = None
    model: str | None = None
    """The default model; a request's ``model`` wins."""
    api: Api = "chat"
    azure: AzureConfig | None = None
    timeout_s: float = 600.0
    """Per-request timeout handed to the SDK (connect, read, write)."""
    max_retries: int = 2
    """The SDK's retries for connection errors, 408, 409, 429 and 5xx, with its backoff."""
    stream_usage: bool = True
    """Ask streaming servers for a final usage chunk (``stream_options.include_usage``)."""
    default_headers: dict[str, str] = field(default_factory=dict)
    lean_requests: bool = True
    """Send each request's first attempt with the SDK's own headers, timeout and connection
    pool but without its per-request pipeline (about 300 µs saved per request); failures,
    retries and redirects still go through the SDK. ``False``: every attempt through the SDK."""
    function_calling: FunctionCallingConfig = field(default_factory=FunctionCallingConfig)

    def __post_init__(self) -> None:
        if self.api not in ("chat", "responses"):
            raise ConfigError(f"ProviderConfig.api must be 'chat' or 'responses', got {self.api!r}")
        if self.timeout_s <= 0:
            raise ConfigError(f"ProviderConfig.timeout_s must be > 0, got {self.timeout_s!r}")
        if self.max_retries < 0:
            raise ConfigError(f"ProviderConfig.max_retries must be >= 0, got {self.max_retries!r}")


def _check_tool_choice(value: Any, where: str) -> None:
    if value is None or value in ("auto", "none", "required"):
        return
    if isinstance(value, dict) and value.get("type") in ("function", "allowed_tools", "custom"):
        return
    raise ConfigError(
        f"{where} must be 'auto', 'none', 'required' or "
        f'{{"type": "function", "function": {{"name": ...}}}}, got {value!r}'
    )
