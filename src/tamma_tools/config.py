"""The configuration file (TOML): one schema, validated with precise errors.

The file is optional: the Python API takes the same settings as objects (``SandboxConfig``,
``ManagerConfig``, ``Policy``...). ``load_settings(path)`` reads the file with the standard
library's ``tomllib`` and reports every problem as ``file: key: what is wrong (what is allowed)``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tamma_tools.errors import ConfigError
from tamma_tools.manager.config import ManagerConfig
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.types import CallerContext, RateLimit

__all__ = ["Settings", "load_settings", "parse_settings"]

MiB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SandboxSection(_Section):
    roots: list[str] = Field(default_factory=list)
    """Directories tools may read and write below, relative to the config file."""
    blocked_paths: list[str] = Field(default_factory=list)
    max_execution_time_s: float = Field(default=30.0, gt=0)
    max_memory_bytes: int = Field(default=512 * MiB, gt=0)
    max_file_size_bytes: int = Field(default=10 * MiB, gt=0)
    max_output_bytes: int = Field(default=1 * MiB, gt=0)
    default_isolation: Literal["in_process", "worker", "process"] = "process"
    allow_weak_isolation: bool = False
    enable_file_system_access: bool = True


class NetworkSection(_Section):
    enabled: bool = False
    allowed_domains: list[str] = Field(default_factory=list)
    blocked_domains: list[str] = Field(default_factory=list)
    allowed_ports: list[int] = Field(default_factory=lambda: [80, 443])

    @field_validator("allowed_ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        bad = [p for p in ports if not 0 < p < 65536]
        if bad:
            raise ValueError(f"ports must be between 1 and 65535, got {bad}")
        return ports


class CommandsSection(_Section):
    enabled: bool = False
    allowed: list[str] = Field(default_factory=list)
    """Binaries ``run_command`` may start (names or absolute paths)."""


class ManagerSection(_Section):
    max_concurrent_calls: int = Field(default=10, gt=0)
    default_timeout_s: float = Field(default=30.0, gt=0)
    max_argument_bytes: int = Field(default=1 << 20, gt=0)
    max_argument_depth: int = Field(default=64, gt=0)
    repair: Literal["off", "safe"] = "off"
    retry_budget: int = Field(default=3, ge=0)
    loop_threshold: int = Field(default=5, ge=0)


class CallerSection(_Section):
    """The caller the CLI acts as (the library takes a ``CallerContext`` per call)."""

    user_id: str = "cli"
    session_id: str | None = None
    roles: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)


class RateLimitSection(_Section):
    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None
    """``redis://host:port/db`` when the backend is ``redis``."""
    on_backend_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    tools: dict[str, RateLimit] = Field(default_factory=dict)
    """Per-tool limits that override the tools' own metadata."""


class AuditSection(_Section):
    enabled: bool = True
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "tamma-audit.db"
    """SQLite file, relative to the config file."""
    url: str | None = None
    """PostgreSQL connection URL when the backend is ``postgres``."""
    max_pending: int | None = Field(default=10_000, gt=0)
    """Records waiting for the writer before callers are made to wait: bounds what a SIGKILL
    of the process can lose. ``None``: never wait (unbounded backlog under overload)."""


class MetricsSection(_Section):
    port: int | None = Field(default=None, gt=0, lt=65536)


class ModelSection(_Section):
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (never the key itself)."""


class Settings(_Section):
    """Everything the file can say. Every section and key is optional."""

    sandbox: SandboxSection = Field(default_factory=SandboxSection)
    network: NetworkSection = Field(default_factory=NetworkSection)
    commands: CommandsSection = Field(default_factory=CommandsSection)
    manager: ManagerSection = Field(default_factory=ManagerSection)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    caller: CallerSection = Field(default_factory=CallerSection)
    rate_limits: RateLimitSection = Field(default_factory=RateLimitSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    model: ModelSection = Field(default_factory=ModelSection)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)

    def sandbox_config(self) -> SandboxConfig:
        s, n, c = self.sandbox, self.network, self.commands
        return SandboxConfig(
            max_execution_time_s=s.max_execution_time_s,
            max_memory_bytes=s.max_memory_bytes,
            max_file_size_bytes=s.max_file_size_bytes,
            max_output_bytes=s.max_output_bytes,
            allowed_paths=tuple(self.resolve(r) for r in s.roots),
            blocked_paths=tuple(s.blocked_paths),
            allowed_domains=tuple(n.allowed_domains),
            blocked_domains=tuple(n.blocked_domains),
            allowed_ports=tuple(n.allowed_ports),
            enable_network_access=n.enabled,
            enable_file_system_access=s.enable_file_system_access,
            enable_system_commands=c.enabled,
            allowed_commands=tuple(c.allowed),
            allow_weak_isolation=s.allow_weak_isolation,
            default_isolation=s.default_isolation,
        )

    def manager_config(self) -> ManagerConfig:
        return ManagerConfig(**self.manager.model_dump())

    def caller_context(self) -> CallerContext:
        c = self.caller
        return CallerContext(
            user_id=c.user_id,
            session_id=c.session_id,
            roles=frozenset(c.roles),
            permissions=frozenset(c.permissions),
        )


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "<root>"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see the configuration reference)"
    if kind == "literal_error":
        allowed = error.get("ctx", {}).get("expected", "")
        return f"{key}: {error['input']!r} is not allowed (allowed: {allowed})"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def parse_settings(
    data: dict[str, Any], *, source: str = "<config>", base_dir: Path | None = None
) -> Settings:
    """Validate a parsed TOML document; every problem is listed in one ``ConfigError``."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {_describe(e)}" for e in exc.errors()]  # type: ignore[arg-type]
        raise ConfigError("\n".join(problems), problems=problems) from None
    if base_dir is not None:
        settings.base_dir = base_dir
    if settings.rate_limits.backend == "redis" and not settings.rate_limits.url:
        raise ConfigError(f"{source}: rate_limits.url: required when rate_limits.backend = 'redis'")
    if settings.audit.backend == "postgres" and not settings.audit.url:
        raise ConfigError(f"{source}: audit.url: required when audit.backend = 'postgres'")
    return settings


def load_settings(path: str | Path) -> Settings:
    """Read and validate a TOML configuration file; relative paths are taken from its folder."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse_settings(data, source=str(p), base_dir=p.resolve().parent)
