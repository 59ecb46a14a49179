"""The review of one prescription: facts, then every rule of the set; findings become
DetectedIssue resources (severity ``high`` = block, ``moderate`` = warn, code = the rule id,
the rule set's version in ``code.coding.version``) and OperationOutcome issues (POL-06)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.alliance.catalogue import Drug
from gateway.alliance.review.facts import ActivePrescription, AllianceSnapshot, compute
from gateway.alliance.review.rules import RULE_SYSTEM, Rule, RuleSet
from gateway.errors import Issue, issue

_FIELD = re.compile(r"\{([A-Za-z0-9_]+)\}")
#: DetectedIssue severity -> OperationOutcome severity
OUTCOME_SEVERITY = {"high": "error", "moderate": "warning", "low": "information"}
RESULT_OF = {"high": "reject", "moderate": "warn"}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    title_en: str
    title_zh: str
    en: str
    zh: str
    policy: str = ""


@dataclass
class Review:
    """The outcome of reviewing one prescription against one rule set."""

    rule_set: str
    version: str
    prescription: str  # "MedicationRequest/id", or the id the request gave it
    member: str | None
    patient: str | None
    prescriber: str | None
    drug: str | None  # national insurance code
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> str:
        """``reject`` (a high finding), ``warn`` (a moderate one) or ``pass`` (review-result codes)."""
        severities = {f.severity for f in self.findings}
        for level in ("high", "moderate"):
            if level in severities:
                return RESULT_OF[level]
        return "pass"

    @property
    def blocked(self) -> bool:
        return self.result == "reject"


def _fill(template: str, values: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            return match.group(0)
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return _FIELD.sub(one, template)


def _finding(rule: Rule, values: Mapping[str, Any]) -> Finding:
    return Finding(
        rule.id,
        rule.severity,
        rule.title_en,
        rule.title_zh,
        _fill(rule.message_en or rule.title_en, values),
        _fill(rule.message_zh or rule.title_zh, values),
        rule.policy,
    )


def review(
    rule_set: RuleSet,
    snapshot: AllianceSnapshot,
    rx: Mapping[str, Any],
    drug: Drug | None,
    *,
    patient: Mapping[str, Any] | None,
    member: str | None,
    active: Sequence[ActivePrescription],
    is_pregnant: bool = False,
    today: dt.date | None = None,
) -> Review:
    """Every rule of ``rule_set`` over one prescription."""
    facts = compute(
        rx, drug, patient, member, snapshot, rule_set, active, is_pregnant=is_pregnant, today=today or dt.date.today()
    )
    drug_facts = drug.facts() if drug else {}
    subject = (rx.get("subject") or {}).get("reference")
    requester = (rx.get("requester") or {}).get("reference")
    result = Review(
        rule_set.id,
        rule_set.version,
        f"MedicationRequest/{rx.get('id')}" if rx.get("id") else "MedicationRequest",
        member,
        subject if isinstance(subject, str) else None,
        requester if isinstance(requester, str) else None,
        drug.nhsa_code if drug else None,
        facts=facts,
    )
    env_base = {"facts": facts, "drug": drug_facts, "patient": dict(patient or {}), "rx": rx}
    for rule in rule_set.rules:
        env = {**env_base, "params": dict(rule.params)}
        if rule.holds(rx, env):
            result.findings.append(_finding(rule, {**drug_facts, **facts, **rule.params}))
    return result


def detected_issues(found: Review, *, now: str | None = None) -> list[dict[str, Any]]:
    """One DetectedIssue per finding."""
    when = now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = []
    for finding in found.findings:
        resource: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "id": uuid.uuid4().hex,
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "DRG"}]}],
            "code": {
                "coding": [
                    {"system": RULE_SYSTEM, "version": found.version, "code": finding.rule, "display": finding.title_en}
                ],
                "text": finding.title_zh,
            },
            "severity": finding.severity,
            "identifiedDateTime": when,
            "detail": f"{finding.en}\n\n{finding.zh}",
            "reference": f"http://yaolian.org/fhir/rules/{found.rule_set}/{found.version}#{finding.rule}",
        }
        if found.patient:
            resource["subject"] = {"reference": found.patient}
        if found.prescription != "MedicationRequest":
            resource["implicated"] = [{"reference": found.prescription}]
        out.append(resource)
    return out


def outcome_issues(found: Review, where: str = "MedicationRequest") -> list[Issue]:
    """The findings as OperationOutcome issues (a pass is one informational issue)."""
    if not found.findings:
        return [issue("YL-1114", severity="information", expression=[where], version=found.version)]
    return [
        issue(
            "YL-1111",
            severity=OUTCOME_SEVERITY[f.severity],
            expression=[where],
            text=f.en,
            text_zh=f.zh,
            rule=f.rule,
            version=found.version,
        )
        for f in found.findings
    ]
