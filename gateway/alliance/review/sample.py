"""Post-review (事后点评, POL-07): a reproducible sample of a month's prescriptions, reviewed
again with the current rule set, reported per member, per rule and per prescriber (HTML, CSV).

The sample is drawn with a seeded generator over the prescriptions sorted by id, so the same
period, rate and seed always give the same sample: a second reviewer checks the same list.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.alliance.prescriptions import authored_day, parse_day
from gateway.alliance.review.central import CentralReview, Subject
from gateway.alliance.review.engine import Review
from gateway.alliance.stored import each_resource
from gateway.hooks import RequestContext


@dataclass
class SampleReport:
    period: str
    rate: float
    seed: int
    population: int
    rule_set: str
    reviews: list[Review] = field(default_factory=list)

    def rates(self, key: str) -> list[tuple[str, int, int, float]]:
        """(name, reviewed, with findings, rate) per member, prescriber or rule."""
        if key == "rule":
            counts = Counter(f.rule for r in self.reviews for f in {x.rule: x for x in r.findings}.values())
            total = len(self.reviews)
            return [(rule, total, n, n / total if total else 0.0) for rule, n in sorted(counts.items())]
        reviewed: Counter[str] = Counter()
        flagged: Counter[str] = Counter()
        for r in self.reviews:
            name = (r.member if key == "member" else r.prescriber) or "(unknown)"
            reviewed[name] += 1
            flagged[name] += bool(r.findings)
        return [(n, reviewed[n], flagged[n], flagged[n] / reviewed[n]) for n in sorted(reviewed)]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["prescription", "member", "prescriber", "drug", "result", "rules", "rule_set"])
        for r in self.reviews:
            rules = ";".join(f"{f.rule}({f.severity})" for f in r.findings)
            writer.writerow(
                [
                    r.prescription,
                    r.member or "",
                    r.prescriber or "",
                    r.drug or "",
                    r.result,
                    rules,
                    f"{r.rule_set}|{r.version}",
                ]
            )
        writer.writerow([])
        writer.writerow(["by", "name", "reviewed", "with findings", "rate"])
        for key in ("member", "rule", "prescriber"):
            for name, reviewed, flagged, rate in self.rates(key):
                writer.writerow([key, name, reviewed, flagged, f"{rate:.4f}"])
        return out.getvalue()

    def html(self) -> str:
        def table(key: str) -> str:
            rows = "".join(
                f"<tr><td>{html.escape(n)}</td><td>{a}</td><td>{b}</td><td>{r:.1%}</td></tr>"
                for n, a, b, r in self.rates(key)
            )
            return (
                f"<h2>By {key}</h2><table border=1><tr><th>{key}</th><th>reviewed 抽查</th>"
                f"<th>with findings 问题</th><th>rate 问题率</th></tr>{rows}</table>"
            )

        lines = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    r.prescription,
                    r.member or "",
                    r.prescriber or "",
                    r.drug or "",
                    r.result,
                    ", ".join(f.rule for f in r.findings),
                )
            )
            + "</tr>"
            for r in self.reviews
        )
        return (
            '<!doctype html><html lang="zh"><meta charset="utf-8">'
            f"<title>Post-review 处方点评 {html.escape(self.period)}</title>"
            f"<h1>Post-review 处方点评 {html.escape(self.period)}</h1>"
            f"<p>{len(self.reviews)} of {self.population} prescriptions (rate {self.rate}, seed {self.seed}), "
            f"rule set {html.escape(self.rule_set)}</p>"
            + table("member")
            + table("rule")
            + table("prescriber")
            + "<h2>Prescriptions 处方</h2><table border=1><tr><th>prescription</th><th>member</th>"
            f"<th>prescriber</th><th>drug</th><th>result</th><th>rules</th></tr>{lines}</table></html>\n"
        )


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """``2025-11`` -> (2025-11-01, 2025-12-01)."""
    start = dt.date.fromisoformat(f"{period}-01")
    end = dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def draw(ids: Sequence[str], rate: float, seed: int) -> list[str]:
    """A reproducible sample: ``round(len * rate)`` ids (at least one when any), sorted."""
    population = sorted(ids)
    if not population:
        return []
    size = min(len(population), max(1, round(len(population) * rate)))
    return sorted(random.Random(seed).sample(population, size))


def sample(central: CentralReview, ctx: RequestContext, period: str, rate: float, seed: int = 0) -> SampleReport:
    start, end = period_bounds(period)
    reader = central.reviewer_context(ctx)
    prescriptions: dict[str, dict[str, Any]] = {}
    params = [("authoredon", f"ge{start.isoformat()}"), ("authoredon", f"lt{end.isoformat()}")]
    for rx in each_resource(central.service, reader, "MedicationRequest", params):
        prescriptions[str(rx["id"])] = rx
    chosen = draw(list(prescriptions), rate, seed)
    rule_set = central.rule_set
    report = SampleReport(period, rate, seed, len(prescriptions), f"{rule_set.id}|{rule_set.version}")
    for rx_id in chosen:
        rx = prescriptions[rx_id]
        subjects: list[Subject] = central.subjects(rx, ctx, None)
        day = parse_day(authored_day(rx))
        report.reviews += central.review_subjects(subjects, ctx, today=day)
    return report
