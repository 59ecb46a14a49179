"""HL7 v2 acknowledgements: the MLLP boundary's one place where errors become ERR segments.

``build_ack`` answers a received message with ``MSH``/``MSA`` (AA accepted, AE error, AR
rejected) and one ``ERR`` per problem naming the segment, field and reason: ``ERR-2`` (ERL
``segment^occurrence^field^repeat^component^subcomponent``), ``ERR-3`` (HL7 table 0357),
``ERR-4`` severity, ``ERR-5`` the Yaolian code, ``ERR-7`` English and ``ERR-8`` Chinese text,
all read from the one :class:`adapters.issues.Issue` (``ERR-2`` from its first ``expression``,
the source location such as ``RXE-2.1``).
Senders on v2.3/2.4, which have no ERR-2..8, get ``ERR-1`` (ELD) instead.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import datetime

from adapters.errors import StructureError
from adapters.hl7v2.tree import CHARSETS, msh_segment
from adapters.issues import Issue
from adapters.mapping.transforms import CST

__all__ = ["build_ack", "message_control_id"]

_LOCATION = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<occ>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?"
)
# Yaolian issue code -> HL7 table 0357 (message error condition codes)
_HL7_ERROR = {
    "YL-2101": ("102", "Data type error"),
    "YL-2102": ("100", "Segment sequence error"),
    "YL-2103": ("200", "Unsupported message type"),
    "YL-2302": ("103", "Table value not found"),
    "YL-2303": ("101", "Required field missing"),
    "YL-2304": ("102", "Data type error"),
    "YL-2305": ("102", "Data type error"),
    "YL-2306": ("102", "Data type error"),
    "YL-2307": ("101", "Required field missing"),
}
_SEVERITY = {"fatal": "E", "error": "E", "warning": "W", "information": "I"}


def _msh_fields(message: bytes) -> tuple[list[str], str]:
    """MSH fields (index = field number - 1 after MSH-1) and the codec, without a full parse."""
    raw, head = msh_segment(message)
    end = len(head)
    fields = head.split(head[3])
    declared = fields[17].split("^")[0].strip().upper() if len(fields) > 17 else ""
    codec = CHARSETS.get(declared, "utf-8")
    with contextlib.suppress(UnicodeDecodeError):
        fields = raw[:end].decode(codec).split(head[3])
    return fields, codec


def message_control_id(raw: bytes) -> str:
    """MSH-10 of ``raw`` (the sender's message id, the idempotency key); '' when empty."""
    fields, _ = _msh_fields(raw)
    if len(fields) <= 9:
        return ""
    component = fields[1][0] if len(fields) > 1 and fields[1] else "^"
    return fields[9].split(component)[0]


def _issue_parts(issue: Issue) -> tuple[str, str, str, str, str]:
    """(severity, yl code, english, chinese, source location) of an issue, for one ERR."""
    return issue.severity, issue.error_code or "YL-2000", issue.en, issue.zh or issue.en, issue.where


def _escape(text: str, seps: str) -> str:
    field, comp, rep, esc, sub = tuple(seps)
    out = text.replace(esc, f"{esc}E{esc}")
    for char, name in ((field, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{name}{esc}")
    return out.replace("\r", " ").replace("\n", f"{esc}.br{esc}")


def build_ack(
    message: bytes,
    accepted: bool | Sequence[Issue] = True,
    issues: Sequence[Issue] = (),
    *,
    now: datetime | None = None,
) -> bytes:
    """The ACK for ``message``. Call as ``build_ack(raw, issues)`` (AA/AE/AR from the issue
    severities) or ``build_ack(raw, accepted, issues)`` (the gateway's form: stored or not).

    AR when any issue is fatal (unreadable or unsupported message), AE when any is an error or
    the message was not accepted, AA otherwise; warnings ride along as ERR with severity W.
    Information issues (unused input) are not sent back. The reply uses the sender's
    delimiters, version and character set.
    """
    if not isinstance(accepted, bool):
        issues, accepted = list(accepted), True
    parts = [_issue_parts(i) for i in issues]
    if any(p[0] == "fatal" for p in parts):
        code = "AR"
    elif not accepted or any(p[0] == "error" for p in parts):
        code = "AE"
    else:
        code = "AA"
    try:
        fields, codec = _msh_fields(message)
    except StructureError:
        fields, codec = ["MSH", "^~\\&"], "utf-8"
        code = "AR"
        parts = parts or [("fatal", "YL-2102", "no MSH segment", "缺少 MSH 段", "MSH")]
    fs = "|"
    if len(fields) > 1 and len(fields[1]) >= 4:
        seps = fs + fields[1][0] + fields[1][1] + fields[1][2] + (fields[1][3:4] or "&")
    else:
        seps = "|^~\\&"
    comp, sub = seps[1], seps[4]

    def get(n: int) -> str:
        return fields[n - 1] if len(fields) >= n else ""

    version = get(12).split(comp)[0] or "2.5"
    trigger = get(9).split(comp)[1] if comp in get(9) else ""
    control = get(10).split(comp)[0]
    stamp = (now or datetime.now(CST)).strftime("%Y%m%d%H%M%S")
    msh = [
        "MSH",
        seps[1:],
        get(5),
        get(6),
        get(3),
        get(4),
        stamp,
        "",
        f"ACK{comp}{trigger}{comp}ACK" if trigger else "ACK",
        f"ACK{control}"[:20] if control else f"ACK{stamp}",
        get(11) or "P",
        version,
    ]
    if get(18):
        msh += ["", "", "", "", "", get(18)]
    lines = [fs.join(msh)]
    text = {"AA": "accepted", "AE": "error", "AR": "rejected"}[code]
    lines.append(fs.join(["MSA", code, _escape(control, seps), text]))
    modern = version not in ("2.3", "2.3.1", "2.4", "2.2", "2.1")
    for severity, yl, en, zh, location in parts:
        if severity == "information":
            continue
        hl7_code, hl7_text = _HL7_ERROR.get(yl, ("207", "Application internal error"))
        m = _LOCATION.match(location or "")
        seg = m.group("seg") if m else ""
        erl = [
            seg,
            (m.group("occ") or "1") if m else "",
            (m.group("field") or "") if m else "",
            (m.group("rep") or ("1" if m and m.group("field") else "")) if m else "",
            (m.group("comp") or "") if m else "",
            (m.group("sub") or "") if m else "",
        ]
        if modern:
            err = [
                "ERR",
                "",
                comp.join(erl).rstrip(comp),
                comp.join([hl7_code, hl7_text, "HL70357"]),
                _SEVERITY.get(severity, "E"),
                comp.join([yl, _escape(en, seps)[:80], "YAOLIAN"]),
                "",
                _escape(en, seps),
                _escape(zh, seps),
            ]
        else:
            eld = comp.join([seg, erl[1], erl[2], sub.join([hl7_code, _escape(en, seps)[:80]])])
            err = ["ERR", eld]
        lines.append(fs.join(err))
    return ("\r".join(lines) + "\r").encode(codec, errors="replace")
