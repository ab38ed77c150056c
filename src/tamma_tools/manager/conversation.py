"""Per-conversation counters: the retry budget for bad arguments and loop detection.

A conversation is identified by the caller's ``session_id``; calls without one are not tracked.
State is bounded: at most ``max_conversations`` conversations (least recently used evicted) and
at most ``_MAX_KEYS`` distinct calls remembered per conversation.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["ConversationTracker"]

_MAX_KEYS = 1024


class _Conversation:
    __slots__ = ("arg_errors", "calls")

    def __init__(self) -> None:
        self.arg_errors: dict[str, int] = {}
        self.calls: OrderedDict[tuple[str, bytes], int] = OrderedDict()


class ConversationTracker:
    def __init__(self, *, retry_budget: int, loop_threshold: int, max_conversations: int) -> None:
        self.retry_budget = retry_budget
        self.loop_threshold = loop_threshold
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()

    def _get(self, session_id: str) -> _Conversation:
        conv = self._conversations.get(session_id)
        if conv is None:
            conv = _Conversation()
            self._conversations[session_id] = conv
            if len(self._conversations) > self.max_conversations:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(session_id)
        return conv

    def budget_spent(self, session_id: str, tool: str) -> bool:
        """True when the model has used up its retries for bad arguments on this tool."""
        conv = self._conversations.get(session_id)
        return conv is not None and conv.arg_errors.get(tool, 0) >= self.retry_budget > 0

    def argument_error(self, session_id: str, tool: str) -> int:
        """Count one more bad-arguments call; returns the retries left."""
        conv = self._get(session_id)
        count = conv.arg_errors.get(tool, 0) + 1
        conv.arg_errors[tool] = count
        return max(self.retry_budget - count, 0)

    def arguments_ok(self, session_id: str, tool: str) -> None:
        conv = self._conversations.get(session_id)
        if conv is not None:
            conv.arg_errors.pop(tool, None)

    def repeat_count(self, session_id: str, tool: str, canonical_args: bytes) -> int:
        """Record one more identical call and return how many there have been."""
        conv = self._get(session_id)
        key = (tool, canonical_args)
        count = conv.calls.get(key, 0) + 1
        conv.calls[key] = count
        conv.calls.move_to_end(key)
        if len(conv.calls) > _MAX_KEYS:
            conv.calls.popitem(last=False)
        return count

    def forget(self, session_id: str) -> None:
        self._conversations.pop(session_id, None)
