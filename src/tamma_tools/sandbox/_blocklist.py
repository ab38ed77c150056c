"""Block-list globs for the path policy, matched against in-root paths.

Syntax as in ``.gitignore``, because that is what users already write: a pattern without ``/``
matches a name at any depth (``.env``, ``*.pem``); a pattern with ``/`` is anchored at the root
(``secrets/**``); ``**`` spans directories; ``*``, ``?`` and ``[...]`` stay within one name; a
blocked directory blocks everything beneath it. Matching is case-insensitive: on a
case-insensitive file system (macOS, a mounted FAT/SMB share) ``.ENV`` *is* ``.env``, and refusing
``.ENV`` on Linux costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["Blocklist", "normalise_components"]


def _compile(pattern: str) -> re.Pattern[str]:
    pat = pattern.strip().strip("/").casefold()
    parts = [p for p in pat.split("/") if p not in ("", ".")]
    out = "^" if "/" in pat else "^(?:.*/)?"
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out += ".*" if last else "(?:.*/)?"
            continue
        out += _translate(part) + ("" if last else "/")
    return re.compile(out + "(?:/.*)?$", re.DOTALL)


def _translate(part: str) -> str:
    out, i = "", 0
    while i < len(part):
        c = part[i]
        i += 1
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and "]" in part[i + 1 :]:
            end = part.index("]", i + 1)
            body = part[i:end]
            i = end + 1
            neg = body[:1] in ("!", "^")
            body = body[1:] if neg else body
            out += "[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]"
        else:
            out += re.escape(c)
    return out


class Blocklist:
    """Compiled block-list patterns; ``match`` names the first pattern that blocks a path."""

    __slots__ = ("_compiled",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self._compiled = [(p, _compile(p)) for p in patterns if p.strip().strip("/")]

    def match(self, parts: Sequence[str]) -> str | None:
        if not self._compiled or not parts:
            return None
        text = "/".join(parts).casefold()
        for pattern, regex in self._compiled:
            if regex.match(text):
                return pattern
        return None


def normalise_components(comps: Sequence[str]) -> list[str]:
    """Lexical ``..`` collapse, for matching the *requested* path as well as the resolved one."""
    out: list[str] = []
    for comp in comps:
        if comp == "..":
            if out:
                out.pop()
        elif comp not in ("", "."):
            out.append(comp)
    return out
