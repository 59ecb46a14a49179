"""``yaolian review``: the central prescription review from the console - review a file,
draw the post-review sample (事后点评), record a pharmacist's override (POL-06, POL-07)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import orjson
import typer

from gateway.alliance.review.central import CentralReview, override
from gateway.alliance.review.engine import outcome_issues
from gateway.alliance.review.sample import sample as draw_sample
from gateway.commands import FeatureCommand, operator_service
from gateway.service.fhir_service import FhirService

app = typer.Typer(help="Central prescription review (处方审核): check, post-review sample, override.")
Database = Annotated[str | None, typer.Option(help="Database URL [env YAOLIAN_DATABASE]")]


def _central(service: FhirService) -> CentralReview:
    from gateway.settings import get_settings

    return CentralReview(service, get_settings().review_rules)


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="MedicationRequest or Bundle (JSON)")],
    member: Annotated[str | None, typer.Option(help="Prescribing member code")] = None,
    record: Annotated[bool, typer.Option(help="Store the decision")] = False,
    database: Database = None,
) -> None:
    """Review one prescription (or a Bundle of them); exit 1 when one is rejected."""
    with operator_service(database) as (service, ctx):
        central = _central(service)
        subjects, reviews = central.review_body(orjson.loads(file.read_bytes()), ctx, member)
        if record:
            central.record(ctx, reviews)
    for subject, found in zip(subjects, reviews, strict=True):
        typer.echo(f"{subject.where}: {found.result} (rule set {found.rule_set} {found.version})")
        for item in outcome_issues(found, subject.where):
            typer.echo(f"  {item.severity}: {item.en} | {item.zh}")
    if any(r.blocked for r in reviews):
        raise typer.Exit(1)


@app.command("sample")
def sample(
    period: Annotated[str, typer.Option(help="Month to sample, YYYY-MM")],
    rate: Annotated[float, typer.Option(help="Share of the month's prescriptions to draw (0-1)")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the draw (same seed, same sample)")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the HTML and CSV reports")] = Path("."),
    database: Database = None,
) -> None:
    """Draw a reproducible post-review sample and report rates per member, rule and prescriber."""
    if not 0 < rate <= 1:
        raise typer.BadParameter("--rate must be in (0, 1]")
    with operator_service(database) as (service, ctx):
        report = draw_sample(_central(service), ctx, period, rate, seed)
    out.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = out / f"post-review-{period}.html", out / f"post-review-{period}.csv"
    html_path.write_text(report.html(), encoding="utf-8")
    csv_path.write_bytes(report.csv().encode("utf-8-sig"))
    flagged = sum(1 for r in report.reviews if r.findings)
    typer.echo(
        f"{len(report.reviews)} of {report.population} prescription(s) sampled, {flagged} with findings; "
        f"wrote {html_path} and {csv_path}"
    )


@app.command("override")
def override_(
    task: Annotated[str, typer.Argument(help="Id of the review Task")],
    pharmacist: Annotated[str, typer.Option(help="Practitioner/id of the pharmacist")],
    reason: Annotated[str, typer.Option(help="Why the prescription may go ahead")],
    database: Database = None,
) -> None:
    """Record a pharmacist's override of a review decision, with the reason."""
    with operator_service(database) as (service, ctx):
        written = override(_central(service), ctx, task, pharmacist, reason)
    typer.echo(json.dumps(written))


COMMAND = FeatureCommand("review", "Central prescription review (处方审核)", app)
