"""Sandbox configuration: secure by default, every limit named with its unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tamma_tools.errors import ConfigError
from tamma_tools.types import CallerContext, Isolation, ToolMetadata

__all__ = ["EffectiveLimits", "SandboxConfig", "effective_limits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxConfig:
    """What tools may touch and how much they may use.

    Which setting wins: for each limit the *smallest* of this config, the tool's metadata and the
    caller's ``ResourceLimits`` applies (see ``effective_limits``).
    """

    max_execution_time_s: float = 30.0
    """Wall-clock deadline per call; isolated tools are killed when it passes."""
    max_memory_bytes: int = 512 * MiB
    """Address-space limit of an isolated call (RLIMIT_AS)."""
    max_file_size_bytes: int = 10 * MiB
    """Largest file a tool may write (RLIMIT_FSIZE in isolated calls, checked by built-ins)."""
    max_output_bytes: int = 1 * MiB
    """Largest result handed back to the model; longer output is cut head + tail."""
    max_cpu_time_s: float | None = None
    """CPU-time limit (RLIMIT_CPU) of an isolated call; defaults to the wall-clock deadline."""
    max_open_files: int = 256
    max_processes: int = 64
    max_result_bytes: int = 8 * MiB
    """Largest JSON value an isolated call may send back (before the output cap cuts it)."""
    max_files_created: int = 10_000
    """New files and directories one isolated call may create (RLIMIT_FSIZE counts no inodes)."""
    allowed_paths: tuple[Path, ...] = ()
    """Roots tools may read and write below. Empty means no file access at all."""
    blocked_paths: tuple[str, ...] = ()
    """Globs matched against the resolved path relative to its root (``.env``, ``secrets/**``)."""
    allowed_domains: tuple[str, ...] = ()
    """When non-empty, only these domains and their subdomains may be reached."""
    blocked_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = (80, 443)
    enable_network_access: bool = False
    enable_file_system_access: bool = True
    enable_system_commands: bool = False
    allowed_commands: tuple[str, ...] = ()
    """Binaries ``run_command`` may start, by name or absolute path, when commands are enabled."""
    allow_weak_isolation: bool = False
    """Run user tools even when an isolation layer this config needs is missing on this kernel."""
    default_isolation: Isolation = "process"
    """Isolation for tools whose metadata does not say (built-ins declare ``in_process``)."""
    worker_count: int = 2
    """Persistent workers for ``isolation="worker"`` tools."""
    allow_private_networks_for_testing: bool = False
    """TEST ONLY: lets the network policy reach loopback/private addresses. Never in production."""

    def __post_init__(self) -> None:
        for name in (
            "max_execution_time_s",
            "max_memory_bytes",
            "max_file_size_bytes",
            "max_output_bytes",
            "max_open_files",
            "max_processes",
            "max_result_bytes",
            "max_files_created",
            "worker_count",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"SandboxConfig.{name} must be > 0, got {value!r}")
        if self.max_cpu_time_s is not None and self.max_cpu_time_s <= 0:
            raise ConfigError(
                f"SandboxConfig.max_cpu_time_s must be > 0, got {self.max_cpu_time_s!r}"
            )
        object.__setattr__(self, "allowed_paths", tuple(Path(p) for p in self.allowed_paths))
        object.__setattr__(self, "blocked_paths", tuple(str(p) for p in self.blocked_paths))
        for name in ("allowed_domains", "blocked_domains", "allowed_commands", "allowed_ports"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """The limits that apply to one call after config, tool and caller have been combined."""

    timeout_s: float
    max_memory_bytes: int
    max_output_bytes: int
    max_file_size_bytes: int
    max_cpu_time_s: float
    max_open_files: int = 256
    max_processes: int = 64
    max_result_bytes: int = 8 * MiB
    """Largest JSON value an isolated call may send back (before the output cap cuts it)."""
    max_files_created: int = 10_000
    """New files and directories one isolated call may create (RLIMIT_FSIZE counts no inodes)."""
    extra: dict[str, object] = field(default_factory=dict)


def _smallest(*values: float | int | None) -> float:
    present = [v for v in values if v is not None]
    return min(present)


def effective_limits(
    config: SandboxConfig, metadata: ToolMetadata, context: CallerContext | None
) -> EffectiveLimits:
    """Smallest of config, tool metadata and caller limits, per limit."""
    caller = context.resource_limits if context is not None else None
    timeout = _smallest(
        config.max_execution_time_s, metadata.timeout_s, caller.timeout_s if caller else None
    )
    memory = int(_smallest(config.max_memory_bytes, caller.max_memory_bytes if caller else None))
    output = int(
        _smallest(
            config.max_output_bytes,
            metadata.max_output_bytes,
            caller.max_output_bytes if caller else None,
        )
    )
    cpu = config.max_cpu_time_s if config.max_cpu_time_s is not None else timeout
    return EffectiveLimits(
        timeout_s=float(timeout),
        max_memory_bytes=memory,
        max_output_bytes=output,
        max_file_size_bytes=config.max_file_size_bytes,
        max_cpu_time_s=float(min(cpu, timeout)),
        max_open_files=config.max_open_files,
        max_processes=config.max_processes,
        max_result_bytes=config.max_result_bytes,
        max_files_created=config.max_files_created,
    )
