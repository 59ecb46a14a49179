"""The supply topics fire on what the supply chain really writes (POL-14, POL-15, POL-16):
stock alerts are DetectedIssues that close as ``mitigated`` (gateway.alliance.supply.alerts),
shortage registrations SupplyRequests of kind ``shortage``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.alliance.supply.terms import BELOW_LINE, EXPIRING, STOCK_ALERT_SYSTEM
from gateway.events.matching import drug_codes
from gateway.events.topics import topics

TOPIC = "http://yaolian.org/fhir/SubscriptionTopic/"


def _topic(name: str) -> Any:
    return topics()[TOPIC + name]


def _alert(kind: str = BELOW_LINE, status: str = "final") -> dict[str, Any]:
    code = {"system": STOCK_ALERT_SYSTEM, "code": kind}
    return {
        "resourceType": "DetectedIssue",
        "status": status,
        "category": [{"coding": [code]}],
        "code": {"coding": [code]},
        "subject": {"reference": "Organization/xy-county-hospital"},
        "implicated": [{"reference": "Medication/clopidogrel"}],
    }


@pytest.mark.parametrize("kind", [BELOW_LINE, EXPIRING])
def test_pol14_a_raised_stock_alert_is_an_event_and_its_closing_another(kind: str) -> None:
    raised, closed = _topic("stock-alert-raised"), _topic("stock-alert-closed")
    alert = _alert(kind)
    assert raised.triggered("create", alert, None)
    assert not closed.triggered("create", alert, None)
    mitigated = copy.deepcopy(alert)
    mitigated["status"] = "mitigated"
    assert closed.triggered("update", mitigated, alert)
    assert not raised.triggered("update", mitigated, alert)
    assert not raised.triggered("update", alert, alert)  # still raised: no new event
    assert raised.triggered("update", alert, mitigated)  # raised again after it had closed
    assert "Medication/clopidogrel" in drug_codes(alert)  # the drug filter sees the implicated drug


def test_pol14_other_detected_issues_are_no_stock_alerts() -> None:
    finding = _alert()
    finding["code"] = {"coding": [{"system": "http://yaolian.org/fhir/CodeSystem/review-rule", "code": "x"}]}
    finding["category"] = []
    assert not _topic("stock-alert-raised").triggered("create", finding, None)


def test_pol16_a_shortage_registration_is_an_event() -> None:
    registered = _topic("shortage-registered")
    shortage = {
        "resourceType": "SupplyRequest",
        "status": "active",
        "category": {
            "coding": [{"system": "http://yaolian.org/fhir/CodeSystem/supply-request-kind", "code": "shortage"}]
        },
        "item": {"concept": {"text": "clopidogrel"}},
        "quantity": {"value": 28},
    }
    assert registered.triggered("create", shortage, None)
    plan_line = copy.deepcopy(shortage)
    plan_line["category"]["coding"][0]["code"] = "demand-plan"
    assert not registered.triggered("create", plan_line, None)
