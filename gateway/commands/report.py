"""``yaolian report annual``: the yearly supply report (POL-17, POL-28) as a FHIR MeasureReport
(stored), a CSV and an HTML page with charts, ready to submit by 15 December."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands import FeatureCommand, operator_service
from gateway.commands._supply import DATABASE_HELP, outcome_on_error, print_json

app = typer.Typer(help="Reports for the health commission (年度报告).")
COMMAND = FeatureCommand("report", "Yearly supply report: MeasureReport, CSV, HTML (年度报告).", app)


@app.command("annual")
def annual(
    year: Annotated[int | None, typer.Option(help="Report year")] = None,
    period: Annotated[str | None, typer.Option(help="Any period instead: a month (2025-11) or a year")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the CSV, HTML and MeasureReport JSON")] = Path("."),
    provincial_average: Annotated[
        list[str] | None, typer.Option(help="TIER=VARIETIES, the province's average (default: the alliance's)")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="json (the figures) or text (the files written)")] = "text",
    store: Annotated[bool, typer.Option(help="Store the MeasureReport through the service")] = True,
    database: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None,
) -> None:
    """Varieties vs the provincial average, linkage rates, shortages, alerts, procurement,
    supplier on-time rates and the policy's dated targets."""
    from gateway.alliance.supply import report
    from gateway.alliance.supply.periods import parse_period
    from gateway.errors import BadRequest

    with outcome_on_error(), operator_service(database) as (service, ctx):
        chosen = parse_period(period or (str(year) if year else ""), "--period" if period else "--year")
        averages: dict[str, float] = {}
        for n, text in enumerate(provincial_average or []):
            tier, _, value = text.partition("=")
            try:
                averages[tier] = float(value)
            except ValueError:
                raise BadRequest(
                    "YL-1201", where=f"--provincial-average #{n + 1}", column="varieties", value=value,
                    reason="a number", expression=[f"--provincial-average #{n + 1}"],
                ) from None  # fmt: skip
        figures = report.compute(service, ctx, chosen, provincial_average=averages or None)
        from gateway.alliance.supply.reading import SupplyWorld

        world = SupplyWorld.load(service, ctx)
        county = world.central_pharmacy()
        when = datetime.now(UTC).isoformat(timespec="seconds")
        measure = report.measure_report(figures, chosen, county.reference if county else None, when)
        report_id = f"supply-report-{county.code if county else 'alliance'}-{chosen.text}"
        if store:
            report.store_report(service, ctx, measure, report_id)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"supply-report-{chosen.text}"
        import orjson

        stem.with_suffix(".json").write_bytes(orjson.dumps({**measure, "id": report_id}, option=orjson.OPT_INDENT_2))
        stem.with_suffix(".csv").write_text(report.as_csv(figures), encoding="utf-8")
        names = {m.code: m.name for m in world.registry}
        stem.with_suffix(".html").write_text(report.as_html(figures, names), encoding="utf-8")
        if output == "json":
            print_json(figures.as_json())
        else:
            for suffix in (".json", ".csv", ".html"):
                typer.echo(str(stem.with_suffix(suffix)))
