"""Supply operations (issue 15; ``docs/supply.md``), each a thin door onto
:mod:`gateway.alliance.supply`:

* ``POST|GET /fhir/SupplyRequest/$aggregate?period=2025-11[&output=csv]`` - the county's
  procurement plan for a period: totals per drug and per supplier, each with its lines;
* ``POST /fhir/SupplyRequest/$approve`` (Parameters: ``period``, ``change`` parts ``line``,
  ``quantity``, ``reason``) - the county pharmacy approves the plan;
* ``GET /fhir/SupplyRequest/$export-plan?period=2025-11&output=csv|xlsx`` - the approved plan for
  the distribution companies;
* ``POST /fhir/SupplyRequest/$balance[?propose=true]`` - surplus-to-deficit transfers (written
  as draft transfer SupplyRequests with ``propose=true``);
* ``POST /fhir/$stock-alerts`` - evaluate stock against the alert lines now;
* ``POST /fhir/SupplyRequest/$register-shortage`` (Parameters: ``prescription`` Reference,
  optional ``member`` code and ``quantity``) - a patient's missing drug (缺药登记, POL-16).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import context, in_thread, service
from gateway.api.formats import parse_resource, request_format
from gateway.api.responses import fhir_response
from gateway.errors import BadRequest


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _param(name: str, **value: Any) -> dict[str, Any]:
    return {"name": name, **value}


async def _parameters(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {"resourceType": "Parameters"}
    body = parse_resource(raw, request_format(request))
    if body.resource_type != "Parameters":
        raise BadRequest("YL-0103", found=body.resource_type, expected="Parameters")
    return body.data


def _value(params: dict[str, Any], name: str) -> str | None:
    for p in params.get("parameter") or ():
        if p.get("name") == name:
            for key, value in p.items():
                if key.startswith("value"):
                    return str(value)
    return None


def _period(request: Request, params: dict[str, Any]) -> Any:
    from gateway.alliance.supply.periods import parse_period

    return parse_period(request.query_params.get("period") or _value(params, "period") or "")


def _output(request: Request) -> str:
    return request.query_params.get("output", "json")


def aggregate_parameters(result: dict[str, Any]) -> dict[str, Any]:
    """The aggregate as FHIR Parameters (what ``--format json`` prints, in FHIR form)."""

    def lines(refs: list[str]) -> list[dict[str, Any]]:
        return [_param("line", valueReference={"reference": r}) for r in refs]

    out: list[dict[str, Any]] = [_param("period", valueString=result["period"])]
    for t in result["byDrug"]:
        out.append(
            _param(
                "drugTotal",
                part=[
                    _param("county", valueString=t["county"]),
                    _param("drug", valueCoding={"system": "http://yaolian.org/fhir/sid/nhsa-drug-code",
                                                "code": t["drug"], "display": t["name"]}),
                    _param("quantity", valueDecimal=t["quantity"]),
                    *lines(t["lines"]),
                ],
            )
        )  # fmt: skip
    for t in result["bySupplier"]:
        out.append(
            _param(
                "supplierTotal",
                part=[
                    _param("county", valueString=t["county"]),
                    _param("supplier", valueReference={"reference": t["supplier"]}),
                    _param("drug", valueCoding={"system": "http://yaolian.org/fhir/sid/nhsa-drug-code",
                                                "code": t["drug"], "display": t["name"]}),
                    _param("quantity", valueDecimal=t["quantity"]),
                    *lines(t["lines"]),
                ],
            )
        )  # fmt: skip
    return {"resourceType": "Parameters", "parameter": out}


async def aggregate(request: Request) -> Response:
    from gateway.alliance.supply.plans import aggregate as build

    ctx = context(request, "operation", "SupplyRequest")
    svc = service(request)
    period = _period(request, await _parameters(request))
    plan, world = await in_thread(build, svc, ctx, period)
    if _output(request) == "csv":
        import csv
        import io

        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(plan.csv_rows())
        return Response(text.getvalue(), media_type="text/csv;charset=utf-8")
    return fhir_response(request, orjson.dumps(aggregate_parameters(plan.as_json(world))))


async def approve(request: Request) -> Response:
    from gateway.alliance.supply.plans import Change
    from gateway.alliance.supply.plans import approve as run

    ctx = context(request, "operation", "SupplyRequest")
    svc = service(request)
    params = await _parameters(request)
    period = _period(request, params)
    changes = []
    for n, p in enumerate(params.get("parameter") or ()):
        if p.get("name") != "change":
            continue
        parts = {q.get("name"): q for q in p.get("part") or ()}
        line = ((parts.get("line") or {}).get("valueReference") or {}).get("reference") or (
            parts.get("line") or {}
        ).get("valueString")
        quantity = (parts.get("quantity") or {}).get("valueDecimal")
        if not isinstance(line, str) or not isinstance(quantity, int | float):
            where = f"Parameters.parameter[{n}]"
            raise BadRequest(
                "YL-1214", field=where, what="line (Reference) and quantity (decimal)", what_zh="明细引用和数量",
                expression=[where],
            )  # fmt: skip
        changes.append(Change(line, float(quantity), str((parts.get("reason") or {}).get("valueString") or "")))
    result = await in_thread(run, svc, ctx, period, changes)
    out = [_param("period", valueString=result["period"])]
    for key in ("approved", "cut", "changed"):
        out += [_param(key, valueReference={"reference": f"SupplyRequest/{i}"}) for i in result[key]]
    out += [_param("plan", valueReference={"reference": p}) for p in result["plans"]]
    return fhir_response(request, orjson.dumps({"resourceType": "Parameters", "parameter": out}))


async def export_plan(request: Request) -> Response:
    from gateway.alliance.supply import export
    from gateway.alliance.supply.plans import aggregate as build

    ctx = context(request, "operation", "SupplyRequest")
    svc = service(request)
    period = _period(request, {})
    plan, world = await in_thread(build, svc, ctx, period)
    if _output(request) == "xlsx":
        return Response(
            export.as_xlsx(plan, world),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="procurement-plan-{period.text}.xlsx"'},
        )
    return Response(export.as_csv(plan, world), media_type="text/csv;charset=utf-8")


async def balance(request: Request) -> Response:
    from gateway.alliance.supply.alert_lines import current_lines
    from gateway.alliance.supply.balance import propose, write_proposals
    from gateway.alliance.supply.reading import SupplyWorld
    from gateway.alliance.supply.stock import load_ledger

    ctx = context(request, "operation", "SupplyRequest")
    svc = service(request)
    write = request.query_params.get("propose") == "true"

    def run() -> tuple[list[Any], list[str]]:
        world = SupplyWorld.load(svc, ctx)
        ledger = load_ledger(svc, ctx, world)
        as_of = request.query_params.get("as-of")
        today = date.fromisoformat(as_of) if as_of else ledger.as_of()
        proposals = propose(ledger, current_lines(svc, ctx), world.registry, today)
        return proposals, (write_proposals(svc, ctx, world, proposals, _now()) if write else [])

    proposals, ids = await in_thread(run)
    out = []
    for n, t in enumerate(proposals):
        parts = [_param(k, valueString=str(v)) for k, v in t.as_json().items() if k != "quantity" and v is not None]
        parts.append(_param("quantity", valueDecimal=t.quantity))
        if ids:
            parts.append(_param("request", valueReference={"reference": f"SupplyRequest/{ids[n]}"}))
        out.append(_param("transfer", part=parts))
    return fhir_response(request, orjson.dumps({"resourceType": "Parameters", "parameter": out}))


async def stock_alerts(request: Request) -> Response:
    from gateway.alliance.supply.monitor import run_alerts

    ctx = context(request, "operation")
    svc = service(request)
    as_of = request.query_params.get("as-of")
    findings, result = await in_thread(lambda: run_alerts(svc, ctx, today=date.fromisoformat(as_of) if as_of else None))
    from gateway.alliance.supply.terms import BELOW_LINE

    out = [
        _param(
            "alert" if f.kind == BELOW_LINE else "expiring",
            part=[_param(k, valueString=str(v)) for k, v in f.as_json().items()],
        )
        for f in findings
    ]
    out += [_param("raised", valueReference={"reference": f"DetectedIssue/{i}"}) for i in result.raised]
    out += [_param("closed", valueReference={"reference": f"DetectedIssue/{i}"}) for i in result.closed]
    return fhir_response(request, orjson.dumps({"resourceType": "Parameters", "parameter": out}))


async def register_shortage(request: Request) -> Response:
    from gateway.alliance.supply.shortages import register

    ctx = context(request, "operation", "SupplyRequest")
    svc = service(request)
    params = await _parameters(request)
    prescription = next(
        (
            (p.get("valueReference") or {}).get("reference") or p.get("valueString")
            for p in params.get("parameter") or ()
            if p.get("name") == "prescription"
        ),
        None,
    )
    if not isinstance(prescription, str) or not prescription:
        raise BadRequest(
            "YL-1214", field="Parameters.parameter[prescription]", what="the reviewed prescription",
            what_zh="已审核的处方", expression=["Parameters.parameter"],
        )  # fmt: skip
    quantity = _value(params, "quantity")
    rid = await in_thread(
        register, svc, ctx, prescription, _value(params, "member"), _now(), float(quantity) if quantity else None
    )
    stored = await in_thread(svc.read, "SupplyRequest", rid, ctx)
    return fhir_response(request, stored.body or b"{}", 201, {"Location": f"SupplyRequest/{rid}/_history/1"})
