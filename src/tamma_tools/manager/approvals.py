"""Calls waiting for a human's decision (tools with ``requires_approval``)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tamma_tools.errors import TammaToolsError
from tamma_tools.types import CallerContext, FunctionCall

__all__ = ["ApprovalQueue", "PendingApproval"]


@dataclass(slots=True)
class PendingApproval:
    """A validated, authorized call parked until someone approves or rejects it."""

    call: FunctionCall
    context: CallerContext
    arguments: dict[str, Any]
    repairs: list[str]
    created_at: float = field(default_factory=time.time)


class ApprovalQueue:
    """Bounded: when full, new approval-requiring calls are refused rather than old ones dropped."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._pending: OrderedDict[str, PendingApproval] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: PendingApproval) -> None:
        if item.call.id in self._pending:
            raise TammaToolsError(
                f"call id {item.call.id!r} is already waiting for approval",
                code="approval_duplicate",
            )
        if len(self._pending) >= self.max_pending:
            raise TammaToolsError(
                f"too many calls are waiting for approval ({self.max_pending}); "
                "approve or reject some first",
                code="approval_queue_full",
            )
        self._pending[item.call.id] = item

    def pop(self, call_id: str) -> PendingApproval:
        try:
            return self._pending.pop(call_id)
        except KeyError:
            raise TammaToolsError(
                f"no call {call_id!r} is waiting for approval", code="approval_not_found"
            ) from None

    def list(self) -> list[PendingApproval]:
        return list(self._pending.values())
