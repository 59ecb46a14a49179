"""Fixtures of the ingest tests: a running gateway (HTTP + MLLP on a free port) per backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ingest_support import Gateway, start_gateway


@pytest.fixture(scope="module")
def gateway(module_database_url: str) -> Iterator[Gateway]:
    """One gateway per backend for a module; tests use distinct message ids."""
    yield from start_gateway(module_database_url)
