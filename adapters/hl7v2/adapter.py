"""The HL7 v2 pharmacy adapter: RDE^O11 / RDS^O13 -> FHIR R5 transaction Bundle, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.bundle import transaction_bundle
from adapters.contract import AdapterDescriptor, ConversionResult, Issue
from adapters.errors import ConversionError, UnsupportedMessageError
from adapters.hl7v2.tree import V2PathSyntax, V2Tree, parse
from adapters.mapping.engine import Mapping, load_mapping
from adapters.mapping.reverse import Reversal
from adapters.mapping.yamlsrc import load_yaml, strip_lines

__all__ = ["SUPPORTED_VERSIONS", "VOLATILE_PATHS", "HL7v2Adapter"]

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
#: Bundle paths that differ between two conversions of the same message (golden tests drop them).
VOLATILE_PATHS = ("timestamp",)

_SYNTAX = V2PathSyntax()
_MSH9_1 = _SYNTAX.compile("MSH-9.1")
_MSH9_2 = _SYNTAX.compile("MSH-9.2")
_MSH9_3 = _SYNTAX.compile("MSH-9.3")
_MSH10 = _SYNTAX.compile("MSH-10")
_MSH12 = _SYNTAX.compile("MSH-12.1")
_MSH18 = _SYNTAX.compile("MSH-18")
_MSH4 = _SYNTAX.compile("MSH-4.1")
_MSH3 = _SYNTAX.compile("MSH-3")
_MSH3_1 = _SYNTAX.compile("MSH-3.1")
#: MSH-3 of the messages Yaolian writes (write-back); their HIS is the receiver, MSH-5/MSH-6.
SENDING_APPLICATION = "YAOLIAN"


def _mapping_dir() -> Path:
    import mappings

    return Path(mappings.__file__).parent / "hl7v2"


class HL7v2Adapter:
    """HL7 v2.3–2.5.1 pharmacy messages. Mappings: ``mappings/hl7v2/*.yaml`` (one per message
    type) and ``mappings/hl7v2/dialects/<vendor>/*.yaml`` (chosen by their ``match``)."""

    descriptor = AdapterDescriptor(
        name="hl7v2",
        version="0.1.0",
        media_types=("application/hl7-v2", "x-application/hl7-v2+er7"),
        description="HL7 v2 pharmacy orders and dispenses (RDE^O11, RDS^O13) <-> FHIR R5",
        bidirectional=True,
        message_types=("RDE^O11", "RDS^O13"),
    )

    def __init__(self, mapping_dir: Path | None = None) -> None:
        root = mapping_dir or _mapping_dir()
        self.mapping_dir = root
        self.mappings: dict[str, Mapping] = {}
        self.dialects: dict[str, list[Mapping]] = {}
        for file in sorted(root.glob("*.yaml")):
            mapping = self._load(file)
            for message in mapping.messages:
                self.mappings[message] = mapping
        for file in sorted(root.glob("dialects/*/*.yaml")):
            mapping = self._load(file)
            for message in mapping.messages:
                self.dialects.setdefault(message, []).append(mapping)
        # member code -> the HIS application it runs (MSH-3.1 of its messages), for write-back
        members = root / "dialects" / "members.yaml"
        table = strip_lines(load_yaml(members)) if members.exists() else {}
        self.members: dict[str, str] = {str(k): str(v) for k, v in (table or {}).items()}

    @staticmethod
    def _load(file: Path) -> Mapping:
        return load_mapping(file, _SYNTAX)

    # ------------------------------------------------------------------ to FHIR
    def mapping_for(self, tree: V2Tree) -> Mapping:
        """The dialect whose ``match`` the member HIS's side of the envelope satisfies, else the
        base mapping. The HIS is the sender (MSH-3/MSH-4), or the receiver (MSH-5/MSH-6) of a
        message Yaolian wrote back."""
        event = f"{tree.read(_MSH9_1, tree.root)}^{tree.read(_MSH9_2, tree.root)}"
        tree.read(_MSH9_3, tree.root)
        his_side = tree
        if tree.read(_MSH3_1, tree.root) == SENDING_APPLICATION:
            fields = list(tree.segments[tree.positions["MSH"][0]][1])
            fields += [[]] * (7 - len(fields))
            fields[3], fields[4] = fields[5], fields[6]
            his_side = V2Tree([("MSH", fields)], [])
        for dialect in self.dialects.get(event, ()):
            if dialect.matches(his_side):
                return dialect
        try:
            return self.mappings[event]
        except KeyError:
            raise UnsupportedMessageError(
                f"message type {event} is not supported",
                [
                    Issue(
                        "fatal",
                        "not-supported",
                        en=f"message type {event} is not supported (supported: {', '.join(sorted(self.mappings))})",
                        zh=f"不支持的消息类型 {event}",
                        expression=("MSH-9",),
                        error_code="YL-2103",
                    )
                ],
            ) from None

    def to_fhir(self, raw: bytes) -> ConversionResult:
        tree = parse(raw)
        version = tree.read(_MSH12, tree.root)
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedMessageError(
                f"HL7 version {version!r} is not supported",
                [
                    Issue(
                        "fatal",
                        "not-supported",
                        en=f"HL7 version {version!r} is not supported ({', '.join(SUPPORTED_VERSIONS)})",
                        zh=f"不支持的 HL7 版本 {version!r}",
                        expression=("MSH-12",),
                        error_code="YL-2103",
                    )
                ],
            )
        control_id = tree.read(_MSH10, tree.root)
        tree.read(_MSH18, tree.root)
        tree.read(_MSH3, tree.root)
        mapping = self.mapping_for(tree)
        entries, issues = mapping.run(tree)
        issues = tree.issues + issues
        if any(i.severity in ("fatal", "error") for i in issues):
            raise ConversionError(
                f"message {control_id} cannot be converted",
                issues,
                message_zh=f"消息 {control_id} 无法转换",
            )
        facility = tree.read(_MSH4, tree.root)
        bundle = transaction_bundle(
            f"{facility}|{control_id}",
            entries,
            meta={"source": f"http://yaolian.org/fhir/adapter/hl7v2/{mapping.name}"},
            identifier={"system": f"http://yaolian.org/fhir/sid/{facility}/message", "value": control_id},
        )
        return ConversionResult(bundle, issues)

    def message_id(self, raw: bytes) -> str:
        """MSH-10, the sender's idempotency key (the gateway journal calls this)."""
        from adapters.hl7v2.ack import message_control_id

        return message_control_id(raw)

    # ------------------------------------------------------------------ from FHIR
    def mapping_for_member(self, member: str, event: str = "RDE^O11") -> Mapping:
        """The mapping a member's HIS reads and writes: chosen by ``mapping_for`` from the
        envelope of a message that member would send (its application from ``members.yaml``)."""
        application = self.members.get(member, "")
        msh = f"MSH|^~\\&|{application}|{member}|{SENDING_APPLICATION}||||{event}|0|P|2.5"
        return self.mapping_for(parse(msh.encode("utf-8")))

    def write_back(self, resource: dict[str, Any]) -> tuple[bytes, Reversal]:
        """RDE^O11 for the member that must dispense the prescription, in that member's dialect,
        and the reverse run behind it (``Reversal.skipped``: the rules not written back)."""
        from adapters.hl7v2.writer import prescription, write_rde_o11

        rx = prescription(resource)
        mapping = self.mapping_for_member(rx.dispensing)
        return write_rde_o11(rx, mapping, receiving_application=self.members.get(rx.dispensing, "HIS"))

    def from_fhir(self, resource: dict[str, Any]) -> bytes:
        return self.write_back(resource)[0]
