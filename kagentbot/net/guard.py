"""Fetching a URL a chat user handed us without letting it reach the bot's own network.

The check runs where it cannot be bypassed: on every address the resolver returns and again on
the socket address aiohttp actually connects to, so odd IP spellings, DNS answers that point
inside and DNS rebinding all meet the same rule. Redirects are followed by hand, one checked hop
at a time, each hop on a fresh connector so no pooled connection carries over."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOWED_CONTENT_TYPES = (
    "text/html", "application/xhtml+xml", "text/plain", "text/markdown",
    "application/json", "application/pdf",
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Ranges Python's flags leave global but no public web page lives in.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")
# one to four dot-separated numbers, each decimal, octal (leading 0) or hex (0x): inet_aton's forms
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+)){0,3}$", re.IGNORECASE)


class FetchRefused(Exception):
    """The URL or an address it leads to is not one the bot may fetch."""


class FetchFailed(Exception):
    """The fetch was allowed but did not give a usable page (status, size, type, time)."""


class BlockedAddress(OSError):
    """Raised inside the connector; an OSError so aiohttp reports it as a connection failure."""


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address is off limits, or None for an ordinary public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (inside {ip})" if inner else None
        if ip in _IPV4_COMPAT:
            return "an IPv4-compatible IPv6 address"
        if ip.teredo or ip.is_site_local:
            return "a tunnelled or site-local IPv6 address"
    for flag in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{flag}"):
            return f"a {flag.replace('_', '-')} address"
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version) or not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host string spells, in any form a resolver would accept, or None for a name.

    getaddrinfo reads 2130706433, 0x7f.1, 017700000001 and 127.1 as 127.0.0.1, so we must too."""
    bare = host.strip("[]").split("%", 1)[0].rstrip(".")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(bare):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        raise FetchRefused(f"host {host!r} looks like a malformed IP address") from None


@dataclass(frozen=True)
class Allowlist:
    """Hosts and networks an intranet deployment lets the bot fetch despite the guard."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for entry in (e.strip().lower() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or any(h.startswith("*.") and name.endswith(h[1:]) for h in self.hosts)

    def allows_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


@dataclass(frozen=True)
class FetchPolicy:
    allowlist: Allowlist = field(default_factory=Allowlist)
    max_bytes: int = 2_000_000
    max_redirects: int = 5
    timeout: float = 20.0
    user_agent: str = "kagentbot"
    content_types: tuple[str, ...] = ALLOWED_CONTENT_TYPES

    @classmethod
    def from_settings(cls, tools: Any) -> FetchPolicy:
        return cls(
            allowlist=Allowlist.parse(tools.browse_allowlist),
            max_bytes=tools.browse_max_bytes,
            max_redirects=tools.browse_max_redirects,
            timeout=tools.browse_timeout,
            user_agent=tools.user_agent,
        )


@dataclass(frozen=True)
class Page:
    url: str  # after redirects
    content_type: str
    charset: str | None
    body: bytes

    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset name Python does not know
            return self.body.decode("utf-8", errors="replace")


class GuardedResolver(AbstractResolver):
    """Resolves through `upstream` and refuses the whole answer if any address is off limits:
    a mixed answer is how rebinding attacks slip one private address past a check."""

    def __init__(self, allowlist: Allowlist, upstream: AbstractResolver | None = None) -> None:
        self._allowlist = allowlist
        self._upstream = upstream or aiohttp.ThreadedResolver()
        self.approved: set[IPAddress] = set()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        literal = literal_address(host)
        if literal is not None:
            self._check(host, literal)
            return [_resolve_result(host, literal, port)]
        answers = await self._upstream.resolve(host, port, family)
        for answer in answers:
            self._check(host, ipaddress.ip_address(answer["host"].split("%", 1)[0]))
        return answers

    def _check(self, host: str, ip: IPAddress) -> None:
        if self._allowlist.allows_host(host) or self._allowlist.allows_ip(ip):
            self.approved.add(ip)
            return
        reason = blocked_reason(ip)
        if reason:
            raise BlockedAddress(f"{host} resolves to {ip}, {reason}")

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """Last check, on the exact address the socket is about to connect to."""
        family, kind, proto, _, sockaddr = addr_info
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = None if ip in self.approved or self._allowlist.allows_ip(ip) else blocked_reason(ip)
        if reason:
            raise BlockedAddress(f"refusing to connect to {ip}, {reason}")
        return socket.socket(family=family, type=kind, proto=proto)

    async def close(self) -> None:
        await self._upstream.close()


def _resolve_result(host: str, ip: IPAddress, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return {"hostname": host, "host": str(ip), "port": port, "family": family, "proto": 0, "flags": socket.AI_NUMERICHOST}


def check_url(url: URL, allowlist: Allowlist) -> None:
    """Refuse what can be refused before any connection: schemes, and hosts that spell an address."""
    if url.scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs can be fetched, not {url.scheme or 'a relative URL'!r}")
    host = url.host
    if not host:
        raise FetchRefused(f"{url} has no host")
    if allowlist.allows_host(host):
        return
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always this machine
        raise FetchRefused(f"{host} is this machine")
    ip = literal_address(host)
    if ip is not None and not allowlist.allows_ip(ip):
        reason = blocked_reason(ip)
        if reason:
            raise FetchRefused(f"{host} is {reason}")


async def guarded_fetch(url: str, policy: FetchPolicy, *, resolver: AbstractResolver | None = None) -> Page:
    """GET a URL under the policy. Raises FetchRefused or FetchFailed with a readable message."""
    try:
        async with asyncio.timeout(policy.timeout):
            return await _follow(URL(url.strip()), policy, resolver)
    except TimeoutError:
        raise FetchFailed(f"{url} did not answer within {policy.timeout:g} s") from None
    except ValueError as exc:  # yarl refuses some malformed URLs
        raise FetchRefused(f"not a valid URL: {exc}") from None


async def _follow(url: URL, policy: FetchPolicy, resolver: AbstractResolver | None) -> Page:
    for _ in range(policy.max_redirects + 1):
        check_url(url, policy.allowlist)
        outcome = await _one_hop(url, policy, resolver)
        if isinstance(outcome, Page):
            return outcome
        url = outcome
    raise FetchFailed(f"more than {policy.max_redirects} redirects")


async def _one_hop(url: URL, policy: FetchPolicy, upstream: AbstractResolver | None) -> Page | URL:
    guard = GuardedResolver(policy.allowlist, upstream)
    connector = aiohttp.TCPConnector(resolver=guard, socket_factory=guard.socket_factory, use_dns_cache=False, force_close=True)
    headers = {"User-Agent": policy.user_agent, "Accept": "text/html,text/plain,application/json,application/pdf;q=0.9,*/*;q=0.1"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        try:
            async with session.get(url, allow_redirects=False) as response:
                return await _read(response, url, policy)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                raise FetchRefused(str(exc.os_error)) from None
            raise FetchFailed(f"could not connect to {url.host}: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise FetchFailed(f"fetching {url} failed: {exc}") from None


async def _read(response: aiohttp.ClientResponse, url: URL, policy: FetchPolicy) -> Page | URL:
    if response.status in REDIRECT_STATUSES:
        location = response.headers.get("Location")
        if not location:
            raise FetchFailed(f"{url} redirects without a Location")
        return url.join(URL(location))
    if response.status >= 400:
        raise FetchFailed(f"{url} answered HTTP {response.status}")
    content_type = response.content_type or ""
    if content_type not in policy.content_types:
        raise FetchFailed(f"{url} is {content_type or 'of unknown type'}; only web pages, text, JSON and PDF can be read")
    if (response.content_length or 0) > policy.max_bytes:
        raise FetchFailed(f"{url} is {response.content_length} bytes, over the {policy.max_bytes} byte limit")
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > policy.max_bytes:
            raise FetchFailed(f"{url} is larger than the {policy.max_bytes} byte limit")
    return Page(str(response.url), content_type, response.charset, bytes(body))
