"""What a search should return, computed from the resources the test wrote.

For each SearchParameter the kit evaluates its FHIRPath expression (fhirpathpy on the R5 model)
on every test resource, turns the values into a query string of the parameter's type and decides
with simple, documented matching rules which of the test's resources must come back:

    token      `system|code` exact, or `code` alone (booleans as true/false)
    string     case-insensitive "starts with" on every string of the value (HumanName, Address parts)
    date       compared by day (the test data uses noon +08:00, so day boundaries are unambiguous)
    quantity   compared by number (the test data uses integers far apart)
    reference  `Type/id`
    composite  every component matching in the same element
"""

from __future__ import annotations

from functools import cache
from typing import Any

from conformance.definitions import SearchParamReq, load

Json = dict[str, Any]
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@cache
def _compiled(expression: str) -> Any:
    import fhirpathpy
    from fhirpathpy.models import models

    return fhirpathpy.compile(expression, models["r5"])


def evaluate(resource: Json, expression: str) -> list[Any]:
    if not expression:
        return []
    return [v for v in _compiled(expression)(resource) if v is not None]


def _tokens(node: Any) -> list[tuple[str | None, str]]:
    if isinstance(node, bool):
        return [(None, "true" if node else "false")]
    if isinstance(node, str | int | float):
        return [(None, str(node))]
    if isinstance(node, dict):
        if "coding" in node:
            return [t for c in node["coding"] for t in _tokens(c)]
        if "code" in node:
            return [(node.get("system"), str(node["code"]))]
        if "value" in node:
            return [(node.get("system"), str(node["value"]))]
    return []


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        out: list[str] = []
        for key in (
            "family",
            "given",
            "text",
            "prefix",
            "suffix",
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
        ):
            value = node.get(key)
            out.extend(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
        return out
    return []


def _days(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [str(v)[:10] for v in (node.get("start"), node.get("end")) if v]
    return [str(node)[:10]] if node else []


def _numbers(node: Any) -> list[float]:
    if isinstance(node, dict) and "value" in node:
        return [float(node["value"])]
    if isinstance(node, int | float) and not isinstance(node, bool):
        return [float(node)]
    return []


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict) and isinstance(node.get("reference"), str):
        return [node["reference"]]
    return [node] if isinstance(node, str) else []


def _fmt_number(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


def query_values(kind: str, nodes: list[Any]) -> list[str]:
    """Query strings (no prefix) that would find a resource with these values, best first."""
    if kind == "token":
        return [f"{s}|{c}" if s else c for s, c in (t for n in nodes for t in _tokens(n))]
    if kind == "string":
        return [s for n in nodes for s in _strings(n)]
    if kind == "date":
        return [d for n in nodes for d in _days(n)]
    if kind == "quantity" or kind == "number":
        return [_fmt_number(v) for n in nodes for v in _numbers(n)]
    if kind == "reference":
        return [r for n in nodes for r in _refs(n)]
    if kind == "uri":
        return [n for n in nodes if isinstance(n, str)]
    return []


def _split_prefix(kind: str, query: str) -> tuple[str, str]:
    if kind in ("date", "quantity", "number") and query[:2] in PREFIXES and not query[:2].isdigit():
        return query[:2], query[2:]
    return "eq", query


def _compare(prefix: str, left: Any, right: Any) -> bool:
    return bool(
        {
            "eq": left == right,
            "ne": left != right,
            "gt": left > right,
            "lt": left < right,
            "ge": left >= right,
            "le": left <= right,
        }.get(prefix, False)
    )


def matches(kind: str, query: str, nodes: list[Any]) -> bool:
    """Whether a resource with these values must match `query` (one value, no OR)."""
    if kind == "token":
        system, bar, code = query.rpartition("|")
        return any(c == code and (not bar or s == (system or None)) for n in nodes for s, c in _tokens(n))
    if kind == "string":
        q = query.casefold()
        return any(s.casefold().startswith(q) for n in nodes for s in _strings(n))
    if kind == "date":
        prefix, day = _split_prefix(kind, query)
        return any(_compare(prefix, d, day[:10]) for n in nodes for d in _days(n))
    if kind in ("quantity", "number"):
        prefix, number_text = _split_prefix(kind, query)
        number = float(number_text.split("|")[0])
        if prefix == "eq":
            return any(abs(v - number) < 0.5 for n in nodes for v in _numbers(n))
        return any(_compare(prefix, v, number) for n in nodes for v in _numbers(n))
    if kind == "reference":
        return any(r == query or r.endswith("/" + query) for n in nodes for r in _refs(n))
    if kind == "uri":
        return query in nodes
    return False


class Oracle:
    """Values and expected matches of one search parameter over the test's resources."""

    def __init__(self, param: SearchParamReq) -> None:
        self.param = param
        self.kind = param.type
        self.components: list[tuple[str, str]] = []
        if self.kind == "composite":
            defs = load()
            for comp in param.definition.get("component", []):
                comp_def = defs.search_parameters.get(comp.get("definition", ""), {})
                self.components.append((comp_def.get("type", "token"), comp.get("expression", "")))

    def nodes(self, resource: Json) -> list[Any]:
        return evaluate(resource, self.param.expression)

    def queries(self, resource: Json) -> list[str]:
        nodes = self.nodes(resource)
        if self.kind != "composite":
            return query_values(self.kind, nodes)
        out = []
        for node in nodes:
            parts = [query_values(kind, evaluate(node, expr)) for kind, expr in self.components]
            if all(parts):
                out.append("$".join(p[0] for p in parts))
        return out

    def matches(self, query: str, resource: Json) -> bool:
        if self.kind != "composite":
            return any(matches(self.kind, q, self.nodes(resource)) for q in query.split(","))
        for alternative in query.split(","):
            wanted = alternative.split("$")
            for node in self.nodes(resource):
                if all(
                    matches(kind, part, evaluate(node, expr))
                    for (kind, expr), part in zip(self.components, wanted, strict=False)
                ):
                    return True
        return False

    def absent(self, tag: str) -> str:
        """A query value that none of the test's resources (nor any sane server data) matches."""
        return {
            "token": f"urn:yaolian:conformance|absent-{tag}",
            "string": f"zzq-absent-{tag}",
            "date": "1900-01-01",
            "quantity": "987654321",
            "number": "987654321",
            "reference": f"{(self.param.definition.get('target') or ['Patient'])[0]}/absent-{tag}",
            "uri": f"urn:yaolian:absent:{tag}",
            "composite": f"urn:yaolian:conformance|absent-{tag}$987654321",
        }.get(self.kind, f"absent-{tag}")
