"""The reverse direction: FHIR resources -> source path assignments, read off the same rules.

A forward rule says "the value at source path P, transformed, goes to FHIR element T". Read
backwards, it says "the value at T, un-transformed, goes to P". The runner walks a mapping's
rules over the FHIR resources and collects ``address -> text`` assignments; the wire format
(HL7 v2: ``adapters/hl7v2/writer.py``) turns them into segments, fields and repeats. Nothing
here knows a wire format: a ``SourceLayout`` says where a path lands.

What inverts (see docs/mapping-language.md, "The reverse direction"):

* a ``source`` rule writes its first path (or the ``reverse: {source: P}`` hint); transforms
  ``date``/``datetime`` (-> HL7 TS), ``decimal``, ``integer``, ``boolean``, ``ucum`` and
  ``system:TABLE`` have inverses, ``upper``/``trim`` write the value as is; ``translate`` reads
  the kept source coding, else the ConceptMap backwards;
* ``each`` writes one repeat (or segment) per FHIR list element the child rules fit;
* a ``value`` constant writes nothing but tells which list element a rule made (``url`` of an
  extension, ``system`` of an identifier); a template with one placeholder is matched as a
  pattern; ``when: {P: X}`` writes X to P when the rule's element is present;
* ``reference`` rules say which resource each part of the mapping reads.

Templates with several placeholders, the fallback sources after the first and transforms
combined with a translation cannot be inverted: ``reverse_report`` lists them (file:line and
why), so nothing is dropped without a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from adapters.mapping import transforms as tf
from adapters.mapping.engine import (
    Mapping,
    ResourceSpec,
    Rule,
    SourceTree,
    Step,
    Template,
    condition_holds,
    walk_values,
)

__all__ = ["Address", "Reversal", "Skipped", "SourceLayout", "reverse", "reverse_orders", "reverse_report"]

#: A concrete place in the source format. Tuples; a shorter tuple names a container of the
#: longer ones (HL7 v2: ``(group, segment, occurrence)`` holds ``(…, field, repeat, comp, sub)``).
Address = tuple[Any, ...]
Resolver = Callable[[Any], dict[str, Any] | None]

_UCUM = "http://unitsofmeasure.org"
_FIRED, _ABSENT, _MISMATCH = "fired", "absent", "mismatch"


class SourceLayout(Protocol):
    """Where a source path lands when writing; the write-side twin of ``SourceTree``."""

    root: Any

    def group(self, foreach: Any, index: int) -> Any: ...

    def item(self, each: Any, ctx: Any, index: int) -> Any | None:
        """Context for pass ``index`` (0-based) of an ``each``; None when there is no such pass."""
        ...

    def address(self, path: Any, ctx: Any) -> Address | None: ...


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule (or part of one) the reverse direction does not write, and why."""

    rule: str  # file:line
    reason: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


@dataclass(slots=True)
class Reversal:
    assignments: dict[Address, str]
    skipped: list[Skipped]  # rules of the mapping that are not inverted (static)
    notes: list[str] = field(default_factory=list)  # values met that could not be written back


def _where(rule: Rule) -> str:
    file = Path(rule.file)
    return f"{file.parent.name}/{file.name}:{rule.line}"


def _placeholders(template: Template) -> list[Any]:
    return [p for p in template.parts if not isinstance(p, str)]


def _all_rules(rules: list[Rule]) -> Iterator[Rule]:
    for rule in rules:
        yield rule
        yield from _all_rules(rule.rules)


def reverse_report(mapping: Mapping) -> list[Skipped]:
    """Every rule (or part of a rule) the reverse direction does not write, with the reason."""
    out: list[Skipped] = []
    for spec in mapping.resources:
        for rule in _all_rules(spec.rules):
            where = _where(rule)
            if rule.reverse is False:
                out.append(Skipped(where, "marked 'reverse: false'"))
            elif rule.template is not None and len(_placeholders(rule.template)) != 1:
                count = len(_placeholders(rule.template))
                out.append(
                    Skipped(where, f"template with {count} placeholders: the text cannot be split back into them")
                )
            elif rule.source is not None and len(rule.source) > 1 and rule.reverse is None:
                rest = ", ".join(p.text for p in rule.source[1:])
                out.append(
                    Skipped(where, f"fallback source(s) {rest} not written; the first, {rule.source[0].text}, is")
                )
            elif rule.translate is not None and rule.transforms:
                out.append(Skipped(where, "a translation followed by a transform has no inverse"))
    return list(dict.fromkeys(out))  # a part used twice (attending, orderer) is listed once


def reverse(
    mapping: Mapping,
    root: dict[str, Any],
    resolve: Resolver,
    layout: SourceLayout,
    fixed: dict[Address, str] | None = None,
) -> Reversal:
    """Assignments that the forward run of ``mapping`` reads back as ``root`` and the resources
    it references. ``resolve`` turns a Reference into a resource; ``fixed`` are assignments the
    caller makes itself (the envelope: HL7 MSH), read by rules but never overwritten."""
    return reverse_orders(mapping, [(root, resolve)], layout, fixed)


def reverse_orders(
    mapping: Mapping,
    orders: Sequence[tuple[dict[str, Any], Resolver]],
    layout: SourceLayout,
    fixed: dict[Address, str] | None = None,
) -> Reversal:
    """:func:`reverse` for several roots in one message: root ``i`` (with its own resolver, as
    contained resources are its own) fills the ``i``-th group of the mapping's ``foreach``
    parts (HL7 v2: the i-th ORC group). The parts outside any group (HL7 v2: PID, PV1) are
    written from the first root only; the caller makes sure the roots share them."""
    run = _Back(mapping, layout, fixed or {})
    for group, (root, resolve) in enumerate(orders):
        run.resolve, run.bound = resolve, {}
        run.bind(root)
        for spec in mapping.resources:
            resource = run.bound.get(spec.name)
            if resource is not None and (spec.foreach is not None or group == 0):
                run.resource(spec, resource, group)
    run.reverse_only(len(orders))
    assignments = {k: v for k, v in run.state.items() if k not in run.fixed}
    for address in run.present:
        assignments.setdefault(address, "")
    return Reversal(assignments, reverse_report(mapping), run.notes)


class _Reader:
    """Lets a compiled Template render against the assignments made so far."""

    def __init__(self, back: _Back) -> None:
        self.back = back

    def read(self, path: Any, ctx: Any) -> str:
        return self.back.read(path, ctx)


class _Back:
    def __init__(self, mapping: Mapping, layout: SourceLayout, fixed: dict[Address, str]) -> None:
        self.mapping = mapping
        self.resolve: Resolver = lambda _ref: None  # the current root's (reverse_orders sets it)
        self.layout = layout
        self.fixed = set(fixed)
        self.state: dict[Address, str] = dict(fixed)
        self.claimed: set[Any] = set()
        self.present: set[Address] = set()  # containers a condition says exist (HL7: a segment)
        self.bound: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.reader = _Reader(self)

    # -- state
    def render(self, template: Template, ctx: Any) -> str:
        """A template over what is written so far (only ``read`` of the tree is used)."""
        return template.render(cast(SourceTree, self.reader), ctx)

    def read(self, path: Any, ctx: Any) -> str:
        address = self.layout.address(path, ctx)
        if address is None:
            return ""
        if address in self.state:
            return self.state[address]
        n = len(address)
        inside = any(k[:n] == address for k in (*self.state, *self.present) if len(k) > n)
        return "present" if inside or address in self.present else ""

    def put(self, path: Any, ctx: Any, text: str) -> bool:
        """Assign; False when the address already holds another value (the rule does not fit)."""
        if text == "":
            return True
        address = self.layout.address(path, ctx)
        if address is None:
            return False
        held = self.state.get(address)
        if held is not None:
            return held == text
        self.state[address] = text
        return True

    def snapshot(self) -> tuple[dict[Address, str], set[Any], set[Address], int]:
        return dict(self.state), set(self.claimed), set(self.present), len(self.notes)

    def restore(self, snap: tuple[dict[Address, str], set[Any], set[Address], int]) -> None:
        self.state, self.claimed, self.present = dict(snap[0]), set(snap[1]), set(snap[2])
        del self.notes[snap[3] :]

    # -- binding resources to the mapping's resource names
    def bind(self, root: dict[str, Any]) -> None:
        roots = [s for s in self.mapping.resources if s.type == root.get("resourceType")]
        if not roots:
            return
        self.bound[roots[-1].name] = root
        changed = True
        while changed:
            changed = False
            for spec in self.mapping.resources:
                resource = self.bound.get(spec.name)
                if resource is None:
                    continue
                for names, target in _references(spec.rules, []):
                    if target in self.bound:
                        continue
                    for ref in walk_values(resource, names):
                        found = self.resolve(ref)
                        wanted = next(s.type for s in self.mapping.resources if s.name == target)
                        if found is not None and found.get("resourceType") == wanted:
                            self.bound[target] = found
                            changed = True
                            break

    def resource(self, spec: ResourceSpec, resource: dict[str, Any], group: int) -> None:
        ctx = self.layout.group(spec.foreach, group) if spec.foreach is not None else self.layout.root
        self.claimed = set()  # two names may read one resource (attending and orderer)
        fired, _ = self.children(spec.rules, ctx, resource)
        if fired:
            self.settle(spec.when, ctx, force=True)

    def reverse_only(self, groups: int) -> None:
        """Each ``reverse_only`` field once outside the groups, or once in every group."""
        foreach = _first_foreach(self.mapping)
        in_groups = [self.layout.group(foreach, g) for g in range(groups)] if foreach is not None else []
        for path, value, when in self.mapping.reverse_only.values():
            if self.layout.address(path, self.layout.root) is not None:
                contexts = [self.layout.root]
            else:
                contexts = [c for c in in_groups if self.layout.address(path, c) is not None]
            for context in contexts:
                if not when or self.settle(when, context, force=False):
                    self.put(path, context, self.render(value, context))

    # -- rules
    def children(self, rules: list[Rule], ctx: Any, obj: dict[str, Any]) -> tuple[bool, bool]:
        """Run child rules (unconditioned first, so conditions see what their siblings write);
        (any fired, any direct misfit)."""
        fired = mismatch = False
        for rule in [r for r in rules if not r.when] + [r for r in rules if r.when]:
            if rule.reverse is False:
                continue
            result = self.rule(rule, ctx, obj)
            fired = fired or result == _FIRED
            mismatch = mismatch or result == _MISMATCH
        return fired, mismatch

    def rule(self, rule: Rule, ctx: Any, obj: dict[str, Any]) -> str:
        if rule.when and self.refuted(rule.when, ctx):
            return _ABSENT
        if rule.each is not None:
            return self.each(rule, ctx, obj)
        if rule.rules:
            return self.container(rule, ctx, obj)
        snap = self.snapshot()
        result = self.leaf(rule, ctx, obj)
        if result == _MISMATCH:
            self.restore(snap)
        return result

    def settle(self, when: list[tuple[Any, Any]], ctx: Any, *, force: bool) -> bool:
        """Do the conditions hold? With ``force``, a condition on a fixed value writes it."""
        for path, expected in when:
            value = self.read(path, ctx)
            if condition_holds(value, expected):
                continue
            if value or not force or expected is False or isinstance(expected, frozenset):
                return False  # only an empty field can be made to hold, and only to a fixed value
            if expected is True:
                address = self.layout.address(path, ctx)
                if address is None:
                    return False
                self.present.add(address)
            elif not self.put(path, ctx, expected):
                return False
        return True

    def refuted(self, when: list[tuple[Any, Any]], ctx: Any) -> bool:
        """A condition already false for what is written (so the rule did not produce the FHIR)."""
        for path, expected in when:
            value = self.read(path, ctx)
            if not value or expected is True:
                continue
            if expected is False or (isinstance(expected, frozenset) and value not in expected):
                return True
            if isinstance(expected, str) and value != expected:
                return True
        return False

    def candidates(self, obj: dict[str, Any], steps: list[Step]) -> list[dict[str, Any]]:
        """The elements a rule with these target steps may have written: for an appended list
        element, every one not yet claimed; else the one element (the last of a list)."""
        nodes: list[dict[str, Any]] = [obj]
        for st in steps:
            nxt: list[dict[str, Any]] = []
            for node in nodes:
                child = node.get(st.name)
                if isinstance(child, list):
                    items = [c for c in child if isinstance(c, dict)]
                    if st.append:
                        nxt.extend(c for c in items if id(c) not in self.claimed)
                    elif items:
                        nxt.append(items[-1])
                elif isinstance(child, dict):
                    nxt.append(child)
            nodes = nxt
        return nodes

    def container(self, rule: Rule, ctx: Any, obj: dict[str, Any]) -> str:
        steps = rule.parents + ([rule.leaf] if rule.leaf else [])
        claims = any(st.append for st in steps)
        for holder in self.candidates(obj, steps):
            snap = self.snapshot()
            fired, mismatch = self.children(rule.rules, ctx, holder)
            if fired and not mismatch and self.settle(rule.when, ctx, force=True):
                if claims:
                    self.claimed.add(id(holder))
                return _FIRED
            self.restore(snap)
        return _ABSENT

    def each(self, rule: Rule, ctx: Any, obj: dict[str, Any]) -> str:
        steps = rule.parents + ([rule.leaf] if rule.leaf else [])
        fired_any = False
        index = 0
        while (item := self.layout.item(rule.each, ctx, index)) is not None:
            accepted = False
            if not steps:
                snap = self.snapshot()
                before = len(self.claimed)
                fired, mismatch = self.children(rule.rules, item, obj)
                # a later pass is a new repeat only when it accounts for elements not yet written
                accepted = fired and not mismatch and (index == 0 or len(self.claimed) > before)
                if not accepted:
                    self.restore(snap)
            else:
                claims = any(st.append for st in steps)
                for holder in self.candidates(obj, steps):
                    snap = self.snapshot()
                    fired, mismatch = self.children(rule.rules, item, holder)
                    if fired and not mismatch:
                        if claims:
                            self.claimed.add(id(holder))
                        accepted = True
                        break
                    self.restore(snap)
                accepted = accepted and (claims or index == 0)
            if not accepted:
                break
            fired_any = True
            index += 1
        if fired_any and rule.when and not self.settle(rule.when, ctx, force=True):
            return _ABSENT
        return _FIRED if fired_any else _ABSENT

    def leaf(self, rule: Rule, ctx: Any, obj: dict[str, Any]) -> str:
        holders = self.candidates(obj, rule.parents)
        holder = holders[0] if holders else None
        if rule.leaf is None:
            value: Any = holder
        elif holder is None:
            value = None
        else:
            value = holder.get(rule.leaf.name)
        if rule.value is not None:
            return self.constant(rule, ctx, value)
        if value is None or value == "" or value == []:
            return _ABSENT
        if rule.reference is not None:
            return _FIRED
        if rule.template is not None:
            if len(_placeholders(rule.template)) != 1 or not isinstance(value, str):
                return _ABSENT
            ok = self.unrender(rule.template, value, ctx)
            return self.conclude(rule, ctx, ok)
        assert rule.source is not None
        target = rule.reverse if rule.reverse is not None else rule.source[0]
        if rule.translate is not None:
            if rule.transforms:
                return _ABSENT
            return self.conclude(rule, ctx, self.untranslate(rule, ctx, value, target))
        if isinstance(value, list):  # `given[]`: the first element no rule has written yet
            free = [i for i, v in enumerate(value) if (id(value), i) not in self.claimed]
            if not free:
                return _ABSENT
            self.claimed.add((id(value), free[0]))
            value = value[free[0]]
        if rule.default is not None and value == rule.default:
            return _ABSENT  # the forward default gives it back
        text = self.uncast(rule, ctx, value)
        if text is None:
            return _ABSENT
        return self.conclude(rule, ctx, self.put(target, ctx, text))

    def conclude(self, rule: Rule, ctx: Any, ok: bool) -> str:
        if not ok:
            return _MISMATCH
        if rule.when and not self.settle(rule.when, ctx, force=True):
            return _ABSENT
        return _FIRED

    def constant(self, rule: Rule, ctx: Any, value: Any) -> str:
        expected = rule.value
        if isinstance(value, list):
            for i, item in enumerate(value):
                key = id(item) if isinstance(item, dict) else (id(value), i)
                if key not in self.claimed and _fits(expected, item):
                    self.claimed.add(key)
                    return self.conclude(rule, ctx, True)
            present = False
        else:
            present = value is not None
            if present and _fits(expected, value):
                return self.conclude(rule, ctx, True)
        # absent or different: a misfit only where the forward rule would have written it
        if not rule.when or self.settle(rule.when, ctx, force=False):
            return _MISMATCH
        return _ABSENT

    def unrender(self, template: Template, text: str, ctx: Any) -> bool:
        """Match ``text`` against a one-placeholder template and write the placeholder."""
        pattern = "".join(re.escape(p) if isinstance(p, str) else "(.*)" for p in template.parts)
        m = re.fullmatch(pattern, text, re.DOTALL)
        if m is None:
            return False
        (path,) = [p[1] for p in _placeholders(template)]
        return self.put(path, ctx, m.group(1))

    # -- inverses
    def uncast(self, rule: Rule, ctx: Any, value: Any) -> str | None:
        if not rule.transforms:
            return value if isinstance(value, str) else None
        text: Any = value
        for name, arg in reversed(rule.transforms):
            text = self.inverse(rule, ctx, name, arg, text)
            if text is None:
                return None
        return text if isinstance(text, str) else None

    def inverse(self, rule: Rule, ctx: Any, name: str, arg: str, value: Any) -> str | None:
        try:
            if name in ("datetime", "date"):
                return tf.hl7_ts(str(value))
            if name in ("decimal", "integer"):
                return tf.source_decimal(value) if isinstance(value, int | float) and value is not True else None
            if name == "boolean":
                return "Y" if value is True else "N" if value is False else None
            if name in ("upper", "trim"):
                return value if isinstance(value, str) else None
            if name == "system":
                return self.unsystem(rule, ctx, arg, str(value))
            if name == "ucum":
                return self.unucum(value)
        except ValueError:
            pass
        self.notes.append(f"{_where(rule)}: {value!r} has no inverse of transform {name}")
        return None

    def unsystem(self, rule: Rule, ctx: Any, table_name: str, uri: str) -> str | None:
        """The coding-system name whose URI template renders as ``uri``; for the ``*`` entry,
        the name is recovered only when the template quotes it (``…/coding/{.3}``)."""
        table = self.mapping.systems[table_name]
        for key, tpl in table.items():
            if key != "*" and self.render(tpl, ctx) == uri:
                return key
        star = table.get("*")
        if star is None or rule.source is None:
            return None
        pattern = "".join(re.escape(p) if isinstance(p, str) else "(.*)" for p in star.parts)
        m = re.fullmatch(pattern, uri, re.DOTALL)
        if m is None:
            return None
        own = self.layout.address(rule.source[0], ctx)
        name = None
        for group, part in zip(m.groups(), _placeholders(star), strict=True):
            if self.layout.address(part[1], ctx) == own:
                name = group
            elif self.read(part[1], ctx) not in ("", group):
                return None
        return name

    def unucum(self, value: Any) -> str | None:
        if not isinstance(value, dict) or value.get("system") != _UCUM or not value.get("code"):
            return None
        code = str(value["code"])
        cmap = self.mapping.conceptmaps.get("units-to-ucum")
        if cmap is None:
            return code
        for cand in [t.code for t in cmap.untranslate(code, _UCUM)] + [code]:
            forward = cmap.translate(cand)
            if (forward and forward[0].code == code) or (not forward and cand in cmap.target_codes()):
                return cand
        return None

    def untranslate(self, rule: Rule, ctx: Any, value: Any, target: Any) -> bool:
        tr = rule.translate
        assert tr is not None
        system = self.render(tr.system, ctx) if tr.system is not None else ""
        if tr.into == "code":
            for cand in tr.cmap.untranslate(str(value)):
                forward = tr.cmap.translate(cand.code, system or None)
                if forward and forward[0].code == value:
                    return self.put(target, ctx, cand.code)
            self.notes.append(f"{_where(rule)}: code {value!r} has no reverse in ConceptMap {tr.cmap.id}")
            return True
        codings = value if isinstance(value, list) else [value]
        source_system = system or (tr.cmap.source_systems[0] if tr.cmap.source_systems else "")
        held = self.read(target, ctx)
        kept = [c for c in codings if isinstance(c, dict) and c.get("system") == source_system and c.get("code")]
        chosen = next((c for c in kept if c.get("code") == held), None) or next(
            (c for c in kept if id(c) not in self.claimed), None
        )
        code, display = "", ""
        if chosen is not None:
            code, display = str(chosen["code"]), str(chosen.get("display", ""))
        else:
            for coding in codings:
                if not isinstance(coding, dict):
                    continue
                back = [
                    t
                    for t in tr.cmap.untranslate(str(coding.get("code", "")), coding.get("system"))
                    if not source_system or t.system == source_system
                ]
                if back:
                    code = back[0].code
                    break
        if not code:
            self.notes.append(f"{_where(rule)}: no coding translates back through ConceptMap {tr.cmap.id}")
            return True
        if not self.put(target, ctx, code):
            return False
        if display and tr.display is not None:
            self.put(tr.display, ctx, display)
        # the codings the forward translation adds are accounted for by this one source code
        made = {(source_system, code)} | {(t.system, t.code) for t in tr.cmap.translate(code, source_system or None)}
        for coding in codings:
            if isinstance(coding, dict) and (coding.get("system"), coding.get("code")) in made:
                self.claimed.add(id(coding))
        return True


def _fits(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(_fits(v, actual.get(k)) for k, v in expected.items())
    return bool(expected == actual)


def _references(rules: list[Rule], prefix: list[str]) -> Iterator[tuple[list[str], str]]:
    for rule in rules:
        names = prefix + [st.name for st in rule.parents] + ([rule.leaf.name] if rule.leaf else [])
        if rule.reference is not None:
            yield names, rule.reference
        yield from _references(rule.rules, names)


def _first_foreach(mapping: Mapping) -> Any:
    return next((s.foreach for s in mapping.resources if s.foreach is not None), None)
