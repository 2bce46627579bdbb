"""The SSRF guard: every spelling of an inside address is refused before anything reaches it,
DNS answers and redirects included, while allowlisted hosts still work."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp import ThreadedResolver
from aiohttp.abc import AbstractResolver

from kagentbot.net.guard import (
    Allowlist,
    BlockedAddress,
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    GuardedResolver,
    blocked_reason,
    guarded_fetch,
)
from tests.tools.fake_web import FakeWeb


class NameMap(AbstractResolver):
    """DNS at the resolver interface: names the test makes up resolve where the test says."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        if host not in self.names:  # localhost and friends: the system resolver, /etc/hosts
            return await ThreadedResolver().resolve(host, port, family)
        return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                 "proto": 0, "flags": 0} for ip in self.names[host]]

    async def close(self):
        pass


DNS = NameMap({
    "evil.example": ["127.0.0.1"],
    "rebind.example": ["93.184.216.34", "127.0.0.1"],  # one public answer to pass a naive check, one inside
    "v6.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "news.example": ["127.0.0.1"],
    "internal.example": ["127.0.0.1"],
})

BYPASSES = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://017700000001:{port}/",
    "http://127.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.000.000.001:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://①②⑦.0.0.1:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::127.0.0.1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://user:pw@127.0.0.1:{port}/",
    "http://example.com@127.0.0.1:{port}/",
    "http://evil.example:{port}/",
    "http://rebind.example:{port}/",
    "http://v6.example:{port}/",
    "http://mapped.example:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[fe80::1%25eth0]/",
    "http://[ff02::1]/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_GET",
]


@pytest.fixture
async def victim():
    async with FakeWeb() as server:
        yield server


async def test_every_bypass_is_refused_and_nothing_arrives(victim):
    policy = FetchPolicy(allowlist=Allowlist.parse(["10.9.9.9"]), timeout=5)
    assert len(BYPASSES) >= 20
    for template in BYPASSES:
        url = template.format(port=victim.port)
        with pytest.raises(FetchRefused):
            await guarded_fetch(url, policy, resolver=DNS)
    assert victim.requests == []
    # the same server answers as soon as it is allowlisted: the refusals above were the guard's doing
    page = await guarded_fetch(f"http://127.0.0.1:{victim.port}/pages/ski_weekend.html",
                               FetchPolicy(allowlist=Allowlist.parse(["127.0.0.1"])))
    assert b"Thaiwoo" in page.body and victim.hits() == 1


async def test_redirect_from_an_allowed_host_into_the_network_is_refused(web, victim):
    policy = FetchPolicy(allowlist=Allowlist.parse(["news.example"]), timeout=5)
    for target in (f"http://internal.example:{victim.port}/pages/ski_weekend.html",
                   f"http://127.0.0.1:{victim.port}/", f"http://2130706433:{victim.port}/",
                   f"http://[::ffff:127.0.0.1]:{victim.port}/"):
        url = f"http://news.example:{web.port}/redirect?to={target}"
        with pytest.raises(FetchRefused):
            await guarded_fetch(url, policy, resolver=DNS)
    assert web.hits("/redirect") == 4  # the allowed first hop was fetched each time...
    assert victim.requests == []  # ...and the private second hop never


async def test_allowlisted_redirects_are_followed_and_counted(web):
    policy = FetchPolicy(allowlist=Allowlist.parse(["127.0.0.0/8"]), max_redirects=2)
    page_url = f"http://127.0.0.1:{web.port}/pages/spring_festival_zh.html"
    once = f"http://127.0.0.1:{web.port}/redirect?to={page_url}"
    page = await guarded_fetch(once, policy)
    assert page.url == page_url and "正月初一" in page.text()
    with pytest.raises(FetchFailed, match="more than 0 redirects"):
        await guarded_fetch(once, FetchPolicy(allowlist=policy.allowlist, max_redirects=0))


async def test_limits_on_size_type_time_and_status(web):
    allow = Allowlist.parse(["127.0.0.1"])
    with pytest.raises(FetchFailed, match="byte limit"):
        await guarded_fetch(f"{web.base}/big", FetchPolicy(allowlist=allow, max_bytes=100_000))
    with pytest.raises(FetchFailed, match="image/png"):
        await guarded_fetch(f"{web.base}/image.png", FetchPolicy(allowlist=allow))
    with pytest.raises(FetchFailed, match="within 0.3 s"):
        await guarded_fetch(f"{web.base}/slow", FetchPolicy(allowlist=allow, timeout=0.3))
    with pytest.raises(FetchFailed, match="HTTP 404"):
        await guarded_fetch(f"{web.base}/pages/missing.html", FetchPolicy(allowlist=allow))


async def test_the_connect_time_check_stands_on_its_own():
    guard = GuardedResolver(Allowlist())
    for sockaddr, family in ((("127.0.0.1", 80), socket.AF_INET), (("::ffff:10.0.0.1", 80, 0, 0), socket.AF_INET6)):
        with pytest.raises(BlockedAddress):
            guard.socket_factory((family, socket.SOCK_STREAM, 6, "", sockaddr))
    sock = guard.socket_factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)))
    sock.close()


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("address", ["198.18.0.1", "192.0.0.8", "240.0.0.1", "fec0::1", "2001::1", "fc00::1", "::"])
def test_special_ranges_are_blocked(address):
    assert blocked_reason(ipaddress.ip_address(address))


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("10.1", "10.0.0.1"), ("[::ffff:7f00:1]", "::ffff:7f00:1"), ("fe80::1%eth0", "fe80::1"),
    ("abc1.de", None), ("cafe.be", None), ("1e100.net", None), ("example.com", None),
])
def test_literal_address_reads_what_getaddrinfo_reads(host, address):
    from kagentbot.net.guard import literal_address

    found = literal_address(host)
    assert (str(found) if found else None) == address
