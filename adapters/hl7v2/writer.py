"""Write-back: FHIR MedicationRequest (alone or in a Bundle) -> HL7 v2.5 RDE^O11, UTF-8.

Field positions are those the standard mapping (``mappings/hl7v2/rde_o11.yaml``) reads, and
codes go back through the same ConceptMaps in reverse (status -> ORC-1, route -> RXR-1,
frequency -> TQ1-3), so a message written here converts back to the same MedicationRequest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.errors import WriteBackError
from adapters.mapping.engine import Mapping
from adapters.mapping.transforms import CST, hl7_ts, source_decimal

__all__ = ["render_rde_o11"]

_SEPS = "|^~\\&"
_STATUS_TO_ORC1 = {"active": "NW", "cancelled": "CA", "stopped": "DC", "on-hold": "HD"}
_SID = "http://yaolian.org/fhir/sid/"
_SD = "http://yaolian.org/fhir/StructureDefinition/"
_RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
_RX_NO = "urn:oid:2.16.156.10011.1.20"
_ICD10 = "urn:oid:2.16.156.10011.2.3.3.11.1"
_PHYSICIAN_CODE = _SID + "nhsa-physician-code"


def _esc(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\E\\")
    for char, name in (("|", "F"), ("^", "S"), ("~", "R"), ("&", "T")):
        text = text.replace(char, f"\\{name}\\")
    return text.replace("\r", " ").replace("\n", "\\.br\\")


def _comps(*values: Any) -> str:
    return "^".join(_esc(v) for v in values).rstrip("^")


def _segment(name: str, fields: dict[int, str]) -> str:
    if not fields:
        return name
    top = max(fields)
    return "|".join([name] + [fields.get(i, "") for i in range(1, top + 1)])


def _index(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            out[entry["fullUrl"]] = resource
        if resource.get("id"):
            out[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    return out


def _resolve(ref: Any, index: dict[str, dict[str, Any]], contained: dict[str, Any]) -> dict[str, Any]:
    target = (ref or {}).get("reference", "") if isinstance(ref, dict) else ""
    if target.startswith("#"):
        return contained.get(target[1:], {})  # type: ignore[no-any-return]
    return index.get(target, {})


def _first(items: Any) -> dict[str, Any]:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _coding_by_system(concept: dict[str, Any], system: str) -> dict[str, Any]:
    for coding in concept.get("coding", []):
        if coding.get("system") == system:
            return coding  # type: ignore[no-any-return]
    return {}


def _system_name(system: str) -> str:
    if system.endswith("/nhsa-drug-code"):
        return "NHSA"
    if system.endswith("/drug-standard-code"):
        return "BWM"
    return "L"


def _reverse(mapping: Mapping, cmap: str, codings: list[dict[str, Any]], source_system: str) -> str:
    """The source code: kept source coding first, else the ConceptMap read backwards."""
    for coding in codings:
        if coding.get("system") == source_system:
            return str(coding.get("code", ""))
    table = mapping.conceptmaps.get(cmap)
    for coding in codings:
        if table is not None:
            back = table.untranslate(str(coding.get("code", "")), coding.get("system"))
            if back:
                return back[0].code
    return ""


def _quantity(q: dict[str, Any]) -> tuple[str, str]:
    if not q:
        return "", ""
    return source_decimal(q.get("value", "")), _comps(q.get("code") or q.get("unit"), q.get("unit"), "UCUM")


def render_rde_o11(resource: dict[str, Any], mapping: Mapping, *, now: datetime | None = None) -> bytes:
    if resource.get("resourceType") == "Bundle":
        index = _index(resource)
        requests = [r for r in index.values() if r.get("resourceType") == "MedicationRequest"]
        if not requests:
            raise WriteBackError("the Bundle holds no MedicationRequest", message_zh="Bundle 中没有处方")
        request = requests[0]
    elif resource.get("resourceType") == "MedicationRequest":
        index, request = {}, resource
    else:
        raise WriteBackError(
            f"RDE^O11 is written from a MedicationRequest, not {resource.get('resourceType')!r}",
            message_zh="RDE^O11 只能由 MedicationRequest 生成",
        )
    contained = {str(c.get("id")): c for c in request.get("contained", []) if isinstance(c, dict)}
    patient = _resolve(request.get("subject"), index, contained)
    medication = _resolve((request.get("medication") or {}).get("reference"), index, contained)
    requester = _resolve(request.get("requester"), index, contained)

    member = ""
    for ident in request.get("identifier", []):
        system = str(ident.get("system", ""))
        if system.startswith(_SID) and system.endswith("/placer-order"):
            member = system.split("/")[-2]
    extensions = {str(e.get("url")): e for e in request.get("extension", []) if isinstance(e, dict)}
    extended = _parts(extensions.get(_SD + "yl-extended-prescription"))
    dispensing = str(
        ((extended.get("dispensingMember") or {}).get("valueReference") or {}).get("identifier", {}).get("value", "")
    )
    placer = next(
        (
            i.get("value", "")
            for i in request.get("identifier", [])
            if str(i.get("system", "")).endswith("/placer-order")
        ),
        request.get("id", ""),
    )
    stamp = (now or datetime.now(CST)).strftime("%Y%m%d%H%M%S")
    segments = [
        _segment(
            "MSH",
            {
                1: "^~\\&",
                2: "YAOLIAN",
                3: _esc(member),  # the member whose order (and local code lists) this is
                4: "HIS",
                5: _esc(dispensing or member),  # the member that must dispense (延伸处方)
                6: stamp,
                8: "RDE^O11^RDE_O11",
                9: _esc(f"YL{placer}"[:20]),
                10: "P",
                11: "2.5",
                17: "UNICODE UTF-8",
            },
        )
    ]
    # MSH's field 1 is the separator itself: shift the numbering by one.
    segments[0] = "MSH|" + segments[0][4:]
    if patient:
        pid: dict[int, str] = {1: "1"}
        ids = []
        for ident in patient.get("identifier", []):
            system = str(ident.get("system", ""))
            kind = "NNCHN" if system == "urn:oid:2.16.156.10011.1.3" else "PI"
            authority = "CHN" if kind == "NNCHN" else member
            ids.append(_comps(ident.get("value"), "", "", authority, kind))
        pid[3] = "~".join(ids)
        name = _first(patient.get("name"))
        pid[5] = _comps(name.get("family"), _first([{"g": g} for g in name.get("given", [])]).get("g"))
        pid[7] = str(patient.get("birthDate", "")).replace("-", "")
        pid[8] = {"male": "M", "female": "F", "other": "O", "unknown": "U"}.get(patient.get("gender", ""), "")
        segments.append(_segment("PID", pid))
    encounter = _resolve(request.get("encounter"), index, contained)
    if encounter:
        segments.append(_segment("PV1", _pv1(encounter, member)))
    status = request.get("status", "active")
    orc = {
        1: _STATUS_TO_ORC1.get(status, "SC"),
        2: _comps(placer, member),
        4: _esc((request.get("groupIdentifier") or {}).get("value", "")),
        9: hl7_ts(request["authoredOn"]) if request.get("authoredOn") else "",
    }
    if requester:
        name = _first(requester.get("name"))
        ident = _first(requester.get("identifier"))
        authority = "NHSA" if ident.get("system") == _PHYSICIAN_CODE else member
        orc[12] = _comps(
            ident.get("value"), name.get("family"), (name.get("given") or [""])[0], "", "", "", "", "", authority
        )
    segments.append(_segment("ORC", orc))
    dosage = _first(request.get("dosageInstruction"))
    dose = _first(dosage.get("doseAndRate")).get("doseQuantity", {})
    rxe: dict[int, str] = {}
    concept = medication.get("code") or (request.get("medication") or {}).get("concept") or {}
    rxe[2] = "~".join(
        _comps(c.get("code"), c.get("display"), _system_name(str(c.get("system", ""))))
        for c in concept.get("coding", [])
    )
    rxe[3], rxe[5] = _quantity(dose)
    form = _first((medication.get("doseForm") or {}).get("coding"))
    if form:
        rxe[6] = _comps(form.get("code"), form.get("display"), "L")
    instruction = _first(_first(dosage.get("additionalInstruction")).get("coding"))
    if instruction:
        rxe[7] = _comps(instruction.get("code"), instruction.get("display"))
    dispense = request.get("dispenseRequest") or {}
    rxe[10], rxe[11] = _quantity(dispense.get("quantity") or {})
    if "numberOfRepeatsAllowed" in dispense:
        rxe[12] = str(dispense["numberOfRepeatsAllowed"])
    rx_no = next((i.get("value") for i in request.get("identifier", []) if i.get("system") == _RX_NO), None)
    if rx_no and rx_no != placer:
        rxe[15] = _esc(rx_no)
    reasons = []
    for reason in request.get("reason", []):
        for coding in (reason.get("concept") or {}).get("coding", []):
            kind = "I10" if coding.get("system") == _ICD10 else "L"
            reasons.append(_comps(coding.get("code"), coding.get("display"), kind))
    if reasons:
        rxe[27] = "~".join(reasons)
    segments.append(_segment("RXE", rxe))
    timing = dosage.get("timing") or {}
    codings = (timing.get("code") or {}).get("coding", [])
    frequency = _reverse(mapping, "frequency-to-timing", codings, "http://terminology.hl7.org/CodeSystem/v2-0335")
    if frequency or timing.get("repeat"):
        repeat = timing.get("repeat") or {}
        bounds = repeat.get("boundsPeriod") or {}
        supply = dispense.get("expectedSupplyDuration") or {}
        text = (timing.get("code") or {}).get("text", "")
        tq1 = {
            1: "1",
            3: _comps(frequency, text, "HL70335") if frequency else "",
            6: _comps(source_decimal(supply["value"]), supply.get("code") or supply.get("unit"), "UCUM")
            if supply.get("value") is not None
            else "",
            7: hl7_ts(bounds["start"]) if bounds.get("start") else "",
            8: hl7_ts(bounds["end"]) if bounds.get("end") else "",
        }
        segments.append(_segment("TQ1", tq1))
    route = dosage.get("route") or {}
    route_code = _reverse(
        mapping, "route-to-national", route.get("coding", []), "http://terminology.hl7.org/CodeSystem/v2-0162"
    )
    if route_code:
        segments.append(_segment("RXR", {1: _comps(route_code, route.get("text"), "HL70162")}))
    zrx = _zrx(request, extensions, dispensing)
    if zrx:
        segments.append(_segment("ZRX", zrx))
    return ("\r".join(segments) + "\r").encode("utf-8")


def _parts(extension: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The sub-extensions of a complex extension by url."""
    return {str(e.get("url")): e for e in (extension or {}).get("extension", []) if isinstance(e, dict)}


def _pv1(encounter: dict[str, Any], member: str) -> dict[int, str]:
    """PV1 at the base mapping's positions: class (PV1-2), department (PV1-3), visit (PV1-19)."""
    pv1 = {1: "1"}
    for concept in encounter.get("class", []):
        for coding in concept.get("coding", []):
            if coding.get("system") == "http://terminology.hl7.org/CodeSystem/v2-0004":
                pv1[2] = _esc(coding.get("code"))
    department = _first(_first(encounter.get("serviceType")).get("concept", {}).get("coding"))
    if department:
        pv1[3] = _comps(department.get("code"), "", "", member, "", "", "", "", department.get("display"))
    visit = _first(encounter.get("identifier"))
    if visit.get("value"):
        pv1[19] = _esc(visit["value"])
    return pv1


def _zrx(request: dict[str, Any], extensions: dict[str, Any], dispensing: str) -> dict[int, str]:
    """The optional Yaolian ZRX segment (see docs/adapters.md) from the alliance extensions."""
    zrx: dict[int, str] = {}
    category = (extensions.get(_SD + "yl-prescription-category") or {}).get("valueCoding") or {}
    if category.get("code"):
        system = category.get("system", "")
        zrx[1] = _comps(
            category["code"], category.get("display"), "YLRXC" if system.endswith("/prescription-category") else ""
        )
    for ident in request.get("identifier", []):
        if ident.get("system") == _SID + "hi-rxno":
            zrx[2] = _esc(ident.get("value"))
        elif ident.get("system") == _SID + "rx-trace-code":
            zrx[3] = _esc(ident.get("value"))
    long_term = _parts(extensions.get(_SD + "yl-long-term-prescription"))
    group = (long_term.get("chronicGroup") or {}).get("valueCoding") or {}
    if group.get("code"):
        zrx[4] = _comps(group["code"], group.get("display"))
    weeks = (long_term.get("maxWeeks") or {}).get("valuePositiveInt")
    if weeks is not None:
        zrx[5] = str(weeks)
    if dispensing:
        zrx[6] = _esc(dispensing)
    return zrx
