"""MLLP senders bound to members: who may send from where, and what a message may claim.

HL7 v2 over MLLP has no tokens: a connection is bound to members by its client certificate
(TLS with ``--mllp-client-ca``: the certificate's common name is the member code) or by the
address it comes from (``--mllp-senders "XHZXWSY=10.1.0.0/16,10.9.0.7;XYXRMYY=10.2.0.5"``).
Each message then runs for the member its sending facility (MSH-4) names, and is refused with
AR, and kept as a dead letter, when that member is not one the connection is bound to, or when
one of its orders claims another member (ORC-2.2, the placer number's namespace).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Issue, issue
from gateway.principal import Principal, Role, parse_scopes

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a bound sender may do: write its member's data (the role's own limits still apply).
SENDER_SCOPES = parse_scopes("system/*.cruds")


@dataclass(frozen=True)
class SenderAllowList:
    networks: dict[str, tuple[IpNetwork, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> SenderAllowList:
        """``CODE=IP[,CIDR...][;CODE=...]``."""
        networks: dict[str, tuple[IpNetwork, ...]] = {}
        for part in (text or "").split(";"):
            if not part.strip():
                continue
            code, sep, addresses = part.partition("=")
            if not sep or not code.strip():
                raise ValueError(f"MLLP sender {part!r}: write MEMBER=IP[,CIDR...]")
            nets = tuple(ipaddress.ip_network(a.strip(), strict=False) for a in addresses.split(",") if a.strip())
            networks[code.strip()] = networks.get(code.strip(), ()) + nets
        return cls(networks)

    def members_at(self, host: str | None) -> frozenset[str]:
        if not host:
            return frozenset()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return frozenset()
        return frozenset(code for code, nets in self.networks.items() if any(address in n for n in nets))


def certificate_member(peercert: dict[str, Any] | None) -> str | None:
    """The member code a client certificate names (its subject's common name)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str):
                return value
    return None


def _fields(segment: str, separator: str) -> list[str]:
    return segment.split(separator)


def message_claims(raw: bytes) -> tuple[str | None, list[str]]:
    """``(MSH-4 member, ORC-2.2 namespaces)`` of an HL7 v2 message (first components)."""
    text = raw.decode("utf-8", "replace").replace("\n", "\r")
    if not text.startswith("MSH") or len(text) < 8:
        return None, []
    separator, component = text[3], text[4]
    facility: str | None = None
    orders: list[str] = []
    for segment in text.split("\r"):
        fields = _fields(segment, separator)
        if fields[0] == "MSH" and len(fields) > 3:
            facility = fields[3].split(component)[0] or None
        elif fields[0] == "ORC" and len(fields) > 2:
            parts = fields[2].split(component)
            if len(parts) > 1 and parts[1]:
                orders.append(parts[1])
    return facility, orders


def refusals(raw: bytes, bound: frozenset[str]) -> list[Issue]:
    """Why a message may not run for the members its connection is bound to (fatal: AR)."""
    return _refusals(*message_claims(raw), bound)


def admit(raw: bytes, sender: Sender) -> Principal | list[Issue]:
    """Whom a message runs as (its sending facility's member), or why it is refused."""
    facility, orders = message_claims(raw)
    refused = _refusals(facility, orders, sender.members)
    if refused or facility is None:
        return refused
    return sender_principal(facility, sender.peer)


def _refusals(facility: str | None, orders: list[str], bound: frozenset[str]) -> list[Issue]:
    if facility is None or facility not in bound:
        named = ", ".join(sorted(bound)) or "(none)"
        return [issue("YL-0273", severity="fatal", facility=facility or "(none)", bound=named, expression=["MSH-4"])]
    wrong = [n for n in orders if n != facility]
    if wrong:
        return [issue("YL-0274", severity="fatal", claimed=wrong[0], facility=facility, expression=["ORC-2.2"])]
    return []


def sender_principal(member: str, peer: str | None) -> Principal:
    return Principal(f"mllp:{member}", f"MLLP sender of {member}", Role.MEMBER, member, SENDER_SCOPES, peer)


@dataclass(frozen=True)
class Sender:
    """One MLLP connection: where it comes from and the members it is bound to."""

    peer: str | None
    members: frozenset[str]


@dataclass
class SenderBinding:
    """How connections are bound to members: an allow-list of addresses, client certificates."""

    allow_list: SenderAllowList = field(default_factory=SenderAllowList)
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_settings(
        cls, senders: str | None, cert: str | None, key: str | None, client_ca: str | None
    ) -> SenderBinding:
        tls = None
        if cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
            if client_ca:
                tls.load_verify_locations(client_ca)
                tls.verify_mode = ssl.CERT_REQUIRED
        return cls(SenderAllowList.parse(senders), tls)

    @property
    def configured(self) -> bool:
        return bool(self.allow_list.networks) or (self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED)

    def sender(self, peer: str | None, peercert: dict[str, Any] | None) -> Sender:
        """A verified client certificate names the member; else the allow-list, by address."""
        member = certificate_member(peercert)
        members = frozenset({member}) if member else self.allow_list.members_at(peer)
        return Sender(peer, members)


__all__ = [
    "Sender",
    "SenderAllowList",
    "SenderBinding",
    "admit",
    "certificate_member",
    "message_claims",
    "refusals",
    "sender_principal",
]
