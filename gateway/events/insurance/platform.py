"""One exchange with the national insurance platform: the envelope around a message's ``input``,
the POST, and what the answer means. Shared by the feed (7101..7104, the channel) and the
questions a user asks (7105/7106, :mod:`gateway.events.insurance.status`), so both speak to
the platform the same way.

Three outcomes, kept apart because callers treat them differently: an ``output`` (the answer,
keys in snake_case whatever spelling the platform used), :class:`Refused` (the platform answered
``infcode`` not 0: asking again gets the same answer) and :class:`Transport` (no usable answer:
worth trying later).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx
import orjson

from adapters.mapping.outbound import CHINA, OutboundMapping
from gateway.federation.registry import FIXMEDINS_SYSTEM
from gateway.fhir.elements import identifier_value

#: What the platform numbers a prescription by, recorded on the MedicationRequest at upload.
HI_RXNO = "http://yaolian.org/fhir/sid/hi-rxno"
RX_TRACE = "http://yaolian.org/fhir/sid/rx-trace-code"
_counter = itertools.count(1)
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class Transport(Exception):
    """The platform did not answer usably (no connection, HTTP not 200, not JSON)."""


class Refused(Exception):
    """The platform answered with ``infcode`` not 0."""

    def __init__(self, infno: str, err_code: str, message: str) -> None:
        super().__init__(f"{infno}: {err_code} {message}")
        self.infno = infno
        self.err_code = err_code
        self.message = message


def snake(value: Any) -> Any:
    """``hiRxno`` -> ``hi_rxno`` in every key (some provinces answer in camelCase)."""
    if isinstance(value, dict):
        return {_CAMEL.sub(r"_\1", str(k)).lower(): snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


def envelope(mapping: OutboundMapping, infno: str, message: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
    """The platform's common input around ``message`` (msgid: institution, time, counter)."""
    fixmedins = identifier_value(org, FIXMEDINS_SYSTEM) or str(org.get("id") or "")
    now = datetime.now(CHINA)
    return {
        "infno": infno,
        "msgid": f"{fixmedins}{now:%Y%m%d%H%M%S}{next(_counter) % 10000:04d}"[:30],
        "mdtrtarea_admvs": "",
        "insuplc_admdvs": "",
        "opter": "yaolian",
        "opter_name": "药联网关",
        "inf_time": f"{now:%Y-%m-%d %H:%M:%S}",
        "fixmedins_code": fixmedins,
        "fixmedins_name": str(org.get("name") or ""),
        "sign_no": "",
        **mapping.envelope,
        "input": message,
    }


def exchange(
    client: httpx.Client,
    endpoint: str,
    headers: Iterable[tuple[str, str]],
    mapping: OutboundMapping,
    infno: str,
    message: dict[str, Any],
    org: dict[str, Any],
) -> dict[str, Any]:
    """POST message ``infno``; its ``output`` in snake_case, or :class:`Refused` / :class:`Transport`."""
    body = orjson.dumps(envelope(mapping, infno, message, org))
    try:
        answer = client.post(
            endpoint, content=body, headers={"Content-Type": "application/json; charset=utf-8", **dict(headers)}
        )
    except httpx.HTTPError as exc:
        raise Transport(f"{infno}: {type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise Transport(f"{infno}: HTTP {answer.status_code}")
    try:
        reply = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        raise Transport(f"{infno}: the answer is not JSON") from None
    if not isinstance(reply, dict):
        raise Transport(f"{infno}: the answer is not a JSON object")
    if str(reply.get("infcode", "-1")) != "0":
        raise Refused(infno, str(reply.get("infcode")), str(reply.get("err_msg") or "refused"))
    output = snake(reply.get("output") or {})
    return output if isinstance(output, dict) else {}
