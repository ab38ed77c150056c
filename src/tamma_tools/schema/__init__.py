"""JSON-Schema handling: argument validators, tool-definition rules, strict-mode conversion."""

from __future__ import annotations

from tamma_tools.schema.validator import ArgumentsValidator, compile_validator

__all__ = ["ArgumentsValidator", "compile_validator"]
