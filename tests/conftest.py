"""Shared fixtures. ``SHARED_DIR`` is the project's shared conformance and research folder,
which sits next to the repository (``../shared``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE_DIR = SHARED_DIR / "conformance"

# In CI the services (PostgreSQL, Redis) are installed; tests needing them must not skip there.
REQUIRE_SERVICES = os.environ.get("TAMMA_TOOLS_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE_DIR.is_dir():
        pytest.fail(f"conformance data not found at {CONFORMANCE_DIR}")
    return CONFORMANCE_DIR
