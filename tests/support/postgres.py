"""A throwaway PostgreSQL server for tests, started from the system's binaries.

``initdb`` refuses to run as root, and CI runs as root: the server then runs as an unprivileged
account (``postgres`` if the distribution package created it, else ``tamma-pg``, created here with
``useradd``). The cluster lives in a fresh temp directory, listens only on a unix socket in that
directory (no TCP port to collide with), trusts local connections and runs with ``fsync=off``;
it is stopped and deleted at the end of the session.

Without the binaries (or psycopg) the tests skip, unless ``TAMMA_TOOLS_REQUIRE_SERVICES=1`` (set by
CI), in which case they fail: a CI run must never silently skip the PostgreSQL tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

__all__ = ["PostgresServer", "postgres_server", "start_postgres"]

_FALLBACK_USER = "tamma-pg"


@dataclass
class PostgresServer:
    """A running server: connect with ``dsn``; ``new_database()`` gives each test its own."""

    bindir: Path
    datadir: Path
    sockdir: Path
    port: int
    user: str
    run_as: str | None
    _counter: int = 0

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        return f"host={self.sockdir} port={self.port} user={self.user} dbname={dbname}"

    def new_database(self) -> str:
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.dsn_for(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
            user=self.run_as, capture_output=True, check=False, timeout=60,
        )  # fmt: skip


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"PostgreSQL is required (TAMMA_TOOLS_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(reason)


def _find_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _server_account() -> str | None:
    """The account to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    useradd = shutil.which("useradd")
    if useradd is None:
        _unavailable("running as root and no unprivileged account or useradd is available")
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _FALLBACK_USER],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return _FALLBACK_USER


def _traversable_tmp() -> str:
    """A temp root every account can traverse (each ancestor has the x bit for others)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        path = Path(candidate).resolve()
        if path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    _unavailable("no temp directory is reachable by an unprivileged account")
    raise AssertionError("unreachable")


def start_postgres() -> PostgresServer:
    """Start a server (or skip/fail as described in the module docstring)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = _find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) were not found")
        raise AssertionError("unreachable")
    run_as = _server_account()
    # The server account must reach its directory: pytest's own tmp dirs sit under a root-only
    # 0700 parent, so the cluster goes in a fresh directory under a world-traversable temp root.
    base = Path(tempfile.mkdtemp(prefix="tamma-pg-", dir=_traversable_tmp() if run_as else None))
    datadir, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    if run_as is not None:
        pw = pwd.getpwnam(run_as)
        for path in (base, sockdir):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(base)}
    user = "tamma"
    init = subprocess.run(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", user, "-A", "trust", "-E", "UTF8",
         "--no-sync"],
        user=run_as, env=env, cwd=base, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()[-2000:]}")
    port = 5432  # only a socket file name: listen_addresses is empty, so no TCP port is taken
    options = (
        f"-c listen_addresses='' -c unix_socket_directories='{sockdir}' -p {port} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    )
    start = subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(base / "log"),
         "-w", "-t", "60", "start"],
        user=run_as, env=env, cwd=base, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if start.returncode != 0:
        log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {start.stderr.strip()} {log[-2000:]}")
    return PostgresServer(bindir, datadir, sockdir, port, user, run_as)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)
