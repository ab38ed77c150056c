"""One object that wires the pieces together from settings: sandbox, manager, built-ins, audit.

The library's parts are usable one by one; ``Runtime`` is what the CLI (and most programs) want:
the configuration file (or ``Settings`` built in code) turned into a ready manager whose every
decision is audited, with one ``close()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tamma_tools.config import Settings
from tamma_tools.manager import FunctionCallingManager, Policy
from tamma_tools.manager.ratelimit import InMemoryRateLimiter, RateLimiter
from tamma_tools.sandbox.config import SandboxConfig

if TYPE_CHECKING:
    from tamma_tools.observability import Observability
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__all__ = ["Runtime"]


class Runtime:
    """Sandbox + manager + built-in tools + observability, built from ``Settings``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        builtins: bool = True,
        audit: bool | str | None = None,
        metrics: bool = False,
        sandbox_config: SandboxConfig | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.sandbox_config = sandbox_config or self.settings.sandbox_config()
        self._sandbox: ExecutionSandbox | None = None
        self.observability: Observability | None = None
        observers: list[Any] = []
        audit_target = self._audit_target(audit)
        if audit_target is not None or metrics:
            from tamma_tools.observability import Observability, open_audit_log

            audit_log = (
                open_audit_log(audit_target, max_pending=self.settings.audit.max_pending)
                if audit_target is not None
                else None
            )
            self.observability = Observability(
                audit=audit_log if audit_log is not None else False,
                metrics=metrics,
                tracing=True,
            )
            observers = self.observability.observers
        self.manager = FunctionCallingManager(
            config=self.settings.manager_config(),
            sandbox_config=self.sandbox_config,
            policy=Policy(self.settings.roles),
            rate_limiter=self._rate_limiter(),
            observers=observers,
        )
        if builtins:
            self.register_builtins()
        self._apply_rate_limit_overrides()

    # --- construction helpers ---------------------------------------------------------------

    def _audit_target(self, audit: bool | str | None) -> str | None:
        section = self.settings.audit
        if audit is False or (audit is None and not section.enabled):
            return None
        if isinstance(audit, str):
            return audit
        if section.backend == "postgres":
            assert section.url is not None  # checked when the settings were parsed
            return section.url
        return str(self.settings.resolve(section.path))

    def _rate_limiter(self) -> RateLimiter:
        section = self.settings.rate_limits
        if section.backend == "redis":
            from tamma_tools.manager.ratelimit_redis import RedisRateLimiter

            assert section.url is not None  # checked when the settings were parsed
            return RedisRateLimiter(section.url, on_failure=section.on_backend_error)
        return InMemoryRateLimiter()

    def register_builtins(self) -> None:
        from tamma_tools.builtin import register_builtin_tools

        register_builtin_tools(self.manager, config=self.sandbox_config)

    def _apply_rate_limit_overrides(self) -> None:
        for name, limit in self.settings.rate_limits.tools.items():
            entry = self.manager.registry.find(name)
            if entry is None:
                continue
            meta = entry.definition.metadata.model_copy(update={"rate_limit": limit})
            defn = entry.definition.model_copy(update={"metadata": meta})
            self.manager.registry.register(defn, entry.executor, replace=True)

    # --- use ----------------------------------------------------------------------------------

    @property
    def sandbox(self) -> ExecutionSandbox:
        return self.manager.sandbox

    @property
    def roots(self) -> tuple[Path, ...]:
        return self.sandbox_config.allowed_paths

    def close(self) -> None:
        self.manager.close()
        if self.observability is not None:
            self.observability.close()

    async def aclose(self) -> None:
        await self.manager.__aexit__(None, None, None)
        if self.observability is not None:
            self.observability.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
