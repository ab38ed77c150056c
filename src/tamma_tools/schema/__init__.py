"""JSON-Schema handling: argument validators, tool-definition rules, strict-mode conversion."""

from __future__ import annotations

from tamma_tools.schema.definition import (
    assert_valid_definition,
    validate_tool_definition,
    validate_tool_list,
)
from tamma_tools.schema.strict import (
    StrictLimits,
    StrictReport,
    check_strict_schema,
    to_strict_schema,
)
from tamma_tools.schema.validator import (
    ArgumentsValidator,
    compile_validator,
    format_instance_path,
)

__all__ = [
    "ArgumentsValidator",
    "StrictLimits",
    "StrictReport",
    "assert_valid_definition",
    "check_strict_schema",
    "compile_validator",
    "format_instance_path",
    "to_strict_schema",
    "validate_tool_definition",
    "validate_tool_list",
]
