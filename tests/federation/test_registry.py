"""The member registry: codes, tiers and the parent tree, from stored Organizations (POL-03)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson
import pytest

from gateway.demo import _alliance as demo
from gateway.federation.registry import MemberRegistry, load_registry
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.sql import open_store

CTX = RequestContext(base_url="http://test/fhir")
TIER = "http://yaolian.org/fhir/CodeSystem/alliance-tier"


def _org(
    org_id: str, tier: str | None, parent: Mapping[str, object] | None = None, code: str | None = None
) -> dict[str, object]:
    org: dict[str, object] = {"resourceType": "Organization", "id": org_id, "name": org_id.upper()}
    if tier:
        org["type"] = [{"coding": [{"system": TIER, "code": tier}]}]
    if code:
        org["identifier"] = [{"system": "http://yaolian.org/fhir/sid/member", "value": code}]
    if parent:
        org["partOf"] = parent
    return org


def test_pol03_demo_alliance_tree() -> None:
    """POL-03: villages link to their township, townships to the county."""
    registry = MemberRegistry.from_organizations(demo._organization(m) for m in demo.MEMBERS)
    assert len(registry) == len(demo.MEMBERS)
    assert [m.code for m in registry.of_tier("county")] == [demo.COUNTY_HOSPITAL]
    assert {m.code for m in registry.children("xy-wangqiao")} == {"xy-dongpo", "xy-nanhan"}
    village = registry.get("xy-yanggou")
    assert village is not None and village.parent == "xy-xiadian" and village.insurance_code == "H14042300205"
    county = registry.county_of("xy-yanggou")
    assert county is not None and county.code == demo.COUNTY_HOSPITAL


def test_code_is_member_identifier_else_id_and_parent_by_identifier() -> None:
    registry = MemberRegistry.from_organizations(
        [
            _org("o1", "county", code="CNTY"),
            _org("o2", "township", {"identifier": {"system": "http://yaolian.org/fhir/sid/member", "value": "CNTY"}}),
            _org("o3", "village", {"reference": "Organization/o2"}),
            _org("supplier", None),
        ]
    )
    assert sorted(m.code for m in registry) == ["CNTY", "o2", "o3"]  # the supplier is no member
    assert registry.get("o2").parent == "CNTY"  # type: ignore[union-attr]
    assert registry.get("o3").parent == "o2"  # type: ignore[union-attr]
    assert registry.by_organization("Organization/o1").code == "CNTY"  # type: ignore[union-attr]


def test_broken_parent_chain_has_no_county() -> None:
    registry = MemberRegistry.from_organizations(
        [_org("a", "village", {"reference": "Organization/b"}), _org("b", "township", {"reference": "Organization/a"})]
    )
    assert registry.county_of("a") is None


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    store = open_store(database_url)
    store.create_schema()
    yield FhirService(store, Settings(database=database_url))
    store.dispose()


def test_load_registry_reads_every_page_through_the_service(service: FhirService) -> None:
    with service.store.transaction() as tx:
        for n in range(7):
            parent = {"reference": "Organization/m0"} if n else None
            org = _org(f"m{n}", "township" if n else "county", parent)
            service.writer.update(tx, CTX, "Organization", f"m{n}", ResourceText.parse(orjson.dumps(org)))
    registry = load_registry(service, CTX, page_size=3)
    assert sorted(m.code for m in registry) == [f"m{n}" for n in range(7)]
    assert {m.parent for m in registry.of_tier("township")} == {"m0"}
