"""An HTTP research agent: the model may fetch pages from an allowlist of domains, nothing else.

Private addresses, cloud metadata and every other domain are refused by the network policy
(resolved addresses are checked and pinned, redirects re-checked).

    OPENAI_API_KEY=... python examples/http_research.py "What is new in Python 3.13?"
"""

from __future__ import annotations

import asyncio
import sys

from tamma_tools import CallerContext, MessageRequest, OpenAIProvider, ProviderConfig, Runtime
from tamma_tools.config import parse_settings

ALLOWED = ["docs.python.org", "peps.python.org", "en.wikipedia.org"]


async def main(question: str, model: str) -> None:
    settings = parse_settings(
        {
            "network": {"enabled": True, "allowed_domains": ALLOWED},
            "roles": {"researcher": ["network:request"]},
            "audit": {"enabled": False},
        }
    )
    with Runtime(settings) as runtime:
        provider = OpenAIProvider(ProviderConfig(model=model), manager=runtime.manager)
        caller = CallerContext(user_id="me", roles=frozenset({"researcher"}))
        system = f"Answer from web pages. You may fetch only: {', '.join(ALLOWED)}."
        request = MessageRequest(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}]
        )
        result = await provider.complete(request, caller)
        for r in result.tool_results:
            print(f"[{r.function_name}] {'ok' if r.success else r.error_code}: {r.error or ''}")
        print(result.message["content"] if result.message else result.stop_reason)
        await provider.aclose()


if __name__ == "__main__":
    q = sys.argv[1] if len(sys.argv) > 1 else "Summarise PEP 8 in three bullet points."
    asyncio.run(main(q, sys.argv[2] if len(sys.argv) > 2 else "gpt-4o-mini"))
