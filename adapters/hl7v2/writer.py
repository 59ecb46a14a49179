"""Write-back: FHIR MedicationRequests (one, or the orders of a Bundle) -> HL7 v2.5 RDE^O11, UTF-8.

The content comes from the mapping itself, read backwards (``adapters/mapping/reverse.py``):
every rule that can be inverted says which field, repeat and component a FHIR value goes to,
so a dialect mapping writes at its own positions and the message converts back to the same
MedicationRequest. This module only knows HL7 v2: where a path lands (``V2Layout``), how
assignments become segments with escaping, and the MSH envelope, which is built here because
it addresses the message rather than carrying prescription content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters.errors import WriteBackError
from adapters.hl7v2.tree import V2Path, V2PathSyntax
from adapters.mapping.engine import Mapping
from adapters.mapping.reverse import Address, Reversal, reverse_orders
from adapters.mapping.transforms import CST

__all__ = ["Order", "Prescription", "V2Layout", "placer_order", "prescription", "render_rde_o11", "write_rde_o11"]

_SID = "http://yaolian.org/fhir/sid/"
_EXTENDED = "http://yaolian.org/fhir/StructureDefinition/yl-extended-prescription"
_SYNTAX = V2PathSyntax()
#: RDE^O11 segment order: the ones before the order group, then the group's own.
_HEAD = ("MSH", "PID", "PV1")
_GROUP = ("ORC", "RXE", "TQ1", "RXR")


def _esc(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\E\\")
    for char, name in (("|", "F"), ("^", "S"), ("~", "R"), ("&", "T")):
        text = text.replace(char, f"\\{name}\\")
    return text.replace("\r", " ").replace("\n", "\\.br\\")


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class _Ctx:
    group: int | None = None
    seg: tuple[str, int] | None = None  # (name, occurrence; within the group when grouped)
    field: int | None = None
    rep: int | None = None  # 1-based


class V2Layout:
    """Where an HL7 v2 path lands when writing. Addresses are
    ``(group, segment, occurrence, field, repeat, component, subcomponent)``, 1-based; group is
    None for the segments before the first ORC (``_HEAD``); ``(group, segment, occurrence)``
    alone names the segment."""

    root = _Ctx()

    def group(self, foreach: V2Path, index: int) -> _Ctx:
        return _Ctx(index, (foreach.seg or "ORC", 1))

    def item(self, each: V2Path, ctx: _Ctx, index: int) -> _Ctx | None:
        if each.field is None and each.seg is not None:  # `each: RXE`: every such segment
            if each.seg not in _HEAD and ctx.group is None:
                return None
            return _Ctx(ctx.group, (each.seg, index + 1))
        seg = (each.seg, each.occ or 1) if each.seg is not None else ctx.seg
        fno = each.field if each.field is not None else ctx.field
        if seg is None or fno is None or (each.rep and index > 0):
            return None
        return _Ctx(ctx.group, seg, fno, each.rep or index + 1)

    def address(self, path: V2Path, ctx: _Ctx) -> Address | None:
        if path.seg is None and path.field is None:  # `.2`: component of the current repeat
            if ctx.seg is None or ctx.field is None:
                return None
            name, occ = ctx.seg
            fno, rep = ctx.field, ctx.rep or 1
        else:
            if path.seg is not None:
                name, occ = path.seg, path.occ or 1
            elif ctx.seg is not None:
                name, occ = ctx.seg
            else:
                return None
            if path.field is None:
                if name not in _HEAD and ctx.group is None:
                    return None
                return (self._group(name, ctx), name, occ)
            fno, rep = path.field, path.rep or 1
        group = self._group(name, ctx)
        if name not in _HEAD and group is None:
            return None  # an order-group segment outside an order group: nowhere to put it
        return (group, name, occ, fno, rep, path.comp or 1, path.sub or 1)

    @staticmethod
    def _group(name: str, ctx: _Ctx) -> int | None:
        return None if name in _HEAD else ctx.group


def _segments(assignments: dict[Address, str]) -> list[str]:
    """Assignments -> segment lines, escaped, trailing empty fields/components dropped."""
    tree: dict[tuple[Any, str, int], dict[int, dict[int, dict[int, dict[int, str]]]]] = {}
    for address, value in assignments.items():
        group, name, occ = address[:3]
        fields = tree.setdefault((group, name, occ), {})
        if len(address) == 3 or name == "MSH" or value == "":
            continue
        fno, rep, comp, sub = address[3:]
        fields.setdefault(fno, {}).setdefault(rep, {}).setdefault(comp, {})[sub] = value

    def order(key: tuple[Any, str, int]) -> tuple[int, int, int, str, int]:
        group, name, occ = key
        if group is None:
            return (0, 0, _HEAD.index(name) if name in _HEAD else len(_HEAD), name, occ)
        rank = _GROUP.index(name) if name in _GROUP else len(_GROUP)
        return (1, group, rank, name, occ)

    lines = []
    for key in sorted(tree, key=order):
        name = key[1]
        if name == "MSH":
            continue
        fields = tree[key]
        top = max(fields, default=0)
        texts = [name]
        for fno in range(1, top + 1):
            reps = fields.get(fno, {})
            texts.append(
                "~".join(
                    "^".join(
                        "&".join(_esc(subs.get(s, "")) for s in range(1, max(subs, default=0) + 1))
                        for c in range(1, max(comps, default=0) + 1)
                        for subs in [comps.get(c, {})]
                    )
                    for r in range(1, max(reps, default=0) + 1)
                    for comps in [reps.get(r, {})]
                )
            )
        lines.append("|".join(texts))
    return lines


# --------------------------------------------------------------------------- the prescription


@dataclass(frozen=True, slots=True)
class Order:
    """One MedicationRequest (one ORC group) and how to reach what it references."""

    request: dict[str, Any]
    resolve: Callable[[Any], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Prescription:
    """The orders of one message, and who it is addressed to."""

    orders: list[Order]  # one ORC group each, in the order given
    owner: str  # the member whose orders they are (its placer-order numbering, its local codes)
    dispensing: str  # the member that must dispense them: of a 延伸处方, else the owner
    placer: str  # the first order's placer number: names the message (MSH-10)


def _index(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            out[entry["fullUrl"]] = resource
        if resource.get("id"):
            out[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    return out


def prescription(resource: dict[str, Any]) -> Prescription:
    """A MedicationRequest, or every MedicationRequest of a Bundle (the orders of one 处方, for
    one patient and one dispensing member), with the Bundle's other resources to resolve."""
    if resource.get("resourceType") == "Bundle":
        index = _index(resource)
        requests = list({id(r): r for r in index.values() if r.get("resourceType") == "MedicationRequest"}.values())
        if not requests:
            raise WriteBackError("the Bundle holds no MedicationRequest", message_zh="Bundle 中没有处方")
    elif resource.get("resourceType") == "MedicationRequest":
        index, requests = {}, [resource]
    else:
        raise WriteBackError(
            f"RDE^O11 is written from a MedicationRequest, not {resource.get('resourceType')!r}",
            message_zh="RDE^O11 只能由 MedicationRequest 生成",
        )
    orders = [_order(request, index) for request in requests]
    addressed = [_addressed(order.request) for order in orders]
    subjects = {str((order.request.get("subject") or {}).get("reference", "")) for order in orders}
    if len(subjects) > 1 or len({(owner, dispensing) for owner, dispensing, _ in addressed}) > 1:
        raise WriteBackError(
            "the orders of one RDE^O11 must share patient, prescribing member and dispensing member",
            message_zh="同一 RDE^O11 中的医嘱须为同一患者、同一开方机构和同一发药机构",
        )
    owner, dispensing, placer = addressed[0]
    return Prescription(orders, owner, dispensing, placer or str(orders[0].request.get("id", "")))


def _order(request: dict[str, Any], index: dict[str, dict[str, Any]]) -> Order:
    contained = {f"#{c.get('id')}": c for c in request.get("contained", []) if isinstance(c, dict)}
    medication = request.get("medication") or {}
    if medication.get("concept") and not medication.get("reference"):
        # a coded medication without a Medication resource: read it as one
        contained["#medication-concept"] = {"resourceType": "Medication", "code": medication["concept"]}
        request = {**request, "medication": {**medication, "reference": {"reference": "#medication-concept"}}}

    def resolve(ref: Any) -> dict[str, Any] | None:
        target = ref.get("reference", "") if isinstance(ref, dict) else ""
        return contained.get(target) or index.get(target)

    return Order(request, resolve)


def placer_order(request: dict[str, Any]) -> tuple[str, str]:
    """(member, number) of an order's placer-order identifier (``sid/<member>/placer-order``),
    empty strings without one: whose order it is, and the number ORC-2 carries."""
    owner, placer = "", ""
    for ident in request.get("identifier", []):
        system = str(ident.get("system", ""))
        if system.startswith(_SID) and system.endswith("/placer-order"):
            owner, placer = system[len(_SID) :].split("/")[0], str(ident.get("value", ""))
    return owner, placer


def _addressed(request: dict[str, Any]) -> tuple[str, str, str]:
    """(owner, dispensing member, placer number) of one order."""
    owner, placer = placer_order(request)
    dispensing = ""
    for ext in request.get("extension", []):
        if isinstance(ext, dict) and ext.get("url") == _EXTENDED:
            for part in ext.get("extension", []):
                if part.get("url") == "dispensingMember":
                    dispensing = str(((part.get("valueReference") or {}).get("identifier") or {}).get("value", ""))
    return owner, dispensing or owner, placer


def write_rde_o11(
    rx: Prescription,
    mapping: Mapping,
    *,
    now: datetime | None = None,
    receiving_application: str = "HIS",
) -> tuple[bytes, Reversal]:
    """The message and the reverse run behind it (assignments, rules not inverted, notes)."""
    stamp = (now or datetime.now(CST)).strftime("%Y%m%d%H%M%S")
    msh = {
        3: "YAOLIAN",
        4: rx.owner,  # the member whose order (and local code lists) this is
        5: receiving_application,
        6: rx.dispensing,  # the member that must dispense it (延伸处方)
        7: stamp,
        9: "RDE^O11^RDE_O11",
        10: f"YL{rx.placer}"[:20],
        11: "P",
        12: "2.5",
        18: "UNICODE UTF-8",
    }
    layout = V2Layout()
    fixed: dict[Address, str] = {}
    for fno, value in msh.items():
        for comp, part in enumerate(value.split("^"), 1):
            fixed[(None, "MSH", 1, fno, 1, comp, 1)] = part
    reversal = reverse_orders(mapping, [(o.request, o.resolve) for o in rx.orders], layout, fixed)
    head = "|".join(
        ["MSH", "^~\\&"] + ["^".join(_esc(p) for p in msh.get(f, "").split("^")) for f in range(3, max(msh) + 1)]
    )
    lines = [head, *_segments(reversal.assignments)]
    return ("\r".join(lines) + "\r").encode("utf-8"), reversal


def render_rde_o11(
    resource: dict[str, Any],
    mapping: Mapping,
    *,
    now: datetime | None = None,
    receiving_application: str = "HIS",
) -> bytes:
    message, _ = write_rde_o11(prescription(resource), mapping, now=now, receiving_application=receiving_application)
    return message
