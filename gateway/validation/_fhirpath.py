"""FHIRPath invariants as plain Python closures, with fhirpathpy as the reference and fallback.

fhirpathpy interprets its parse tree on every call (node dictionaries, a registry lookup per
function, a wrapper object per value) and spent about a third of a prescription's validation
time on five short invariants. The invariants our profiles use need a small part of the
language, so :func:`compiled` turns fhirpathpy's own parse tree into nested closures over the
raw JSON once per expression.

Two rules keep the closures equal to fhirpathpy:

* At compile time, any node kind, function or operand type the compiler does not model makes
  the whole expression use the fhirpathpy callable (no partial support).
* At run time, a closure that meets anything whose meaning it does not model, or where
  fhirpathpy departs from the FHIRPath specification or would raise, raises :class:`Unsure`
  and that one evaluation is redone by fhirpathpy. Unsure cases are: a second value where a
  singleton is expected, a non-Boolean operand of a Boolean operator, primitive extensions
  (``_birthDate``), null values, a nested ``resourceType`` (fhirpathpy retypes the node), a
  second matching ``extension(url)``, floats in ``=`` and comparisons other than numbers.

Choice elements (``value`` -> ``valueQuantity``) are resolved with fhirpathpy's R5 model tables,
tracking for each step the set of element paths fhirpathpy would give the node, so a
navigation resolves the same choice type it would. Three-valued logic, empty propagation and
singleton evaluation follow the specification (and fhirpathpy, which agrees on the modelled
cases); ``tests/validation/test_fhirpath.py`` compares the two on every invariant in
``profiles/`` over the examples and their mutations.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.evaluators import evaluators as fp_evaluators
from fhirpathpy.engine.evaluators import identifier as fp_identifier
from fhirpathpy.models import models
from fhirpathpy.parser import parse

__all__ = ["Unsure", "closure", "compiled"]

Json = Any
Focus = list[Any]
Fn = Callable[[Focus], Focus]
Node = dict[str, Any]

_MODEL: dict[str, Any] = models["r5"]
_DATE_TYPES = frozenset({"date", "dateTime", "instant", "time"})
_EMPTY: Focus = []


class Unsure(Exception):
    """A closure met a case it does not model; the caller evaluates with fhirpathpy."""


class _Unsupported(Exception):
    """The expression uses something the compiler does not model."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    fn: Fn
    # element paths fhirpathpy would give the resulting nodes (None: the root of a fragment
    # without resourceType); ``paths is None``: computed values (literals, function results)
    paths: frozenset[str | None] | None


@functools.cache
def compiled(expression: str) -> Callable[[Json], Focus]:
    """``fhirpathpy.compile(expression)`` with the same results, mostly without fhirpathpy."""
    fallback = cast(Callable[[Json], Focus], fhirpath_compile(expression, _MODEL))
    tree = _parse(expression)
    by_root: dict[str | None, Fn | None] = {}

    def evaluate(node: Json) -> Focus:
        if type(node) is dict:
            root = node.get("resourceType")
            if root is None or type(root) is str:
                try:
                    fn = by_root[root]
                except KeyError:
                    fn = by_root[root] = closure(tree, root)
                if fn is not None:
                    try:
                        return fn([node])
                    except Unsure:
                        pass
        return list(fallback(node))

    return evaluate


def closure(expression: str | Node, root: str | None) -> Fn | None:
    """The closure for an expression (or its parse tree) evaluated on a node typed ``root`` (a
    resource type, or None for a fragment), or None if the compiler does not model it."""
    tree = _parse(expression) if isinstance(expression, str) else expression
    try:
        return _expression(tree, frozenset({root}), False).fn
    except _Unsupported:
        return None


# ------------------------------------------------------------------------------------------
# compile


def _parse(expression: str) -> Node:
    parser: Callable[[str], Node] = parse
    return parser(expression)["children"][0]  # type: ignore[no-any-return]


def _identifier(node: Node) -> str:
    """An identifier's name as fhirpathpy reads it (quotes and backticks removed)."""
    reader: Callable[[None, None, Node], list[str]] = fp_identifier
    return reader(None, None, node)[0].replace("`", "")


def _expression(node: Node, focus: frozenset[str | None] | None, this_ok: bool) -> _Compiled:
    """Compile ``node`` for a focus whose nodes have the element paths ``focus``. ``this_ok``:
    inside the criteria of ``where``/``all``/``exists``, where ``$this`` is the focus."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "TermExpression":
        return _term(children[0], focus, this_ok)
    if kind == "InvocationExpression":
        left = _expression(children[0], focus, this_ok)
        return _invocation(children[1], left, left.paths)
    if kind in ("EqualityExpression", "InequalityExpression", "AdditiveExpression"):
        return _comparison(node["terminalNodeText"][0], *(_expression(c, focus, this_ok) for c in children))
    if kind in ("AndExpression", "OrExpression", "ImpliesExpression"):
        return _logic(node["terminalNodeText"][0], *(_expression(c, focus, this_ok) for c in children))
    raise _Unsupported(kind)


def _term(node: Node, focus: frozenset[str | None] | None, this_ok: bool) -> _Compiled:
    kind = node["type"]
    inner = node.get("children", [])
    if kind == "ParenthesizedTerm":
        return _expression(inner[0], focus, this_ok)
    if kind == "LiteralTerm":
        value = _literal(inner[0])
        return _Compiled(lambda _focus: value, None)
    if kind == "InvocationTerm":
        head = inner[0]
        if head["type"] == "ThisInvocation" and this_ok:
            return _Compiled(lambda f: f, focus)
        return _invocation(head, None, focus)
    raise _Unsupported(kind)


def _literal(node: Node) -> Focus:
    kind = node["type"]
    if kind == "NullLiteral":
        return _EMPTY
    if kind in ("StringLiteral", "NumberLiteral", "BooleanLiteral"):
        value: Focus = fp_evaluators[kind](None, None, node)
        return value
    raise _Unsupported(kind)


def _literal_param(params: list[Node], i: int) -> Any:
    """A function argument that must be a literal (fhirpathpy evaluates other arguments
    against ``$this``, not the function's input)."""
    node = params[i]
    if node["type"] != "TermExpression" or node["children"][0]["type"] != "LiteralTerm":
        raise _Unsupported("non-literal argument")
    value = _literal(node["children"][0]["children"][0])
    if len(value) != 1:
        raise _Unsupported("empty argument")
    return value[0]


def _invocation(node: Node, left: _Compiled | None, paths: frozenset[str | None] | None) -> _Compiled:
    """A member or function applied to ``left`` (None: to the focus itself)."""
    kind = node["type"]
    if kind == "MemberInvocation":
        name = _identifier(node["children"][0])
        step = _member(name, paths)
    elif kind == "FunctionInvocation":
        functn = node["children"][0]
        name = functn["children"][0]["text"]
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        step = _function(name, params, paths)
    else:
        raise _Unsupported(kind)
    if left is None:
        return step
    first, then = left.fn, step.fn
    return _Compiled(lambda f: then(first(f)), step.paths)


def _member(name: str, paths: frozenset[str | None] | None) -> _Compiled:
    if paths is None or not name or name[0] == name[0].upper() or name == "length":
        raise _Unsupported(f"navigation to {name}")
    resolved: list[tuple[str, list[str] | None]] = []
    for path in paths:
        child = f"{path}.{name}" if path else f"_.{name}"
        child = _MODEL["pathsDefinedElsewhere"].get(child, child)
        resolved.append((child, _MODEL["choiceTypePaths"].get(child)))
    path2type = _MODEL["path2Type"]
    if any(types for _, types in resolved):
        if len(resolved) != 1:
            raise _Unsupported(f"choice {name} from several types")
        child, types = resolved[0]
        assert types is not None
        return _Compiled(_choice_step(name, types), frozenset(path2type.get(child + t, child + t) for t in types))
    out = set()
    for child, _ in resolved:
        if name == "extension":
            child = "Extension"
        out.add(path2type.get(child, child))
    return _Compiled(_member_step(name), frozenset(out))


def _member_step(name: str) -> Fn:
    shadow = "_" + name

    def step(focus: Focus) -> Focus:
        out: Focus = []
        for item in focus:
            if type(item) is not dict:
                continue  # primitives have no children
            if shadow in item:
                raise Unsure
            value = item.get(name)
            if value is None:
                continue
            if type(value) is list:
                for v in value:
                    if v is None or (type(v) is dict and "resourceType" in v):
                        raise Unsure
                out += value
            else:
                if type(value) is dict and "resourceType" in value:
                    raise Unsure
                out.append(value)
        return out

    return step


def _choice_step(name: str, types: list[str]) -> Fn:
    order = {name + t: n for n, t in enumerate(types)}
    shadow = "_" + name

    def step(focus: Focus) -> Focus:
        out: Focus = []
        for item in focus:
            if type(item) is not dict:
                continue
            best, rank = None, len(order)
            for key in item:
                n = order.get(key)
                if n is not None and n < rank:
                    best, rank = key, n
                elif key.startswith(shadow):
                    raise Unsure
            if best is None:
                continue
            value = item[best]
            if value is None or type(value) is list or (type(value) is dict and "resourceType" in value):
                raise Unsure
            out.append(value)
        return out

    return step


def _function(name: str, params: list[Node], paths: frozenset[str | None] | None) -> _Compiled:
    arity = len(params)
    if name in ("where", "all") or (name == "exists" and arity == 1):
        if arity != 1:
            raise _Unsupported(name)
        criteria = _expression(params[0], paths, True)
        if criteria.paths is not None:
            # fhirpathpy tests a node's truth by the node object, not its value
            raise _Unsupported(f"{name} over element values")
        test = criteria.fn
        if name == "all":
            return _Compiled(_all(test), None)
        where = _where(test)
        if name == "exists":
            return _Compiled(lambda f: [bool(where(f))], None)
        return _Compiled(where, paths)
    if name == "extension" and arity == 1:
        url = _literal_param(params, 0)
        if not isinstance(url, str):
            raise _Unsupported("extension url")
        return _Compiled(_extension(url), frozenset({"Extension"}))
    if name == "matches" and arity == 1:
        pattern = _literal_param(params, 0)
        if not isinstance(pattern, str) or not pattern:
            raise _Unsupported("matches pattern")
        try:
            regex = re.compile(pattern, re.DOTALL)
        except re.error as exc:
            raise _Unsupported("matches pattern") from exc
        return _Compiled(_matches(regex), None)
    if name == "substring" and arity in (1, 2):
        bounds = [_literal_param(params, i) for i in range(arity)]
        if any(type(b) is not int or b < 0 for b in bounds):
            raise _Unsupported("substring bounds")
        return _Compiled(_substring(bounds[0], bounds[1] if arity == 2 else None), None)
    if name == "replace" and arity == 2:
        old, new = _literal_param(params, 0), _literal_param(params, 1)
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise _Unsupported("replace arguments")
        return _Compiled(_replace(old, new), None)
    if arity:
        raise _Unsupported(name)
    if name == "exists":
        return _Compiled(lambda f: [bool(f)], None)
    if name == "empty":
        return _Compiled(lambda f: [not f], None)
    if name == "count":
        return _Compiled(lambda f: [len(f)], None)
    if name == "not":
        return _Compiled(_not, None)
    if name == "toString":
        return _Compiled(_to_string, None)
    if name == "first":
        return _Compiled(lambda f: f[:1], paths)
    raise _Unsupported(name)


def _truth(result: Focus) -> bool | None:
    """The Boolean a criteria result stands for (None for empty); anything else is Unsure."""
    if not result:
        return None
    if len(result) == 1 and type(result[0]) is bool:
        return bool(result[0])
    raise Unsure


def _where(test: Fn) -> Fn:
    def where(focus: Focus) -> Focus:
        return [item for item in focus if _truth(test([item]))]

    return where


def _all(test: Fn) -> Fn:
    def all_(focus: Focus) -> Focus:
        # stops at the first item that is not true, as fhirpathpy does
        for item in focus:
            if _truth(test([item])) is not True:
                return [False]
        return [True]

    return all_


def _extension(url: str) -> Fn:
    def extension(focus: Focus) -> Focus:
        out: Focus = []
        for item in focus:
            if type(item) is not dict:
                continue
            exts = item.get("extension", _EMPTY)
            if type(exts) is not list:
                raise Unsure
            found = None
            for ext in exts:
                if type(ext) is not dict or "url" not in ext:
                    raise Unsure
                if ext["url"] == url:
                    if found is not None or "resourceType" in ext:
                        raise Unsure  # fhirpathpy keeps only the first
                    found = ext
            if found is not None:
                out.append(found)
        return out

    return extension


def _string(focus: Focus) -> str:
    if len(focus) == 1 and type(focus[0]) is str:
        return str(focus[0])
    raise Unsure


def _matches(regex: re.Pattern[str]) -> Fn:
    def matches(focus: Focus) -> Focus:
        if not focus:
            return _EMPTY
        return [regex.search(_string(focus)) is not None]

    return matches


def _substring(start: int, length: int | None) -> Fn:
    def substring(focus: Focus) -> Focus:
        if not focus:
            return _EMPTY
        s = _string(focus)
        if start >= len(s):
            return _EMPTY
        return [s[start:] if length is None else s[start : start + length]]

    return substring


def _replace(old: str, new: str) -> Fn:
    def replace(focus: Focus) -> Focus:
        if not focus:
            return _EMPTY
        s = _string(focus)
        if not s:
            raise Unsure  # fhirpathpy returns empty for ''
        return [s.replace(old, new)]

    return replace


def _not(focus: Focus) -> Focus:
    value = _truth(focus)
    return _EMPTY if value is None else [not value]


def _to_string(focus: Focus) -> Focus:
    if len(focus) != 1:
        if not focus:
            return _EMPTY
        raise Unsure
    value = focus[0]
    if type(value) is str:
        return [value]
    if type(value) is int:
        return [str(value)]
    raise Unsure  # booleans print as Python's True, decimals need their FHIR form


def _number(value: Any) -> int | Decimal:
    t = type(value)
    if t is int or t is Decimal:
        return value  # type: ignore[no-any-return]
    if t is float:
        return Decimal(str(value))  # the decimal as written in the JSON
    raise Unsure


def _operands(a_fn: Callable[[Focus], Focus], b_fn: Callable[[Focus], Focus], focus: Focus) -> tuple[Any, Any] | None:
    """Both sides of a binary operator as singletons; None if either is empty (the result is
    then empty), :class:`Unsure` if either holds several items."""
    a, b = a_fn(focus), b_fn(focus)
    if not a or not b:
        return None
    if len(a) != 1 or len(b) != 1:
        raise Unsure
    return a[0], b[0]


def _comparison(op: str, left: _Compiled, right: _Compiled) -> _Compiled:
    if op in ("=", "!="):
        for side in (left, right):
            if side.paths is not None and any(p in _DATE_TYPES for p in side.paths):
                raise _Unsupported("date equality")  # FHIRPath compares dates by precision
        negate = op == "!="
        a_fn, b_fn = left.fn, right.fn

        def equal(focus: Focus) -> Focus:
            pair = _operands(a_fn, b_fn, focus)
            if pair is None:
                return _EMPTY
            x, y = pair
            tx, ty = type(x), type(y)
            if tx is float or ty is float or tx is dict or ty is dict or tx is list or ty is list:
                raise Unsure
            if (tx is bool) != (ty is bool) or (tx is str) != (ty is str):
                raise Unsure
            return [(x == y) is not negate]

        return _Compiled(equal, None)
    a_fn, b_fn = left.fn, right.fn
    if op == "+":

        def plus(focus: Focus) -> Focus:
            pair = _operands(a_fn, b_fn, focus)
            if pair is None:
                return _EMPTY
            x, y = pair
            if type(x) is int and type(y) is int:
                return [x + y]
            raise Unsure  # fhirpathpy reads date strings as dates here

        return _Compiled(plus, None)
    compare = _ORDER.get(op)
    if compare is None:
        raise _Unsupported(op)

    def inequality(focus: Focus) -> Focus:
        pair = _operands(a_fn, b_fn, focus)
        if pair is None:
            return _EMPTY
        return [compare(_number(pair[0]), _number(pair[1]))]

    return _Compiled(inequality, None)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}


def _logic(op: str, left: _Compiled, right: _Compiled) -> _Compiled:
    table = _LOGIC.get(op)
    if table is None:
        raise _Unsupported(op)
    a_fn, b_fn = left.fn, right.fn

    def logic(focus: Focus) -> Focus:
        # both sides are evaluated, as fhirpathpy does, so an Unsure on either is never lost
        result = table(_truth(a_fn(focus)), _truth(b_fn(focus)))
        return _EMPTY if result is None else [result]

    return _Compiled(logic, None)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return True if a is True and b is True else None


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return False if a is False and b is False else None


def _xor(a: bool | None, b: bool | None) -> bool | None:
    return None if a is None or b is None else a is not b


def _implies(a: bool | None, b: bool | None) -> bool | None:
    if a is False:
        return True
    if a is True:
        return b
    return True if b is True else None


_LOGIC: dict[str, Callable[[bool | None, bool | None], bool | None]] = {
    "and": _and,
    "or": _or,
    "xor": _xor,
    "implies": _implies,
}
