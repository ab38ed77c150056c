"""Sandbox: path and network policy, and isolation the operating system enforces."""

from __future__ import annotations

from tamma_tools.sandbox.config import EffectiveLimits, SandboxConfig, effective_limits

__all__ = ["EffectiveLimits", "SandboxConfig", "effective_limits"]
