"""Tool bodies for the isolation tests: importable by path in the zygote and the workers.

Each abuse case is what a buggy or hostile tool could do; the tests assert that the sandbox stops
it within its limit and stays usable. Keep this module free of test-framework imports: the
isolated interpreters import it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from typing import Any

from tamma_tools.types import CallerContext


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def whoami(context: CallerContext) -> dict[str, Any]:
    return {"user": context.user_id, "roles": sorted(context.roles)}


def pid() -> int:
    return os.getpid()


def environment() -> dict[str, str]:
    return dict(os.environ)


def raises(message: str) -> None:
    raise ValueError(message)


def not_json() -> object:
    return {1, 2, 3}


def memory_bomb() -> int:
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))


def cpu_spin() -> None:
    while True:
        pass


def sleep_ignoring_signals(seconds: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    time.sleep(seconds)


def fork_bomb() -> int:
    children = 0
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1


def setsid_grandchild(marker: str) -> int:
    """Double fork + setsid: the classic escape from killpg."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3)
            with open(marker, "w") as fh:
                fh.write("escaped")
            os._exit(0)
        os._exit(0)
    return 0


def huge_stdout() -> None:
    chunk = "x" * 65536
    while True:
        print(chunk, flush=True)


def huge_file(name: str) -> None:
    block = b"\0" * (1024 * 1024)
    with open(name, "wb") as fh:
        while True:
            fh.write(block)


def many_files(count: int) -> int:
    for i in range(count):
        with open(f"f{i}", "w"):
            pass
    return count


def thread_bomb() -> int:
    stop = threading.Event()
    threads = []
    while True:
        t = threading.Thread(target=stop.wait)
        t.start()
        threads.append(t)


def system_call(marker: str) -> int:
    return os.system(f"touch {marker}")


def read_file(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def write_file(path: str, text: str) -> str:
    with open(path, "w") as fh:
        fh.write(text)
    return path


def open_socket(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=2) as conn:
        return str(conn.getpeername())


def big_result(megabytes: int) -> str:
    return "x" * (megabytes * 1024 * 1024)


def slow_add(a: int, b: int, seconds: float) -> int:
    time.sleep(seconds)
    return a + b


def remember(value: int) -> list[int]:
    """State kept between calls: visible in a worker, never in a per-call child."""
    seen = globals().setdefault("_SEEN", [])
    seen.append(value)
    return list(seen)


def heap_has_secret(digest: str) -> bool:
    """Whether any string reachable in this interpreter hashes to ``digest``.

    The test passes only the hash, so the secret itself never enters this process through the
    call; finding it means the process inherited the application's memory.
    """
    import gc
    import hashlib

    seen = 0
    for obj in gc.get_objects():
        values = (
            obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
        )
        for item in values:
            if (
                isinstance(item, str)
                and hashlib.sha256(item.encode("utf-8", "replace")).hexdigest() == digest
            ):
                return True
            seen += 1
    return False


async def async_sleep_then(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


def network_namespace() -> str:
    return os.readlink("/proc/self/ns/net")
