"""Which webhook URLs are refused: only globally routable addresses, IPv4 carried inside IPv6 judged too.

IP literals only, so no test depends on a resolver. Where the reason comes
from ``ipaddress``'s own tables, which differ between Python versions
(192.0.0.8 is private from 3.12.4 on, merely not global before), either
reason is accepted.
"""

from __future__ import annotations

import ipaddress
import re

import pytest

from api.webhooks import targets


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[2002:7f00:1::1]/", "a 6to4 address of 127.0.0.1, a loopback address"),
        ("http://[2002:a00:1::1]/", "a 6to4 address of 10.0.0.1, a private address"),
        ("http://192.0.0.8/", "a (private|special-purpose) address"),
        ("http://192.0.0.9/", "a (private|special-purpose) address"),
        # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted in the last 32 bits)
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "a Teredo address of 127.0.0.1, a loopback address"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "a Teredo address of 192.0.2.45, a documentation address"),
        ("http://[::ffff:10.0.0.1]/", "an IPv4-mapped address of 10.0.0.1, a private address"),
        ("http://[::ffff:192.168.1.1]/", "an IPv4-mapped address of 192.168.1.1, a private address"),
        ("http://[64:ff9b::7f00:1]/", "a NAT64 address of 127.0.0.1, a loopback address"),
        ("http://100.64.0.1/", r"a shared \(carrier-grade NAT\) address"),
        ("http://100.127.255.254/", r"a shared \(carrier-grade NAT\) address"),
        ("http://192.0.2.1/", "a documentation address"),
        ("http://198.51.100.7/", "a documentation address"),
        ("http://203.0.113.200/", "a documentation address"),
        ("http://[2001:db8::1]/", "a documentation address"),
        ("http://[3fff::1]/", "a documentation address"),
        ("http://[5f00::1]/", "a (reserved|special-purpose) address"),
        ("http://192.88.99.1/", "a (private|special-purpose) address"),
        ("http://198.18.0.1/", "a private address"),
        ("http://127.0.0.1:8080/hook", "a loopback address"),
        ("http://[::1]/", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "a link-local address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://0.0.0.0/", "an unspecified address"),
        ("http://240.0.0.1/", "a (private|reserved) address"),
        ("http://[fc00::1]/", "a private address"),
    ],
)
def test_addresses_that_are_not_globally_routable_are_refused(url: str, reason: str) -> None:
    with pytest.raises(targets.TargetRefused) as refused:
        targets.check(url, allow_private=False)
    assert re.search(f", {reason}; ", str(refused.value)), str(refused.value)
    assert targets.check(url, allow_private=True).url == targets.parse(url)  # the operator's flag lifts the rule


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "http://1.1.1.1:8080/",
        "https://[2606:4700:4700::1111]/hook",
        "http://[2002:808:808::1]/",  # 6to4 of a global address
        "http://[::ffff:8.8.8.8]/",  # IPv4-mapped global
        "http://[64:ff9b::808:808]/",  # NAT64 of a global address (an IPv6-only network's DNS64 answer)
        "http://100.128.0.1/",  # just past the shared range
    ],
)
def test_globally_routable_addresses_are_accepted(url: str) -> None:
    target = targets.check(url, allow_private=False)
    assert target.address == ipaddress.ip_address(targets.parse(url).host)


def test_the_request_goes_to_the_checked_address_under_the_url_s_name() -> None:
    target = targets.check("https://[2606:4700:4700::1111]:8443/hooks?x=1", allow_private=False)
    assert target.request_url() == targets.parse("https://[2606:4700:4700::1111]:8443/hooks?x=1")
