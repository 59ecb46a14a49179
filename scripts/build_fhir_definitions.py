"""Generate the committed FHIR R5 definition data from the official NPM packages.

Run once when the FHIR version changes, then commit the output::

    python scripts/build_fhir_definitions.py \\
        --core /tmp/fhirpkg/hl7.fhir.r5.core-5.0.0/package \\
        --examples /tmp/fhirpkg/hl7.fhir.r5.examples-5.0.0/package

Writes:

* ``gateway/fhir/data/types.json`` - element metadata of every R5 resource and datatype, in
  snapshot order (so XML can be written in definition order);
* ``gateway/fhir/data/search-parameters.json`` - every core SearchParameter;
* ``tests/fixtures/r5-examples/`` - verbatim copies of the official examples of the resource
  types the gateway serves.

The runtime and CI never see the packages: they only read these generated files (see
``gateway/fhir/definitions.py`` for the layout of ``types.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "gateway" / "fhir" / "data"
EXAMPLES_DIR = ROOT / "tests" / "fixtures" / "r5-examples"

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
FHIRPATH_SYSTEM = "http://hl7.org/fhirpath/"

# JSON representation of the primitive types (FHIR R5 JSON format, "Primitive types");
# every primitive not listed here is a JSON string - notably integer64, which R5 writes as a
# string because JSON numbers cannot carry 64-bit integers safely.
PRIMITIVE_JSON = {
    "boolean": "boolean",
    "decimal": "number",
    "integer": "number",
    "positiveInt": "number",
    "unsignedInt": "number",
}

EXAMPLE_RESOURCE_TYPES = frozenset(
    {
        "MedicationRequest",
        "Medication",
        "MedicationDispense",
        "SupplyRequest",
        "SupplyDelivery",
        "InventoryReport",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Endpoint",
        "Provenance",
    }
)

SEARCH_PARAMETER_FIELDS = (
    "url",
    "code",
    "name",
    "type",
    "base",
    "expression",
    "target",
    "modifier",
    "comparator",
    "multipleOr",
    "multipleAnd",
    "chain",
    "component",
    "processingMode",
)


def _type_code(type_ref: dict[str, Any]) -> str:
    """The FHIR type code of an ElementDefinition.type entry.

    FHIRPath system types (used for ``id``, ``Extension.url``, primitive ``value``) carry the
    FHIR type in the structuredefinition-fhir-type extension.
    """
    code: str = type_ref["code"]
    if code.startswith(FHIRPATH_SYSTEM):
        for ext in type_ref.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return str(ext["valueUrl"])
        return code.removeprefix(FHIRPATH_SYSTEM)
    return code


def _choice_name(stem: str, type_code: str) -> str:
    return stem + type_code[0].upper() + type_code[1:]


def _element_entry(elem: dict[str, Any], is_primitive_value: bool) -> dict[str, Any]:
    """Compact entry for one snapshot element; flags are present only when true."""
    path: str = elem["path"]
    name = path.rsplit(".", 1)[-1]
    entry: dict[str, Any] = {"name": name}
    types = elem.get("type", [])
    if is_primitive_value:
        # The value of a primitive is a FHIRPath system type (System.Decimal …).
        entry["types"] = [t["code"].removeprefix(FHIRPATH_SYSTEM) for t in types]
    else:
        entry["types"] = [_type_code(t) for t in types]
    if "contentReference" in elem:
        ref: str = elem["contentReference"]
        entry["ref"] = ref[ref.index("#") + 1 :]
    if name.endswith("[x]"):
        stem = name[:-3]
        entry["choices"] = {_choice_name(stem, code): code for code in entry["types"]}
    if elem.get("max") == "*":
        entry["array"] = True
    if int(elem.get("min", 0)) > 0:
        entry["min"] = int(elem["min"])
    if elem.get("isSummary"):
        entry["summary"] = True
    if elem.get("isModifier"):
        entry["modifier"] = True
    if "xmlAttr" in elem.get("representation", []):
        entry["attr"] = True
    targets = sorted({p.rsplit("/", 1)[-1] for t in types for p in t.get("targetProfile", [])})
    if targets:
        entry["targets"] = targets
    return entry


def _element_tree(snapshot: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Nest snapshot elements (which are in depth-first order) under their parents."""
    root_path = snapshot[0]["path"]
    by_path: dict[str, dict[str, Any]] = {root_path: {"elements": []}}
    for elem in snapshot[1:]:
        path: str = elem["path"]
        parent_path = path.rsplit(".", 1)[0]
        is_primitive_value = kind == "primitive-type" and path == f"{root_path}.value"
        entry = _element_entry(elem, is_primitive_value)
        parent = by_path[parent_path]
        parent.setdefault("elements", []).append(entry)
        by_path[path] = entry
    elements: list[dict[str, Any]] = by_path[root_path]["elements"]
    return elements


def build_types(core: Path) -> dict[str, Any]:
    types: dict[str, Any] = {}
    for sd_file in sorted(core.glob("StructureDefinition-*.json")):
        sd = json.loads(sd_file.read_bytes())
        kind = sd.get("kind")
        if kind not in ("primitive-type", "complex-type", "resource"):
            continue
        derivation = sd.get("derivation")
        # ``Base`` is the root of the hierarchy and has no derivation; keep it so every base
        # type chain ends in a known type.
        if derivation != "specialization" and sd["type"] != "Base":
            continue
        name: str = sd["type"]
        info: dict[str, Any] = {"kind": kind}
        if "baseDefinition" in sd:
            info["base"] = sd["baseDefinition"].rsplit("/", 1)[-1]
        if sd.get("abstract"):
            info["abstract"] = True
        if kind == "primitive-type":
            info["json"] = PRIMITIVE_JSON.get(name, "string")
            for elem in sd["snapshot"]["element"]:
                if elem["path"] == f"{name}.value":
                    for type_ref in elem.get("type", []):
                        for ext in type_ref.get("extension", []):
                            if ext.get("url") == REGEX_EXT:
                                info["regex"] = ext["valueString"]
        info["elements"] = _element_tree(sd["snapshot"]["element"], kind)
        types[name] = info
    return {"fhirVersion": "5.0.0", "types": types}


def build_search_parameters(core: Path) -> list[dict[str, Any]]:
    params = []
    for sp_file in sorted(core.glob("SearchParameter-*.json")):
        sp = json.loads(sp_file.read_bytes())
        if sp.get("resourceType") != "SearchParameter":
            continue
        entry = {key: sp[key] for key in SEARCH_PARAMETER_FIELDS if key in sp}
        if "component" in entry:
            entry["component"] = [
                {"definition": c["definition"], "expression": c["expression"]} for c in entry["component"]
            ]
        params.append(entry)
    params.sort(key=lambda p: p["url"])
    return params


def copy_examples(examples: Path, target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    count = 0
    for example in sorted(examples.glob("*.json")):
        if example.name in ("package.json", ".index.json"):
            continue
        raw = example.read_bytes()
        try:
            resource_type = json.loads(raw).get("resourceType")
        except (ValueError, AttributeError):
            continue
        if resource_type in EXAMPLE_RESOURCE_TYPES:
            (target / example.name).write_bytes(raw)
            count += 1
    return count


def _write_minified(path: Path, data: Any) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", type=Path, required=True, help="hl7.fhir.r5.core package dir")
    parser.add_argument("--examples", type=Path, required=True, help="hl7.fhir.r5.examples package dir")
    args = parser.parse_args(argv)

    types = build_types(args.core)
    size = _write_minified(DATA_DIR / "types.json", types)
    print(f"types.json: {len(types['types'])} types, {size} bytes")

    params = build_search_parameters(args.core)
    size = _write_minified(DATA_DIR / "search-parameters.json", params)
    print(f"search-parameters.json: {len(params)} parameters, {size} bytes")

    count = copy_examples(args.examples, EXAMPLES_DIR)
    print(f"r5-examples: {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
