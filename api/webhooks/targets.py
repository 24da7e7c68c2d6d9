"""Where a webhook may be sent: an http or https URL whose host resolves to public addresses only.

The check runs when an endpoint is created (a refused URL is a 422) and again
before every delivery attempt, whose connection then goes to the address
that was checked, so a name that resolves elsewhere later (DNS rebinding)
cannot reach an internal service. ``TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true``
lifts the address rule (tests, receivers on the operator's own network).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


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
    """Why ``address`` is not a public one, or None when it is."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved or not address.is_global),
    ):
        if flag:
            return kind
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
    """The target to send to; TargetRefused for a bad URL or, unless ``allow_private``, a non-public host.

    Every address the host resolves to must be public (one private address
    among public ones is refused too: the client may pick any of them).
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
                    f"the host {parsed.host!r} resolves to {address}, a {kind} address; "
                    "webhooks go to public addresses only (the operator may set TRAINAPI_WEBHOOK_ALLOW_PRIVATE=true)"
                )
    return Target(parsed, addresses[0])
