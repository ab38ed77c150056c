"""The model side: OpenAI-compatible servers, the stream accumulator and the function-calling loop.

``OpenAIProvider`` sends requests through the official SDK, parses streams with the pure
``StreamAccumulator`` and runs the loop (``send_message`` / ``complete``), executing tool calls
through a ``FunctionCallingManager``.
"""

from __future__ import annotations

from tamma_tools.provider.accumulator import StreamAccumulator, message_from_completion
from tamma_tools.provider.config import Api, AzureConfig, FunctionCallingConfig, ProviderConfig
from tamma_tools.provider.events import (
    FinalMessage,
    ReasoningDelta,
    RefusalDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallDone,
    ToolCallStarted,
    ToolResult,
    TurnFinished,
)
from tamma_tools.provider.loop import CompletionResult, MessageStream
from tamma_tools.provider.openai_provider import OpenAIProvider
from tamma_tools.provider.request import MessageRequest

__all__ = [
    "Api",
    "AzureConfig",
    "CompletionResult",
    "FinalMessage",
    "FunctionCallingConfig",
    "MessageRequest",
    "MessageStream",
    "OpenAIProvider",
    "ProviderConfig",
    "ReasoningDelta",
    "RefusalDelta",
    "StreamAccumulator",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallDone",
    "ToolCallStarted",
    "ToolResult",
    "TurnFinished",
    "message_from_completion",
]
