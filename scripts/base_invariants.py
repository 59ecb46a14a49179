#!/usr/bin/env python
"""Extract the base invariants of the R5 snapshots into ``gateway/validation/data/base-invariants.json``.

    npm pack hl7.fhir.r5.core@5.0.0 && mkdir core && tar xzf hl7.fhir.r5.core-5.0.0.tgz -C core
    python scripts/base_invariants.py --core core/package

For every StructureDefinition of a resource or data type (the specialisations, and the data type
profiles such as Duration or SimpleQuantity that R5 elements are typed with), each constraint of
the snapshot with an expression is kept once per context: the type itself, or a backbone element
(``CareTeam.participant``), the contexts the validator walks (:mod:`gateway.fhir.definitions`).
The rules the validator checks in code are left out (``HANDLED_IN_CODE``); constraints on other
elements (a primitive or a typed element inside a type, e.g. ``Organization.contact`` org-3) are
listed under ``element_invariants`` by their parent context and JSON name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.fhir import definitions  # noqa: E402

OUT = ROOT / "gateway" / "validation" / "data" / "base-invariants.json"
# ele-1 (_structure), dom-2..dom-5, ref-1, txt-1, txt-2 (_base); dom-6 is a best-practice
# guideline ("should have a narrative"), which the reference validator ignores by default
HANDLED_IN_CODE = {"ele-1", "dom-2", "dom-3", "dom-4", "dom-5", "dom-6", "ref-1", "txt-1", "txt-2"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=Path, default=Path("/tmp/fhirpkg/hl7.fhir.r5.core-5.0.0/package"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    types = definitions._raw_types()
    contexts = set(definitions._contexts())
    table: dict[str, list[list[str]]] = {}
    on_elements: dict[str, dict[str, list[list[str]]]] = {}  # context -> element name -> rows
    for path in sorted(args.core.glob("StructureDefinition-*.json")):
        sd: dict[str, Any] = json.loads(path.read_text("utf-8"))
        name = sd.get("type")
        if sd.get("kind") == "logical" or name not in types:
            continue
        if sd.get("derivation") == "constraint" and sd.get("name") not in types:
            continue  # profiles (vitalsigns…) are not base rules; data type profiles are types
        if sd.get("derivation") == "constraint":
            name = sd["name"]
        for element in sd.get("snapshot", {}).get("element", []):
            epath = element["path"]
            context = name + epath[len(epath.split(".")[0]) :]
            for c in element.get("constraint", []):
                if c["key"] in HANDLED_IN_CODE or "expression" not in c:
                    continue
                if context in contexts:
                    rows = table.setdefault(context, [])
                elif c["key"] == "ext-1":
                    continue  # the rule of the Extension type, evaluated in that context
                else:  # an element that is no context (a primitive, a typed element)
                    parent, _, member = context.rpartition(".")
                    if parent not in contexts:
                        continue
                    rows = on_elements.setdefault(parent, {}).setdefault(member.removesuffix("[x]"), [])
                if all(row[0] != c["key"] for row in rows):
                    rows.append([c["key"], c.get("severity", "error"), c.get("human", ""), c["expression"]])
    doc = {
        "source": "hl7.fhir.r5.core 5.0.0 snapshots",
        "handled_in_code": sorted(HANDLED_IN_CODE),
        "invariants": dict(sorted(table.items())),
        "element_invariants": dict(sorted(on_elements.items())),
    }
    args.out.write_text(json.dumps(doc, ensure_ascii=False, indent=0, sort_keys=False) + "\n", "utf-8")
    count = sum(len(v) for v in table.values()) + sum(len(r) for e in on_elements.values() for r in e.values())
    print(f"{count} invariants in {len(table)} contexts and on elements of {len(on_elements)} more")


if __name__ == "__main__":
    main()
