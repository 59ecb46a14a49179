"""The base R5 rules the fhir.resources models do not enforce (part of the one structure check).

The models are lenient where the specification is not: ``"valueBoolean": 1`` is coerced to
``True``, a decimal of 19 digits or an id of 115 characters passes, an empty string or array is
taken, contained resources and references are not looked at, and the narrative is any string.
:func:`base_issues` walks the JSON with the R5 element tables (:mod:`gateway.fhir.definitions`,
built from the R5 snapshots: types, cardinality, reference targets, the primitive regexes) and
reports, in the same vocabulary as the rest of the validator:

* ``YL-3070`` a primitive that is not of its JSON kind (no coercion: a boolean is ``true`` or
  ``false``, an integer a JSON integer, a decimal a JSON number, everything else a string), does
  not match the R5 grammar of its type (the regexes of the R5 snapshots; the decimal one with the
  snapshot's typo repaired as the reference validator does), is out of range (integer, positiveInt,
  unsignedInt, integer64), longer than allowed (id 64, string/markdown 1 MiB), or is not a real
  date; ``dateTime``/``instant`` with a time but no offset; a canonical ending in ``|``;
* ``YL-3071`` an empty string, array or object (R5 JSON: "empty strings, arrays and objects are
  not allowed"; an empty object is ele-1, already ``YL-3060``, so not reported twice);
* ``YL-3073`` narrative XHTML: malformed, a DOCTYPE, an element or attribute outside the R5
  narrative rules (txt-1: the basic HTML formatting elements, ``a``, ``img``, style attributes;
  no ``script``, no event attributes, no ``javascript:`` URLs), no non-whitespace content (txt-2);
* ``YL-3074`` contained resources: without an id, duplicate ids; and ``YL-3060`` dom-2 (nested
  contained), dom-3 (a contained resource nobody refers to), dom-4 (``meta.versionId`` /
  ``lastUpdated``), dom-5 (security labels), ref-1 (a ``#id`` reference to no contained resource);
* ``YL-3075`` a reference to a type the element does not allow (its ``targetProfile`` list),
  read from the reference (``Patient/1``, an absolute URL ending so), from the contained
  resource a ``#id`` names, or from the Bundle entry a ``urn:uuid:`` / ``fullUrl`` names;
  ``YL-3076`` a malformed conditional reference (``Type?query`` with a broken query);
* ``YL-3077`` an Attachment whose ``size`` or ``hash`` (SHA-1, base64) is not its ``data``'s.

Paths are built only when a finding names them. ``ele-1`` and the remaining base invariants
are evaluated in :mod:`._structure` and :mod:`._invariants`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Issue
from gateway.fhir import definitions
from gateway.fhir.json_text import RawNumber
from gateway.fhir.xml_format import XHTML_NS, FhirFormatError, parse_narrative
from gateway.validation._invariants import Invariant, element_invariants, invariants
from gateway.validation._issues import issue
from gateway.validation._primitives import real_date

__all__ = ["base_issues"]

Problem = tuple[str, str] | None  # (english, chinese) or None when the value is fine
_Check = Callable[[Any], Problem]

_MAX_STRING = 1024 * 1024
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# the R5 snapshot's decimal regex ends ``[0-9]{1,9}})?`` (a typo); this is the grammar it means,
# as the reference validator applies it
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,17})?([eE](0|[+\-]?[1-9][0-9]{0,9}))?")
_INTEGER = re.compile(r"[0]|[-+]?[1-9][0-9]*")
_WS = re.compile(r"\s+")


def _p(en: str, zh: str) -> Problem:
    return (en, zh)


_NOT_STRING = _p("must be a JSON string", "必须为 JSON 字符串")
_EMPTY_STRING = _p("must not be an empty string", "不能为空字符串")


def _regex_check(type_name: str, regex: str, max_length: int | None = None) -> _Check:
    pattern = re.compile(regex.removeprefix("^").removesuffix("$"))
    bad = _p(f"is not a valid {type_name}", f"不是有效的 {type_name}")
    too_long = _p(
        f"is longer than the {max_length} characters a {type_name} may have",
        f"超过 {type_name} 的最大长度 {max_length}",
    )

    def check(value: Any) -> Problem:
        if type(value) is not str:
            return _NOT_STRING
        if not value:
            return _EMPTY_STRING
        if max_length is not None and len(value) > max_length:
            return too_long
        if pattern.fullmatch(value) is None:
            return bad
        return None

    if regex in ("^[\\s\\S]+$", "[\\s\\S]+") and max_length is not None:

        def any_text(value: Any) -> Problem:  # string, markdown: any non-empty text
            if type(value) is str and value and len(value) <= max_length:
                return None
            return check(value)

        return any_text
    return check


def _boolean(value: Any) -> Problem:
    if value is True or value is False:
        return None
    return _p("must be true or false (a JSON boolean)", "必须为 true 或 false（JSON 布尔值）")


def _integer_check(type_name: str, low: int, high: int) -> _Check:
    wrong = _p(f"must be a JSON integer ({type_name})", f"必须为 JSON 整数（{type_name}）")
    out = _p(f"is out of the range of {type_name} ({low}..{high})", f"超出 {type_name} 的取值范围（{low}..{high}）")

    def check(value: Any) -> Problem:
        if type(value) is not int:
            if isinstance(value, RawNumber):  # the client's own number text (loads_exact)
                if _INTEGER.fullmatch(value) is None:
                    return wrong
                value = int(value)
            else:
                return wrong
        if not low <= value <= high:
            return out
        return None

    return check


def _integer64(value: Any) -> Problem:
    if type(value) is not str:
        return _p("must be a JSON string (integer64)", "必须为 JSON 字符串（integer64）")
    if _INTEGER.fullmatch(value) is None:
        return _p("is not a valid integer64", "不是有效的 integer64")
    if not _INT64[0] <= int(value) <= _INT64[1]:
        return _p("is out of the range of integer64", "超出 integer64 的取值范围")
    return None


_BAD_DECIMAL = _p("does not match the decimal grammar of FHIR", "不符合 FHIR decimal 语法")


def _decimal(value: Any) -> Problem:
    t = type(value)
    if t is int:
        text = str(value) if -(10**40) < value < 10**40 else "x"
    elif t is float:
        # a parsed float no longer has the client's text (``repr`` writes 1e-06 for 0.000001):
        # every finite float has a text within the grammar
        return None if value - value == 0 else _BAD_DECIMAL
    elif isinstance(value, RawNumber):  # the client's own number text (loads_exact)
        text = value
    else:
        return _p("must be a JSON number (decimal)", "必须为 JSON 数值（decimal）")
    return None if _DECIMAL.fullmatch(text) is not None else _BAD_DECIMAL


def _dated(type_name: str, regex: str, needs_offset: bool) -> _Check:
    base = _regex_check(type_name, regex)
    no_date = _p(f"is not a real calendar date ({type_name})", f"不是真实存在的日期（{type_name}）")
    no_offset = _p(
        f"has a time but no time-zone offset ({type_name})",
        f"含时间但缺少时区偏移（{type_name}）",
    )

    def check(value: Any) -> Problem:
        found = base(value)
        if found is not None:
            return found
        if len(value) >= 10 and not real_date(value):
            return no_date
        if needs_offset and len(value) > 10 and not (value.endswith("Z") or value[-6] in "+-"):
            return no_offset
        return None

    return check


def _canonical(value: Any) -> Problem:
    found = _URI(value)
    if found is None and value.endswith("|"):
        return _p("is a canonical URL ending in '|'", "规范 URL 不能以 '|' 结尾")
    return found


def _base64(value: Any) -> Problem:
    if type(value) is not str:
        return _NOT_STRING
    if not value:
        return _EMPTY_STRING
    if _BASE64.fullmatch(_WS.sub("", value)) is None:
        return _p("is not valid base64", "不是有效的 base64")
    return None


_URI: _Check
_BASE64: re.Pattern[str]


@functools.cache
def _checks() -> dict[str, _Check]:
    global _URI, _BASE64
    regex = {name: _type_regex(name) for name in _PRIMITIVES}
    _URI = _regex_check("uri", regex["uri"])
    _BASE64 = re.compile(regex["base64Binary"])
    checks: dict[str, _Check] = {
        "boolean": _boolean,
        "integer": _integer_check("integer", *_INT32),
        "positiveInt": _integer_check("positiveInt", 1, _INT32[1]),
        "unsignedInt": _integer_check("unsignedInt", 0, _INT32[1]),
        "integer64": _integer64,
        "decimal": _decimal,
        "date": _dated("date", regex["date"], False),
        "dateTime": _dated("dateTime", regex["dateTime"], True),
        "instant": _dated("instant", regex["instant"], True),
        "time": _regex_check("time", regex["time"]),
        "string": _regex_check("string", regex["string"], _MAX_STRING),
        "markdown": _regex_check("markdown", regex["markdown"], _MAX_STRING),
        "code": _regex_check("code", regex["code"], _MAX_STRING),
        "id": _regex_check("id", regex["id"], 64),
        "uri": _URI,
        "url": _regex_check("url", regex["url"]),
        "canonical": _canonical,
        "oid": _regex_check("oid", regex["oid"]),
        "uuid": _regex_check("uuid", regex["uuid"]),
        "base64Binary": _base64,
    }
    return checks


_PRIMITIVES = (
    "base64Binary",
    "code",
    "date",
    "dateTime",
    "id",
    "instant",
    "markdown",
    "oid",
    "string",
    "time",
    "uri",
    "url",
    "uuid",
)


def _type_regex(name: str) -> str:
    raw: dict[str, Any] = definitions._raw_types()[name]
    return str(raw["regex"])


# ----------------------------------------------------------------------------- element tables

_PRIM, _OBJ, _RES, _XHTML = range(4)


@dataclass(slots=True, frozen=True)
class _Member:
    kind: int
    check: _Check | None
    children: str | None
    is_array: bool
    type: str
    targets: tuple[str, ...]


@functools.cache
def _table(context: str) -> dict[str, _Member]:
    checks = _checks()
    table: dict[str, _Member] = {}
    for name, info in definitions.elements(context).items():
        kind = {"resource": _RES, "xhtml": _XHTML, "object": _OBJ}.get(info.json_kind, _PRIM)
        targets = info.targets if info.type == "Reference" and "Resource" not in info.targets else ()
        # an element's own id (an XML attribute) is a string, whatever the snapshot's type
        # extension says: ElementDefinition ids carry ':' and '/'
        type_name = "string" if info.is_xml_attribute and name == "id" else info.type
        table[name] = _Member(kind, checks.get(type_name), info.children, info.is_array, info.type, targets)
    return table


# ----------------------------------------------------------------------------- the walk

Path = Any  # str (a root) or (parent, key, index or None); rendered only when a finding names it


def _where(path: Path) -> str:
    if isinstance(path, str):
        return path
    parent, key, index = path
    return f"{_where(parent)}.{key}" + (f"[{index}]" if index is not None else "")


@dataclass(slots=True)
class _Resource:
    """What one resource (the root, a contained one, a Bundle entry's) holds for its rules."""

    type: str
    path: Path
    node: dict[str, Any]
    contained: dict[str, str] = field(default_factory=dict)  # id -> resourceType
    refs: list[tuple[Path, str, tuple[str, ...]]] = field(default_factory=list)
    local_refs: set[str] = field(default_factory=set)  # "#id" targets named anywhere inside
    parent: _Resource | None = None
    is_contained: bool = False


@dataclass(slots=True)
class _State:
    out: list[Issue]
    entries: dict[str, str] = field(default_factory=dict)  # Bundle fullUrl -> resourceType


def base_issues(resource: dict[str, Any], resource_type: str) -> list[Issue]:
    """Findings of the base rules above for ``resource`` (whose type is known to the models)."""
    state = _State([])
    _resource(resource, resource_type, resource_type, state, None, False)
    return state.out


def _resource(
    node: dict[str, Any], resource_type: str, path: Path, state: _State, parent: _Resource | None, contained: bool
) -> None:
    res = _Resource(resource_type, path, node, parent=parent, is_contained=contained)
    if resource_type == "Bundle":
        _bundle_entries(node, state)
    _object(node, resource_type, path, state, res)
    _resource_rules(res, state)


def _bundle_entries(node: dict[str, Any], state: _State) -> None:
    entries = node.get("entry")
    if type(entries) is not list:
        return
    for entry in entries:
        if type(entry) is dict and type(entry.get("fullUrl")) is str and type(entry.get("resource")) is dict:
            rt = entry["resource"].get("resourceType")
            if isinstance(rt, str):
                state.entries[entry["fullUrl"]] = rt


@functools.cache
def _context_invariants(context: str) -> tuple[tuple[Invariant, ...], dict[str, tuple[Invariant, ...]]]:
    """The invariants of ``context`` itself, and by JSON name those of its elements."""
    by_name = element_invariants(context)
    on_keys: dict[str, tuple[Invariant, ...]] = {}
    if by_name:
        for name, info in definitions.elements(context).items():
            base = info.path.rsplit(".", 1)[-1].removesuffix("[x]")
            if base in by_name:
                on_keys[name] = by_name[base]
    return invariants(context), on_keys


def _object(node: dict[str, Any], context: str, path: Path, state: _State, res: _Resource) -> None:
    table = _table(context)
    out = state.out
    own, on_keys = _context_invariants(context)
    if own or on_keys:
        _invariants(node, own, on_keys, path, res, out)
    for key, value in node.items():
        member = table.get(key)
        if member is None:
            if key[:1] == "_":
                _extras(node, key, value, table.get(key[1:]), path, state, res)
            continue  # resourceType, or an unknown element: the models report it
        kind = member.kind
        if type(value) is list:
            if not value:
                out.append(_empty((path, key, None), "array"))
                continue
            if not member.is_array:
                continue  # the models report a list where one value belongs
            if kind == _PRIM:
                check = member.check
                if check is not None:
                    for index, item in enumerate(value):
                        if item is not None:
                            found = check(item)
                            if found is not None:
                                _primitive_issue(found, (path, key, index), out)
            elif kind == _OBJ and member.type != "Reference":
                children = member.children
                if children is not None:
                    for index, item in enumerate(value):
                        if type(item) is dict:
                            _object(item, children, (path, key, index), state, res)
            else:
                for index, item in enumerate(value):
                    _value(member, item, (path, key, index), state, res, key)
        elif kind == _PRIM:
            if value is not None and not member.is_array:  # else the models report it
                check = member.check
                if check is not None:
                    found = check(value)
                    if found is not None:
                        _primitive_issue(found, (path, key, None), out)
        else:
            _value(member, value, (path, key, None), state, res, key)
    if context == "Attachment" and "data" in node:
        _attachment(node, path, out)


def _attachment(node: dict[str, Any], path: Path, out: list[Issue]) -> None:
    """Attachment.size and Attachment.hash (SHA-1, base64) state the data's (R5 Attachment)."""
    data = node.get("data")
    if type(data) is not str or not data:
        return
    try:
        raw = base64.b64decode(_WS.sub("", data), validate=True)
    except (binascii.Error, ValueError):
        return  # not base64: YL-3070 already
    size = node.get("size")
    if type(size) is str and _INTEGER.fullmatch(size) is not None and int(size) != len(raw):
        where = _where(path)
        out.append(
            issue(
                "YL-3077",
                where,
                element=where,
                detail=f"size {size} is not the data's size {len(raw)}",
                detail_zh=f"size {size} 与数据实际大小 {len(raw)} 不符",
            )
        )
    stated = node.get("hash")
    if type(stated) is str and stated:
        try:
            digest = base64.b64decode(_WS.sub("", stated), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if digest != hashlib.sha1(raw).digest():
            where = _where(path)
            out.append(
                issue(
                    "YL-3077",
                    where,
                    element=where,
                    detail="hash is not the SHA-1 of the data (base64)",
                    detail_zh="hash 不是数据的 SHA-1（base64）",
                )
            )


def _invariants(
    node: dict[str, Any],
    own: tuple[Invariant, ...],
    on_keys: dict[str, tuple[Invariant, ...]],
    path: Path,
    res: _Resource,
    out: list[Issue],
) -> None:
    root = res
    while root.is_contained and root.parent is not None:
        root = root.parent
    for inv in own:
        inv.check(node, lambda: _where(path), res.node, root.node, out)
    for key, invs in on_keys.items():
        value = node.get(key)
        if value is None:
            continue
        items = value if type(value) is list else [value]
        for index, item in enumerate(items):
            if item is None:
                continue
            at = (path, key, index if type(value) is list else None)
            for inv in invs:
                inv.check(item, lambda at=at: _where(at), res.node, root.node, out)  # type: ignore[misc]


def _primitive_issue(found: tuple[str, str], path: Path, out: list[Issue]) -> None:
    if found is _EMPTY_STRING:
        out.append(_empty(path, "string"))
    else:
        where = _where(path)
        out.append(issue("YL-3070", where, element=where, detail=found[0], detail_zh=found[1]))


def _value(member: _Member, value: Any, path: Path, state: _State, res: _Resource, key: str) -> None:
    kind = member.kind
    if kind == _XHTML:
        if value is not None:
            _narrative(value, path, state)
        return
    if type(value) is not dict:
        return  # the models report it
    if kind == _OBJ:
        if member.children is not None:
            _object(value, member.children, path, state, res)
        if member.type == "Reference":
            reference = value.get("reference")
            if type(reference) is str and reference:
                res.refs.append((path, reference, member.targets))
                if reference[:1] == "#":
                    _note_local(res, reference[1:])
    elif kind == _RES:
        rt = value.get("resourceType")
        if isinstance(rt, str) and rt in definitions.resource_types():
            is_contained = key == "contained"
            if is_contained:
                _contained(value, rt, path, state, res)
            _resource(value, rt, path, state, res, is_contained)


def _note_local(res: _Resource, target: str) -> None:
    current: _Resource | None = res
    while current is not None:
        current.local_refs.add(target)
        if not current.is_contained:
            break
        current = current.parent


def _extras(
    node: dict[str, Any], key: str, value: Any, member: _Member | None, path: Path, state: _State, res: _Resource
) -> None:
    """``_name``: the id and extensions of primitive ``name`` (an object, or a list aligned
    with the values, null where an item has none)."""
    if member is None or member.kind not in (_PRIM, _XHTML):
        return
    context = member.type
    if type(value) is list:
        if not value:
            state.out.append(_empty((path, key, None), "array"))
            return
        for index, item in enumerate(value):
            if type(item) is dict:
                _object(item, context, (path, key[1:], index), state, res)
    elif type(value) is dict:
        _object(value, context, (path, key[1:], None), state, res)


def _empty(path: Path, what: str) -> Issue:
    where = _where(path)
    zh = {"string": "字符串", "array": "数组", "object": "对象"}[what]
    return issue("YL-3071", where, element=where, what=what, what_zh=zh)


# ----------------------------------------------------------------------------- contained resources


def _contained(value: dict[str, Any], rt: str, path: Path, state: _State, container: _Resource) -> None:
    out = state.out
    cid = value.get("id")
    where = _where(path)
    if not isinstance(cid, str) or not cid:
        out.append(
            issue(
                "YL-3074",
                where,
                element=where,
                detail="a contained resource needs an id",
                detail_zh="被包含的资源必须有 id",
            )
        )
    elif cid in container.contained:
        out.append(
            issue(
                "YL-3074",
                where,
                element=where,
                detail=f"duplicate id {cid!r} among contained resources",
                detail_zh=f"被包含资源的 id {cid!r} 重复",
            )
        )
    else:
        container.contained[cid] = rt
    if "contained" in value:
        out.append(issue("YL-3060", where, key="dom-2", human=_DOM[2]))
    meta = value.get("meta")
    if type(meta) is dict:
        if "versionId" in meta or "lastUpdated" in meta:
            out.append(issue("YL-3060", where, key="dom-4", human=_DOM[4]))
        if meta.get("security"):
            out.append(issue("YL-3060", where, key="dom-5", human=_DOM[5]))


_DOM = {
    2: "If the resource is contained in another resource, it SHALL NOT contain nested Resources",
    3: "If the resource is contained in another resource, it SHALL be referred to from elsewhere in the "
    "resource or SHALL refer to the containing resource",
    4: "If a resource is contained in another resource, it SHALL NOT have a meta.versionId or a meta.lastUpdated",
    5: "If a resource is contained in another resource, it SHALL NOT have a security label",
}
_REF_1 = "SHALL have a contained resource if a local reference is provided"


def _resource_rules(res: _Resource, state: _State) -> None:
    out = state.out
    # dom-3: every contained resource is referred to (a reference to it from the container or
    # another contained resource), or refers to the container ("#")
    contained = res.node.get("contained")
    if type(contained) is list:
        for index, item in enumerate(contained):
            if type(item) is not dict or item.get("resourceType") not in definitions.resource_types():
                continue  # not a resource: the models report it
            cid = item.get("id")
            if isinstance(cid, str) and cid in res.local_refs:
                continue
            if _refers_to_container(item):
                continue
            out.append(issue("YL-3060", _where((res.path, "contained", index)), key="dom-3", human=_DOM[3]))
    for path, reference, targets in res.refs:
        _reference(res, state, path, reference, targets)


def _refers_to_container(node: Any) -> bool:
    if type(node) is dict:
        if node.get("reference") == "#":
            return True
        return any(_refers_to_container(v) for v in node.values() if type(v) in (dict, list))
    if type(node) is list:
        return any(_refers_to_container(v) for v in node)
    return False


_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]*")


def _reference(res: _Resource, state: _State, path: Path, reference: str, targets: tuple[str, ...]) -> None:
    out = state.out
    found: str | None = None
    resolved = True
    if reference[:1] == "#":
        target = reference[1:]
        if not target:
            if not res.is_contained:
                out.append(issue("YL-3060", _where(path), key="ref-1", human=_REF_1))
            return
        owner = res
        while owner.is_contained and owner.parent is not None:
            owner = owner.parent
        found = owner.contained.get(target)
        if found is None:
            out.append(issue("YL-3060", _where(path), key="ref-1", human=_REF_1))
            return
    elif reference in state.entries:
        found = state.entries[reference]
    elif "?" in reference:
        found = reference.split("?", 1)[0]
        query = reference.split("?", 1)[1]
        if found not in definitions.resource_types() or not _valid_query(query):
            where = _where(path)
            out.append(
                issue(
                    "YL-3076",
                    where,
                    element=where,
                    reference=reference,
                )
            )
            return
    else:
        parts = reference.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2] in definitions.resource_types():
            found = parts[-2]
        resolved = False
    if found is not None and targets and found not in targets:
        # a resolved target of the wrong type is an error; a literal one the gateway does not
        # resolve here is a warning, as the reference validator checks types of resolved targets only
        where = _where(path)
        out.append(
            issue(
                "YL-3075",
                where,
                severity=None if resolved else "warning",
                element=where,
                found=found,
                allowed=", ".join(targets),
            )
        )


def _valid_query(query: str) -> bool:
    if not query:
        return False
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if not eq or _QUERY_NAME.fullmatch(name) is None:
            return False
    return True


# ----------------------------------------------------------------------------- narrative


_XHTML_ELEMENTS = frozenset(
    [
        "p",
        "br",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
        "b",
        "em",
        "i",
        "strong",
        "small",
        "big",
        "tt",
        "dfn",
        "q",
        "var",
        "abbr",
        "acronym",
        "cite",
        "blockquote",
        "hr",
        "address",
        "bdo",
        "kbd",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "caption",
        "colgroup",
        "col",
        "thead",
        "tr",
        "tfoot",
        "tbody",
        "th",
        "td",
        "code",
        "samp",
        "img",
        "map",
        "area",
    ]
)
_XHTML_ATTRIBUTES = frozenset(
    [
        "title",
        "style",
        "class",
        "id",
        "lang",
        "dir",
        "accesskey",
        "tabindex",
        "span",
        "width",
        "align",
        "valign",
        "char",
        "charoff",
        "abbr",
        "axis",
        "headers",
        "scope",
        "rowspan",
        "colspan",
    ]
)
_XHTML_ELEMENT_ATTRIBUTES = frozenset(
    [
        "a.href",
        "a.name",
        "img.src",
        "img.border",
        "div.xmlns",
        "blockquote.cite",
        "q.cite",
        "a.title",
        "a.type",
        "a.rel",
        "img.alt",
        "img.usemap",
        "img.height",
        "img.width",
        "a.accesskey",
        "a.tabindex",
        "td.nowrap",
        "area.shape",
        "area.coords",
        "area.href",
        "area.nohref",
        "area.alt",
        "map.name",
        "th.nowrap",
        "table.border",
        "table.cellpadding",
        "table.cellspacing",
        "table.frame",
        "table.rules",
        "table.summary",
        "col.width",
        "colgroup.width",
        "col.span",
        "colgroup.span",
        "ol.start",
        "ol.type",
        "ul.type",
        "li.value",
        "ol.reversed",
    ]
)
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "usemap"})


def narrative_problem(value: Any) -> Problem:
    """Why the narrative ``div`` ``value`` breaks the R5 rules (txt-1, txt-2), or None."""
    if type(value) is not str:
        return _NOT_STRING
    try:
        div = parse_narrative(value, "")
    except FhirFormatError as exc:
        return _p(f"malformed narrative XHTML: {exc}", f"叙述 XHTML 格式错误：{exc}")
    xhtml = "{" + XHTML_NS + "}"
    for node in div.iter():
        tag = node.tag
        if not isinstance(tag, str):
            continue
        if not tag.startswith(xhtml):
            return _p(
                f"element {tag} is not in the XHTML namespace (txt-1)", f"元素 {tag} 不在 XHTML 命名空间（txt-1）"
            )
        name = tag[len(xhtml) :]
        if name not in _XHTML_ELEMENTS:
            return _p(f"element <{name}> is not allowed in narrative (txt-1)", f"叙述中不允许元素 <{name}>（txt-1）")
        for attribute, text in node.attrib.items():
            if attribute == _XML_LANG:
                continue
            if attribute not in _XHTML_ATTRIBUTES and f"{name}.{attribute}" not in _XHTML_ELEMENT_ATTRIBUTES:
                return _p(
                    f"attribute {attribute} on <{name}> is not allowed in narrative (txt-1)",
                    f"叙述中 <{name}> 不允许属性 {attribute}（txt-1）",
                )
            if attribute in _URL_ATTRIBUTES and text.strip().lower().startswith(("javascript:", "vbscript:")):
                return _p("a script URL is not allowed in narrative (txt-1)", "叙述中不允许脚本 URL（txt-1）")
    if not "".join(div.itertext()).strip() and div.find(".//" + xhtml + "img") is None:
        return _p("narrative has no non-whitespace content (txt-2)", "叙述没有非空白内容（txt-2）")
    return None


def _narrative(value: Any, path: Path, state: _State) -> None:
    found = narrative_problem(value)
    if found is not None:
        where = _where(path)
        state.out.append(issue("YL-3073", where, element=where, detail=found[0], detail_zh=found[1]))
