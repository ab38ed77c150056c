"""A file assistant: the model may read, list and write files below one workspace, nothing else.

OPENAI_API_KEY=... python examples/file_assistant.py ./workspace "Summarise my notes"
OPENAI_BASE_URL=http://localhost:11434/v1 python examples/file_assistant.py ...  # Ollama etc.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tamma_tools import CallerContext, MessageRequest, OpenAIProvider, ProviderConfig, Runtime
from tamma_tools.config import parse_settings


async def main(workspace: Path, prompt: str, model: str) -> None:
    settings = parse_settings(
        {
            "sandbox": {"roots": [str(workspace)], "blocked_paths": [".env", "**/.env", "*.pem"]},
            "roles": {"assistant": ["file:read", "file:write"]},
            "audit": {"path": str(workspace.parent / "file-assistant-audit.db")},
        }
    )
    with Runtime(settings) as runtime:
        provider = OpenAIProvider(ProviderConfig(model=model), manager=runtime.manager)
        caller = CallerContext(
            user_id="me", session_id="file-assistant", roles=frozenset({"assistant"})
        )
        system = "You manage the user's files. Use the tools; never guess file contents."
        request = MessageRequest(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        )
        result = await provider.complete(request, caller)
        for r in result.tool_results:
            print(f"[{r.function_name}] {'ok' if r.success else r.error_code}")
        print(result.message["content"] if result.message else result.stop_reason)
        await provider.aclose()


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "workspace").resolve()
    root.mkdir(parents=True, exist_ok=True)
    text = sys.argv[2] if len(sys.argv) > 2 else "List my files and summarise them."
    asyncio.run(main(root, text, model=sys.argv[3] if len(sys.argv) > 3 else "gpt-4o-mini"))
