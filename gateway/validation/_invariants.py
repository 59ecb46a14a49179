"""The base invariants of the R5 snapshots (``data/base-invariants.json``, made by
``scripts/base_invariants.py``), evaluated on each element the structure walk visits.

Each invariant is kept for its context (a type such as ``Extension`` or ``Quantity``, or a backbone
element such as ``CareTeam.participant``), or for an element of a context that is itself no
context (``Organization.contact`` org-3, ``RiskAssessment.prediction.probability[x]`` ras-1).
An expression is evaluated through the compiled FHIRPath closures of :mod:`._fhirpath` with the
context as the type of the focus, and by fhirpathpy (with the context as ``base``) where the
closures do not model it or are unsure. fhirpathpy lacks a few functions the R5 invariants use;
they are supplied here as the reference validator reads them without a server:

* ``resolve()``: a stub of the target typed by the reference (``Practitioner/1`` is a
  Practitioner; ``#id`` is the contained resource; a ``fullUrl`` in the same Bundle its entry);
* ``hasValue()``: a primitive with a value;
* ``htmlChecks()``: true (the narrative rules txt-1/txt-2 are checked in :mod:`._base`);
* ``conformsTo()``, ``memberOf()``: not decidable here; ``lowBoundary()``, ``highBoundary()``,
  ``comparable()``: missing from fhirpathpy. The invariants using them (per-1 among them) are not
  evaluated (:func:`not_evaluated` lists their keys).

An invariant that fails is ``YL-3060`` with the constraint's key and severity; one that raises
is not reported (a broken instance already has its structural findings).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from fhirpathpy import apply_parsed_path as _apply_parsed_path
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse as _parse

from gateway.errors import Issue
from gateway.fhir import definitions
from gateway.validation._fhirpath import Unsure, closure
from gateway.validation._issues import issue

__all__ = ["Invariant", "element_invariants", "invariants", "not_evaluated"]

_MODEL: dict[str, Any] = models["r5"]
# fhirpathpy is untyped: its three entry points, typed as used here
apply_parsed_path: Callable[[Any, Any, dict[str, Any], dict[str, Any], dict[str, Any]], Any] = _apply_parsed_path
parse: Callable[[str], Any] = _parse
_node: Callable[[Any, str], Any] = ResourceNode.create_node
# not evaluated: conformsTo/memberOf need profiles or a terminology server; fhirpathpy lacks
# lowBoundary/highBoundary/comparable (per-1, and two more)
_UNDECIDABLE = ("conformsTo(", "memberOf(", "lowBoundary(", "highBoundary(", "comparable(")
_UNPARSED: list[str] = []


@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    context: str
    fn: Callable[[list[Any]], list[Any]] | None
    parsed: Any
    guard: tuple[str, str] | None  # (kind, name): the expression holds when name is absent/present
    choice: bool  # the guard's name is a choice element (valueString… for value)

    def check(self, node: Any, where: Callable[[], str], resource: Any, root: Any, out: list[Issue]) -> None:
        guard = self.guard
        if guard is not None and type(node) is dict:
            kind, name = guard
            if kind == "absent":
                if name not in node and "_" + name not in node:
                    if not self.choice or not any(k.startswith(name) or k[1:].startswith(name) for k in node):
                        return
            elif node.get(name) not in (None, []):
                return
        result: list[Any] | None = None
        fn = self.fn
        if fn is not None:
            try:
                result = fn([node])
            except Unsure:
                result = None
            except Exception:  # a broken instance can break an expression
                return
        if result is None:
            try:
                result = _fhirpathpy(self, node, resource, root)
            except Exception:
                return
        if result == [False]:
            text = where()
            out.append(issue("YL-3060", text, severity=self.severity, key=self.key, human=self.human))


def _fhirpathpy(inv: Invariant, node: Any, resource: Any, root: Any) -> list[Any]:
    focus = _node(node, inv.context)
    variables = {"resource": resource, "rootResource": root}
    options = {"userInvocationTable": _functions(root), "traceFn": _no_trace}
    return cast(list[Any], apply_parsed_path(focus, inv.parsed, variables, _MODEL, options))


def _no_trace(*args: Any) -> None:
    return None


def _functions(root: Any) -> dict[str, Any]:
    contained = {}
    if isinstance(root, dict) and isinstance(root.get("contained"), list):
        contained = {c.get("id"): c for c in root["contained"] if isinstance(c, dict)}

    def resolve(inputs: list[Any]) -> list[Any]:
        out = []
        for item in inputs:
            ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
            if not isinstance(ref, str):
                continue
            if ref.startswith("#"):
                target = contained.get(ref[1:]) if ref != "#" else root
                if isinstance(target, dict) and isinstance(target.get("resourceType"), str):
                    out.append(_node(target, target["resourceType"]))
                continue
            parts = ref.split("?")[0].split("/")
            if len(parts) >= 4 and parts[-2] == "_history":
                parts = parts[:-2]
            if len(parts) >= 2 and parts[-2][:1].isupper():
                out.append(_node({"resourceType": parts[-2], "id": parts[-1]}, parts[-2]))
        return out

    def has_value(inputs: list[Any]) -> list[Any]:
        return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]

    def html_checks(inputs: list[Any]) -> list[Any]:
        return [True]

    return {
        "resolve": {"fn": resolve},
        "hasValue": {"fn": has_value},
        "htmlChecks": {"fn": html_checks},
    }


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("gateway.validation").joinpath("data", "base-invariants.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


# Shapes whose truth a child's absence (or presence) settles without evaluating: ``X.empty() or
# R`` and ``X.exists() implies R`` hold when no X is there; ``X.exists() or R`` and
# ``X.exists().not() implies R`` when X has a value (FHIRPath: true or anything is true, an
# implication with a false antecedent is true).
_GUARDS = (
    (re.compile(r"(\w+)\.empty\(\) or "), "absent"),
    (re.compile(r"(\w+)\.exists\(\) implies "), "absent"),
    (re.compile(r"\(?(\w+)\.exists\(\) (?:or|and \w+\.exists\(\)\) or) "), "present"),
    (re.compile(r"(\w+)\.exists\(\)\.not\(\) implies "), "present"),
)


def _guard(expression: str) -> tuple[str, str] | None:
    for regex, kind in _GUARDS:
        found = regex.match(expression)
        if found is not None:
            if kind == "present" and found.group(0).startswith("(") and " and " in found.group(0):
                continue  # (A and B) or R: A alone settles nothing
            return kind, found.group(1)
    return None


def _compile(row: list[str], context: str) -> Invariant | None:
    key, severity, human, expression = row
    if any(f in expression for f in _UNDECIDABLE):
        return None
    expression = expression.replace("%ucum", "'http://unitsofmeasure.org'")
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parsed = parse(expression)  # antlr prints its recognition errors
    except Exception:  # fhirpathpy's grammar misses a few forms (e.g. double-quoted strings)
        _UNPARSED.append(key)
        return None
    fn = _HAND_WRITTEN.get(expression) or closure(parsed["children"][0], context)
    guard = _guard(expression)
    choice = guard is not None and guard[1] in definitions.choice_element_names()
    return Invariant(key, severity, human, expression, context, fn, parsed, guard, choice)


def _ext_1(focus: list[Any]) -> list[Any]:
    """ext-1 ``extension.exists() != value.exists()`` on one Extension object: the most frequent
    invariant of the write path (a dozen per prescription), so written out; primitive
    extensions of the value (``_valueString``) are left to the general evaluation."""
    node = focus[0] if len(focus) == 1 else None
    if type(node) is not dict:
        raise Unsure
    has_value = False
    for k in node:
        if k.startswith("value"):
            has_value = True
        elif k.startswith("_value"):
            raise Unsure
    extension = node.get("extension")
    if extension is not None and type(extension) is not list:
        raise Unsure
    return [bool(extension) != has_value]


_HAND_WRITTEN: dict[str, Callable[[list[Any]], list[Any]]] = {"extension.exists() != value.exists()": _ext_1}


@functools.cache
def invariants(context: str) -> tuple[Invariant, ...]:
    """The invariants of a context (type name or backbone path), compiled once."""
    rows = _data()["invariants"].get(context, ())
    return tuple(inv for row in rows if (inv := _compile(row, context)) is not None)


@functools.cache
def element_invariants(context: str) -> dict[str, tuple[Invariant, ...]]:
    """Element name (``[x]`` dropped) -> invariants of that element of ``context``."""
    table: dict[str, tuple[Invariant, ...]] = {}
    for name, rows in _data()["element_invariants"].get(context, {}).items():
        compiled = tuple(inv for row in rows if (inv := _compile(row, f"{context}.{name}")) is not None)
        if compiled:
            table[name] = compiled
    return table


def _not_evaluated() -> list[str]:
    data = _data()
    rows = [r for v in data["invariants"].values() for r in v]
    rows += [r for e in data["element_invariants"].values() for v in e.values() for r in v]
    return sorted({r[0] for r in rows if any(f in r[3] for f in _UNDECIDABLE)})


def not_evaluated() -> list[str]:
    """Keys of the base invariants that are not evaluated (see the module docstring), and of
    those fhirpathpy cannot parse."""
    for context in _data()["invariants"]:
        invariants(context)
    for context in _data()["element_invariants"]:
        element_invariants(context)
    return sorted(set(_not_evaluated()) | set(_UNPARSED))
