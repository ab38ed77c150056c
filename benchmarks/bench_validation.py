"""Per-call cost of validating tool arguments: our compiled validator next to ``jsonschema``.

Run: ``python benchmarks/bench_validation.py``. Workload of the project's performance research
(shared with ``bench_dispatch.py``): tool ``get_forecast`` (string enum, integer 1..14, optional
string array, nested object with 2 required strings, ``additionalProperties: false``) and a
92-byte arguments string. Rounds are interleaved (``_timing.measure``); ratios are medians of
per-round ratios. Target: our validator at least 20x faster than
``jsonschema.Draft202012Validator`` (built once).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import jsonschema_rs
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import measure, print_table
from bench_dispatch import ARGS, SCHEMA  # one workload for every benchmark
from tamma_tools.schema.definition import validate_tool_definition
from tamma_tools.schema.validator import ArgumentsValidator, compile_validator

BAD = {"city": "Bergen", "days": 30, "fields": "temp", "location": {"country": "NO"}, "x": 1}
TOOL = {"type": "function", "function": {"name": "get_forecast", "parameters": SCHEMA}}
TARGET_SPEEDUP = 20.0


def main() -> int:
    ours = compile_validator(SCHEMA)
    theirs = jsonschema.Draft202012Validator(SCHEMA)
    instance = orjson.loads(ARGS)

    # Check every candidate's answer before timing it.
    assert ours.is_valid(instance) and theirs.is_valid(instance)
    assert not ours.is_valid(BAD) and not theirs.is_valid(BAD)
    ours_errors, their_errors = ours.errors(BAD), list(theirs.iter_errors(BAD))
    assert len(ours_errors) == len(their_errors) == 5, (ours_errors, their_errors)
    assert validate_tool_definition(TOOL).valid

    is_valid, their_is_valid, loads = ours.is_valid, theirs.is_valid, orjson.loads
    raw_iter_errors = jsonschema_rs.validator_for(SCHEMA).iter_errors
    print(f"workload: get_forecast, {len(ARGS)}-byte arguments")

    validate = measure(
        {
            "tamma-tools (jsonschema-rs)": lambda: is_valid(instance),
            "jsonschema Draft202012Validator": lambda: their_is_valid(instance),
        },
        baseline="jsonschema Draft202012Validator",
    )
    print_table(
        "validate a parsed instance",
        validate,
        baseline="jsonschema Draft202012Validator",
        speedup=True,
    )

    parse = measure(
        {
            "orjson.loads + tamma-tools": lambda: is_valid(loads(ARGS)),
            "orjson.loads + jsonschema": lambda: their_is_valid(loads(ARGS)),
            "orjson.loads alone (floor)": lambda: loads(ARGS),
        },
        baseline="orjson.loads + jsonschema",
    )
    print_table(
        "orjson.loads + validate an arguments string",
        parse,
        baseline="orjson.loads + jsonschema",
        speedup=True,
    )

    errors = measure(
        {
            "tamma-tools errors() (5 messages)": lambda: ours.errors(BAD),
            "jsonschema iter_errors (5 errors)": lambda: list(theirs.iter_errors(BAD)),
            "jsonschema-rs iter_errors, its own messages (floor)": lambda: list(
                raw_iter_errors(BAD)
            ),
        },
        baseline="jsonschema iter_errors (5 errors)",
        rounds=11,
    )
    print_table(
        "collect every error of an invalid instance",
        errors,
        baseline="jsonschema iter_errors (5 errors)",
        speedup=True,
    )

    build = measure(
        {
            "ArgumentsValidator(schema) (uncached build)": lambda: ArgumentsValidator(SCHEMA),
            "compile_validator(schema) (cached)": lambda: compile_validator(SCHEMA),
            "validate_tool_definition (registration)": lambda: validate_tool_definition(TOOL),
            "jsonschema Draft202012Validator(schema)": lambda: jsonschema.Draft202012Validator(
                SCHEMA
            ),
        },
        rounds=11,
    )
    print_table("build / register once per tool", build)

    speedups = {
        "validate": 1.0 / validate["tamma-tools (jsonschema-rs)"].ratio,  # type: ignore[operator]
        "loads + validate": 1.0 / parse["orjson.loads + tamma-tools"].ratio,  # type: ignore[operator]
    }
    print()
    for label, value in speedups.items():
        verdict = "meets" if value >= TARGET_SPEEDUP else "MISSES"
        print(
            f"{label}: {value:.1f}x faster than jsonschema ({verdict} the {TARGET_SPEEDUP:.0f}x target)"
        )
    return 0 if all(v >= TARGET_SPEEDUP for v in speedups.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
