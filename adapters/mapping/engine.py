"""The declarative mapping engine: YAML rules read a neutral source tree and write FHIR JSON.

A mapping never sees a wire format. Each format supplies a *source tree* (HL7 v2 segments /
fields / repeats / components, a CSV record, …) with its own path syntax; the engine only
asks the tree to ``read`` a path, ``iterate`` over repeats and split ``groups``. Rules are
compiled once at load time and checked against the FHIR R5 models, so a broken mapping fails
at start-up with file and line, never halfway through a message.

The rule language (see docs/mapping-language.md for the full reference)::

    - target: birthDate          # FHIR element path relative to the current object
      source: PID-7              # source path in the tree's syntax
      transform: date            # date | datetime | decimal | integer | ucum | system:TABLE | …
      when: {PID-8: [M, F]}      # conditions: path -> value | [values] | true (present) | false
      default: unknown           # used when the source is empty
    - each: PID-3[*]             # one pass per repeat; child sources are relative (.1, .4)
      target: identifier[]       # '[]' appends a new element per pass
      rules: [...]
    - target: status
      source: ORC-1
      translate: {map: order-control-to-medicationrequest-status, into: code}
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapters.contract import Issue
from adapters.errors import MappingCoverageError, MappingSyntaxError, MappingTargetError
from adapters.mapping import transforms as tf
from adapters.mapping.conceptmap import ConceptMap, load_conceptmap
from adapters.mapping.model import ElementInfo, element_info, model_class, required_elements
from adapters.mapping.yamlsrc import LINE, load_yaml, strip_lines

__all__ = [
    "UNTRANSLATED_URL",
    "YAOLIAN_NAMESPACE",
    "Mapping",
    "PathSyntax",
    "SourceTree",
    "load_mapping",
]

#: uuid5 namespace for every deterministic resource id Yaolian makes.
YAOLIAN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "http://yaolian.org/fhir")
#: Extension marking a coding that the ConceptMap could not translate (valueCanonical = map).
UNTRANSLATED_URL = "http://yaolian.org/fhir/StructureDefinition/untranslated-code"
FILE = "__file__"


class PathSyntax(Protocol):
    """Compiles a source path string; raises ValueError when the text is not a path."""

    def compile(self, text: str) -> Any: ...


class SourceTree(Protocol):
    """The neutral tree a wire format is turned into; the engine reads nothing else."""

    root: Any

    def read(self, path: Any, ctx: Any) -> str: ...

    def iterate(self, path: Any, ctx: Any) -> list[Any]: ...

    def groups(self, path: Any) -> list[Any]: ...

    def group_of(self, ctx: Any) -> Any: ...

    def location(self, path: Any, ctx: Any) -> str: ...

    def unused(self, ignore: Sequence[Any]) -> list[str]: ...

    def message_key(self) -> str: ...


# --------------------------------------------------------------------------- compiled form


@dataclass(slots=True)
class Step:
    name: str
    append: bool
    is_list: bool


@dataclass(slots=True)
class Template:
    parts: list[Any]  # str literals and compiled paths (tuples ("path", p))

    def render(self, tree: SourceTree, ctx: Any) -> str:
        """Literals plus placeholder values; empty when a ``{path}`` placeholder is empty
        and ``strict``, or when every placeholder is empty."""
        out = []
        filled = False
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = tree.read(part[1], ctx)
                if value:
                    filled = True
                elif part[2]:
                    return ""
                out.append(value)
        return "".join(out) if filled or len(self.parts) == 1 else ""


@dataclass(slots=True)
class Translate:
    cmap: ConceptMap
    into: str  # code | coding
    system: Template | None
    display: Any
    properties: dict[str, list[Step]]


@dataclass(slots=True)
class Rule:
    file: str
    line: int
    id: str | None
    parents: list[Step]
    leaf: Step | None  # None: merge into the current object
    info: ElementInfo | None
    source: tuple[Any, ...] | None = None
    value: Any = None
    template: Template | None = None
    reference: str | None = None
    each: Any = None
    rules: list[Rule] = field(default_factory=list)
    transforms: list[tuple[str, str]] = field(default_factory=list)
    translate: Translate | None = None
    when: list[tuple[Any, Any]] = field(default_factory=list)
    default: Any = None
    required: bool = False
    source_text: str = ""
    #: reverse-direction hint from the rule's ``reverse:`` key: False = never written back,
    #: a compiled path = the source path to write (instead of the first of ``source``).
    reverse: Any = None


@dataclass(slots=True)
class Identity:
    element: list[str]
    prefer: list[str]
    search: str
    method: str  # create | update


@dataclass(slots=True)
class ResourceSpec:
    name: str
    type: str
    line: int
    foreach: Any
    when: list[tuple[Any, Any]]
    identity: Identity | None
    rules: list[Rule]
    profile: str | None = None


_RULE_KEYS = {
    "id",
    "target",
    "source",
    "value",
    "template",
    "reference",
    "each",
    "rules",
    "transform",
    "translate",
    "when",
    "default",
    "required",
    "note",
    "reverse",
    LINE,
    FILE,
}
_TRANSFORM_KINDS = {
    "datetime": {"dateTime"},
    "date": {"date", "dateTime"},
    "decimal": {"decimal"},
    "integer": {"integer", "decimal"},
    "boolean": {"boolean"},
    "upper": {"string", "code"},
    "trim": {"string", "code"},
    "ucum": {"complex"},
    "system": {"string"},
}
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


# --------------------------------------------------------------------------- the mapping


@dataclass
class Mapping:
    """A compiled mapping: resource specs in dependency order plus the tables they use."""

    name: str
    file: str
    format: str
    messages: tuple[str, ...]
    resources: list[ResourceSpec]
    conceptmaps: dict[str, ConceptMap]
    systems: dict[str, dict[str, Template]]
    ignore: list[Any]
    match: list[tuple[Any, Any]]
    #: source path text -> (compiled path, Template, conditions): written only by the reverse
    #: direction (``reverse_only:`` in the YAML; see adapters/mapping/reverse.py).
    reverse_only: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ forward
    def run(self, tree: SourceTree) -> tuple[list[dict[str, Any]], list[Issue]]:
        """Bundle entries (fullUrl, resource, request) and the issues met on the way."""
        run = _Run(self, tree)
        for spec in self.resources:
            contexts = tree.groups(spec.foreach) if spec.foreach is not None else [tree.root]
            for ctx in contexts:
                if spec.when and not run.check(spec.when, ctx):
                    continue
                run.build(spec, ctx)
        for location in tree.unused(self.ignore):
            run.issues.append(
                Issue(
                    "information",
                    "informational",
                    en=f"{location} is not read by mapping {self.name}",
                    zh=f"{location} 未被映射 {self.name} 读取",
                    expression=(location,),
                    error_code="YL-2301",
                )
            )
        return run.entries, run.issues

    def matches(self, tree: SourceTree) -> bool:
        run = _Run(self, tree)
        return run.check(self.match, tree.root)


class _Run:
    __slots__ = ("entries", "issues", "mapping", "produced", "tree")

    def __init__(self, mapping: Mapping, tree: SourceTree) -> None:
        self.mapping = mapping
        self.tree = tree
        self.issues: list[Issue] = []
        self.entries: list[dict[str, Any]] = []
        self.produced: dict[str, dict[Any, str]] = {}

    def check(self, conditions: list[tuple[Any, Any]], ctx: Any) -> bool:
        read = self.tree.read
        return all(condition_holds(read(path, ctx), expected) for path, expected in conditions)

    def build(self, spec: ResourceSpec, ctx: Any) -> None:
        resource: dict[str, Any] = {"resourceType": spec.type}
        if spec.profile:
            resource["meta"] = {"profile": [spec.profile]}
        for rule in spec.rules:
            self.apply(rule, ctx, resource)
        _prune(resource)
        if len(resource) <= (2 if spec.profile else 1):
            return
        group = self.tree.group_of(ctx)
        rid, request = self.identity(spec, resource, group)
        resource = {"resourceType": spec.type, "id": rid, **{k: v for k, v in resource.items() if k != "resourceType"}}
        full_url = f"urn:uuid:{rid}"
        self.produced.setdefault(spec.name, {})[group] = full_url
        for entry in self.entries:
            if entry["fullUrl"] == full_url:  # the same thing named twice (ORC-12 and PV1-7)
                for key, value in resource.items():
                    entry["resource"].setdefault(key, value)
                return
        self.entries.append({"fullUrl": full_url, "resource": resource, "request": request})

    def identity(self, spec: ResourceSpec, resource: dict[str, Any], group: Any) -> tuple[str, dict[str, str]]:
        ident = spec.identity
        if ident is not None:
            candidates = _walk(resource, ident.element)
            best = None
            for pref in ident.prefer:
                for cand in candidates:
                    system = cand.get("system", "")
                    if system == pref or (pref.endswith("*") and system.startswith(pref[:-1])):
                        best = cand
                        break
                if best:
                    break
            if best is None:
                best = next((c for c in candidates if c.get("system")), None)
            if best is not None:
                system = best["system"]
                value = best.get("value") or best.get("code") or ""
                if value:
                    rid = str(uuid.uuid5(YAOLIAN_NAMESPACE, f"{spec.type}|{system}|{value}"))
                    if ident.method == "update":
                        return rid, {"method": "PUT", "url": f"{spec.type}/{rid}"}
                    return rid, {
                        "method": "POST",
                        "url": spec.type,
                        "ifNoneExist": f"{ident.search}={system}|{value}",
                    }
        # No identifier: deterministic per message, so a resend still creates nothing new.
        key = f"{spec.type}|{self.tree.message_key()}|{spec.name}|{group}"
        rid = str(uuid.uuid5(YAOLIAN_NAMESPACE, key))
        return rid, {"method": "PUT", "url": f"{spec.type}/{rid}"}

    # -- rules
    def apply(self, rule: Rule, ctx: Any, obj: dict[str, Any]) -> None:
        tree = self.tree
        if rule.when and not self.check(rule.when, ctx):
            return
        if rule.each is not None:
            for item in tree.iterate(rule.each, ctx):
                target = _descend(obj, rule.parents, rule.leaf)
                for child in rule.rules:
                    self.apply(child, item, target)
            return
        if rule.rules:
            target = _descend(obj, rule.parents, rule.leaf)
            for child in rule.rules:
                self.apply(child, ctx, target)
            return
        value: Any
        if rule.source is not None:
            for path in rule.source:
                value = tree.read(path, ctx)
                if value:
                    break
            if value:
                if rule.translate is not None:
                    value = self.translate(rule, value, ctx, obj)
                if rule.transforms and value is not None:
                    value = self.transform(rule, value, ctx)
        elif rule.template is not None:
            value = rule.template.render(tree, ctx)
        elif rule.reference is not None:
            urls = self.produced.get(rule.reference)
            value = None
            if urls:
                url = urls.get(tree.group_of(ctx)) or urls.get(None) or next(iter(urls.values()))
                value = {"reference": url}
        else:
            value = rule.value
        if value is None or value == "":
            if rule.default is not None:
                value = rule.default
            else:
                if rule.required:
                    self.missing(rule, ctx)
                return
        _assign(obj, rule.parents, rule.leaf, value)

    def source_location(self, rule: Rule, ctx: Any) -> str:
        """Where a rule's first source path points in the message: for rules that read a source
        (transforms and translations apply to a source's value only)."""
        assert rule.source is not None, "only a rule with a source has a source location"
        return self.tree.location(rule.source[0], ctx)

    def missing(self, rule: Rule, ctx: Any) -> None:
        if rule.source is not None:
            where = self.tree.location(rule.source[0], ctx)
            self.issues.append(
                Issue(
                    "error",
                    "required",
                    en=f"required {where} is empty",
                    zh=f"必填字段 {where} 为空",
                    expression=(where,),
                    error_code="YL-2303",
                )
            )
        else:
            # Name the input whose absence kept the referenced resource from being produced
            # (its `when` segment, e.g. PID for the patient), not the mapping file's path.
            spec = next((s for s in self.mapping.resources if s.name == rule.reference), None)
            needed = [self.tree.location(path, ctx) for path, want in (spec.when if spec else []) if want is True]
            where = needed[0] if needed else rule.source_text
            rule_at = f"{Path(rule.file).name}:{rule.line}"
            self.issues.append(
                Issue(
                    "error",
                    "required",
                    en=f"required {rule.reference!r} is not in the message"
                    + (f" ({where} is missing)" if needed else "")
                    + f"; rule {rule_at}",
                    zh=f"必需的 {rule.reference!r} 不在报文中" + (f"（缺少 {where}）" if needed else ""),
                    expression=(where,),
                    error_code="YL-2307",
                )
            )

    def transform(self, rule: Rule, value: Any, ctx: Any) -> Any:
        for name, arg in rule.transforms:
            raw = value
            if name == "datetime":
                value = tf.fhir_datetime(value)
            elif name == "date":
                value = tf.fhir_date(value)
            elif name == "decimal":
                value = tf.fhir_decimal(value)
            elif name == "integer":
                value = tf.fhir_integer(value)
            elif name == "boolean":
                value = value.upper() in ("Y", "1", "T", "TRUE", "是")
            elif name == "upper":
                value = value.upper()
            elif name == "trim":
                value = value.strip()
            elif name == "system":
                table = self.mapping.systems[arg]
                tpl = table.get(value) or table.get("*")
                value = tpl.render(self.tree, ctx) if tpl is not None else value
            elif name == "ucum":
                value = self.ucum(rule, value, ctx)
            if value is None:
                if name != "ucum":
                    where = self.source_location(rule, ctx)
                    self.issues.append(
                        Issue(
                            "error",
                            "value",
                            en=f"{where} value {raw!r} is not a valid {name}",
                            zh=f"{where} 的值 {raw!r} 不是有效的{name}格式",
                            expression=(where,),
                            error_code="YL-2304",
                        )
                    )
                return None
        return value

    def ucum(self, rule: Rule, value: str, ctx: Any) -> dict[str, str] | None:
        cmap = self.mapping.conceptmaps.get("units-to-ucum")
        targets = cmap.translate(value) if cmap else []
        if targets:
            return {"system": "http://unitsofmeasure.org", "code": targets[0].code}
        if cmap is not None and value in cmap.target_codes():
            return {"system": "http://unitsofmeasure.org", "code": value}
        where = self.source_location(rule, ctx)
        self.issues.append(
            Issue(
                "warning",
                "code-invalid",
                en=f"unit {value!r} at {where} has no UCUM translation; unit text kept",
                zh=f"{where} 的单位 {value!r} 无法转换为 UCUM，保留原文",
                expression=(where,),
                error_code="YL-2302",
            )
        )
        return None

    def translate(self, rule: Rule, code: str, ctx: Any, obj: dict[str, Any]) -> Any:
        tr = rule.translate
        assert tr is not None
        system = tr.system.render(self.tree, ctx) if tr.system is not None else None
        targets = tr.cmap.translate(code, system or None)
        display = self.tree.read(tr.display, ctx) if tr.display is not None else ""
        if tr.into == "code":
            if targets:
                self.spread(tr, targets[0], obj)
                return targets[0].code
            self.untranslated(rule, code, ctx, system)
            return None
        source: dict[str, Any] = {"system": system or tr.cmap.source_systems[0], "code": code}
        if display:
            source["display"] = display
        if not targets:
            self.untranslated(rule, code, ctx, system)
            source["extension"] = [{"url": UNTRANSLATED_URL, "valueCanonical": tr.cmap.url}]
            return [source]
        self.spread(tr, targets[0], obj)
        out = [source]
        for t in targets:
            if not t.code:
                continue  # property-only target (PRN -> asNeeded)
            coding = {"system": t.system, "code": t.code}
            if t.display:
                coding["display"] = t.display
            out.append(coding)
        return out

    def spread(self, tr: Translate, target: Any, obj: dict[str, Any]) -> None:
        for prop, steps in tr.properties.items():
            if prop in target.properties:
                _assign(obj, steps[:-1], steps[-1], target.properties[prop])

    def untranslated(self, rule: Rule, code: str, ctx: Any, system: str | None) -> None:
        where = self.source_location(rule, ctx)
        cmap = rule.translate.cmap if rule.translate else None
        name = cmap.id if cmap else "?"
        self.issues.append(
            Issue(
                "warning",
                "code-invalid",
                en=f"code {code!r} at {where} has no translation in ConceptMap {name}; kept as an untranslated coding",
                zh=f"{where} 的代码 {code!r} 在对照表 {name} 中无对应，已按未转换代码保留",
                expression=(where,),
                error_code="YL-2302",
            )
        )


# --------------------------------------------------------------------------- JSON building


def _descend(obj: dict[str, Any], parents: list[Step], leaf: Step | None) -> dict[str, Any]:
    for st in parents:
        obj = _child(obj, st)
    return _child(obj, leaf) if leaf is not None else obj


def _child(obj: dict[str, Any], st: Step) -> dict[str, Any]:
    if st.is_list:
        items = obj.get(st.name)
        if items is None:
            items = obj[st.name] = []
        if st.append or not items:
            items.append({})
        return items[-1]  # type: ignore[no-any-return]
    child = obj.get(st.name)
    if child is None:
        child = obj[st.name] = {}
    return child


def _assign(obj: dict[str, Any], parents: list[Step], leaf: Step | None, value: Any) -> None:
    for st in parents:
        obj = _child(obj, st)
    if leaf is None:
        if isinstance(value, dict):
            obj.update(value)
        return
    if leaf.is_list:
        items = obj.get(leaf.name)
        if items is None:
            items = obj[leaf.name] = []
        for v in value if isinstance(value, list) else (value,):
            _add(items, v)
    elif isinstance(value, dict) and isinstance(obj.get(leaf.name), dict):
        obj[leaf.name].update(value)
    else:
        obj[leaf.name] = value


def _add(items: list[Any], value: Any) -> None:
    """Append, merging codings/identifiers that repeat the same system and code/value."""
    if isinstance(value, dict) and "system" in value:
        key = value.get("code", value.get("value"))
        for existing in items:
            if (
                isinstance(existing, dict)
                and existing.get("system") == value["system"]
                and existing.get("code", existing.get("value")) == key
            ):
                for k, v in value.items():
                    existing.setdefault(k, v)
                return
    items.append(value)


def _prune(obj: Any) -> bool:
    """Drop empty dicts/lists in place; True when ``obj`` itself ends up empty."""
    if isinstance(obj, dict):
        for key in [k for k, v in obj.items() if isinstance(v, dict | list) and _prune(v)]:
            del obj[key]
        return not obj
    if isinstance(obj, list):
        obj[:] = [v for v in obj if not (isinstance(v, dict | list) and _prune(v))]
        return not obj
    return False


def condition_holds(value: Any, expected: Any) -> bool:
    """One ``when`` condition: ``true`` (present), ``false`` (absent), a set, or a value."""
    if expected is True:
        return bool(value)
    if expected is False:
        return not value
    if isinstance(expected, frozenset):
        return value in expected
    return bool(value == expected)


def walk_values(resource: dict[str, Any], path: list[str]) -> list[Any]:
    """Every value at ``path`` (element names), arrays flattened on the way."""
    nodes: list[Any] = [resource]
    for name in path:
        nxt: list[Any] = []
        for node in nodes:
            value = node.get(name) if isinstance(node, dict) else None
            if isinstance(value, list):
                nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        nodes = nxt
    return nodes


def _walk(resource: dict[str, Any], path: list[str]) -> list[dict[str, Any]]:
    return [n for n in walk_values(resource, path) if isinstance(n, dict)]


# --------------------------------------------------------------------------- loading


def load_mapping(
    path: Path | str,
    syntax: PathSyntax,
    conceptmap_dir: Path | None = None,
) -> Mapping:
    """Load, resolve includes/extends, compile and check a mapping file against the R5 models."""
    path = Path(path)
    raw = _resolve(path)
    return _Compiler(path, syntax, conceptmap_dir or _default_conceptmap_dir()).compile(raw)


def _default_conceptmap_dir() -> Path:
    import mappings

    return Path(mappings.__file__).parent / "conceptmaps"


def _tag(value: Any, file: str) -> Any:
    if isinstance(value, dict):
        value.setdefault(FILE, file)
        for v in value.values():
            _tag(v, file)
    elif isinstance(value, list):
        for v in value:
            _tag(v, file)
    return value


def _resolve(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise MappingSyntaxError("a mapping file is a YAML mapping", file=str(path), line=1)
    _tag(data, str(path))
    if "extends" in data:
        base = _resolve((path.parent / data["extends"]).resolve())
        for rule_id, change in (data.get("override") or {}).items():
            if rule_id in (LINE, FILE):
                continue
            if not _override(base.get("resources", []), rule_id, change):
                raise MappingSyntaxError(
                    f"override names rule id {rule_id!r}, which the base mapping does not have",
                    file=str(path),
                    line=change.get(LINE) if isinstance(change, dict) else data.get(LINE),
                )
        merged = dict(base)
        for key in ("mapping", "match", "messages", "description"):
            if key in data:
                merged[key] = data[key]
        merged["ignore"] = list(base.get("ignore", [])) + list(data.get("ignore", []))
        merged["reverse_only"] = {**(base.get("reverse_only") or {}), **(data.get("reverse_only") or {})}
        merged[FILE] = str(path)
        return merged
    parts: dict[str, Any] = {}
    systems: dict[str, Any] = {}
    ignore: list[Any] = []
    for inc in data.get("include", []):
        shared = load_yaml((path.parent / inc).resolve())
        _tag(shared, str((path.parent / inc).resolve()))
        parts.update(shared.get("parts", {}))
        systems.update(shared.get("systems", {}))
        ignore.extend(shared.get("ignore", []))
    systems.update(data.get("systems", {}))
    data["systems"] = systems
    data["ignore"] = ignore + list(data.get("ignore", []))
    resources = []
    for res in data.get("resources", []):
        if isinstance(res, dict) and "use" in res:
            if res["use"] not in parts:
                raise MappingSyntaxError(
                    f"'use: {res['use']}' names no part of the included files",
                    file=res.get(FILE, str(path)),
                    line=res.get(LINE),
                )
            part = copy.deepcopy(parts[res["use"]])
            res = {**part, **{k: v for k, v in res.items() if k != "use"}}
        resources.append(res)
    data["resources"] = resources
    return data


def _override(rules: list[Any], rule_id: str, change: Any) -> bool:
    """Replace keys of the rule(s) with ``id: rule_id``; a new source kind drops the old one."""
    found = False
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        if rule.get("name") and f"{rule['name']}-context" == rule_id and "each" in change:
            rule["context"] = change["each"]
            found = True
        if rule.get("id") == rule_id:
            if any(k in change for k in _SOURCE_KINDS):
                for k in _SOURCE_KINDS:
                    rule.pop(k, None)
            rule.update(change)
            found = True
        for key in ("rules", "extra_rules"):
            found = _override(rule.get(key, []), rule_id, change) or found
    return found


_SOURCE_KINDS = ("source", "value", "template", "reference", "each")


class _Compiler:
    def __init__(self, path: Path, syntax: PathSyntax, cmap_dir: Path) -> None:
        self.path = path
        self.syntax = syntax
        self.cmap_dir = cmap_dir
        self.conceptmaps: dict[str, ConceptMap] = {}
        self.systems: dict[str, dict[str, Template]] = {}
        self.resource_names: list[str] = []

    def fail(self, cls: type, message: str, node: Any) -> Exception:
        file = node.get(FILE, str(self.path)) if isinstance(node, dict) else str(self.path)
        line = node.get(LINE) if isinstance(node, dict) else None
        return cls(message, file=file, line=line)  # type: ignore[no-any-return]

    def src(self, text: Any, node: Any) -> Any:
        try:
            return self.syntax.compile(str(text))
        except ValueError as exc:
            raise self.fail(MappingSyntaxError, f"bad source path {text!r}: {exc}", node) from exc

    def conceptmap(self, name: str, node: Any) -> ConceptMap:
        if name not in self.conceptmaps:
            file = self.cmap_dir / f"{name}.json"
            if not file.exists():
                raise self.fail(MappingSyntaxError, f"no ConceptMap {file}", node)
            self.conceptmaps[name] = load_conceptmap(file)
        return self.conceptmaps[name]

    def template(self, text: str, node: Any) -> Template:
        parts: list[Any] = []
        pos = 0
        for m in _TEMPLATE.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            text_path = m.group(1)
            optional = text_path.endswith("?")
            parts.append(("path", self.src(text_path.rstrip("?"), node), not optional))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return Template(parts)

    def conditions(self, when: Any, node: Any) -> list[tuple[Any, Any]]:
        if not when:
            return []
        if not isinstance(when, dict):
            raise self.fail(MappingSyntaxError, "'when' is a mapping of path -> value", node)
        out = []
        for key, expected in when.items():
            if key in (LINE, FILE):
                continue
            if isinstance(expected, list):
                expected = frozenset(str(e) for e in expected)
            elif not isinstance(expected, bool):
                expected = str(expected)
            out.append((self.src(key, node), expected))
        return out

    def compile(self, raw: dict[str, Any]) -> Mapping:
        for table, entries in (raw.get("systems") or {}).items():
            if table in (LINE, FILE):
                continue
            self.systems[table] = {
                str(k): self.template(str(v), entries) for k, v in entries.items() if k not in (LINE, FILE)
            }
        for name in raw.get("conceptmaps", []) or []:
            self.conceptmap(name, raw)
        if "units-to-ucum" not in self.conceptmaps and (self.cmap_dir / "units-to-ucum.json").exists():
            self.conceptmap("units-to-ucum", raw)
        resources = [self.resource(r) for r in raw.get("resources", [])]
        if not resources:
            raise self.fail(MappingSyntaxError, "mapping declares no resources", raw)
        return Mapping(
            name=str(raw.get("mapping", self.path.stem)),
            file=str(self.path),
            format=str(raw.get("format", "")),
            messages=tuple(raw.get("messages", []) or []),
            resources=resources,
            conceptmaps=self.conceptmaps,
            systems=self.systems,
            ignore=[self.src(p, raw) for p in raw.get("ignore", [])],
            match=self.conditions(raw.get("match"), raw),
            reverse_only=self.reverse_only(raw.get("reverse_only") or {}),
        )

    def reverse_only(self, entries: dict[str, Any]) -> dict[str, Any]:
        """``reverse_only: {PATH: TEXT | {value: TEXT, when: {...}}}``: fields the forward direction
        does not read but a receiving system expects (set ids, coding-system names); TEXT may
        hold ``{path}`` placeholders like a template."""
        out: dict[str, Any] = {}
        for text, spec in entries.items():
            if text in (LINE, FILE):
                continue
            body = spec if isinstance(spec, dict) else {"value": spec}
            if "value" not in body:
                raise self.fail(MappingSyntaxError, f"reverse_only {text!r} needs a value", entries)
            out[str(text)] = (
                self.src(text, entries),
                self.template(str(strip_lines(body["value"])), entries),
                self.conditions(body.get("when"), body if isinstance(spec, dict) else entries),
            )
        return out

    def resource(self, node: Any) -> ResourceSpec:
        if not isinstance(node, dict) or "type" not in node or "name" not in node:
            raise self.fail(MappingSyntaxError, "a resource needs 'name' and 'type'", node)
        try:
            model = model_class(node["type"])
        except Exception as exc:
            raise self.fail(MappingTargetError, f"{node['type']!r} is not an R5 resource type", node) from exc
        raw_rules = list(node.get("rules", [])) + list(node.get("extra_rules", []))
        if node.get("context"):
            raw_rules = [
                {
                    "id": f"{node['name']}-context",
                    "each": node["context"],
                    "rules": raw_rules,
                    LINE: node.get(LINE),
                    FILE: node.get(FILE),
                }
            ]
        rules = [self.rule(r, model, node["type"]) for r in raw_rules]
        self.cover(model, rules, node, node["type"])
        identity = None
        if "identity" in node:
            ident = node["identity"]
            element = str(ident.get("element", "identifier"))
            method = str(ident.get("request", "create"))
            if method not in ("create", "update"):
                raise self.fail(MappingSyntaxError, "identity.request is create or update", ident)
            self.check_path(model, element.split("."), ident, node["type"])
            identity = Identity(
                element=element.split("."),
                prefer=[str(p) for p in ident.get("prefer", [])],
                search=str(ident.get("search", element.split(".")[0])),
                method=method,
            )
        spec = ResourceSpec(
            name=str(node["name"]),
            type=str(node["type"]),
            line=node.get(LINE, 0),
            foreach=self.src(node["foreach"], node) if node.get("foreach") else None,
            when=self.conditions(node.get("when"), node),
            identity=identity,
            rules=rules,
            profile=node.get("profile"),
        )
        self.resource_names.append(spec.name)
        return spec

    def check_path(self, model: Any, names: list[str], node: Any, where: str) -> ElementInfo:
        info = None
        for name in names:
            if model is None:
                raise self.fail(MappingTargetError, f"{where}: {name!r} is below a primitive", node)
            try:
                info = element_info(model, name)
            except KeyError as exc:
                raise self.fail(MappingTargetError, f"{where}: {exc.args[0]}", node) from None
            model = info.model
            where = f"{where}.{name}"
        assert info is not None
        return info

    def steps(self, model: Any, target: str, node: Any, where: str) -> tuple[list[Step], Any]:
        if target in (".", ""):
            return [], None
        out: list[Step] = []
        info: ElementInfo | None = None
        for part in target.split("."):
            append = part.endswith("[]")
            name = part[:-2] if append else part
            info = self.check_path(model, [name], node, where)
            if append and not info.is_list:
                raise self.fail(MappingTargetError, f"{where}.{name} is not a list; '[]' does not apply", node)
            out.append(Step(name, append, info.is_list))
            model = info.model
            where = f"{where}.{name}"
        return out, info

    def rule(self, node: Any, model: Any, where: str) -> Rule:
        if not isinstance(node, dict):
            raise self.fail(MappingSyntaxError, f"a rule is a mapping, not {node!r}", node)
        unknown = set(node) - _RULE_KEYS
        if unknown:
            raise self.fail(MappingSyntaxError, f"unknown rule keys {sorted(unknown)}", node)
        target = str(node.get("target", "."))
        steps, info = self.steps(model, target, node, where)
        here = f"{where}.{target}" if steps else where
        rule = Rule(
            file=node.get(FILE, str(self.path)),
            line=node.get(LINE, 0),
            id=node.get("id"),
            parents=steps[:-1],
            leaf=steps[-1] if steps else None,
            info=info,
            when=self.conditions(node.get("when"), node),
            required=bool(node.get("required", False)),
            source_text=str(node.get("source", "")),
        )
        if "reverse" in node:
            rule.reverse = self.reverse_hint(node["reverse"], node)
        sources = [k for k in ("source", "value", "template", "reference") if k in node]
        if "each" in node or "rules" in node:
            if sources:
                raise self.fail(MappingSyntaxError, f"a rule with children has no {sources[0]}", node)
            if info is not None and info.kind != "complex":
                raise self.fail(MappingTargetError, f"{here} is a primitive; it has no children", node)
            if "each" in node:
                rule.each = self.src(node["each"], node)
            child_model = info.model if info is not None else model
            rule.rules = [self.rule(r, child_model, here) for r in node.get("rules", [])]
            if info is not None:
                self.cover(child_model, rule.rules, node, here)
            return rule
        if len(sources) != 1:
            raise self.fail(MappingSyntaxError, "a rule has exactly one of source/value/template/reference", node)
        kind = info.kind if info is not None else "complex"
        transforms = node.get("transform") or []
        if isinstance(transforms, str):
            transforms = [transforms]
        for t in transforms:
            name, _, arg = str(t).partition(":")
            if name not in _TRANSFORM_KINDS:
                raise self.fail(MappingSyntaxError, f"unknown transform {t!r}", node)
            if name == "system" and arg not in self.systems:
                raise self.fail(MappingSyntaxError, f"no systems table {arg!r}", node)
            rule.transforms.append((name, arg))
        if "translate" in node:
            rule.translate = self.translate_spec(node["translate"], model, node, where)
        if "default" in node:
            rule.default = strip_lines(node["default"])
        if "source" in node:
            texts = node["source"] if isinstance(node["source"], list) else [node["source"]]
            rule.source = tuple(self.src(t, node) for t in texts)
            produced = self.produced_kind(rule)
            if produced and kind not in produced:
                raise self.fail(
                    MappingTargetError,
                    f"{here} is {kind}; the rule produces {'/'.join(sorted(produced))}",
                    node,
                )
            if rule.translate and rule.translate.into == "code" and info and info.enum:
                bad = rule.translate.cmap.target_codes() - set(info.enum)
                if bad:
                    raise self.fail(
                        MappingTargetError,
                        f"ConceptMap {rule.translate.cmap.id} yields {sorted(bad)}, "
                        f"not allowed in {here} ({', '.join(info.enum)})",
                        node,
                    )
        elif "template" in node:
            rule.template = self.template(str(node["template"]), node)
            if kind not in ("string", "code"):
                raise self.fail(MappingTargetError, f"{here} is {kind}; a template gives text", node)
        elif "reference" in node:
            ref = str(node["reference"])
            if ref not in self.resource_names:
                raise self.fail(
                    MappingSyntaxError,
                    f"reference {ref!r} names no earlier resource ({', '.join(self.resource_names)})",
                    node,
                )
            if info is None or info.model is None or info.model.__name__ != "Reference":
                raise self.fail(MappingTargetError, f"{here} is not a Reference", node)
            rule.reference = ref
        else:
            rule.value = strip_lines(node["value"])
            self.check_constant(rule.value, info, here, node)
        if rule.default is not None:
            self.check_constant(rule.default, info, here, node)
        return rule

    def reverse_hint(self, hint: Any, node: Any) -> Any:
        """``reverse: false`` (not written back) or ``reverse: {source: PATH}`` (write PATH)."""
        if hint is False:
            return False
        if isinstance(hint, dict) and "source" in hint:
            return self.src(hint["source"], node)
        raise self.fail(MappingSyntaxError, "'reverse' is false or {source: PATH}", node)

    def produced_kind(self, rule: Rule) -> set[str]:
        if rule.translate is not None:
            return {"code"} if rule.translate.into == "code" else {"complex"}
        if rule.transforms:
            return _TRANSFORM_KINDS[rule.transforms[-1][0]]
        return {"string", "code"}

    def check_constant(self, value: Any, info: ElementInfo | None, here: str, node: Any) -> None:
        kind = info.kind if info is not None else "complex"
        ok = {
            bool: {"boolean"},
            int: {"integer", "decimal"},
            float: {"decimal"},
            str: {"string", "code", "dateTime", "date", "time"},
            dict: {"complex"},
            list: {"complex"},
        }.get(type(value), set())
        if kind not in ok:
            raise self.fail(MappingTargetError, f"{here} is {kind}; constant {value!r} does not fit", node)
        if info is not None and info.enum and isinstance(value, str) and value not in info.enum:
            raise self.fail(MappingTargetError, f"{value!r} is not one of {here}'s codes {info.enum}", node)
        if isinstance(value, dict) and info is not None and info.model is not None:
            try:
                info.model.model_validate(value)
            except Exception as exc:
                raise self.fail(MappingTargetError, f"constant for {here}: {exc}", node) from None

    def translate_spec(self, spec: Any, model: Any, node: Any, where: str) -> Translate:
        if isinstance(spec, str):
            spec = {"map": spec}
        into = str(spec.get("into", "coding"))
        if into not in ("code", "coding"):
            raise self.fail(MappingSyntaxError, "translate.into is code or coding", node)
        props = {}
        for prop, target in (spec.get("properties") or {}).items():
            if prop in (LINE, FILE):
                continue
            steps, _ = self.steps(model, str(target), node, where)
            props[str(prop)] = steps
        return Translate(
            cmap=self.conceptmap(str(spec["map"]), node),
            into=into,
            system=self.template(str(spec["system"]), node) if spec.get("system") else None,
            display=self.src(spec["display"], node) if spec.get("display") else None,
            properties=props,
        )

    def cover(self, model: Any, rules: Iterable[Rule], node: Any, where: str) -> None:
        covered = set(_covered(rules))
        missing = [r for r in required_elements(model) if r not in covered]
        if missing:
            raise self.fail(
                MappingCoverageError,
                f"{where}: required element(s) {', '.join(missing)} have no rule",
                node,
            )


def _covered(rules: Iterable[Rule]) -> Iterable[str]:
    for rule in rules:
        first = rule.parents[0] if rule.parents else rule.leaf
        if first is not None:
            yield first.name
        else:
            yield from _covered(rule.rules)
            if rule.translate is not None:
                for steps in rule.translate.properties.values():
                    yield steps[0].name
