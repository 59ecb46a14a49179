"""Channel ``insurance-rx``: prescriptions to the national insurance platform's e-prescription
interfaces (7101 upload pre-check, 7102 sign, 7103 upload, 7104 revoke), from the declarative
mapping ``mappings/insurance/e-prescription.yaml``.

- A created prescription is pre-checked (7101: the platform answers its ``rx_trace_code`` and
  ``hi_rxno``), signed (7102: the platform's CA answers the signed prescription file and the
  signature of the upload fields) then uploaded (7103, carrying both); the 医保处方编号
  (``hi_rxno``) and the trace code are written on the MedicationRequest as identifiers, through
  the service. Each message sees what the platform answered to the earlier ones (``answer``).
- A prescription revoked (status cancelled, stopped or entered-in-error, or deleted) that has a
  ``hi_rxno`` is revoked there (7104).
- 7103 carries the pharmacist who reviewed the prescription (``phar_*``, POL-18; the central
  review, POL-06): a prescription without one is not pre-checked at all (a finding, nothing sent).
- A refusal (``infcode`` not 0), or a message the mapping cannot fill (a required field
  missing, a value too long), is a finding on the prescription - a DetectedIssue implicating it
  (YL-1306 / YL-1307) - and the event counts as delivered: sending it again would be refused
  again. Only transport failures (no answer, HTTP not 200) are retried with back-off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from adapters.mapping.outbound import OutboundMapping, Problem, build, load_outbound
from gateway.clock import now_instant
from gateway.errors import CODES, ERROR_CODE_SYSTEM, FhirError
from gateway.events.channels import Sent
from gateway.events.insurance.context import prescription_context
from gateway.events.insurance.platform import HI_RXNO, RX_TRACE, Refused, Transport, exchange
from gateway.events.matching import Matcher
from gateway.events.subscriptions import Subscription
from gateway.fhir.json_text import ResourceText
from gateway.store.base import Delivery

log = logging.getLogger("yaolian.events")
REVOKED = ("cancelled", "stopped", "entered-in-error")
#: What 7101 and 7102 answer and 7103 carries back, stood in for when checking a chain ahead.
ANSWER_STAND_IN = {"rx_trace_code": "0", "hi_rxno": "0", "rx_file": "0", "sign_digest": "0"}


class InsuranceChannel:
    def __init__(self, matcher: Matcher, timeout: float = 10.0, mapping: OutboundMapping | None = None) -> None:
        self.matcher = matcher
        self.service = matcher.service
        self.ctx = matcher.ctx
        self.mapping = mapping or load_outbound("insurance/e-prescription")
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def send(self, sub: Subscription, bundle: dict[str, Any], events: Sequence[Delivery], kind: str) -> Sent:
        if kind != "event-notification":
            return Sent(True)  # the platform knows no handshake or heartbeat
        try:
            for d in events:
                self._one(sub, d)
        except Transport as exc:
            return Sent(False, str(exc))
        return Sent(True)

    # -- one event ------------------------------------------------------------------------
    def _one(self, sub: Subscription, d: Delivery) -> None:
        if d.res_type != "MedicationRequest":
            return
        version = d.version if d.event != "delete" else d.version - 1
        stored = self.matcher.version(d.res_type, d.res_id, version)
        if stored is None or not stored.body:
            return
        rx = orjson.loads(stored.body)
        context = prescription_context(self.service, rx, self.ctx, self.matcher.registry())
        if d.event == "create":
            self._upload(sub, d, context)
        elif d.event == "delete" or rx.get("status") in REVOKED:
            if any(i.get("system") == HI_RXNO for i in rx.get("identifier") or ()):
                self._call(sub, d, "7104", context)

    def _upload(self, sub: Subscription, d: Delivery, context: dict[str, Any]) -> None:
        if not self._can_finish(d, context):
            return
        checked = self._call(sub, d, "7101", context)
        if checked is None:
            return
        signed = self._call(sub, d, "7102", {**context, "answer": checked})
        if signed is None:
            return
        uploaded = self._call(sub, d, "7103", {**context, "answer": {**checked, **signed}})
        if uploaded is None:
            return
        hi_rxno = str(uploaded.get("hi_rxno") or checked.get("hi_rxno") or "")
        trace = str(checked.get("rx_trace_code") or "")
        self._record_numbers(d.res_id, hi_rxno, trace)

    def _can_finish(self, d: Delivery, context: dict[str, Any]) -> bool:
        """A chain that cannot reach 7103 is not started: 7101 hands out a trace code good for one
        upload, and a prescription without what 7103 asks (the reviewing pharmacist, POL-18) would
        spend it for nothing. The platform's answers are stood in for; the prescription's own
        fields decide."""
        for infno in ("7101", "7103"):
            _, problems = build(self.mapping, infno, {**context, "answer": ANSWER_STAND_IN})
            if problems:
                self._unfillable(d, context, infno, problems)
                return False
        return True

    def _unfillable(self, d: Delivery, context: dict[str, Any], infno: str, problems: Sequence[Problem]) -> None:
        """The finding for a message the mapping cannot fill (YL-1307), naming each field."""
        text = "; ".join(f"{p.path}: {p.reason}" for p in problems)
        self._finding(d.res_id, context, "YL-1307", infno=infno, problems=text)

    def _call(self, sub: Subscription, d: Delivery, infno: str, context: dict[str, Any]) -> dict[str, Any] | None:
        """Send one message; its output, or None after recording why it was not accepted."""
        message, problems = build(self.mapping, infno, context)
        rx_label = f"MedicationRequest/{d.res_id}"
        if problems:
            self._unfillable(d, context, infno, problems)
            return None
        try:
            org = context.get("org") or {}
            return exchange(self._client, sub.endpoint, sub.headers, self.mapping, infno, message, org)
        except Refused as refusal:
            self._finding(
                d.res_id, context, "YL-1306", rx=rx_label, message=refusal.message, infno=infno,
                err_code=refusal.err_code,
            )  # fmt: skip
            return None

    # -- what the gateway keeps --------------------------------------------------------------
    def _record_numbers(self, rx_id: str, hi_rxno: str, trace: str) -> None:
        """Write 医保处方编号 and the trace code on the prescription (its current version)."""
        for _ in range(3):
            try:
                current = self.service.read("MedicationRequest", rx_id, self.ctx)
                data = orjson.loads(current.body or b"{}")
                identifiers = [i for i in data.get("identifier") or () if i.get("system") not in (HI_RXNO, RX_TRACE)]
                if hi_rxno:
                    identifiers.append({"system": HI_RXNO, "value": hi_rxno})
                if trace:
                    identifiers.append({"system": RX_TRACE, "value": trace})
                data["identifier"] = identifiers
                body = ResourceText.parse(orjson.dumps(data))

                def update(tx: Any, body: ResourceText = body, version: int = current.version) -> None:
                    self.service.writer.update(
                        tx, self.ctx, "MedicationRequest", rx_id, body, if_match=f'W/"{version}"'
                    )

                self.service.write(self.ctx, update)
                return
            except FhirError as exc:
                if exc.status not in (409, 412):
                    log.warning("could not record hi_rxno on MedicationRequest/%s: %s", rx_id, exc)
                    return

    def _finding(self, rx_id: str, context: dict[str, Any], code: str, **params: str) -> None:
        spec = CODES[code]
        issue = {
            "resourceType": "DetectedIssue",
            "status": "final",
            "category": [{"text": "insurance e-prescription 医保电子处方"}],
            "code": {"coding": [{"system": ERROR_CODE_SYSTEM, "code": code}], "text": spec.zh.format(**params)},
            "severity": "high",
            "implicated": [{"reference": f"MedicationRequest/{rx_id}"}],
            "identifiedDateTime": now_instant(),
            "detail": spec.en.format(**params),
        }
        subject = (context.get("rx") or {}).get("subject")
        if isinstance(subject, dict) and subject.get("reference"):
            issue["subject"] = {"reference": subject["reference"]}
        body = ResourceText.parse(orjson.dumps(issue))
        self.service.write(self.ctx, lambda tx: self.service.writer.create(tx, self.ctx, "DetectedIssue", body))
