"""``get_system_info``: what a model may know about the machine, from an allowlist only.

No environment variables (they hold secrets), no network interfaces or host names (they map the
network), no user names. Memory and uptime come from ``/proc`` where it exists.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from tamma_tools.types import ToolDefinition

__all__ = ["SYSTEM_INFO_DEFINITION", "get_system_info"]

SYSTEM_INFO_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "get_system_info",
            "description": (
                "Basic facts about the machine the tools run on: operating system, CPU "
                "architecture, Python version, CPU count, total and available memory, uptime."
            ),
            "parameters": {"type": "object", "properties": {}, "additionalProperties": False},
            "strict": True,
        },
        "metadata": {
            "category": "system",
            "permissions": ["system:info"],
            "timeout_s": 5,
            "isolation": "in_process",
            "read_only": True,
            "idempotent": True,
            "tags": ["builtin"],
        },
    }
)


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def _uptime_s() -> float | None:
    try:
        with open("/proc/uptime", encoding="ascii") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def get_system_info() -> dict[str, Any]:
    mem = _meminfo()
    uptime = _uptime_s()
    return {
        "platform": platform.system(),
        "platform_release": platform.release(),
        "architecture": platform.machine(),
        "python_version": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": mem.get("MemTotal"),
        "memory_available_bytes": mem.get("MemAvailable"),
        "uptime_s": round(uptime, 1) if uptime is not None else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
