"""Bad provider settings fail at construction with a ConfigError naming the field and what is
allowed, before any request is sent."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tamma_tools.errors import ConfigError
from tamma_tools.provider import FunctionCallingConfig, MessageRequest, ProviderConfig


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_turns": 0}, "FunctionCallingConfig.max_turns"),
        ({"max_concurrent_calls": -1}, "FunctionCallingConfig.max_concurrent_calls"),
        ({"loop_threshold": 0}, "FunctionCallingConfig.loop_threshold"),
        ({"tool_choice": "always"}, "FunctionCallingConfig.tool_choice"),
        ({"tool_choice": {"name": "add"}}, "FunctionCallingConfig.tool_choice"),
    ],
)
def test_function_calling_config_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        FunctionCallingConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api": "assistants"}, "ProviderConfig.api"),
        ({"timeout_s": 0}, "ProviderConfig.timeout_s"),
        ({"max_retries": -1}, "ProviderConfig.max_retries"),
    ],
)
def test_provider_config_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        ProviderConfig(**kwargs)


def test_a_request_rejects_an_unknown_tool_choice() -> None:
    with pytest.raises(ConfigError, match=r"MessageRequest\.tool_choice"):
        MessageRequest(messages=[], tool_choice="sometimes")  # type: ignore[arg-type]
    forced = {"type": "function", "function": {"name": "add"}}
    assert MessageRequest(messages=[], tool_choice=forced).tool_choice == forced


def test_the_api_key_is_not_in_the_config_repr() -> None:
    assert "sk-secret" not in repr(ProviderConfig(api_key="sk-secret"))
