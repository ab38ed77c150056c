"""``OpenAIProvider``: any OpenAI-compatible server, with the function-calling loop on top.

Data flow (DESIGN): the provider talks HTTP through the SDK, feeds the accumulator, and hands tool
calls to the manager; it never imports the sandbox or the policy, the manager does.

    provider = OpenAIProvider(ProviderConfig(base_url=..., model="gpt-4o-mini"), manager=mgr)
    async with provider.send_message(MessageRequest(messages=[...])) as stream:
        async for event in stream:
            ...
    result = await provider.complete(MessageRequest(messages=[...]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai

from tamma_tools.errors import ConfigError, ProviderError
from tamma_tools.provider.chat_api import ChatTurns
from tamma_tools.provider.config import ProviderConfig, ToolChoice
from tamma_tools.provider.loop import CompletionResult, MessageStream, run_loop, session_context
from tamma_tools.provider.request import MessageRequest, chat_body, merge_tools, responses_body
from tamma_tools.provider.responses_api import ResponsesTurns
from tamma_tools.provider.transport import RawTransport, make_client
from tamma_tools.provider.turn import Turn
from tamma_tools.types import CallerContext

if TYPE_CHECKING:
    from tamma_tools.manager import FunctionCallingManager

__all__ = ["NO_MODEL_MESSAGE", "OpenAIProvider"]

NO_MODEL_MESSAGE = "no model given: set MessageRequest.model or ProviderConfig.model"


class OpenAIProvider:
    """Chat Completions or the Responses API (``ProviderConfig.api``), streaming or not.

    ``manager`` executes the tool calls and contributes its tools; without one, a default
    ``FunctionCallingManager`` (empty registry, secure defaults) is made on first use.
    ``client`` / ``http_client`` replace the SDK client or its HTTP client (proxies, tests).
    """

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        manager: FunctionCallingManager | None = None,
        client: openai.AsyncOpenAI | None = None,
        http_client: Any = None,
    ) -> None:
        self.config = config or ProviderConfig()
        self.client = client if client is not None else make_client(self.config, http_client)
        self._manager = manager
        self._transport = RawTransport(
            self.client, self.config.timeout_s, fast=self.config.lean_requests
        )
        self._turn: Turn = (
            ResponsesTurns(self._transport)
            if self.config.api == "responses"
            else ChatTurns(self._transport)
        )

    @property
    def manager(self) -> FunctionCallingManager:
        if self._manager is None:
            from tamma_tools.manager import FunctionCallingManager

            self._manager = FunctionCallingManager()
        return self._manager

    def _tools(
        self, request: MessageRequest, context: CallerContext | None
    ) -> list[dict[str, Any]]:
        if not self.config.function_calling.enabled:
            return []
        return merge_tools(request.tools, self.manager.get_available_tools(context))

    def _run(
        self, request: MessageRequest, context: CallerContext | None, *, stream: bool
    ) -> MessageStream:
        model = request.model or self.config.model
        if not model:
            raise ConfigError(NO_MODEL_MESSAGE)
        fc = self.config.function_calling
        # Offer only the tools this caller may call: the model cannot ask for the others.
        context = session_context(context, request)
        tools = self._tools(request, context)
        responses = self.config.api == "responses"
        stream_usage = self.config.stream_usage

        def build(
            messages: list[dict[str, Any]], tool_choice: ToolChoice | None, stream: bool
        ) -> dict[str, Any]:
            if responses:
                return responses_body(
                    request,
                    model=model,
                    messages=messages,
                    tools=tools,
                    tool_choice=tool_choice,
                    fc=fc,
                    stream=stream,
                )
            return chat_body(
                request,
                model=model,
                messages=messages,
                tools=tools,
                tool_choice=tool_choice,
                fc=fc,
                stream=stream,
                stream_usage=stream_usage,
            )

        return run_loop(
            turn=self._turn,
            build=build,
            manager=self.manager if fc.enabled else None,
            request=request,
            context=context,
            fc=fc,
            stream=stream,
        )

    def send_message(
        self, request: MessageRequest, context: CallerContext | None = None
    ) -> MessageStream:
        """The loop as a stream of events (text and argument deltas, tool calls, tool results,
        turn ends, the final message). A failed turn ends the stream with a ``StreamError``
        event; ``stream.error`` then holds the typed exception."""
        return self._run(request, context, stream=True)

    async def complete(
        self, request: MessageRequest, context: CallerContext | None = None
    ) -> CompletionResult:
        """The same loop without streaming: the final message, every tool result, the history.

        Raises the ``ProviderError`` of a failed turn (HTTP status, in-body error, cut or
        unreadable response); its ``details["result"]`` holds the run so far, whose history is
        valid to send. Loop detection and the turn limit do not raise: they set
        ``stop_reason`` and ``error`` on the result, whose history stays valid to send.
        """
        stream = self._run(request, context, stream=False)
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()
        result = stream.result()
        if isinstance(result.error, ProviderError):
            # Nothing is lost: the turns that completed stay reachable from the error.
            result.error.details["result"] = result
            raise result.error
        return result

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        await self.client.close()

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
