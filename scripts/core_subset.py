#!/usr/bin/env python
"""Copy the part of the R5 core package that ``scripts/build_profiles.py`` reads into
``tests/fixtures/r5-core-subset/``, so tests/profiles/test_build_profiles.py can rebuild
``profiles/`` and compare it with the committed files without the 90 MB package or a network.

Run it after build_profiles.py starts reading other core definitions (the test then fails with a
missing file)::

    npm pack hl7.fhir.r5.core@5.0.0 && mkdir core && tar xzf hl7.fhir.r5.core-5.0.0.tgz -C core
    python scripts/core_subset.py --core core/package

Files are kept as published, minus what the build never reads: the narrative (``text``), the
base definitions' ``differential`` and their elements' ``mapping`` (build_profiles drops it too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_profiles

SUBSET = build_profiles.ROOT / "tests" / "fixtures" / "r5-core-subset"


class RecordingCore(build_profiles.Core):
    """The build's view of the core package, noting each definition it is handed."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.used: set[str] = set()

    def sd(self, type_name: str) -> dict[str, Any]:
        self.used.add(f"StructureDefinition-{type_name}.json")
        return super().sd(type_name)

    def load(self, kind: str, res_id: str) -> dict[str, Any] | None:
        found = super().load(kind, res_id)
        if found is not None:
            self.used.add(f"{kind}-{res_id}.json")
        return found

    def code_system(self, url: str) -> dict[str, Any] | None:
        found = super().code_system(url)
        if found is not None:
            self.used.add(f"CodeSystem-{found['id']}.json")
        return found


def _trim(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("text", None)
    data.pop("differential", None)
    for element in (data.get("snapshot") or {}).get("element", []):
        element.pop("mapping", None)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=Path, required=True, help="unpacked hl7.fhir.r5.core package folder")
    args = parser.parse_args()
    recording = RecordingCore(args.core)
    original = build_profiles.Core
    build_profiles.Core = lambda _folder: recording  # type: ignore[assignment,misc]
    try:
        with tempfile.TemporaryDirectory() as out:
            build_profiles.build(args.core, Path(out))
    finally:
        build_profiles.Core = original  # type: ignore[misc]
    shutil.rmtree(SUBSET, ignore_errors=True)
    SUBSET.mkdir(parents=True)
    for name in sorted(recording.used):
        data = _trim(json.loads((args.core / name).read_text(encoding="utf-8")))
        (SUBSET / name).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"copied {len(recording.used)} core definitions to {SUBSET}")


if __name__ == "__main__":
    main()
