"""Real servers for tests, started from the system's binaries on loopback.

When a binary is missing the test is skipped, except in CI (``TAMMA_TOOLS_REQUIRE_SERVICES=1``),
where a missing service is a failure: those tests must run there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

REQUIRE_SERVICES = os.environ.get("TAMMA_TOOLS_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in CI but not installed")
    pytest.skip(f"{what} not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server")
        raise AssertionError  # unreachable
    with tempfile.TemporaryDirectory(prefix="tamma-redis-") as workdir:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", workdir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        server = RedisServer(port, process)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    server.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        try:
            yield server
        finally:
            server.stop()
