"""Manager configuration: secure defaults, every limit named with its unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from tamma_tools.errors import ConfigError

__all__ = ["ManagerConfig", "RepairMode"]

RepairMode: TypeAlias = Literal["off", "safe"]
"""``off``: strict JSON only. ``safe``: common model mistakes are repaired and recorded."""


@dataclass(frozen=True)
class ManagerConfig:
    """How the manager treats every call.

    Which setting wins for the deadline: the smallest of ``default_timeout_s``, the tool's
    ``metadata.timeout_s``, the sandbox's ``max_execution_time_s`` and the caller's
    ``resource_limits.timeout_s``. The output cap works the same way.
    """

    max_concurrent_calls: int = 10
    """Calls of one batch running at once; also the size of the thread pool for sync tools."""
    default_timeout_s: float = 30.0
    max_argument_bytes: int = 1 << 20
    """Arguments larger than this are refused before parsing."""
    max_argument_depth: int = 64
    """Arguments nesting deeper than this are refused before parsing."""
    repair: RepairMode = "off"
    max_output_bytes: int = 1 << 20
    """Results longer than this are cut (head + tail) with a marker saying how much was cut."""
    retry_budget: int = 3
    """Consecutive argument errors per tool and conversation before the model is told to stop."""
    loop_threshold: int = 5
    """The N-th identical call (same tool, same arguments) in a conversation is refused."""
    history_size: int = 1000
    """Decisions kept in the in-memory ring buffer (0 disables it)."""
    max_conversations: int = 10_000
    """Conversations whose retry and loop counters are remembered (least recently used evicted)."""
    max_pending_approvals: int = 1000

    def __post_init__(self) -> None:
        for name in (
            "max_concurrent_calls",
            "default_timeout_s",
            "max_argument_bytes",
            "max_argument_depth",
            "max_output_bytes",
            "max_conversations",
            "max_pending_approvals",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"ManagerConfig.{name} must be > 0, got {value!r}")
        for name in ("retry_budget", "loop_threshold", "history_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ManagerConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.repair not in ("off", "safe"):
            raise ConfigError(f"ManagerConfig.repair must be 'off' or 'safe', got {self.repair!r}")
