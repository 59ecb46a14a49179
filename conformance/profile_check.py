"""A compact, independent checker of returned resources against the alliance profiles.

It shares nothing with the gateway's validator on purpose: a vendor's server is judged by the
definitions, not by our implementation of them. Base structure comes from fhir.resources; the
profile rules are read from each StructureDefinition's snapshot:

- cardinality of every element, per parent instance, including slices (`identifier:hospRxno`);
- slices recognised by their discriminator (`system`, `url`) or by their pattern;
- `fixed[x]` (equal) and `pattern[x]` (contained);
- required bindings to the alliance's own ValueSets/CodeSystems;
- extensions checked against their own StructureDefinitions (complex ones too);
- `yl-*` invariants (FHIRPath, compiled once, evaluated on the R5 model);
- identifier formats from the NamingSystems (`format ^…$`), and the resident ID check character.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from conformance.definitions import Definitions, load

Json = dict[str, Any]
Node = Any


def _children(node: Node, name: str) -> list[Node]:
    if not isinstance(node, dict):
        return []
    if name.endswith("[x]"):
        stem = name[:-3]
        values = [v for k, v in node.items() if k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper()]
    else:
        values = [node[name]] if name in node else []
    out: list[Node] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _choice_value(element: Json, prefix: str) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
            return key, value
    return None


def _contains(node: Node, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(node, dict) and all(_contains(node.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = node if isinstance(node, list) else [node]
        return all(any(_contains(i, p) for i in items) for p in pattern)
    return bool(node == pattern)


class ProfileChecker:
    def __init__(self, definitions: Definitions | None = None) -> None:
        self.defs = definitions or load()

    # --- public --------------------------------------------------------------------------------
    def check(self, resource: Json, profiles: Iterable[str] | None = None) -> list[str]:
        """All problems found in `resource`, as human-readable lines ("path: problem")."""
        issues = self.structure(resource)
        wanted = list(profiles or [])
        if not wanted:
            declared = (resource.get("meta") or {}).get("profile") or []
            wanted = [p for p in declared if p in self.defs.structure_definitions]
            req = self.defs.resource(resource.get("resourceType", ""))
            if req and req.profile and req.profile not in wanted:
                wanted.append(req.profile)
        for url in wanted:
            sd = self.defs.structure_definitions.get(url)
            if sd:
                issues.extend(self._check_sd(resource, sd))
        issues.extend(self._identifier_formats(resource, resource.get("resourceType", "")))
        return issues

    def structure(self, resource: Json) -> list[str]:
        from fhir.resources import get_fhir_model_class
        from pydantic import ValidationError

        try:
            model = get_fhir_model_class(resource.get("resourceType", ""))
        except (KeyError, ValueError) as exc:
            return [f"{resource.get('resourceType')}: unknown resource type ({exc})"]
        try:
            model.model_validate(resource)
        except ValidationError as exc:
            return [
                f"{resource['resourceType']}.{'.'.join(map(str, e['loc']))}: {e['msg']} (structure)"
                for e in exc.errors()[:10]
            ]
        return []

    def nodes(self, resource: Json, element_id: str, sd: Json) -> list[Node]:
        """The instance nodes an element id (with slices) designates in `resource`."""
        return self._nodes(resource, element_id, self._index(sd["url"]))

    # --- internals -----------------------------------------------------------------------------
    @cache  # noqa: B019 - one checker per run, definitions are immutable
    def _index(self, url: str) -> dict[str, Json]:
        return {e["id"]: e for e in self.defs.structure_definitions[url]["snapshot"]["element"]}

    def _nodes(self, root: Node, element_id: str, index: dict[str, Json]) -> list[Node]:
        segments = element_id.split(".")
        nodes = [root]
        prefix = segments[0]
        for seg in segments[1:]:
            name, _, slice_name = seg.partition(":")
            base_id = f"{prefix}.{name}"
            prefix = f"{prefix}.{seg}"
            found: list[Node] = []
            for n in nodes:
                found.extend(_children(n, name))
            if slice_name:
                found = [f for f in found if self._in_slice(f, index.get(base_id, {}), prefix, index)]
            nodes = found
        return nodes

    def _in_slice(self, node: Node, sliced: Json, slice_id: str, index: dict[str, Json]) -> bool:
        element = index.get(slice_id, {})
        pattern = _choice_value(element, "pattern") or _choice_value(element, "fixed")
        if pattern:
            return _contains(node, pattern[1])
        for disc in (sliced.get("slicing") or {}).get("discriminator", [{"path": "url"}]):
            path = disc.get("path", "")
            child = index.get(f"{slice_id}.{path}", {})
            expected = _choice_value(child, "fixed") or _choice_value(child, "pattern")
            if expected is None and path == "url":
                profiles = [p for t in element.get("type", []) for p in t.get("profile", [])]
                expected = ("fixedUri", profiles[0]) if profiles else None
            if expected is None or not isinstance(node, dict) or node.get(path) != expected[1]:
                return False
        return True

    def _check_sd(self, root: Node, sd: Json, where: str | None = None) -> list[str]:
        index = self._index(sd["url"])
        issues: list[str] = []
        root_path = where or sd["type"]
        for element_id, element in index.items():
            if "." not in element_id:
                issues.extend(self._invariants(root, element, root_path))
                continue
            parent_id = element_id.rsplit(".", 1)[0]
            parents = self._nodes(root, parent_id, index)
            label = root_path + element_id[len(sd["type"]) :]
            last = element_id.rsplit(".", 1)[1]
            name, _, slice_name = last.partition(":")
            for parent in parents:
                here = _children(parent, name)
                if slice_name:
                    sliced = index.get(f"{parent_id}.{name}", {})
                    here = [h for h in here if self._in_slice(h, sliced, element_id, index)]
                issues.extend(self._cardinality(label, element, len(here)))
                if name.endswith("[x]") and isinstance(parent, dict):
                    allowed = {t["code"][:1].upper() + t["code"][1:] for t in element.get("type", [])}
                    stem = name[:-3]
                    for key in parent:
                        kind = key[len(stem) :]
                        if key.startswith(stem) and kind[:1].isupper() and allowed and kind not in allowed:
                            issues.append(f"{label}: {key} is not allowed here (types: {', '.join(sorted(allowed))})")
                if (element.get("slicing") or {}).get("rules") == "closed" and not slice_name:
                    slices = [k for k in index if k.startswith(element_id + ":") and "." not in k[len(element_id) :]]
                    for h in here:
                        if not any(self._in_slice(h, element, k, index) for k in slices):
                            issues.append(f"{label}: {h!r} matches none of the slices and the slicing is closed")
                for node in here:
                    issues.extend(self._values(label, element, node))
        return issues

    def _cardinality(self, label: str, element: Json, count: int) -> list[str]:
        out = []
        low, high = element.get("min", 0), element.get("max", "*")
        if count < low:
            out.append(f"{label}: at least {low} required, found {count}")
        if high != "*" and count > int(high):
            out.append(f"{label}: at most {high} allowed, found {count}")
        return out

    def _values(self, label: str, element: Json, node: Node) -> list[str]:
        out = []
        fixed = _choice_value(element, "fixed")
        if fixed and node != fixed[1]:
            out.append(f"{label}: must be {fixed[1]!r} ({fixed[0]}), found {node!r}")
        pattern = _choice_value(element, "pattern")
        if pattern and not _contains(node, pattern[1]):
            out.append(f"{label}: must contain {pattern[1]!r} ({pattern[0]}), found {node!r}")
        binding = element.get("binding") or {}
        if binding.get("strength") == "required" and binding.get("valueSet") in self.defs.value_sets:
            problem = self._binding(node, binding["valueSet"])
            if problem:
                out.append(f"{label}: {problem}")
        for t in element.get("type", []):
            for url in t.get("profile", []):
                ext_sd = self.defs.extension_definition(url)
                if ext_sd and isinstance(node, dict) and node.get("url") == url:
                    out.extend(self._check_sd(node, ext_sd, f"{label}"))
        return out

    def _binding(self, node: Node, vs_url: str) -> str | None:
        allowed = self._value_set_codes(vs_url)
        if allowed is None:
            return None
        codes: list[tuple[str | None, str | None]]
        if isinstance(node, str):
            codes = [(None, node)]
        elif isinstance(node, dict) and "coding" in node:
            codes = [(c.get("system"), c.get("code")) for c in node["coding"]]
        elif isinstance(node, dict):
            codes = [(node.get("system"), node.get("code"))]
        else:
            return None
        for system, code in codes:
            if any(code == c and (system is None or system == s) for s, c in allowed):
                return None
        return f"code {codes} is not in ValueSet {vs_url}"

    @cache  # noqa: B019
    def _value_set_codes(self, vs_url: str) -> frozenset[tuple[str, str]] | None:
        vs = self.defs.value_sets.get(vs_url) or {}
        codes: set[tuple[str, str]] = set()
        for include in (vs.get("compose") or {}).get("include", []):
            system = include.get("system")
            if include.get("concept"):
                codes.update((system, c["code"]) for c in include["concept"])
            elif system in self.defs.code_systems:
                codes.update((system, c["code"]) for c in _all_concepts(self.defs.code_systems[system]))
            else:
                return None  # an external code system: not checked offline
        return frozenset(codes)

    def _invariants(self, node: Node, element: Json, label: str) -> list[str]:
        out = []
        for constraint in element.get("constraint", []):
            if not constraint.get("key", "").startswith("yl-") or constraint.get("severity") != "error":
                continue
            try:
                result = _compiled(constraint["expression"])(node)
            except Exception as exc:  # a definition the kit cannot evaluate is reported, not fatal
                out.append(f"{label}: invariant {constraint['key']} could not be evaluated ({exc})")
                continue
            if result == [False]:
                out.append(f"{label}: invariant {constraint['key']} violated: {constraint.get('human', '')}")
        return out

    def _identifier_formats(self, node: Node, path: str) -> list[str]:
        out = []
        if isinstance(node, dict):
            system = node.get("system")
            value = node.get("value", node.get("code"))
            pattern = self.defs.identifier_formats.get(system or "")
            if pattern and isinstance(value, str):
                if not pattern.match(value):
                    out.append(f"{path}: {value!r} does not match the {system} format {pattern.pattern}")
                elif system == "urn:oid:2.16.156.10011.1.3" and not _resident_id_ok(value):
                    out.append(f"{path}: {value!r} has a wrong check character (GB 11643 MOD 11-2)")
            for key, child in node.items():
                items = child if isinstance(child, list) else [child]
                for i, item in enumerate(items):
                    suffix = f"[{i}]" if isinstance(child, list) else ""
                    out.extend(self._identifier_formats(item, f"{path}.{key}{suffix}"))
        return out


def _all_concepts(cs: Json) -> list[Json]:
    out, stack = [], list(cs.get("concept", []))
    while stack:
        c = stack.pop()
        out.append(c)
        stack.extend(c.get("concept", []))
    return out


def _resident_id_ok(value: str) -> bool:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(value[:17], weights, strict=True))
    return "10X98765432"[total % 11] == value[17]


@cache
def _compiled(expression: str) -> Any:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(expression, models["r5"])


def must_support(sd: Json) -> list[str]:
    """Element ids the profile marks mustSupport; if it marks none, the elements its differential
    constrains (what the alliance added to the base resource), which is what a vendor must fill."""
    flagged = [e["id"] for e in sd["snapshot"]["element"] if e.get("mustSupport")]
    if flagged:
        return flagged
    ids = []
    for e in sd.get("differential", {}).get("element", []):
        if "." not in e["id"] or e.get("max") == "0":
            continue
        last = e["id"].rsplit(".", 1)[1]
        if last in ("system", "url") and ":" in e["id"]:
            continue  # the discriminator of a slice, present whenever the slice is
        ids.append(e["id"])
    return ids
