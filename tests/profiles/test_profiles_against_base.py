"""Every profile in profiles/ only narrows the R5 base it constrains (issue 17).

Each snapshot element is looked up in the R5 element tables (``gateway.fhir.definitions``, built
from the R5 snapshots) and checked against it: the element exists, its cardinality lies within
the base's, its types are among the base's, and each Reference ``targetProfile`` names a type the
base element may refer to. A contradiction the profiles still have is listed in ``KNOWN`` with
its reason; the test fails when one appears or when a listed one is fixed.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from gateway.fhir import definitions

SD_BASE = "http://yaolian.org/fhir/StructureDefinition/"
CORE_BASE = "http://hl7.org/fhir/StructureDefinition/"

# None left: yl-inventory-report's reporter was Reference(Organization), which R5 does not allow
# for InventoryReport.reporter (Device | Patient | Practitioner | RelatedPerson); it is now the
# reporting pharmacist (yl-practitioner).
KNOWN: set[str] = set()


def _profiles() -> list[dict[str, Any]]:
    folder = resources.files("profiles")
    out = []
    for entry in folder.iterdir():
        if entry.name.startswith("StructureDefinition-") and entry.name.endswith(".json"):
            out.append(json.loads(entry.read_text("utf-8")))
    return out


def _profile_type(url: str, by_url: dict[str, dict[str, Any]]) -> str | None:
    url = url.split("|", 1)[0]
    if url.startswith(CORE_BASE):
        return url[len(CORE_BASE) :]
    sd = by_url.get(url)
    return str(sd["type"]) if sd is not None else None


def _element(path: str) -> definitions.ElementInfo | None:
    """The base ElementInfo of a snapshot path (``Medication.code.coding``), following types."""
    root, *steps = path.split(".")
    context: str | None = root
    info = None
    for step in steps:
        if context is None:
            return None
        name = step.removesuffix("[x]")
        candidates = [i for i in definitions.ordered_elements(context) if i.path.rsplit(".", 1)[-1] == step]
        if not candidates:
            candidates = [i for i in definitions.ordered_elements(context) if i.name == name]
        if not candidates:
            return None
        info = candidates[0]
        context = info.children if len(candidates) == 1 else None
    return info


def _contradictions(sd: dict[str, Any], by_url: dict[str, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    name = sd["url"].rsplit("/", 1)[-1]
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        if "." not in path:
            continue
        info = _element(path)
        where = f"{name} {path}"
        if info is None:
            found.append(f"{where}: not an element of R5")
            continue
        base_max = "*" if info.is_array else "1"
        if element.get("min", 0) < info.min:
            found.append(f"{where}: min {element.get('min')} below the base's {info.min}")
        if base_max == "1" and element.get("max", "1") not in ("0", "1"):
            found.append(f"{where}: max {element.get('max')} above the base's 1")
        for t in element.get("type", []):
            code = t.get("code", "")
            if code.startswith("http://hl7.org/fhirpath/") or code in info.types:
                pass
            elif info.types and code not in info.types and "Element" not in info.types:
                found.append(f"{where}: type {code} not among {', '.join(info.types)}")
            if code == "Reference" and info.targets and "Resource" not in info.targets:
                for target in t.get("targetProfile", []):
                    rtype = _profile_type(target, by_url)
                    if rtype is not None and rtype not in info.targets and rtype != "Resource":
                        found.append(f"{where}: target {rtype} not among {', '.join(info.targets)}")
    return found


def test_profiles_only_narrow_the_base() -> None:
    sds = [sd for sd in _profiles() if sd.get("snapshot")]
    by_url = {sd["url"]: sd for sd in sds}
    assert len(sds) >= 17  # 7 resource profiles, 10+ extensions
    found = {c for sd in sds for c in _contradictions(sd, by_url)}
    assert found == KNOWN


def test_the_check_sees_a_contradiction() -> None:
    """A broken copy of a profile is caught (the check is not vacuous)."""
    sds = [sd for sd in _profiles() if sd.get("snapshot")]
    by_url = {sd["url"]: sd for sd in sds}
    rx = json.loads(json.dumps(by_url[SD_BASE + "yl-prescription"]))
    for element in rx["snapshot"]["element"]:
        if element["path"] == "MedicationRequest.subject":
            element["type"] = [{"code": "Reference", "targetProfile": [CORE_BASE + "Medication"]}]
        if element["path"] == "MedicationRequest.status":
            element["max"] = "*"
    found = _contradictions(rx, by_url)
    assert any("MedicationRequest.subject: target Medication" in c for c in found)
    assert any("MedicationRequest.status: max * above" in c for c in found)
