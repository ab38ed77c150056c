"""The provider sits at the top of the data flow (DESIGN): it talks to the manager and never
reaches past it into the sandbox or the policy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tamma_tools.provider

PROVIDER_DIR = Path(tamma_tools.provider.__file__).parent
FORBIDDEN = ("tamma_tools.sandbox", "tamma_tools.manager.policy", "tamma_tools.builtin")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_provider_module_imports_the_sandbox_or_the_policy() -> None:
    modules = sorted(PROVIDER_DIR.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        bad = [name for name in _imports(path) if name.startswith(FORBIDDEN)]
        assert bad == [], f"{path.name} imports {bad}"


def test_the_environment_supplies_key_and_url_when_the_config_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tamma_tools.errors import ConfigError
    from tamma_tools.provider import OpenAIProvider, ProviderConfig

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    provider = OpenAIProvider(ProviderConfig(model="m"))
    assert provider.client.api_key == "sk-from-env"
    assert str(provider.client.base_url) == "http://127.0.0.1:9/v1/"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider(ProviderConfig(model="m"))
