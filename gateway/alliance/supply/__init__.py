"""Supply chain of the alliance (POL-11..17, 19, 23..26, 28): demand plans aggregated and approved
by the county pharmacy, deliveries with traceability codes, stock per member, drug and batch
against alert lines, balancing surplus to deficit, shortage registrations and the yearly report.

Everything here reads and writes FHIR resources through :class:`gateway.service.fhir_service.FhirService`
(SupplyRequest, SupplyDelivery, InventoryReport, DetectedIssue, MeasureReport, Basic), so access
control, audit and the outbox see supply work like any other write. The pure parts (the stock
ledger, alert evaluation, balancing, aggregation) work on plain values so tests and benchmarks
can run them on data they build. See ``docs/supply.md``.
"""
