"""A gateway holding the test alliance (organizations, catalogue and lists imported through the
service), for the review tests that go through HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.alliance.catalogue_io import parse_sheet
from gateway.alliance.stored import import_catalogue, import_formulary
from gateway.app import create_app
from gateway.commands import OPERATOR
from gateway.federation.registry import load_registry
from gateway.hooks import RequestContext
from gateway.settings import Settings

Client = Callable[..., TestClient]


@pytest.fixture
def gateway(database_url: str, alliance: Any, lists_csv: Callable[[str], str]) -> Iterator[Client]:
    """A factory of gateways on one database holding the test alliance (review_on_write given)."""
    clients: list[TestClient] = []

    def make(review_on_write: str = "off") -> TestClient:
        app = create_app(Settings(database=database_url, insecure_dev=True, review_on_write=review_on_write))
        client = TestClient(app, raise_server_exceptions=True)
        client.__enter__()
        clients.append(client)
        return client

    first = make()
    service = first.app.state.service  # type: ignore[attr-defined]
    ctx = RequestContext(base_url="http://testserver/fhir", principal=OPERATOR)
    for org in alliance.organizations():
        assert first.put(f"/fhir/Organization/{org['id']}", json=org).status_code in (200, 201)
    first.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"})
    import_catalogue(service, ctx, parse_sheet(alliance.csv.encode(), "c.csv", need_attributes=True))
    registry = load_registry(service, ctx)
    for member in ("C1", "T1", "T2", "V1"):
        sheet = parse_sheet(lists_csv(member).encode(), f"{member}.csv", need_attributes=False)
        import_formulary(service, ctx, sheet, member=member, registry=registry, effective=None)
    yield make
    for client in clients:
        client.__exit__(None, None, None)
