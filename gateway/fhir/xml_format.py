"""Lossless conversion between FHIR R5 XML and FHIR R5 JSON.

Both directions are driven by the element definitions in ``data/types.json`` (see
:mod:`gateway.fhir.definitions`): they say which JSON members are arrays, which types are
numbers or booleans, which elements are XML attributes (``Element.id``, ``Extension.url``) and
the order XML elements must be written in. Per context (type or backbone path) the lookups are
compiled once into :class:`_Context` objects, so a conversion is a walk over the document with
dictionary lookups and no per-request schema work.

* ``xml_to_json`` writes the JSON text itself: numbers are copied from the XML ``value``
  attribute (``6.10`` stays ``6.10``; a ``+`` sign on an integer, valid in XML but not in
  JSON, is dropped), only strings go through ``orjson.dumps``.
* ``json_to_xml`` parses with ``json.loads`` and ``parse_float``/``parse_int`` hooks that keep
  the original number text, so decimals are never routed through ``float``.

Untrusted XML is parsed without DTDs, entity expansion, network access or huge-tree mode, and
any document carrying a DOCTYPE is refused (billion laughs, XXE). Narrative ``div`` strings
from JSON go through the same hardened parser.

Every problem is a :class:`FhirFormatError` whose ``location`` is an XPath
(``/f:Patient/f:name[1]/f:given[2]``, with ``f`` = FHIR and ``h`` = XHTML namespace) for XML
input or a FHIRPath-like path (``Patient.name[0].given[1]``) for JSON input; the REST layer
turns it into an OperationOutcome.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any, NoReturn

import orjson
from lxml import etree

from gateway.fhir import definitions

__all__ = ["FHIR_NS", "XHTML_NS", "FhirFormatError", "json_to_xml", "parse_narrative", "xml_to_json"]

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_FHIR_PREFIX = "{" + FHIR_NS + "}"
_XHTML_DIV = "{" + XHTML_NS + "}div"


class FhirFormatError(ValueError):
    """A FHIR XML or JSON document that cannot be read or converted.

    ``location`` is an XPath into the XML input or a path into the JSON input.
    """

    def __init__(self, message: str, location: str) -> None:
        super().__init__(f"{message} (at {location})" if location else message)
        self.message = message
        self.location = location


# --------------------------------------------------------------------------- compiled schema

# Value kinds of an element, as small ints for fast dispatch.
_STRING, _NUMBER, _BOOLEAN, _OBJECT, _RESOURCE, _XHTML = range(6)
_KIND_CODES = {
    "string": _STRING,
    "number": _NUMBER,
    "boolean": _BOOLEAN,
    "object": _OBJECT,
    "resource": _RESOURCE,
    "xhtml": _XHTML,
}

# JSON number syntax restricted to what FHIR allows (no leading zeros); an optional leading
# "+" on integers is accepted by FHIR XML and dropped in JSON.
_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")


class _Element:
    """An ElementInfo compiled for conversion (one per JSON name)."""

    __slots__ = (
        "children",
        "is_array",
        "is_attr",
        "json_key",
        "kind",
        "name",
        "order",
        "tag",
        "type",
        "underscore_key",
    )

    def __init__(self, info: definitions.ElementInfo) -> None:
        self.name = info.name
        self.type = info.type
        self.kind = _KIND_CODES[info.json_kind]
        # Narrative.div is the one element outside the FHIR namespace.
        self.tag = _XHTML_DIV if self.kind == _XHTML else _FHIR_PREFIX + info.name
        self.is_array = info.is_array
        self.is_attr = info.is_xml_attribute
        self.children = info.children
        self.order = info.order
        self.json_key = orjson.dumps(info.name) + b":"
        self.underscore_key = orjson.dumps("_" + info.name) + b":"


class _Context:
    """Elements of one type or backbone path, indexed by JSON name and by XML tag."""

    __slots__ = ("by_name", "by_tag", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        compiled = [_Element(info) for info in definitions.ordered_elements(name)]
        self.by_name = {e.name: e for e in compiled}
        self.by_tag = {e.tag: e for e in compiled if not e.is_attr}


@functools.cache
def _context(name: str) -> _Context:
    return _Context(name)


@functools.cache
def _resource_type_for_tag(tag: str) -> str | None:
    if tag.startswith(_FHIR_PREFIX):
        name = tag[len(_FHIR_PREFIX) :]
        if name in definitions.resource_types():
            return name
    return None


# ----------------------------------------------------------------------------- XML parsing

_local = threading.local()


def _parser() -> etree.XMLParser:
    """A hardened parser per thread (lxml parsers must not be shared across threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        _local.parser = parser
    return parser


def _parse_xml(data: bytes, what: str, location: str) -> etree._Element:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise FhirFormatError(f"malformed {what}: {exc.msg}", location) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise FhirFormatError(f"{what} must not contain a DOCTYPE or entity declarations", location)
    return root


def _xpath(node: etree._Element) -> str:
    """XPath of an element with f: (FHIR) and h: (XHTML) prefixes; used for error locations."""
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        qname = etree.QName(current)
        prefix = {FHIR_NS: "f:", XHTML_NS: "h:"}.get(qname.namespace or "", "")
        if qname.namespace and not prefix:
            step = f"*[local-name()='{qname.localname}']"
        else:
            step = prefix + qname.localname
        parent = current.getparent()
        if parent is not None:
            index = 1 + sum(1 for s in current.itersiblings(preceding=True) if s.tag == current.tag)
            step += f"[{index}]"
        steps.append(step)
        current = parent
    return "/" + "/".join(reversed(steps))


def _fail(message: str, node: etree._Element, attribute: str | None = None) -> NoReturn:
    location = _xpath(node)
    if attribute is not None:
        location += "/@" + attribute
    raise FhirFormatError(message, location)


# ----------------------------------------------------------------------------- XML -> JSON


def xml_to_json(xml: bytes) -> bytes:
    """Convert a FHIR XML resource to FHIR JSON text (UTF-8, compact)."""
    root = _parse_xml(xml, "XML", "/")
    out: list[bytes] = []
    try:
        _read_resource(root, out)
    except RecursionError:
        raise FhirFormatError("document is nested too deeply", "/") from None
    return b"".join(out)


def _read_resource(node: etree._Element, out: list[bytes]) -> None:
    tag = node.tag
    if not isinstance(tag, str):
        _fail("expected a resource element", node)
    resource_type = _resource_type_for_tag(tag)
    if resource_type is None:
        if not tag.startswith(_FHIR_PREFIX):
            _fail(f"resource element must be in the namespace {FHIR_NS}", node)
        _fail(f"unknown resource type {etree.QName(node).localname!r}", node)
    out.append(b'{"resourceType":')
    out.append(orjson.dumps(resource_type))
    _read_members(node, _context(resource_type), out, True)
    out.append(b"}")


def _read_object(node: etree._Element, context: _Context, out: list[bytes]) -> None:
    out.append(b"{")
    _read_members(node, context, out, False)
    out.append(b"}")


def _read_members(node: etree._Element, context: _Context, out: list[bytes], has_members: bool) -> None:
    """Write the JSON members of complex element ``node`` (without braces)."""
    by_name = context.by_name
    for attr_name, attr_value in node.attrib.items():
        if attr_name[0] == "{":
            continue  # namespaced attributes (xsi:schemaLocation…) carry no FHIR content
        attr_element = by_name.get(attr_name)
        if attr_element is None or not attr_element.is_attr:
            _fail(f"unknown attribute {attr_name!r} on {context.name}", node, attr_name)
        if has_members:
            out.append(b",")
        has_members = True
        out.append(attr_element.json_key)
        out.append(orjson.dumps(attr_value))

    text = node.text
    if text and not text.isspace():
        _fail("unexpected text content", node)
    by_tag = context.by_tag
    groups: dict[_Element, list[etree._Element]] = {}
    in_order = True
    last_order = -1
    for child in node:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        tail = child.tail
        if tail and not tail.isspace():
            _fail("unexpected text content", node)
        member = by_tag.get(tag)
        if member is None:
            if not tag.startswith(_FHIR_PREFIX):
                _fail(f"element must be in the namespace {FHIR_NS}", child)
            _fail(f"unknown element {tag[len(_FHIR_PREFIX) :]!r} in {context.name}", child)
        group = groups.get(member)
        if group is None:
            groups[member] = [child]
            if member.order < last_order:
                in_order = False
            last_order = member.order
        else:
            if not member.is_array:
                _fail(f"element {member.name!r} may occur only once", child)
            group.append(child)

    members = groups if in_order else sorted(groups, key=lambda m: m.order)
    for member in members:
        items = groups[member]
        kind = member.kind
        if kind <= _BOOLEAN:
            has_members = _read_primitive(member, items, out, has_members)
            continue
        if has_members:
            out.append(b",")
        has_members = True
        out.append(member.json_key)
        if member.is_array:
            out.append(b"[")
        first = True
        for item in items:
            if not first:
                out.append(b",")
            first = False
            if kind == _OBJECT:
                _read_object(item, _context(member.children or member.type), out)
            elif kind == _RESOURCE:
                _read_wrapped_resource(item, out)
            else:
                out.append(orjson.dumps(_div_to_string(item)))
        if member.is_array:
            out.append(b"]")


def _read_wrapped_resource(node: etree._Element, out: list[bytes]) -> None:
    """``<contained><Patient>…</Patient></contained>`` -> the Patient object."""
    if node.attrib:
        _fail("a resource container element has no attributes", node)
    text = node.text
    if text and not text.isspace():
        _fail("unexpected text content", node)
    inner = [child for child in node if isinstance(child.tag, str)]
    if len(inner) != 1:
        _fail("expected exactly one resource inside this element", node)
    tail = inner[0].tail
    if tail and not tail.isspace():
        _fail("unexpected text content", node)
    _read_resource(inner[0], out)


def _read_primitive(member: _Element, items: list[etree._Element], out: list[bytes], has_members: bool) -> bool:
    values: list[bytes | None] = []
    extras: list[bytes | None] = []
    has_value = has_extra = False
    for item in items:
        value = _primitive_value(member, item)
        extra = _primitive_extra(member, item)
        if value is None and extra is None:
            _fail("element has neither a value nor extensions", item)
        values.append(value)
        extras.append(extra)
        has_value = has_value or value is not None
        has_extra = has_extra or extra is not None
    if has_value:
        if has_members:
            out.append(b",")
        has_members = True
        out.append(member.json_key)
        _append_list_or_single(values, member.is_array, out)
    if has_extra:
        if has_members:
            out.append(b",")
        has_members = True
        out.append(member.underscore_key)
        _append_list_or_single(extras, member.is_array, out)
    return has_members


def _append_list_or_single(parts: list[bytes | None], is_array: bool, out: list[bytes]) -> None:
    if not is_array:
        out.append(parts[0] or b"null")
        return
    out.append(b"[")
    out.append(b",".join(part or b"null" for part in parts))
    out.append(b"]")


def _primitive_value(member: _Element, item: etree._Element) -> bytes | None:
    value: str | None = item.get("value")
    if value is None:
        return None
    kind = member.kind
    if kind == _STRING:
        if member.type == "integer64" and not _INTEGER_RE.fullmatch(value):
            _fail(f"{value!r} is not a valid integer64", item, "value")
        return orjson.dumps(value)
    if kind == _BOOLEAN:
        if value == "true":
            return b"true"
        if value == "false":
            return b"false"
        _fail(f"{value!r} is not a valid boolean", item, "value")
    if member.type == "decimal":
        if not _DECIMAL_RE.fullmatch(value):
            _fail(f"{value!r} is not a valid decimal", item, "value")
    elif _INTEGER_RE.fullmatch(value):
        value = value.removeprefix("+")
    else:
        _fail(f"{value!r} is not a valid {member.type}", item, "value")
    return value.encode("ascii")


def _primitive_extra(member: _Element, item: etree._Element) -> bytes | None:
    """The ``_name`` object of a primitive (its id and extensions), or None if it has none."""
    attrib = item.attrib
    element_id = None
    for attr_name, attr_value in attrib.items():
        if attr_name == "id":
            element_id = attr_value
        elif attr_name != "value" and attr_name[0] != "{":
            _fail(f"unknown attribute {attr_name!r} on {member.type}", item, attr_name)
    text = item.text
    if text and not text.isspace():
        _fail("unexpected text content", item)
    if element_id is None and len(item) == 0:
        return None
    out: list[bytes] = [b"{"]
    has_members = False
    if element_id is not None:
        out.append(b'"id":')
        out.append(orjson.dumps(element_id))
        has_members = True
    extension_tag = _FHIR_PREFIX + "extension"
    extensions: list[etree._Element] = []
    for child in item:
        if not isinstance(child.tag, str):
            continue
        if child.tag != extension_tag:
            _fail(f"unknown element {etree.QName(child).localname!r} in {member.type}", child)
        tail = child.tail
        if tail and not tail.isspace():
            _fail("unexpected text content", item)
        extensions.append(child)
    if extensions:
        if has_members:
            out.append(b",")
        out.append(b'"extension":[')
        extension_context = _context("Extension")
        for index, extension in enumerate(extensions):
            if index:
                out.append(b",")
            _read_object(extension, extension_context, out)
        out.append(b"]")
    out.append(b"}")
    return b"".join(out)


def _div_to_string(div: etree._Element) -> str:
    """Narrative XHTML as its JSON string: ``<div xmlns="http://www.w3.org/1999/xhtml">…``."""
    if div.tag != _XHTML_DIV:
        _fail(f"narrative must be an XHTML div in the namespace {XHTML_NS}", div)
    if div.prefix is not None or div.nsmap != {None: XHTML_NS}:
        # lxml serialises every namespace in scope (xsi, a prefixed xhtml…): copy the tree so
        # the string declares XHTML as default namespace and nothing that is not used.
        div = _copy_xhtml(div)
    text: str = etree.tostring(div, encoding="unicode", with_tail=False)
    return text


def _copy_xhtml(source: etree._Element) -> etree._Element:
    root = etree.Element(_XHTML_DIV, dict(source.attrib), nsmap={None: XHTML_NS})
    root.text = source.text

    def copy_children(src: etree._Element, dst: etree._Element) -> None:
        for child in src:
            if not isinstance(child.tag, str):
                continue
            copied = etree.SubElement(dst, child.tag, dict(child.attrib))
            copied.text = child.text
            copied.tail = child.tail
            copy_children(child, copied)

    copy_children(source, root)
    etree.cleanup_namespaces(root)
    return root


# ----------------------------------------------------------------------------- JSON -> XML


class _JsonNumber(str):
    """A JSON number kept as its source text (``6.10`` is not ``6.1``)."""

    __slots__ = ()


def _reject_constant(name: str) -> NoReturn:
    raise FhirFormatError(f"{name} is not a valid JSON number", "$")


def json_to_xml(json_text: bytes) -> bytes:
    """Convert a FHIR JSON resource to FHIR XML (UTF-8, with XML declaration)."""
    try:
        document = json.loads(
            json_text,
            parse_float=_JsonNumber,
            parse_int=_JsonNumber,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise FhirFormatError(f"malformed JSON: {exc.msg}", f"line {exc.lineno}") from None
    except UnicodeDecodeError:
        raise FhirFormatError("JSON must be UTF-8 encoded", "$") from None
    except RecursionError:
        raise FhirFormatError("document is nested too deeply", "$") from None
    if not isinstance(document, dict):
        raise FhirFormatError("a FHIR resource must be a JSON object", "$")
    try:
        root = _write_resource(document, None, "")
    except RecursionError:
        raise FhirFormatError("document is nested too deeply", "$") from None
    xml: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    return xml


def _json_fail(message: str, path: str) -> NoReturn:
    raise FhirFormatError(message, path)


def _write_resource(resource: dict[str, Any], parent: etree._Element | None, path: str) -> etree._Element:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        _json_fail("resource has no resourceType", path or "$")
    if resource_type not in definitions.resource_types():
        _json_fail(f"unknown resource type {resource_type!r}", path or "$")
    tag = _FHIR_PREFIX + resource_type
    if parent is None:
        node = etree.Element(tag, nsmap={None: FHIR_NS})
        path = resource_type
    else:
        node = etree.SubElement(parent, tag)
    _write_members(resource, node, _context(resource_type), path, is_resource=True)
    return node


def _write_members(
    obj: dict[str, Any],
    node: etree._Element,
    context: _Context,
    path: str,
    is_resource: bool = False,
) -> None:
    by_name = context.by_name
    present: list[_Element] = []
    for key in obj:
        if key[0] == "_":
            member = by_name.get(key[1:])
            if member is None or member.kind > _BOOLEAN or member.is_attr:
                _json_fail(f"unknown property {key!r} in {context.name}", f"{path}.{key}")
            if key[1:] not in obj:
                present.append(member)
            continue
        member = by_name.get(key)
        if member is None:
            if is_resource and key == "resourceType":
                continue
            _json_fail(f"unknown property {key!r} in {context.name}", f"{path}.{key}")
        present.append(member)
    present.sort(key=_order_key)

    for member in present:
        name = member.name
        child_path = f"{path}.{name}"
        kind = member.kind
        if kind <= _BOOLEAN:
            _write_primitive(member, obj.get(name), obj.get("_" + name), node, child_path)
            continue
        value = obj[name]
        for item, item_path in _items(member, value, child_path):
            if kind == _OBJECT:
                if not isinstance(item, dict):
                    _json_fail(f"{name!r} must be a JSON object", item_path)
                child = etree.SubElement(node, member.tag)
                _write_members(item, child, _context(member.children or member.type), item_path)
            elif kind == _RESOURCE:
                if not isinstance(item, dict):
                    _json_fail(f"{name!r} must be a resource object", item_path)
                container = etree.SubElement(node, member.tag)
                _write_resource(item, container, item_path)
            else:
                node.append(_string_to_div(item, item_path))


def _order_key(member: _Element) -> int:
    return member.order


def _items(member: _Element, value: Any, path: str) -> list[tuple[Any, str]]:
    if member.is_array:
        if not isinstance(value, list):
            _json_fail(f"{member.name!r} must be a JSON array", path)
        return [(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, list):
        _json_fail(f"{member.name!r} must not be an array", path)
    return [(value, path)]


def _write_primitive(member: _Element, value: Any, extra: Any, node: etree._Element, path: str) -> None:
    if member.is_attr:
        if not isinstance(value, str) or isinstance(value, _JsonNumber):
            _json_fail(f"{member.name!r} must be a JSON string", path)
        _set_attribute(node, member.name, value, path)
        return
    if member.is_array:
        values = [] if value is None else value
        extras = [] if extra is None else extra
        if not isinstance(values, list):
            _json_fail(f"{member.name!r} must be a JSON array", path)
        if not isinstance(extras, list):
            _json_fail(f"'_{member.name}' must be a JSON array", path)
        if values and extras and len(values) != len(extras):
            _json_fail(f"{member.name!r} and '_{member.name}' differ in length", path)
        count = max(len(values), len(extras))
        for index in range(count):
            _write_one_primitive(
                member,
                values[index] if values else None,
                extras[index] if extras else None,
                node,
                f"{path}[{index}]",
            )
        return
    if isinstance(value, list) or isinstance(extra, list):
        _json_fail(f"{member.name!r} must not be an array", path)
    _write_one_primitive(member, value, extra, node, path)


def _write_one_primitive(member: _Element, value: Any, extra: Any, node: etree._Element, path: str) -> None:
    if value is None and extra is None:
        _json_fail("a primitive needs a value or extensions", path)
    child = etree.SubElement(node, member.tag)
    if extra is not None:
        if not isinstance(extra, dict):
            _json_fail(f"'_{member.name}' must be a JSON object", path)
        if "value" in extra:
            _json_fail("unknown property 'value'", f"{path}.value")
        _write_members(extra, child, _context(member.type), path)
    if value is None:
        return
    kind = member.kind
    if kind == _BOOLEAN:
        if value is True:
            text = "true"
        elif value is False:
            text = "false"
        else:
            _json_fail(f"{member.name!r} must be true or false", path)
    elif kind == _NUMBER:
        if not isinstance(value, _JsonNumber):
            _json_fail(f"{member.name!r} must be a JSON number", path)
        if member.type != "decimal" and not _INTEGER_RE.fullmatch(value):
            _json_fail(f"{value!r} is not a valid {member.type}", path)
        text = value
    else:
        if not isinstance(value, str) or isinstance(value, _JsonNumber):
            _json_fail(f"{member.name!r} must be a JSON string", path)
        text = value
    _set_attribute(child, "value", text, path)


def _set_attribute(node: etree._Element, name: str, value: str, path: str) -> None:
    try:
        node.set(name, value)
    except ValueError:
        _json_fail("string contains characters that XML cannot represent", path)


def parse_narrative(value: Any, path: str = "Narrative.div") -> etree._Element:
    """A narrative ``div`` string as the XML form holds it (hardened parser, XHTML namespace);
    raises :class:`FhirFormatError` when it could not be written as FHIR XML."""
    return _string_to_div(value, path)


def _string_to_div(value: Any, path: str) -> etree._Element:
    if not isinstance(value, str) or isinstance(value, _JsonNumber):
        _json_fail("narrative div must be a JSON string", path)
    div = _parse_xml(value.encode("utf-8"), "narrative XHTML", path)
    if div.tag != _XHTML_DIV:
        _json_fail(f"narrative must be a div element in the namespace {XHTML_NS}", path)
    return div
