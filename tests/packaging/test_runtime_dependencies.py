"""The gateway runs on its runtime dependencies alone: ``pip install yaolian`` without the test or
benchmark extras. python-hl7, for one, is only the oracle the HL7 v2 splitter is tested against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_ONLY = ("hl7", "hl7apy", "hypothesis", "pytest", "respx", "brightohir", "fhirstarter")
# Loaded by pytest itself, through the pytest11 entry point, for vendors who run the kit there.
PYTEST_ONLY = ("conformance.pytest_plugin",)

PROBE = f"""
import importlib, pkgutil, sys
for name in {EXTRAS_ONLY!r}:
    sys.modules[name] = None  # importing it now raises ImportError
import adapters, conformance, gateway
for package in (gateway, adapters, conformance):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__") and module.name not in {PYTEST_ONLY!r}:
            importlib.import_module(module.name)
from adapters.hl7v2 import HL7v2Adapter
result = HL7v2Adapter().to_fhir(open(sys.argv[1], "rb").read())
assert result.ok and result.bundle["entry"], result.issues
print("ok")
"""


def test_every_runtime_module_imports_and_converts_without_the_extras(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "golden" / "hl7v2" / "RDE_O11" / "complete-extended-longterm.hl7"
    # gateway.asgi builds the app when imported: give it a database of its own, not whatever
    # another test left in the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("YAOLIAN_")}
    env["YAOLIAN_DATABASE"] = f"sqlite:///{tmp_path / 'probe.sqlite'}"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(sample)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
