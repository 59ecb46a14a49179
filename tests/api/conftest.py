from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """A gateway on each backend, spoken to over HTTP like a real client would."""
    app = create_app(Settings(database=database_url, validation_mode="lenient"))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
