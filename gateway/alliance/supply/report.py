"""The yearly report (POL-17, POL-19, POL-28): figures a province submits by 15 December, as a
FHIR MeasureReport (stored through the service), a CSV and an HTML page with charts.

Figures, for any period (a year or a month):
* varieties per member (distinct drugs it holds at the end of the period) against the provincial average (given, else
  the mean of the members of the same tier in the gateway - stated in the report);
* chronic-drug linkage per tier: the share of the county's chronic drugs (drugs of plan lines
  with the ``chronic`` demand reason) a member also holds, averaged over the tier;
* shortage registrations, closed, and mean days to fill;
* stock alerts raised and resolved in the period;
* procurement volumes: approved plan quantities and accepted deliveries per drug;
* supplier on-time rates; the policy's dated targets (``mappings/supply/policy-targets.csv``)
  met or not.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

from gateway.alliance.supply.deliveries import on_time_rates
from gateway.alliance.supply.periods import Period
from gateway.alliance.supply.plans import plan_line, plan_requests
from gateway.alliance.supply.reading import SupplyWorld, fetch_all
from gateway.alliance.supply.shortages import days_to_fill, linkage_candidates, registrations
from gateway.alliance.supply.stock import Ledger, load_ledger
from gateway.alliance.supply.terms import STOCK_ALERT_SYSTEM
from gateway.federation.registry import TIERS
from gateway.fhir.json_text import ResourceText
from gateway.hooks import RequestContext
from gateway.service.fhir_service import FhirService

MEASURE = "http://yaolian.org/fhir/Measure/annual-supply-report"
FIGURE_SYSTEM = "http://yaolian.org/fhir/CodeSystem/supply-report-figure"


@dataclass
class Figures:
    period: str
    varieties: dict[str, int] = field(default_factory=dict)
    tier_of: dict[str, str] = field(default_factory=dict)
    provincial_average: dict[str, float] = field(default_factory=dict)
    average_source: str = "alliance"
    linkage: dict[str, float | None] = field(default_factory=dict)
    shortages: dict[str, Any] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    procurement: dict[str, dict[str, float]] = field(default_factory=dict)
    suppliers: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    demand: dict[str, dict[str, float]] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "varieties": self.varieties,
            "provincialAverage": self.provincial_average,
            "provincialAverageSource": self.average_source,
            "linkage": self.linkage,
            "shortages": self.shortages,
            "alerts": self.alerts,
            "procurement": self.procurement,
            "suppliers": self.suppliers,
            "targets": self.targets,
            "demand": self.demand,
        }


def varieties(ledger: Ledger) -> dict[str, set[str]]:
    held: dict[str, set[str]] = defaultdict(set)
    for (member, drug), lots in ledger.batches.items():
        if sum(b.quantity for b in lots.values()) > 0:
            held[member].add(drug)
    return held


def linkage_rates(held: dict[str, set[str]], chronic: set[str], tier_of: dict[str, str]) -> dict[str, float | None]:
    """Per tier, the mean share of the chronic drugs each member of that tier holds."""
    out: dict[str, float | None] = {}
    for tier in TIERS:
        members = [m for m, t in tier_of.items() if t == tier]
        if not members or not chronic:
            out[tier] = None
            continue
        out[tier] = round(sum(len(held.get(m, set()) & chronic) / len(chronic) for m in members) / len(members), 4)
    return out


def _targets() -> list[dict[str, str]]:
    text = resources.files("mappings").joinpath("supply", "policy-targets.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _metric(figures: Figures, name: str) -> float | None:
    group, _, key = name.partition(".")
    if group == "linkage":
        return figures.linkage.get(key)
    if group == "alerts" and key == "resolvedShare":
        raised = figures.alerts.get("raised", 0)
        return round(figures.alerts.get("resolved", 0) / raised, 4) if raised else None
    if group == "suppliers" and key == "onTimeShare":
        n = sum(s["deliveries"] for s in figures.suppliers)
        return round(sum(s["onTime"] for s in figures.suppliers) / n, 4) if n else None
    return None


def compute(
    service: FhirService,
    ctx: RequestContext,
    period: Period,
    *,
    provincial_average: dict[str, float] | None = None,
    threshold: int | None = None,
) -> Figures:
    world = SupplyWorld.load(service, ctx)
    figures = Figures(period.text)
    figures.tier_of = {m.code: m.tier or "" for m in world.registry}
    held_ledger = load_ledger(service, ctx, world, until=period.end)  # stock at the end of the period
    held = varieties(held_ledger)
    figures.varieties = {m: len(held.get(m, set())) for m in sorted(figures.tier_of)}
    if provincial_average:
        figures.provincial_average, figures.average_source = dict(provincial_average), "given"
    else:
        for tier in TIERS:
            counts = [figures.varieties[m] for m, t in figures.tier_of.items() if t == tier]
            if counts:
                figures.provincial_average[tier] = round(sum(counts) / len(counts), 2)
    lines = [line for r in plan_requests(service, ctx, period) if (line := plan_line(r, world)) is not None]
    chronic = {line.drug for line in lines if "chronic" in line.reasons}
    figures.linkage = linkage_rates(held, chronic, figures.tier_of)
    regs = registrations(service, ctx, period)
    filled = [days for r in regs if (days := days_to_fill(r)) is not None]
    limit = threshold if threshold is not None else service.settings.supply_shortage_threshold
    figures.shortages = {
        "registered": len(regs),
        "closed": sum(1 for r in regs if r.status == "completed"),
        "meanDaysToFill": round(sum(filled) / len(filled), 2) if filled else None,
        "linkageCandidates": linkage_candidates(regs, limit),
    }
    alerts = fetch_all(service, "DetectedIssue", [("code", f"{STOCK_ALERT_SYSTEM}|")], ctx)
    figures.alerts = {
        "raised": sum(1 for a in alerts if period.contains(str(a.get("identifiedDateTime") or ""))),
        "resolved": sum(
            1
            for a in alerts
            if a.get("status") == "mitigated"
            and any(period.contains(str(m.get("date") or "")) for m in a.get("mitigation") or ())
        ),
        "open": sum(1 for a in alerts if a.get("status") == "final"),
    }
    approved: dict[str, float] = defaultdict(float)
    for line in lines:
        if line.approved or line.status == "completed":
            approved[line.drug] += line.quantity
    delivered: dict[str, float] = defaultdict(float)
    for d in fetch_all(service, "SupplyDelivery", [("status", "completed")], ctx):
        if not period.contains(str(d.get("occurrenceDateTime") or "")):
            continue
        for item in d.get("suppliedItem") or ():
            drug = world.catalogue.drug_of(item.get("itemReference") or item.get("itemCodeableConcept"))
            if drug:
                delivered[drug] += float((item.get("quantity") or {}).get("value") or 0)
    figures.procurement = {"approved": dict(sorted(approved.items())), "delivered": dict(sorted(delivered.items()))}
    figures.suppliers = on_time_rates(service, ctx, period)
    figures.demand = demand_assessment(service, ctx, period, world, lines, held_ledger)
    for target in _targets():
        value = _metric(figures, target["metric"])
        threshold_value = float(target["threshold"])
        figures.targets.append(
            {
                "id": target["id"],
                "due": target["due"],
                "metric": target["metric"],
                "threshold": threshold_value,
                "value": value,
                "met": value is not None and value >= threshold_value,
                "dueInPeriod": target["due"] <= period.last_day,
                "description": target["description_en"],
                "descriptionZh": target["description_zh"],
            }
        )
    return figures


def demand_assessment(
    service: FhirService, ctx: RequestContext, period: Period, world: SupplyWorld, lines: list[Any], ledger: Ledger
) -> dict[str, dict[str, float]] | None:
    """POL-19: per drug, what was prescribed in the period (MedicationRequest quantities), what
    was planned, and what is held now. None when the caller may not read prescriptions."""
    from gateway.errors import Forbidden

    try:
        prescriptions = fetch_all(service, "MedicationRequest", [], ctx)
    except Forbidden:
        return None
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"prescribed": 0.0, "planned": 0.0, "held": 0.0})
    for rx in prescriptions:
        if not period.contains(str(rx.get("authoredOn") or "")):
            continue
        drug = world.catalogue.drug_of(rx.get("medication"))
        quantity = ((rx.get("dispenseRequest") or {}).get("quantity") or {}).get("value")
        if drug and isinstance(quantity, int | float):
            out[drug]["prescribed"] += float(quantity)
    for line in lines:
        if line.status != "cancelled":
            out[line.drug]["planned"] += line.quantity
    for drug in list(out):
        out[drug]["held"] = sum(ledger.total(m.code, drug) for m in world.registry)
    return {d: out[d] for d in sorted(out)}


def _group(code: str, display: str, score: float | None = None, count: int | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {"code": {"coding": [{"system": FIGURE_SYSTEM, "code": code, "display": display}]}}
    if score is not None:
        group["measureScoreQuantity"] = {"value": score}
    if count is not None:
        group["population"] = [{"code": {"text": display}, "count": count}]
    return group


def measure_report(figures: Figures, period: Period, reporter: str | None, when: str) -> dict[str, Any]:
    groups = [_group(f"varieties:{m}", f"varieties held by {m}", float(n)) for m, n in figures.varieties.items()]
    groups += [_group(f"provincial-average:{t}", f"provincial average varieties ({t})", v)
               for t, v in figures.provincial_average.items()]  # fmt: skip
    groups += [
        _group(f"linkage:{t}", f"chronic-drug linkage rate ({t})", v)
        for t, v in figures.linkage.items()
        if v is not None
    ]
    groups.append(_group("shortages-registered", "shortage registrations", count=figures.shortages["registered"]))
    groups.append(_group("shortages-closed", "shortage registrations closed", count=figures.shortages["closed"]))
    if figures.shortages["meanDaysToFill"] is not None:
        groups.append(_group("shortages-days-to-fill", "mean days to fill", figures.shortages["meanDaysToFill"]))
    groups += [_group(f"alerts-{k}", f"stock alerts {k}", count=v) for k, v in figures.alerts.items()]
    for kind, per_drug in figures.procurement.items():
        groups += [_group(f"procurement-{kind}:{d}", f"{kind} quantity of {d}", q) for d, q in per_drug.items()]
    groups += [
        _group(f"on-time:{s['supplier']}", f"on-time rate of {s['supplier']}", s["rate"]) for s in figures.suppliers
    ]
    groups += [_group(f"target:{t['id']}", t["description"], 1.0 if t["met"] else 0.0) for t in figures.targets]
    for drug, amounts in (figures.demand or {}).items():
        groups += [_group(f"demand-{k}:{drug}", f"{k} quantity of {drug}", v) for k, v in amounts.items()]
    report: dict[str, Any] = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": when,
        "period": {"start": period.start, "end": period.last_day},
        "group": groups,
    }
    if reporter:
        report["reporter"] = {"reference": reporter}
    return report


def store_report(service: FhirService, ctx: RequestContext, report: dict[str, Any], report_id: str) -> None:
    body = ResourceText.parse(orjson.dumps({**report, "id": report_id}))
    service.write(ctx, lambda tx: service.writer.update(tx, ctx, "MeasureReport", report_id, body))


def as_csv(figures: Figures) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "value"])
    for m, n in figures.varieties.items():
        writer.writerow(["varieties", m, n])
    for tier, average in figures.provincial_average.items():
        writer.writerow(["provincial_average", tier, average])
    for tier, rate in figures.linkage.items():
        writer.writerow(["linkage", tier, "" if rate is None else rate])
    for key, value in figures.shortages.items():
        if key != "linkageCandidates":
            writer.writerow(["shortages", key, "" if value is None else value])
    for c in figures.shortages["linkageCandidates"]:
        writer.writerow(["linkage_candidate", c["drug"], c["registrations"]])
    for key, count in figures.alerts.items():
        writer.writerow(["alerts", key, count])
    for kind, per_drug in figures.procurement.items():
        for d, q in per_drug.items():
            writer.writerow([f"procurement_{kind}", d, q])
    for s in figures.suppliers:
        writer.writerow(["supplier_on_time", s["supplier"], "" if s["rate"] is None else s["rate"]])
    for target in figures.targets:
        writer.writerow(["target", target["id"], "met" if target["met"] else "not met"])
    for drug, amounts in (figures.demand or {}).items():
        for key, amount in amounts.items():
            writer.writerow([f"demand_{key}", drug, amount])
    return out.getvalue()


def _chart(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def as_html(figures: Figures, names: dict[str, str] | None = None) -> str:
    """A page a person reads: tables and charts (matplotlib, PNG embedded)."""
    names = names or {}
    members = list(figures.varieties)

    def varieties_chart(ax: Any) -> None:
        ax.bar(members, [figures.varieties[m] for m in members], color="#4a7ab5", label="varieties held")
        for tier, avg in figures.provincial_average.items():
            xs = [i for i, m in enumerate(members) if figures.tier_of.get(m) == tier]
            if xs:
                ax.hlines(avg, min(xs) - 0.4, max(xs) + 0.4, colors="#c0392b", linestyles="dashed")
        ax.set_title("Varieties per member vs provincial average (dashed)")
        ax.tick_params(axis="x", labelrotation=45)

    def linkage_chart(ax: Any) -> None:
        tiers = [t for t, v in figures.linkage.items() if v is not None]
        ax.bar(tiers, [100 * (figures.linkage[t] or 0) for t in tiers], color="#27ae60")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title("Chronic-drug linkage rate by tier")

    def alerts_chart(ax: Any) -> None:
        keys = list(figures.alerts)
        ax.bar(keys, [figures.alerts[k] for k in keys], color=["#e67e22", "#16a085", "#7f8c8d"][: len(keys)])
        ax.set_title("Stock alerts")

    charts = [_chart(varieties_chart), _chart(linkage_chart), _chart(alerts_chart)]

    def table(rows: list[list[Any]], head: list[str]) -> str:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{cells}</tr>{body}</table>"

    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>基层药品供应年度报告 Annual supply report {html.escape(figures.period)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em}</style></head><body>",
        f"<h1>基层药品供应年度报告 / Annual supply report {html.escape(figures.period)}</h1>",
        f"<p>Provincial average: {html.escape(figures.average_source)} (省级平均值来源)</p>",
        "<h2>配备品种 Varieties</h2>",
        f"<img alt='varieties' src='data:image/png;base64,{charts[0]}'>",
        table([[m, names.get(m, m), figures.tier_of.get(m, ""), n] for m, n in figures.varieties.items()],
              ["member", "name", "tier", "varieties"]),
        "<h2>慢病用药衔接 Chronic-drug linkage</h2>",
        f"<img alt='linkage' src='data:image/png;base64,{charts[1]}'>",
        "<h2>缺药登记 Shortage registrations</h2>",
        table([[k, v] for k, v in figures.shortages.items() if k != "linkageCandidates"], ["figure", "value"]),
        table([[c["drug"], c["registrations"]] for c in figures.shortages["linkageCandidates"]],
              ["proposed for linkage list", "registrations"]),
        "<h2>库存预警 Stock alerts</h2>",
        f"<img alt='alerts' src='data:image/png;base64,{charts[2]}'>",
        "<h2>采购 Procurement</h2>",
        table([[k, d, q] for k, per in figures.procurement.items() for d, q in per.items()],
              ["kind", "drug", "quantity"]),
        "<h2>配送企业及时率 Supplier on-time rates</h2>",
        table([[s["supplier"], s["deliveries"], s["onTime"], s["rate"]] for s in figures.suppliers],
              ["supplier", "deliveries", "on time", "rate"]),
        "<h2>需求评估 Demand assessment (POL-19)</h2>",
        table([[d, a["prescribed"], a["planned"], a["held"]] for d, a in (figures.demand or {}).items()],
              ["drug", "prescribed", "planned", "held"]),
        "<h2>政策目标 Policy targets (POL-28)</h2>",
        table([[t["id"], t["due"], t["descriptionZh"], t["value"], t["threshold"],
                "met 达成" if t["met"] else "not met 未达成"] for t in figures.targets],
              ["target", "due", "description", "value", "threshold", "status"]),
        "</body></html>",
    ]  # fmt: skip
    return "\n".join(parts)
