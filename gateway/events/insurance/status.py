"""What the insurance platform says of one uploaded prescription: 7105 电子处方信息查询 (its
status) and 7106 电子处方取药结果查询 (whether and when its drugs were taken), asked on demand by
``MedicationRequest/{id}/$insurance-status`` and ``yaolian deliveries insurance-status``.

Who may read the MedicationRequest may ask: it is read with the caller's rights first. What
the messages are made of (the patient's ID number, the member's institution code) is then read
as the gateway itself, as the feed does: an insurer may ask about a prescription without being
allowed to read the patient index. The platform asked is the one the feed uploads to: the
endpoint of the active ``insurance-rx`` Subscription.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import orjson

from adapters.mapping.outbound import OutboundMapping, build, load_outbound
from gateway.errors import BadGateway, Unprocessable
from gateway.events.insurance.context import prescription_context
from gateway.events.insurance.platform import HI_RXNO, RX_TRACE, Refused, Transport, exchange
from gateway.events.matching import ACTIVE, DISPATCHER
from gateway.events.subscriptions import Subscription, parse
from gateway.federation.registry import FIXMEDINS_SYSTEM, load_registry
from gateway.fhir.elements import identifier_value
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

RX_STATUS = "http://yaolian.org/fhir/CodeSystem/nhsa-rx-status"  # rx_stas_codg
RX_USED_STATUS = "http://yaolian.org/fhir/CodeSystem/nhsa-rx-used-status"  # rx_used_stas_codg
DRUG_CODE = "http://yaolian.org/fhir/sid/nhsa-drug-code"
NAMES = {
    "7105": ("prescription query", "电子处方信息查询"),
    "7106": ("dispensing result query", "电子处方取药结果查询"),
}


@functools.cache
def _mapping() -> OutboundMapping:
    """Read once per process: parsing the YAML was two thirds of a query's time (measured)."""
    return load_outbound("insurance/e-prescription")


@functools.cache
def _client(timeout: float) -> httpx.Client:
    """One pooled client per process (and timeout): a new one loads the CA bundle, 35 ms (measured)."""
    return httpx.Client(timeout=timeout)


def platform(service: FhirService, ctx: RequestContext) -> Subscription | None:
    """The active ``insurance-rx`` Subscription (the first by id when there are several)."""
    found: list[Subscription] = []
    offset = 0
    while True:
        page = service.find("Subscription", [("_count", "500"), ("_offset", str(offset)), ("_sort", "_id")], ctx)
        for stored in page:
            sub = parse(stored)
            if sub is not None and sub.channel == "insurance-rx" and sub.status in ACTIVE and sub.endpoint:
                found.append(sub)
        if len(page) < 500:
            break
        offset += 500
    return found[0] if found else None


def _instant(text: Any) -> str | None:
    """``yyyy-MM-dd HH:mm:ss`` (China time) -> FHIR dateTime."""
    value = str(text or "").strip()
    if len(value) != 19:
        return None
    return f"{value[:10]}T{value[11:]}+08:00"


def _coding(system: str, code: Any, display: Any) -> dict[str, Any] | None:
    if not code:
        return None
    coding = {"system": system, "code": str(code)}
    if display:
        coding["display"] = str(display)
    return coding


def parameters(rx_id: str, rx: dict[str, Any], info: dict[str, Any], taken: dict[str, Any]) -> dict[str, Any]:
    """The Parameters answer from 7105's ``info`` and 7106's ``taken`` (the later one wins)."""
    reference = {"reference": f"MedicationRequest/{rx_id}"}
    params: list[dict[str, Any]] = [{"name": "prescription", "valueReference": reference}]
    hi_rxno = taken.get("hi_rxno") or info.get("hi_rxno") or identifier_value(rx, HI_RXNO)
    params.append({"name": "hiRxno", "valueIdentifier": {"system": HI_RXNO, "value": str(hi_rxno)}})
    trace = info.get("rx_trace_code") or identifier_value(rx, RX_TRACE)
    if trace:
        params.append({"name": "rxTraceCode", "valueIdentifier": {"system": RX_TRACE, "value": str(trace)}})
    for name, system, key in (("status", RX_STATUS, "rx_stas"), ("usedStatus", RX_USED_STATUS, "rx_used_stas")):
        source = taken if taken.get(f"{key}_codg") else info
        coding = _coding(system, source.get(f"{key}_codg"), source.get(f"{key}_name"))
        if coding is not None:
            params.append({"name": name, "valueCoding": coding})
    when = _instant(taken.get("setl_time"))
    if when:
        params.append({"name": "dispensedAt", "valueDateTime": when})
    if taken.get("fixmedins_code") or taken.get("fixmedins_name"):
        place: dict[str, Any] = {}
        if taken.get("fixmedins_code"):
            place["identifier"] = {"system": FIXMEDINS_SYSTEM, "value": str(taken["fixmedins_code"])}
        if taken.get("fixmedins_name"):
            place["display"] = str(taken["fixmedins_name"])
        params.append({"name": "dispensedBy", "valueReference": place})
    for line in taken.get("seltdelts") or ():
        if not isinstance(line, dict):
            continue
        parts: list[dict[str, Any]] = []
        drug = _coding(DRUG_CODE, line.get("med_list_codg"), line.get("drug_genname"))
        if drug is not None:
            parts.append({"name": "drug", "valueCoding": drug})
        if line.get("cnt") not in (None, ""):
            try:
                parts.append({"name": "quantity", "valueDecimal": float(line["cnt"])})
            except (TypeError, ValueError):
                parts.append({"name": "quantity", "valueString": str(line["cnt"])})
        if line.get("take_drug_flag") not in (None, ""):
            parts.append({"name": "taken", "valueBoolean": str(line["take_drug_flag"]) == "1"})
        if parts:
            params.append({"name": "dispensed", "part": parts})
    return {"resourceType": "Parameters", "parameter": params}


def insurance_status(
    service: FhirService,
    rx_id: str,
    ctx: RequestContext,
    *,
    timeout: float = 10.0,
    mapping: OutboundMapping | None = None,
) -> dict[str, Any]:
    """Ask the platform (7105 then 7106) about MedicationRequest ``rx_id``; a Parameters resource,
    or Unprocessable (not uploaded, refused, message unfillable) / BadGateway (no answer)."""
    stored = service.read("MedicationRequest", rx_id, ctx)  # the caller's rights decide
    rx = orjson.loads(stored.body or b"{}")
    label = f"MedicationRequest/{rx_id}"
    if identifier_value(rx, HI_RXNO) is None:
        raise Unprocessable("YL-1308", rx=label)
    own = RequestContext(base_url=ctx.base_url, interaction="operation", principal=DISPATCHER)
    sub = platform(service, own)
    if sub is None:
        raise BadGateway("YL-1311")
    mapping = mapping or _mapping()
    context = prescription_context(service, rx, own, load_registry(service, own))
    outputs: dict[str, dict[str, Any]] = {}
    client = _client(timeout)
    for infno in ("7105", "7106"):
        message, problems = build(mapping, infno, context)
        if problems:
            text = "; ".join(f"{p.path}: {p.reason}" for p in problems)
            raise Unprocessable("YL-1307", infno=infno, problems=text)
        name, name_zh = NAMES[infno]
        try:
            outputs[infno] = exchange(client, sub.endpoint, sub.headers, mapping, infno, message, context["org"])
        except Refused as refusal:
            raise Unprocessable(
                "YL-1309", infno=infno, name=name, name_zh=name_zh, rx=label, message=refusal.message,
                err_code=refusal.err_code,
            ) from None  # fmt: skip
        except Transport as failure:
            raise BadGateway(
                "YL-1310", infno=infno, name=name, name_zh=name_zh, rx=label, reason=str(failure)
            ) from None
    return parameters(rx_id, rx, outputs["7105"], outputs["7106"])
