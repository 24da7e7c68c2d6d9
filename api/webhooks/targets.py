"""Where a webhook may be sent: an http or https URL whose host resolves to globally routable addresses only.

The check runs when an endpoint is created (a refused URL is a 422) and again
before every delivery attempt, whose connection then goes to the address
that was checked, so a name that resolves elsewhere later (DNS rebinding)
cannot reach an internal service. ``TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true``
lifts the address rule (tests, receivers on the operator's own network).

Globally routable means ``ipaddress``'s ``is_global``, and outside
:data:`NOT_GLOBAL` and :data:`DOCUMENTATION` (special-purpose ranges that
some Python versions call global). An IPv6 address that carries an IPv4 one — IPv4-mapped, NAT64
(``64:ff9b::/96``), 6to4 (``2002::/16``), Teredo (``2001::/32``) — is
judged by that IPv4 address too: ``2002:7f00:1::1`` reaches 127.0.0.1
through any 6to4 relay, however global its own prefix looks.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048

#: Not globally reachable (IANA special-purpose address registries) though Python 3.11's ``is_global``
#: says they are: IETF protocol assignments (192.0.0.8 among them), the deprecated 6to4 relay anycast,
#: local-use NAT64 and SRv6 SIDs.
NOT_GLOBAL = tuple(
    ipaddress.ip_network(network) for network in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "5f00::/16")
)
#: Shared address space (RFC 6598): carrier-grade NAT, inside a provider's network.
SHARED = ipaddress.ip_network("100.64.0.0/10")
#: Documentation and example ranges (RFC 5737, 3849, 9637).
DOCUMENTATION = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
#: NAT64's well-known prefix: the last 32 bits are the IPv4 address a translator connects to.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The URL is not one a webhook may be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: httpx.URL
    address: IPAddress

    def request_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address (the Host header keeps the name)."""
        return self.url.copy_with(host=str(self.address))


def parse(url: str) -> httpx.URL:
    """``url`` as httpx reads it; TargetRefused unless http(s) with a host."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    if not parsed.host:
        raise TargetRefused("the URL has no host")
    return parsed


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not globally routable (``"a loopback address"``, …), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            form, inner, translated = carried
            for v4 in inner:
                kind = _kind(v4)
                if kind is not None:
                    return f"{form} of {v4}, {kind}"
            if translated:  # the IPv4 address is the one connected to; the IPv6 form is only its spelling
                return None
    return _kind(address)


def _kind(address: IPAddress) -> str | None:
    for kind, flag in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("an unspecified address", address.is_unspecified),
        ("a shared (carrier-grade NAT) address", address in SHARED),
        ("a documentation address", any(address in network for network in DOCUMENTATION)),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("a special-purpose address", not address.is_global or any(address in network for network in NOT_GLOBAL)),
    ):
        if flag:
            return kind
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address], bool] | None:
    """(form, the IPv4 addresses it carries, whether a connection goes to that IPv4 address itself)."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped address", [address.ipv4_mapped], True
    if address in NAT64:
        return "a NAT64 address", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)], True
    if address.sixtofour is not None:
        return "a 6to4 address", [address.sixtofour], False
    if address.teredo is not None:
        server, client = address.teredo
        return "a Teredo address", [client, server], False
    return None


def resolve(url: httpx.URL) -> list[IPAddress]:
    """The addresses ``url``'s host stands for (itself for an IP literal)."""
    try:
        return [ipaddress.ip_address(url.host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(
            url.host, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the host {url.host!r} does not resolve: {exc}") from None
    out: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in out:
            out.append(address)
    return out


def check(url: str, *, allow_private: bool) -> Target:
    """The target to send to; TargetRefused for a bad URL or, unless ``allow_private``, a non-global host.

    Every address the host resolves to must be globally routable (one private
    address among public ones is refused too: the client may pick any of them).
    """
    parsed = parse(url)
    addresses = resolve(parsed)
    if not addresses:
        raise TargetRefused(f"the host {parsed.host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            kind = refusal(address)
            if kind is not None:
                raise TargetRefused(
                    f"the host {parsed.host!r} resolves to {address}, {kind}; webhooks go to globally routable "
                    "addresses only (the operator may set TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true)"
                )
    return Target(parsed, addresses[0])
