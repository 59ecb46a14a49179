"""HL7 v2 adapter: RDE^O11 / RDS^O13 <-> FHIR R5, ACK building, MSH-10 lookup."""

from adapters.hl7v2.ack import build_ack, message_control_id
from adapters.hl7v2.adapter import SUPPORTED_VERSIONS, VOLATILE_PATHS, HL7v2Adapter

__all__ = [
    "SUPPORTED_VERSIONS",
    "VOLATILE_PATHS",
    "HL7v2Adapter",
    "build_ack",
    "message_control_id",
]
