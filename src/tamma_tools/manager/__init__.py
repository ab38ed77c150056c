"""The execution engine: every tool call goes through ``FunctionCallingManager``."""

from __future__ import annotations

from tamma_tools.manager.approvals import PendingApproval
from tamma_tools.manager.calls import ensure_tool_messages, extract_calls
from tamma_tools.manager.config import ManagerConfig, RepairMode
from tamma_tools.manager.manager import FunctionCallingManager
from tamma_tools.manager.policy import Policy

__all__ = [
    "FunctionCallingManager",
    "ManagerConfig",
    "PendingApproval",
    "Policy",
    "RepairMode",
    "ensure_tool_messages",
    "extract_calls",
]
