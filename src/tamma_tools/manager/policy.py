"""Role-based access control: which permissions a caller holds.

Deny by default: a tool runs only if the caller holds every permission its metadata lists.
Permissions come from the caller's own ``permissions`` plus those of its ``roles``. A granted
permission ending in ``:*`` covers its whole family (``file:*`` covers ``file:read``); ``*``
covers everything and must be granted explicitly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from tamma_tools.types import CallerContext

__all__ = ["Policy"]

_CACHE_SIZE = 4096


class Policy:
    """Maps roles to permissions and answers "may this caller use this tool?"."""

    def __init__(self, roles: Mapping[str, Iterable[str]] | None = None) -> None:
        self._roles: dict[str, frozenset[str]] = {
            role: frozenset(perms) for role, perms in (roles or {}).items()
        }
        self._cache: OrderedDict[CallerContext, frozenset[str]] = OrderedDict()

    @property
    def roles(self) -> dict[str, frozenset[str]]:
        return dict(self._roles)

    def granted(self, context: CallerContext) -> frozenset[str]:
        """Every permission the caller holds (own plus roles'), cached per context."""
        cached = self._cache.get(context)
        if cached is not None:
            return cached
        perms = set(context.permissions)
        for role in context.roles:
            perms |= self._roles.get(role, frozenset())
        result = frozenset(perms)
        self._cache[context] = result
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    @staticmethod
    def covers(granted: frozenset[str], permission: str) -> bool:
        if permission in granted or "*" in granted:
            return True
        family, sep, _ = permission.partition(":")
        return bool(sep) and f"{family}:*" in granted

    def missing(self, context: CallerContext, required: frozenset[str]) -> list[str]:
        """Permissions in ``required`` the caller does not hold (empty when allowed)."""
        if not required:
            return []
        granted = self.granted(context)
        if required <= granted:
            return []
        return sorted(p for p in required if not self.covers(granted, p))
