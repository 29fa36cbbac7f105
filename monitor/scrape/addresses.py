"""Which addresses a competitor's requests may connect to, decided for every connection after DNS.

Link-local and cloud-metadata addresses are never contacted. Loopback, private and the other
non-public ranges are contacted only for a competitor whose own `base_url` is an address in that
range (the demo, the bench and the tests run shops on 127.0.0.1) or when `scrape.allowed_networks`
lists them. Everything else (the public internet) is allowed. The transports apply the policy to
the address each socket is about to connect to, so a name that resolves differently the second
time (DNS rebinding) is checked again, as is every redirect target.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*texts: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


#: Never contacted, whatever the configuration says: where instance credentials live.
NEVER: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("cloud metadata", _nets("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32", "168.63.129.16/32")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
)

#: Non-public ranges by name; an address of one is contacted only when allowed. Checked in order.
NON_PUBLIC: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("shared address space", _nets("100.64.0.0/10")),
    ("this-network", _nets("0.0.0.0/8", "::/128")),
)


class BlockedAddressError(OSError):
    """A connection the address policy refuses; `str()` names the address and the rule."""


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """`scrape.allowed_networks` as networks; raises ValueError naming a bad or forbidden entry."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a network such as 10.1.0.0/16 or an address") from None
        for name, ranges in NEVER:
            if any(network.overlaps(r) for r in ranges if r.version == network.version):
                raise ValueError(f"{value!r} overlaps {name} addresses, which pricemon never contacts")
        networks.append(network)
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address


def _range_of(address: IPAddress, table: tuple[tuple[str, tuple[IPNetwork, ...]], ...]) -> tuple[str, IPNetwork] | None:
    for name, ranges in table:
        for network in ranges:
            if network.version == address.version and address in network:
                return name, network
    return None


class AddressPolicy:
    """The addresses one competitor's requests may connect to (decisions cached per address)."""

    def __init__(self, base_url: str, allowed_networks: Sequence[IPNetwork] = ()) -> None:
        self.allowed = tuple(allowed_networks)
        self.base_ranges: tuple[IPNetwork, ...] = ()
        host = (urlsplit(str(base_url)).hostname or "").rstrip(".").lower()
        base = _address(host)
        if base is None and (host == "localhost" or host.endswith(".localhost")):
            base = ipaddress.ip_address("127.0.0.1")  # RFC 6761: always loopback
        if base is not None and _range_of(base, NEVER) is None:
            found = _range_of(base, NON_PUBLIC)
            if found is not None:
                self.base_ranges = (found[1],)
        self._decisions: dict[str, str | None] = {}

    def refusal(self, address_text: str) -> str | None:
        """Why `address_text` (an IP address) must not be contacted, or None if it may be."""
        decision = self._decisions.get(address_text, "")
        if decision != "":
            return decision
        decision = self._decide(address_text)
        if len(self._decisions) < 4096:
            self._decisions[address_text] = decision
        return decision

    def refusal_for_host(self, host: str) -> str | None:
        """For a URL's host: the refusal if it is an address literal; names are checked at connect."""
        host = host.strip("[]")
        return self.refusal(host) if _address(host) is not None else None

    def _decide(self, address_text: str) -> str | None:
        address = _address(address_text)
        if address is None:
            return None  # not an address: a name, checked when it has been resolved
        never = _range_of(address, NEVER)
        if never is not None:
            return f"{address_text} is a {never[0]} address ({never[1]}); pricemon never contacts it"
        if any(address.version == n.version and address in n for n in (*self.base_ranges, *self.allowed)):
            return None
        found = _range_of(address, NON_PUBLIC)
        if found is not None:
            name, network = found
        elif not address.is_global:
            name, network = "non-public", ipaddress.ip_network(address)
        else:
            return None
        return (
            f"{address_text} is a {name} address ({network}), outside the competitor's base_url network"
            " and scrape.allowed_networks"
        )

    def check_socket(self, addr_info: Any) -> socket.socket:
        """aiohttp's `socket_factory`: refuse before connecting, else a socket like the default."""
        family, type_, proto, _, sockaddr = addr_info
        refusal = self.refusal(str(sockaddr[0]))
        if refusal is not None:
            raise BlockedAddressError(refusal)
        return socket.socket(family=family, type=type_, proto=proto)
