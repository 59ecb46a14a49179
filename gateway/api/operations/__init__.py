"""The operation table: one module per ``$operation``, registered here.

Each entry names the OperationDefinition it implements and the levels (system, type,
instance) it is served at; the CapabilityStatement is generated from this table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.operations import (
    continue_,
    formulary_check,
    ingest,
    insurance_status,
    match,
    prescriptions,
    review,
    subscriptions,
    supply,
    terminology,
    validate,
    writeback,
)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    name: str
    definition: str
    levels: tuple[str, ...]
    handler: Handler
    types: tuple[str, ...] = ()
    """Resource types served at type/instance level; empty means every type."""


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("ingest", "http://yaolian.org/fhir/OperationDefinition/ingest", ("system",), ingest.ingest),
        Operation("convert", "http://yaolian.org/fhir/OperationDefinition/convert", ("system",), ingest.convert_only),
        Operation(
            "hl7v2",
            "http://yaolian.org/fhir/OperationDefinition/hl7v2",
            ("instance",),
            writeback.hl7v2,
            ("MedicationRequest",),
        ),
        Operation(
            "validate-code",
            "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
            ("type",),
            terminology.validate_code,
            ("ValueSet", "CodeSystem"),
        ),
        Operation(
            "lookup",
            "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
            ("type",),
            terminology.lookup,
            ("CodeSystem",),
        ),
        Operation(
            "translate",
            "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate",
            ("type",),
            terminology.translate,
            ("ConceptMap",),
        ),
        Operation(
            "insurance-status",
            "http://yaolian.org/fhir/OperationDefinition/insurance-status",
            ("instance",),
            insurance_status.handle,
            ("MedicationRequest",),
        ),
        Operation(
            "review",
            "http://yaolian.org/fhir/OperationDefinition/review",
            ("type", "instance"),
            review.handle,
            ("MedicationRequest",),
        ),
        Operation(
            "formulary-check",
            "http://yaolian.org/fhir/OperationDefinition/formulary-check",
            ("system",),
            formulary_check.handle,
        ),
        Operation(
            "match", "http://hl7.org/fhir/OperationDefinition/Patient-match", ("type",), match.handle, ("Patient",)
        ),
        Operation(
            "continue",
            "http://yaolian.org/fhir/OperationDefinition/continue",
            ("type",),
            continue_.handle,
            ("MedicationRequest",),
        ),
        Operation(
            "prescriptions",
            "http://yaolian.org/fhir/OperationDefinition/prescriptions",
            ("type",),
            prescriptions.prescriptions,
            ("Patient",),
        ),
        Operation(
            "status",
            "http://hl7.org/fhir/OperationDefinition/Subscription-status",
            ("instance",),
            subscriptions.status,
            ("Subscription",),
        ),
        Operation(
            "events",
            "http://hl7.org/fhir/OperationDefinition/Subscription-events",
            ("instance",),
            subscriptions.events,
            ("Subscription",),
        ),
        Operation(
            "get-ws-binding-token",
            "http://hl7.org/fhir/OperationDefinition/Subscription-get-ws-binding-token",
            ("instance",),
            subscriptions.ws_binding_token,
            ("Subscription",),
        ),
        Operation(
            "validate",
            "http://hl7.org/fhir/OperationDefinition/Resource-validate",
            ("type", "instance"),
            validate.handle,
        ),
        # issue 15: supply chain (docs/supply.md)
        *(
            Operation(
                name, f"http://yaolian.org/fhir/OperationDefinition/{name}", ("type",), handler, ("SupplyRequest",)
            )
            for name, handler in (
                ("aggregate", supply.aggregate),
                ("approve", supply.approve),
                ("export-plan", supply.export_plan),
                ("balance", supply.balance),
                ("register-shortage", supply.register_shortage),
            )
        ),
        Operation(
            "stock-alerts", "http://yaolian.org/fhir/OperationDefinition/stock-alerts", ("system",), supply.stock_alerts
        ),
    )
}


def register(operation: Operation) -> None:
    OPERATIONS[operation.name] = operation
