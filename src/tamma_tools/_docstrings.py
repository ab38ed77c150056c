"""Docstrings as tool and parameter descriptions: Google, NumPy and Sphinx (reST) styles.

A tool's docstring is what the model reads to decide when and how to call it, so the summary
and the per-parameter texts are lifted out of it; ``Returns``/``Raises``/``Examples`` sections
are for Python readers and stay out of the schema. The parsing itself is ``docstring_parser``'s
(one library that knows all three styles and picks the one that fits); this module only
normalises its output into the small shape ``@tool`` needs.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import docstring_parser

__all__ = ["DocstringStyle", "ParsedDocstring", "parse_docstring"]

DocstringStyle: TypeAlias = Literal["google", "numpy", "sphinx", "plain"]
"""Which convention the docstring follows; ``plain`` when it documents no parameters."""

_STYLES: dict[docstring_parser.DocstringStyle, DocstringStyle] = {
    docstring_parser.DocstringStyle.GOOGLE: "google",
    docstring_parser.DocstringStyle.NUMPYDOC: "numpy",
    docstring_parser.DocstringStyle.REST: "sphinx",
    docstring_parser.DocstringStyle.EPYDOC: "sphinx",
}

# A blank line separates paragraphs; any other line break inside one is hard wrapping, except
# before a list item, which the model should still see as a list.
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"[ \t]+")
_LIST_ITEM = re.compile(r"^(?:[-*+•]|\d+[.)])\s")


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    """The parts of a docstring that go into a tool definition."""

    description: str | None = None
    """Summary plus extended description, paragraphs separated by a blank line."""
    params: dict[str, str] = field(default_factory=dict)
    """Parameter name -> its description, wrapped lines joined."""
    style: DocstringStyle = "plain"


def _join_wrapped(text: str) -> str:
    """Undo hard wrapping: the model gains nothing from the source's line breaks in a sentence."""
    paragraphs: list[str] = []
    for block in _PARAGRAPH_BREAK.split(text):
        lines: list[str] = []
        for raw in block.splitlines():
            line = _WHITESPACE.sub(" ", raw).strip()
            if not line:
                continue
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        if lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split a docstring into description and parameter texts; never raises on odd input.

    Args:
        doc: The raw ``__doc__`` (indented as written) or ``None``.
    """
    if not doc or not doc.strip():
        return ParsedDocstring()
    text = inspect.cleandoc(doc)
    try:
        parsed = docstring_parser.parse(text)
    except docstring_parser.ParseError:
        # A docstring that looks like a style but breaks it (e.g. "Args:" with no entries)
        # still has a useful summary: keep the prose, drop the unparseable sections.
        return ParsedDocstring(description=_join_wrapped(text) or None)
    parts = [p for p in (parsed.short_description, parsed.long_description) if p]
    description = "\n\n".join(_join_wrapped(p) for p in parts) or None
    params: dict[str, str] = {}
    for param in parsed.params:
        # Sphinx allows ":param int days:"; docstring_parser gives "days" as arg_name, but
        # Google's "*args"/"**kwargs" entries keep their stars: they never name a JSON property.
        name = param.arg_name.strip()
        if not name or name.startswith("*") or not param.description:
            continue
        params[name] = _join_wrapped(param.description)
    style: DocstringStyle = "plain"
    if parsed.params and parsed.style is not None:
        style = _STYLES.get(parsed.style, "plain")
    return ParsedDocstring(description=description, params=params, style=style)
