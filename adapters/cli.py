"""``yaolian adapters …``: list adapters, scaffold a new one, convert a file offline.

The gateway mounts this app (``app.add_typer(adapters.cli.app, name="adapters")``); it imports
nothing from ``gateway``. This is the CLI boundary: conversion errors become an
OperationOutcome on stdout and exit status 1, here and nowhere else.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import orjson
import typer

from adapters import registry
from adapters.errors import AdapterError, ConversionError
from adapters.issues import operation_outcome

__all__ = ["app", "scaffold"]

app = typer.Typer(help="List, scaffold and run Yaolian adapters.", no_args_is_help=True)


def _dump(document: object) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n")


@app.command("list")
def list_adapters() -> None:
    """Adapters known to this installation (built-ins and entry points ``yaolian.adapters``)."""
    reg = registry.default_registry()
    for name in reg.names():
        try:
            d = reg.get(name).descriptor
        except Exception as exc:  # a broken vendor package must not hide the others
            typer.echo(f"{name:12s} BROKEN  {type(exc).__name__}: {exc}  [{reg.origin(name)}]")
            continue
        mode = "read/write" if d.bidirectional else "read"
        typer.echo(f"{name:12s} {d.version:8s} {mode:10s} {', '.join(d.media_types)}  {d.description}")


@app.command("convert")
def convert(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="raw input file"),
    adapter: str = typer.Option(..., "--adapter", "-a", help="adapter name, see `list`"),
    issues: bool = typer.Option(False, "--issues", help="print the issues, not the Bundle"),
) -> None:
    """Convert FILE to a FHIR transaction Bundle (stdout); failures print an OperationOutcome."""
    try:
        result = registry.get(adapter).to_fhir(file.read_bytes())
    except ConversionError as exc:
        _dump(operation_outcome(exc.issues))
        raise typer.Exit(1) from None
    except AdapterError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    _dump(operation_outcome(result.issues) if issues else result.bundle)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="adapter name, e.g. 'his-json' (letters, digits, '-')"),
    directory: Path = typer.Option(Path("."), "--dir", help="where to create the package"),
) -> None:
    """Scaffold a working adapter package: mapping, sample input, golden test, entry point."""
    try:
        root = scaffold(name, directory)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created {root}; run: pip install -e {root} && pytest {root / 'tests'}")


# --------------------------------------------------------------------------- scaffold

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "yaolian-adapter-{name}"
version = "0.1.0"
description = "Yaolian adapter {name}"
requires-python = ">=3.11"
dependencies = ["yaolian"]

[project.entry-points."yaolian.adapters"]
{name} = "{module}:Adapter"

[tool.setuptools.package-data]
"{module}" = ["*.yaml", "*.json"]
"""

_MODULE = '''\
"""Yaolian adapter {name!r}: a JSON record from a HIS -> FHIR R5 transaction Bundle.

Edit ``mapping.yaml`` (no Python needed for most changes); ``tests/`` holds the golden test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.bundle import transaction_bundle
from adapters.contract import AdapterDescriptor, ConversionResult
from adapters.errors import ConversionError, NotWritableError
from adapters.mapping.engine import load_mapping
from adapters.mapping.record import RecordPathSyntax, RecordTree

HERE = Path(__file__).parent
VOLATILE_PATHS = ("timestamp",)


class Adapter:
    descriptor = AdapterDescriptor(
        name={name!r},
        version="0.1.0",
        media_types=("application/json",),
        description="JSON patient record (scaffolded; edit mapping.yaml)",
    )

    def __init__(self) -> None:
        self.mapping = load_mapping(HERE / "mapping.yaml", RecordPathSyntax())

    def to_fhir(self, raw: bytes) -> ConversionResult:
        tree = RecordTree.from_json(raw)
        entries, issues = self.mapping.run(tree)
        if any(i.severity in ("fatal", "error") for i in issues):
            raise ConversionError("record cannot be converted", issues)
        return ConversionResult(transaction_bundle(f"{name}|{{tree.message_key()}}", entries), issues)

    def from_fhir(self, resource: dict[str, Any]) -> bytes:
        raise NotWritableError("{name} is read-only")
'''

_MAPPING = """\
# Mapping for adapter {name}: JSON record -> Patient. Paths are dotted keys; see
# Yaolian's docs/mapping-language.md for the rule language.
mapping: {name}/patient
format: record
resources:
  - name: patient
    type: Patient
    identity:
      element: identifier
      prefer: ["urn:oid:2.16.156.10011.1.3"]
      request: create
    rules:
      - target: "identifier[]"
        rules:
          - {{target: system, value: "urn:oid:2.16.156.10011.1.3"}}
          - {{target: value, source: certno, required: true}}
      - target: "name[]"
        rules:
          - {{target: text, source: psn_name}}
      - {{target: gender, source: gend, translate: {{map: administrative-gender, into: code}}}}
      - {{target: birthDate, source: brdy, transform: date}}
"""

_SAMPLE = '{"certno": "140423196703151230", "psn_name": "王建国", "gend": "1", "brdy": "1967年3月15日"}\n'

_TEST = '''\
"""Golden test for adapter {name}: convert sample.json and compare with sample.expected.json.

Regenerate on purpose with YAOLIAN_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from {module} import VOLATILE_PATHS, Adapter  # noqa: E402


def snapshot() -> str:
    result = Adapter().to_fhir((ROOT / "{module}" / "sample.json").read_bytes())
    bundle = {{k: v for k, v in result.bundle.items() if k not in VOLATILE_PATHS}}
    issues = [[i.severity, i.error_code, i.where] for i in result.issues]
    return json.dumps({{"bundle": bundle, "issues": issues}}, ensure_ascii=False, indent=2, sort_keys=True)


def test_golden() -> None:
    expected_file = Path(__file__).parent / "sample.expected.json"
    actual = snapshot()
    if os.environ.get("YAOLIAN_REGEN_GOLDEN") == "1":
        expected_file.write_text(actual, encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8")
    diff = "\\n".join(difflib.unified_diff(expected.splitlines(), actual.splitlines(), lineterm=""))
    assert actual == expected, diff
'''


def scaffold(name: str, directory: Path) -> Path:
    """Create ``directory/yaolian-adapter-NAME`` and its golden file; return its path."""
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}", name):
        raise ValueError("adapter names are lower-case letters, digits and '-', e.g. his-json")
    module = "yaolian_adapter_" + name.replace("-", "_")
    root = directory / f"yaolian-adapter-{name}"
    if root.exists():
        raise ValueError(f"{root} already exists")
    package = root / module
    tests = root / "tests"
    package.mkdir(parents=True)
    tests.mkdir()
    (root / "pyproject.toml").write_text(_PYPROJECT.format(name=name, module=module), encoding="utf-8")
    (package / "__init__.py").write_text(_MODULE.format(name=name), encoding="utf-8")
    (package / "mapping.yaml").write_text(_MAPPING.format(name=name), encoding="utf-8")
    (package / "sample.json").write_text(_SAMPLE, encoding="utf-8")
    (tests / f"test_{module}.py").write_text(_TEST.format(name=name, module=module), encoding="utf-8")
    # The golden file is the adapter's own output on creation: the test passes from day one
    # and then guards every mapping change.
    namespace: dict[str, object] = {"__name__": f"{module}_scaffold", "__file__": str(package / "__init__.py")}
    exec(compile((tests / f"test_{module}.py").read_text(encoding="utf-8"), "scaffold", "exec"), namespace)
    snapshot = namespace["snapshot"]
    (tests / "sample.expected.json").write_text(snapshot(), encoding="utf-8")  # type: ignore[operator]
    sys.modules.pop(module, None)
    return root


if __name__ == "__main__":  # pragma: no cover
    app()
