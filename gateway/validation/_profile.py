"""Profile rules compiled from a StructureDefinition snapshot, and the walk that applies them.

A snapshot is compiled once per process into a tree of :class:`Rule` nodes that keeps only the
elements with something to check (cardinality, fixed/pattern values, required bindings, our
FHIRPath invariants, slicing, extension profiles) and the ancestors leading to them; the walk then
touches only the parts of an instance those rules name. FHIRPath invariants are compiled once per
expression by :mod:`._fhirpath` (closures, with fhirpathpy for what they do not model).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Issue
from gateway.validation._conformance import BASE, conformance
from gateway.validation._fhirpath import compiled
from gateway.validation._issues import issue
from gateway.validation.terminology import in_value_set

__all__ = ["CompiledProfile", "compiled_profile"]

Json = Any
Invariant = tuple[str, str, str, Callable[[Any], bool]]  # key, severity, human, predicate


@dataclass(slots=True)
class Slice:
    name: str
    rule: Rule
    keys: tuple[tuple[tuple[str, ...], Json], ...]  # (discriminator path, expected) pairs


@dataclass(slots=True)
class Rule:
    name: str  # element name as in the path, ``value[x]`` for choices
    label: str  # element id, for messages
    is_array: bool
    min: int = 0
    max: int | None = None  # None = unbounded
    check_max: bool = False
    types: frozenset[str] = frozenset()  # allowed type codes (choices only)
    fixed: tuple[str, Json] | None = None
    pattern: tuple[str, Json] | None = None
    binding: str | None = None  # required value set
    invariants: list[Invariant] = field(default_factory=list)
    children: list[Rule] = field(default_factory=list)
    slices: list[Slice] = field(default_factory=list)
    closed: bool = False
    extension_profile: str | None = None
    choice: bool = False
    prefix: str = ""  # choices: the JSON key prefix (``value``)
    json_types: frozenset[str] = frozenset()  # choices: allowed JSON suffixes (``Coding``)
    # slices discriminated by one string value at one path (url, system): looked up by value
    slice_path: tuple[str, ...] | None = None
    slice_index: dict[str, int] = field(default_factory=dict)
    # anything to check on a present value beyond counting it; when False the walk neither
    # visits the value nor spells its expression
    deep: bool = False
    # only cardinality to check (no choice, slices or deep checks): the parent does it inline
    plain: bool = False
    required_slices: tuple[Slice, ...] = ()


@dataclass(slots=True)
class CompiledProfile:
    url: str
    resource_type: str
    root: Rule


def _split_implies(expression: str) -> tuple[str, str] | None:
    """``A implies B`` at the top level (outside parentheses and strings), else None."""
    depth, quote, i = 0, "", 0
    while i < len(expression):
        ch = expression[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and expression.startswith(" implies ", i):
            rest = expression[i + 9 :]
            if " implies " in rest:  # implies chains: leave to fhirpathpy
                return None
            return expression[:i].strip(), rest.strip()
        i += 1
    return None


def _invariant(expression: str) -> Callable[[Any], bool]:
    """A predicate that is False exactly when the expression evaluates to ``false``.

    ``A implies B`` is split so that B is only evaluated when A is true: ``implies`` is
    true when A is false, and true or empty (never false) when A is empty; fhirpathpy would
    otherwise evaluate both sides every time."""
    split = _split_implies(expression)
    if split is None:
        whole = compiled(expression)
        return lambda node: whole(node) != [False]
    antecedent, consequent = compiled(split[0]), compiled(split[1])

    def check(node: Any) -> bool:
        if antecedent(node) != [True]:
            return True
        return consequent(node) != [False]

    return check


def _value_key(element: dict[str, Any], prefix: str) -> tuple[str, Json] | None:
    for key, value in element.items():
        if key.startswith(prefix):
            return key, value
    return None


def _compile(sd: dict[str, Any]) -> Rule:
    elements = sd["snapshot"]["element"]
    rules: dict[str, Rule] = {}
    own = sd["url"]
    parents: dict[str, str] = {}
    slice_of: dict[str, str] = {}
    slicing: dict[str, dict[str, Any]] = {}
    for e in elements:
        eid = e["id"]
        head, _, last = eid.rpartition(".")
        name = last.split(":", 1)[0]
        base_max = e.get("base", {}).get("max", e.get("max", "*"))
        max_ = e.get("max", "*")
        rule = Rule(
            name=name,
            label=eid,
            is_array=base_max != "1",
            min=e.get("min", 0),
            max=None if max_ == "*" else int(max_),
            check_max=max_ != base_max,
        )
        types = [t["code"] for t in e.get("type", [])]
        if name.endswith("[x]"):
            rule.choice, rule.prefix = True, name[:-3]
            rule.types = frozenset(types)
            rule.json_types = frozenset(t[:1].upper() + t[1:] for t in types)
        if types == ["Extension"] and e.get("type", [{}])[0].get("profile"):
            rule.extension_profile = e["type"][0]["profile"][0]
        rule.fixed = _value_key(e, "fixed")
        rule.pattern = _value_key(e, "pattern")
        binding = e.get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet"):
            url = binding["valueSet"].split("|", 1)[0]
            if conformance().get("ValueSet", url) is not None:
                rule.binding = url
        for c in e.get("constraint", []):
            if c.get("source") == own or c.get("source", "").startswith(BASE):
                rule.invariants.append(
                    (c["key"], c.get("severity", "error"), c.get("human", ""), _invariant(c["expression"]))
                )
        if "slicing" in e:
            slicing[eid] = e["slicing"]
        rules[eid] = rule
        if ":" in last:
            slice_of[eid] = f"{head}.{name}" if head else name
        elif head:
            parents[eid] = head
    # link children and slices, keeping only what has something to check
    for eid in reversed([e["id"] for e in elements]):
        rule = rules[eid]
        if not _interesting(rule):
            continue
        if eid in slice_of:
            base_id = slice_of[eid]
            base = rules[base_id]
            spec = slicing.get(base_id, {})
            base.closed = spec.get("rules") == "closed"
            keys = tuple(
                (
                    tuple(d["path"].split(".")) if d["path"] != "$this" else (),
                    _discriminator_value(rules, eid, d["path"]),
                )
                for d in spec.get("discriminator", [])
            )
            base.slices.insert(0, Slice(eid.rsplit(":", 1)[1], rule, keys))
        elif eid in parents:
            rules[parents[eid]].children.insert(0, rule)
    for rule in rules.values():
        paths = {sl.keys[0][0] for sl in rule.slices if len(sl.keys) == 1}
        if (
            rule.slices
            and len(paths) == 1
            and all(len(sl.keys) == 1 and isinstance(sl.keys[0][1], str) for sl in rule.slices)
        ):
            rule.slice_path = paths.pop()
            rule.slice_index = {sl.keys[0][1]: n for n, sl in enumerate(rule.slices)}
            if len(rule.slice_path) == 1:
                for sl in rule.slices:
                    sl.rule.children = [
                        c for c in sl.rule.children if not _settled(c, rule.slice_path[0], sl.keys[0][1])
                    ]
    for rule in rules.values():
        rule.required_slices = tuple(sl for sl in rule.slices if sl.rule.min)
        rule.deep = bool(
            rule.fixed or rule.pattern or rule.binding or rule.invariants or rule.children or rule.extension_profile
        )
        rule.plain = not (rule.deep or rule.choice or rule.slices)
    return rules[elements[0]["id"]]


def _settled(child: Rule, name: str, key: str) -> bool:
    """Whether ``child`` (of a slice matched by ``name`` == ``key``) holds for every value the
    slice matches: a slice found by its url or system has that url or system, once."""
    return (
        child.name == name
        and not child.choice
        and child.min <= 1
        and (child.max is None or child.max >= 1)
        and (child.fixed is None or child.fixed[1] == key)
        and (child.pattern is None or child.pattern[1] == key)
        and not (child.binding or child.invariants or child.children or child.slices or child.extension_profile)
    )


def _interesting(rule: Rule) -> bool:
    return bool(
        rule.min
        or rule.check_max
        or rule.fixed
        or rule.pattern
        or rule.binding
        or rule.invariants
        or rule.children
        or rule.slices
        or rule.extension_profile
        or (rule.choice and rule.types)
    )


def _discriminator_value(rules: dict[str, Rule], slice_id: str, path: str) -> Json:
    rule = rules[slice_id]
    if path == "$this":
        return (rule.pattern or rule.fixed or ("", None))[1]
    if path == "url" and rule.extension_profile:
        return rule.extension_profile
    child = rules.get(f"{slice_id}.{path}")
    if child is not None and (child.fixed or child.pattern):
        return (child.fixed or child.pattern)[1]  # type: ignore[index]
    return None


@functools.cache
def compiled_profile(url: str) -> CompiledProfile | None:
    sd = conformance().get("StructureDefinition", url)
    if sd is None or "snapshot" not in sd:
        return None
    return CompiledProfile(url=sd["url"], resource_type=sd["type"], root=_compile(sd))


# ------------------------------------------------------------------------------------------
# the walk


def _matches_pattern(pattern: Json, value: Json) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _matches_pattern(v, value[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        values = value if isinstance(value, list) else [value]
        return all(any(_matches_pattern(p, v) for v in values) for p in pattern)
    return bool(pattern == value)


def _at(value: Json, path: tuple[str, ...]) -> Json:
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


class Walker:
    def __init__(self, profile_url: str, issues: list[Issue]) -> None:
        self.profile = profile_url
        self.issues = issues

    def element(self, rule: Rule, value: Json, expr: str) -> None:
        """Check one present value of ``rule`` (already counted) at ``expr``."""
        if rule.fixed is not None and value != rule.fixed[1]:
            self.issues.append(issue("YL-3020", expr, element=expr, expected=_show(rule.fixed[1])))
        if rule.pattern is not None and not _matches_pattern(rule.pattern[1], value):
            self.issues.append(issue("YL-3021", expr, element=expr, expected=_show(rule.pattern[1])))
        if rule.binding is not None:
            self.binding(rule.binding, value, expr)
        if rule.extension_profile is not None and isinstance(value, dict):
            ext = compiled_profile(rule.extension_profile)
            if ext is not None:
                Walker(ext.url, self.issues).element(ext.root, value, expr)
        if isinstance(value, dict):
            for child in rule.children:
                if child.plain:
                    # inline the usual outcome of children(): present (or absent and optional)
                    raw = value.get(child.name)
                    if raw is None:
                        if child.min:
                            self._missing(child, f"{expr}.{child.name}")
                        continue
                    if not child.check_max and not (child.min > 1 or (isinstance(raw, list) and not raw)):
                        continue
                self.children(child, value, expr)
        for key, severity, human, fn in rule.invariants:
            try:
                holds = fn(value)
            except Exception as exc:  # a broken instance can break an expression
                self.issues.append(issue("YL-3061", expr, key=key, detail=str(exc)[:200]))
                continue
            if not holds:
                self.issues.append(issue("YL-3060", expr, severity=severity, key=key, human=human))

    def binding(self, valueset: str, value: Json, expr: str) -> None:
        pairs: list[tuple[Json, Json]]  # (system, code) as the instance holds them
        if isinstance(value, str):
            pairs = [(None, value)]
        elif isinstance(value, dict):
            codings = value.get("coding") if "coding" in value or "code" not in value else None
            if codings is None and "code" in value:
                codings = [value]
            if codings is None and isinstance(value.get("concept"), dict):  # CodeableReference
                codings = value["concept"].get("coding")
            if codings is None:
                return
            pairs = [(c.get("system"), c.get("code")) for c in codings if isinstance(c, dict)]
        else:
            return
        if not pairs:
            return
        verdicts = [in_value_set(valueset, s, c)[0] if isinstance(c, str) else False for s, c in pairs]
        if any(v is True for v in verdicts) or any(v is None for v in verdicts):
            return
        shown = ", ".join(f"{s}|{c}" if s else str(c) for s, c in pairs)
        self.issues.append(issue("YL-3030", expr, element=expr, code=shown, valueset=valueset))

    def children(self, rule: Rule, parent: dict[str, Json], parent_expr: str) -> None:
        if rule.choice:
            prefix = rule.prefix
            found = None
            for k in parent:
                if k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isupper():
                    found = k
                    break
            if found is None:
                if rule.min:
                    self._missing(rule, f"{parent_expr}.{prefix}")
                return
            if rule.max == 0:
                expr = f"{parent_expr}.{found}"
                self.issues.append(issue("YL-3011", expr, element=rule.label, max=0, count=1, profile=self.profile))
            elif rule.json_types and found[len(prefix) :] not in rule.json_types:
                expr = f"{parent_expr}.{found}"
                self.issues.append(
                    issue("YL-3013", expr, element=rule.label, type=found[len(prefix) :], profile=self.profile)
                )
            elif rule.deep:
                self.element(rule, parent[found], f"{parent_expr}.{found}")
            return
        raw = parent.get(rule.name)
        if raw is None:
            # An absent sliced element still owes its required slices (a prescription with no
            # extension at all lacks the category slice); report those, else the element.
            for sl in rule.required_slices:
                self._missing(sl.rule, f"{parent_expr}.{rule.name}")
            if rule.min and not rule.required_slices:
                self._missing(rule, f"{parent_expr}.{rule.name}")
            return
        values = raw if isinstance(raw, list) else [raw]
        count = len(values)
        if count < rule.min:
            self._missing(rule, f"{parent_expr}.{rule.name}")
        if rule.check_max and rule.max is not None and count > rule.max:
            self.issues.append(
                issue(
                    "YL-3011",
                    f"{parent_expr}.{rule.name}",
                    element=rule.label,
                    max=rule.max,
                    count=count,
                    profile=self.profile,
                )
            )
        if not rule.slices:
            if rule.deep:
                base_expr = f"{parent_expr}.{rule.name}"
                for i, v in enumerate(values):
                    self.element(rule, v, f"{base_expr}[{i}]" if rule.is_array else base_expr)
            return
        base_expr = f"{parent_expr}.{rule.name}"
        counts = [0] * len(rule.slices)
        for i, v in enumerate(values):
            n = self._slice_of(rule, v)
            target = rule.slices[n].rule if n is not None else None if rule.closed else rule
            if n is not None:
                counts[n] += 1
            if target is None or target.deep:
                expr = f"{base_expr}[{i}]" if rule.is_array else base_expr
                if target is None:
                    self.issues.append(issue("YL-3050", expr, element=expr, profile=self.profile))
                else:
                    self.element(target, v, expr)
        for n, sl in enumerate(rule.slices):
            if counts[n] < sl.rule.min:
                self._missing(sl.rule, base_expr)
            elif sl.rule.max is not None and counts[n] > sl.rule.max:
                self.issues.append(
                    issue(
                        "YL-3011",
                        base_expr,
                        element=sl.rule.label,
                        max=sl.rule.max,
                        count=counts[n],
                        profile=self.profile,
                    )
                )

    @staticmethod
    def _slice_of(rule: Rule, value: Json) -> int | None:
        if rule.slice_path is not None:
            key = _at(value, rule.slice_path)
            return rule.slice_index.get(key) if isinstance(key, str) else None
        for n, sl in enumerate(rule.slices):
            if sl.keys and all(want is not None and _matches_pattern(want, _at(value, path)) for path, want in sl.keys):
                return n
        return None

    def _missing(self, rule: Rule, expr: str) -> None:
        self.issues.append(issue("YL-3010", expr, element=rule.label, min=rule.min, profile=self.profile))


def _show(value: Json) -> str:
    if isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(value).decode()
