"""Endpoints in the registry: how each member is reached (issue 13)."""

from __future__ import annotations

from gateway.federation.endpoints import KIND_SYSTEM, SmartCredentials, endpoint_from_resource, endpoint_resource
from gateway.federation.registry import MemberRegistry
from gateway.validation import structure_issues
from tests.federation.conftest import organization


def test_endpoint_resource_round_trips_and_is_valid_r5() -> None:
    smart = SmartCredentials("https://t.example/auth/token", "gw", "/etc/yaolian/t.pem", "k1")
    resource = endpoint_resource(
        "t-ep", "fhir-r4", "https://t.example/fhir/", name="t", organization="Organization/t", smart=smart
    )
    assert [i for i in structure_issues(resource) if i.severity == "error"] == []
    endpoint = endpoint_from_resource(resource)
    assert endpoint is not None and endpoint.kind == "fhir-r4" and endpoint.live
    assert endpoint.address == "https://t.example/fhir" and endpoint.smart == smart
    assert endpoint_from_resource({**resource, "connectionType": [{"coding": [{"code": "hl7-fhir-rest"}]}]}) is None


def test_members_are_reached_by_their_endpoints_and_only_live_ones_are_asked() -> None:
    live = endpoint_resource("a-ep", "fhir-r5", "http://a/fhir", name="a", organization="Organization/a")
    off = {
        **endpoint_resource("b-ep", "fhir-r5", "http://b/fhir", name="b", organization="Organization/b"),
        "status": "off",
    }
    pushed = endpoint_resource("c-ep", "pushed", "urn:yaolian:pushed:c", name="c", organization="Organization/c")
    a = {**organization("a", "A", "township"), "endpoint": [{"reference": "Endpoint/a-ep"}]}
    b = organization("b", "B", "village")  # linked by managingOrganization only
    c = {**organization("c", "C", "village"), "endpoint": [{"reference": "Endpoint/c-ep"}]}
    inactive = {**organization("d", "D", "village"), "active": False, "endpoint": [{"reference": "Endpoint/a-ep"}]}
    registry = MemberRegistry.from_organizations([a, b, c, inactive], [live, off, pushed])
    assert [m.code for m in registry.live()] == ["a"]
    assert registry.get("b").reached_by[0].active is False  # type: ignore[union-attr]
    assert registry.get("c").reached_by[0].kind == "pushed"  # type: ignore[union-attr]
    assert registry.get("d").live_endpoint is None  # type: ignore[union-attr]


def test_pol08_a_view_endpoint_names_its_connection_and_mapping_never_a_dsn() -> None:
    """POL-08: a sql-view Endpoint is live, valid R5, carries no hl7-fhir-rest coding and no
    payload, and names the connection (settings) and mapping, not a connection string."""
    resource = endpoint_resource(
        "v-ep", "sql-view", "yaolian-sqlview:ljx-his", name="v", organization="Organization/v", mapping="generic-his"
    )
    assert [i for i in structure_issues(resource) if i.severity == "error"] == []
    assert [c["code"] for c in resource["connectionType"][0]["coding"]] == ["sql-view"]
    assert "payload" not in resource
    endpoint = endpoint_from_resource(resource)
    assert endpoint is not None and endpoint.live and endpoint.kind == "sql-view"
    assert (endpoint.connection, endpoint.mapping) == ("ljx-his", "generic-his")
    # the same extension on a FHIR endpoint means nothing; a FHIR endpoint has no connection name
    fhir = endpoint_from_resource(
        {**resource, "connectionType": [{"coding": [{"system": KIND_SYSTEM, "code": "fhir-r5"}]}]}
    )
    assert fhir is not None and fhir.mapping is None and fhir.connection is None
