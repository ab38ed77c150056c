"""Round trip of a trivial tool per isolation level, next to the usual alternatives, in one run.

Run: ``python benchmarks/bench_isolation.py``. Candidates are timed in interleaved rounds so a
busy machine slows all of them alike; the table gives median and p99 per call and each median's
ratio to a ``ProcessPoolExecutor`` round trip and to a fresh ``python -c`` per call measured in the
same run.

* ``in_process``: ``ExecutionSandbox.run`` with the built-ins' level (cooperative timeout only).
* ``worker``: a persistent clean interpreter under the same kernel layers, locked down once at
  start, killed and replaced on overrun.
* ``process``: clean zygote -> fork per call -> rlimits + empty netns + Landlock + seccomp,
  pidfd kill, capped pipes, JSON result (every layer this kernel offers is on).
* ``ProcessPoolExecutor``: ``loop.run_in_executor`` on a warm pool (no isolation between calls).
* ``fresh python -c``: a new interpreter per call (what "just use subprocess" costs).

Targets (the sandbox issue): worker median <= 0.25x ProcessPoolExecutor's; process median under
5 ms with every layer on and at least 4x faster than a fresh interpreter per call.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)


def trivial(a: int, b: int) -> int:
    return a + b


async def main(rounds: int = 20) -> None:
    sys.path.insert(0, HERE)
    # Import this file as a module so the executor is importable by path in the zygote/workers
    # and picklable by reference for the ProcessPoolExecutor.
    import bench_isolation as me
    from tamma_tools.sandbox.config import SandboxConfig, effective_limits
    from tamma_tools.sandbox.sandbox import ExecutionSandbox
    from tamma_tools.types import CallerContext, ToolDefinition

    sandbox = ExecutionSandbox(SandboxConfig(worker_count=1))
    ctx = CallerContext()
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(max_workers=1)

    def via_sandbox(isolation: str) -> Callable[[], Awaitable[Any]]:
        tool = ToolDefinition.model_validate(
            {"type": "function", "function": {"name": "trivial"},
             "metadata": {"isolation": isolation}}
        )  # fmt: skip
        limits = effective_limits(sandbox.config, tool.metadata, ctx)

        async def call() -> Any:
            return await sandbox.run(
                call_id="bench", tool=tool, executor=me.trivial, arguments={"a": 1, "b": 2},
                context=ctx, context_param=None, limits=limits, isolation=isolation,  # type: ignore[arg-type]
            )  # fmt: skip

        return call

    async def via_pool() -> Any:
        return await loop.run_in_executor(pool, me.trivial, 1, 2)

    async def via_fresh_python() -> Any:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", "import json; print(json.dumps(1 + 2))",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        return int(out)

    candidates: dict[str, tuple[Callable[[], Awaitable[Any]], int]] = {
        "in_process": (via_sandbox("in_process"), 200),
        "worker": (via_sandbox("worker"), 200),
        "process (all layers)": (via_sandbox("process"), 15),
        "ProcessPoolExecutor": (via_pool, 200),
        "fresh python -c": (via_fresh_python, 2),
    }
    for fn, _ in candidates.values():  # warm up: start zygote, workers, pool; probe the kernel
        for _ in range(3):
            assert await fn() == 3
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (fn, per_round) in candidates.items():
            for _ in range(per_round):
                started = time.perf_counter()
                await fn()
                samples[name].append(time.perf_counter() - started)

    caps = sandbox.capabilities()
    process_tool = ToolDefinition.model_validate({"type": "function", "function": {"name": "t"}})
    layers = sandbox.layers_in_force("process", process_tool)  # workers get the same layers
    await sandbox.aclose()
    pool.shutdown()

    med = {name: statistics.median(s) for name, s in samples.items()}
    p99 = {name: statistics.quantiles(s, n=100)[98] if len(s) >= 100 else max(s)
           for name, s in samples.items()}  # fmt: skip
    base_pool, base_fresh = med["ProcessPoolExecutor"], med["fresh python -c"]
    print(f"\nTrivial tool round trip ({rounds} interleaved rounds; kernel {caps.kernel}, "
          f"process and worker layers: {', '.join(layers)})\n")  # fmt: skip
    header = f"{'candidate':<24}{'n':>6}{'median ms':>12}{'p99 ms':>10}{'x PPE':>9}{'x fresh':>9}"
    print(header)
    print("-" * len(header))
    for name in candidates:
        print(f"{name:<24}{len(samples[name]):>6}{med[name] * 1e3:>12.3f}{p99[name] * 1e3:>10.3f}"
              f"{med[name] / base_pool:>9.2f}{med[name] / base_fresh:>9.3f}")  # fmt: skip
    worker_ratio = med["worker"] / base_pool
    process_ms = med["process (all layers)"] * 1e3
    speedup = base_fresh / med["process (all layers)"]
    print(f"\nworker / ProcessPoolExecutor = {worker_ratio:.2f}  (target <= 0.25)"
          f"  {'OK' if worker_ratio <= 0.25 else 'MISSED'}")  # fmt: skip
    print(f"process median = {process_ms:.2f} ms  (target < 5 ms)"
          f"  {'OK' if process_ms < 5 else 'MISSED'}")  # fmt: skip
    print(f"fresh python / process = {speedup:.1f}x  (target >= 4x)"
          f"  {'OK' if speedup >= 4 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
