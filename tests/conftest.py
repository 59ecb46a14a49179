"""Shared fixtures: one gateway per store backend, the same tests for both.

PostgreSQL and Redis are the real servers on 127.0.0.1; tests that need them skip with the
reason when a server is unreachable, unless ``YAOLIAN_REQUIRE_SERVICES=1`` (set by .ci/run),
in which case they fail loudly.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

# The gateway requires a bearer token on every FHIR call (gateway.security). The suite's ~3500
# API tests predate that and call without one: they run in insecure development mode unless a
# test says otherwise (tests/security pass Settings(..., insecure_dev=False)). Set before any
# Settings is built; the environment fixture below restores it after every test.
os.environ.setdefault("YAOLIAN_INSECURE_DEV", "1")
# Chain spooled audit records in a thread: a chainer process per app the tests create would
# cost each a process start (tests/security/test_audit_chainer.py runs the process).
os.environ.setdefault("YAOLIAN_AUDIT_CHAINER", "thread")

POSTGRES_URL = os.environ.get("YAOLIAN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("YAOLIAN_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("YAOLIAN_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and YAOLIAN_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@contextmanager
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped on exit."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        engine = create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards (tests may run side by side)."""
    with postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture
def new_postgres_url(postgres_url: str) -> Iterator[Callable[[], str]]:
    """Makes as many fresh schemas as a test needs (two stores to compare), all dropped after."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(postgres_schema(postgres_url))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'yaolian.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``database_url`` but shared by the tests of one module (a dataset built once)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'yaolian.sqlite'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="module")
def module_client(module_database_url: str) -> Iterator[Any]:
    """One gateway per backend for a whole module (a dataset built once, or tests that only add)."""
    from fastapi.testclient import TestClient

    from gateway.app import create_app
    from gateway.settings import Settings

    app = create_app(Settings(database=module_database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def sql_store(database_url: str) -> Iterator[Any]:
    """An empty store with its schema, on each backend (see ``database_url``)."""
    from gateway.store.sql import open_store

    opened = open_store(database_url)
    opened.create_schema()
    yield opened
    opened.dispose()


@pytest.fixture(autouse=True)
def _yaolian_environment_restored() -> Iterator[None]:
    """CLI commands write their options to ``YAOLIAN_*`` variables (so worker processes see
    them); a test that runs one must not hand its database to the tests after it."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("YAOLIAN_")}
    yield
    if saved != {k: v for k, v in os.environ.items() if k.startswith("YAOLIAN_")}:
        for key in [k for k in os.environ if k.startswith("YAOLIAN_")]:
            del os.environ[key]
        os.environ.update(saved)
        from gateway.settings import get_settings

        get_settings.cache_clear()
