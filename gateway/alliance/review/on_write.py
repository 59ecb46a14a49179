"""Review on write (``YAOLIAN_REVIEW_ON_WRITE``): every MedicationRequest created or updated
through the service is pre-reviewed where it is prepared (the ``BEFORE_STORE`` hook).

``block`` refuses a prescription with a high-severity finding (422, the findings as the
OperationOutcome); ``warn`` - and ``block`` for what it lets through - stores the prescription
with the result in its ``yl-central-review-result`` extension, and the decision (DetectedIssue
per finding, Task) in the same transaction. A prescription a pharmacist has already reviewed
(the extension names a ``reviewer``) is not blocked again: the override stands (POL-06, POL-09).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from gateway.alliance.prescriptions import REVIEW_URL, extension, sub_extension
from gateway.alliance.review.central import CentralReview
from gateway.alliance.review.engine import Review, outcome_issues
from gateway.errors import Unprocessable
from gateway.fhir.json_text import ResourceText
from gateway.hooks import Pointcut, RequestContext
from gateway.service.fhir_service import FhirService
from gateway.settings import Settings
from gateway.store.base import StoredResource, StoreTransaction

REVIEWED_STATUSES = {"active", "draft", "on-hold"}
ALLIANCE_TYPES = {"Medication", "List", "Organization"}


def review_extension(found: Review, now: str) -> dict[str, Any]:
    note = f"rule set {found.rule_set} {found.version}"
    if found.findings:
        note += ": " + ", ".join(f"{f.rule} ({f.severity})" for f in found.findings)
    return {
        "url": REVIEW_URL,
        "extension": [
            {"url": "result", "valueCode": found.result},
            {"url": "date", "valueDateTime": now},
            {"url": "note", "valueString": note},
        ],
    }


class ReviewOnWrite:
    def __init__(self, central: CentralReview, mode: str) -> None:
        self.central = central
        self.mode = mode

    def __call__(self, ctx: RequestContext, tx: StoreTransaction, resource_type: str, body: ResourceText) -> None:
        if resource_type != "MedicationRequest" or ctx.extra.get("review-record"):
            return
        data = body.data
        if data.get("status") not in REVIEWED_STATUSES:
            return
        overridden = sub_extension(extension(data, REVIEW_URL), "reviewer") is not None
        subjects = self.central.subjects(data, ctx, None)
        (found,) = self.central.review_subjects(subjects, ctx)
        if self.mode == "block" and found.blocked and not overridden:
            raise Unprocessable(outcome_issues(found))
        self.central.record_in(tx, ctx, found)
        if overridden:
            return
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        extensions = [
            e for e in data.get("extension") or () if not (isinstance(e, dict) and e.get("url") == REVIEW_URL)
        ]
        extensions.append(review_extension(found, now))
        data["extension"] = extensions
        body.members["extension"] = orjson.dumps(extensions).decode()


class _Invalidate:
    """Drop the review's snapshot after a Medication, List or Organization is committed."""

    def __init__(self, central: CentralReview) -> None:
        self.central = central
        self.dirty = False

    def written(self, ctx: RequestContext, tx: StoreTransaction, stored: StoredResource) -> None:
        if stored.res_type in ALLIANCE_TYPES:
            self.dirty = True

    def committed(self, ctx: RequestContext, stored: StoredResource | None) -> None:
        if self.dirty:
            self.dirty = False
            self.central.invalidate()


def install(service: FhirService, settings: Settings) -> CentralReview:
    """The central review of this gateway, with its hooks (called from gateway.app)."""
    central = CentralReview(service, settings.review_rules)
    invalidate = _Invalidate(central)
    service.hooks.register(Pointcut.AFTER_WRITE_IN_TX, invalidate.written)
    service.hooks.register(Pointcut.AFTER_COMMIT, invalidate.committed)
    if settings.review_on_write != "off":
        service.hooks.register(Pointcut.BEFORE_STORE, ReviewOnWrite(central, settings.review_on_write))
    return central
