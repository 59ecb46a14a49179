"""A client written by someone else: the conformance kit's own token client (conformance/auth.py)
discovers our token endpoint and gets a token with client_secret_basic."""

from __future__ import annotations

from pathlib import Path

from conformance.auth import discover_token_endpoint, fetch_token

from .conftest import add_secret_client, secure_client


def test_the_conformance_kit_discovers_the_endpoint_and_gets_a_token(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'y.sqlite'}"
    client_id, secret = add_secret_client(database, role="regulator")
    for client in secure_client(database):
        assert discover_token_endpoint("http://testserver/fhir", client) == "http://testserver/auth/token"
        token = fetch_token(
            "http://testserver/fhir",
            client_id,
            client_secret=secret,
            scope="system/*.rs",
            transport=client._transport,
        )
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/fhir/Organization", headers=auth).status_code == 200
        refused = client.get("/fhir/MedicationRequest", headers=auth)  # a regulator reads no prescription
        assert refused.status_code == 403 and refused.json()["issue"][0]["details"]["coding"][0]["code"] == "YL-0270"
