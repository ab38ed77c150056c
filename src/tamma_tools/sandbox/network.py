"""Network policy: which URLs a tool may fetch, enforced again at connect time.

Validate the *resolved addresses*, never the host string: glibc's resolver accepts every
``inet_aton`` form (``127.1``, ``0x7f.1``, ``2130706433``) that ``ipaddress`` rejects, and Python
3.11's ``is_global`` is wrong for NAT64, 6to4, ``fec0::/10`` and ``::ffff:127.0.0.1`` (research
sandbox.md §2.10). So the address check is an explicit block list with embedded IPv4 unwrapped.
URLs are parsed with httpx's own parser, the one the request is sent with, so there is no parser
differential (``http://127.0.0.1:18080\\@example.com/`` reached 127.0.0.1 through ``requests``).
The checked addresses are pinned: ``fetch`` (``sandbox/fetch.py``) connects through a network
backend that dials only them (TLS SNI and ``Host`` keep the name), which defeats DNS rebinding
between check and connect.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from tamma_tools.errors import NetworkDenied
from tamma_tools.sandbox.fetch import FetchResult, PolicyTransport, fetch

if TYPE_CHECKING:
    from tamma_tools.sandbox.config import SandboxConfig

__all__ = [
    "BLOCKED_NETWORKS",
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "CheckedURL",
    "FetchResult",
    "NetworkPolicy",
    "PolicyTransport",
    "Resolver",
    "address_is_public",
    "fetch",
    "normalise_host",
]

Resolver = Callable[[str], Sequence[str]]
"""Host name -> IP address strings (the default is ``socket.getaddrinfo``)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (neither private nor global in ipaddress)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, incl. cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1 is "global" to ipaddress
        "::ffff:0:0/96",
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765): ::ffff:0:7f00:1 is "global"
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/32",  # Teredo
        "2001:db8::/32",
        "2002::/16",  # 6to4
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.packet.net",
        "metadata.tencentyun.com",
    }
)
"""Cloud metadata names, refused by name before any lookup."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254",
                                      "100.100.100.200")
)  # fmt: skip
"""Refused even with ``allow_private_networks_for_testing``: credentials live there."""

MSG_DISABLED = (
    "network access is disabled in this sandbox; to allow it set "
    "SandboxConfig.enable_network_access=True (and list allowed_domains)"
)
MSG_INVALID = "URL {url!r} is not a valid absolute URL: {reason}"
MSG_SCHEME = "URL scheme {scheme!r} is not allowed; use http:// or https://"
MSG_USERINFO = "URLs with credentials (user:password@host) are not allowed; send a header instead"
MSG_PORT = "port {port} is not allowed; allowed ports are: {ports}"
MSG_BLOCKED = "domain {host!r} is blocked by the sandbox policy (rule {rule!r})"
MSG_NOT_ALLOWED = "domain {host!r} is not in the allowed domains; allowed domains are: {allowed}"
MSG_METADATA = "{host!r} is a cloud metadata endpoint; it is never reachable from tools"
MSG_PRIVATE = (
    "{host!r} is or resolves to {address}, a private, loopback, link-local or reserved address; "
    "only public internet addresses may be fetched"
)
MSG_UNRESOLVABLE = "host {host!r} could not be resolved: {reason}"

_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\Z", re.I)


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL that passed the policy, with the addresses a connection may use."""

    url: str
    scheme: str
    host: str
    """IDNA-encoded, lower-case, without a trailing dot (or the IP's canonical text)."""
    port: int
    addresses: tuple[str, ...]


def normalise_host(host: str) -> str:
    """IDNA-encode, lower-case and strip one trailing dot, as lists and URLs are compared."""
    host = host.strip().lower().removeprefix("*.").rstrip(".")
    if not host:
        return host
    try:
        return httpx.URL(f"http://{host}/").raw_host.decode("ascii").rstrip(".")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        return host


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address tunnelled in a mapped, NAT64 or 6to4 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return None


def address_is_public(address: str | IPAddress) -> bool:
    """True only for globally routable unicast addresses (block list first, then ``is_global``)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the kernel dials the IPv4 address itself
            return address_is_public(ip.ipv4_mapped)
        inner = _embedded_ipv4(ip)
        if inner is not None and not address_is_public(inner):
            return False
    if any(ip.version == net.version and ip in net for net in BLOCKED_NETWORKS):
        return False
    return ip.is_global and not ip.is_multicast


def _ip_literal(host: str) -> IPAddress | None:
    """The IP a host string denotes, including glibc's legacy forms (``127.1``, ``0x7f.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _system_resolver(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _matches(host: str, domains: Sequence[str]) -> str | None:
    for domain in domains:
        if domain and (host == domain or host.endswith("." + domain)):
            return domain
    return None


class NetworkPolicy:
    """Decides which URLs tools may fetch; see the module docstring for why it looks like this."""

    def __init__(
        self,
        *,
        enabled: bool = False,
        allowed_domains: Sequence[str] = (),
        blocked_domains: Sequence[str] = (),
        allowed_ports: Sequence[int] = (80, 443),
        allow_private_networks_for_testing: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        self.enabled = enabled
        self.allowed_domains = tuple(d for d in map(normalise_host, allowed_domains) if d)
        self.blocked_domains = tuple(d for d in map(normalise_host, blocked_domains) if d)
        self.allowed_ports = tuple(int(p) for p in allowed_ports)
        self.allow_private_networks_for_testing = allow_private_networks_for_testing
        self.resolver: Resolver = resolver or _system_resolver

    def client(
        self, *, timeout_s: float = 10.0, max_response_bytes: int = 10 * 1024 * 1024
    ) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` that can reach only what this policy allows.

        Every request is checked and its connection pinned (``PolicyTransport``); redirects are
        not followed (``fetch`` follows them, re-checking each hop) and proxy environment
        variables are ignored, since through a proxy we would check the proxy, not the target.
        """
        return httpx.AsyncClient(
            transport=PolicyTransport(self, max_response_bytes=max_response_bytes),
            trust_env=False,
            follow_redirects=False,
            timeout=timeout_s,
        )

    @classmethod
    def from_config(
        cls, config: SandboxConfig, *, resolver: Resolver | None = None
    ) -> NetworkPolicy:
        return cls(
            enabled=config.enable_network_access,
            allowed_domains=config.allowed_domains,
            blocked_domains=config.blocked_domains,
            allowed_ports=config.allowed_ports,
            allow_private_networks_for_testing=config.allow_private_networks_for_testing,
            resolver=resolver,
        )

    def check_url(self, url: str, *, resolver: Resolver | None = None) -> CheckedURL:
        """Parse, check and resolve ``url`` once; raise ``NetworkDenied`` naming the rule."""
        if not self.enabled:
            raise NetworkDenied(MSG_DISABLED, rule="network.disabled")
        parsed = self._parse(url)
        scheme = parsed.scheme
        if scheme not in ("http", "https"):
            raise NetworkDenied(MSG_SCHEME.format(scheme=scheme), rule="network.scheme")
        if parsed.userinfo:
            raise NetworkDenied(MSG_USERINFO, rule="network.userinfo")
        host = parsed.raw_host.decode("ascii", "replace").lower().rstrip(".")
        if not host or "%" in host or any(c.isspace() for c in host):
            raise NetworkDenied(
                MSG_INVALID.format(url=url, reason="the host is empty or malformed"),
                rule="network.invalid_url",
            )
        literal = _ip_literal(host)
        if literal is not None:
            host = str(literal)
        if (
            host in METADATA_HOSTS
            or _matches(host, tuple(METADATA_HOSTS)) == "metadata.google.internal"
        ):
            raise NetworkDenied(MSG_METADATA.format(host=host), rule="network.metadata_host")
        if literal is not None:
            self._check_metadata(host, literal)
        port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
        if port not in self.allowed_ports:
            ports = ", ".join(map(str, self.allowed_ports)) or "(none)"
            raise NetworkDenied(MSG_PORT.format(port=port, ports=ports), rule="network.port")
        blocked = _matches(host, self.blocked_domains)
        if blocked is not None:
            raise NetworkDenied(
                MSG_BLOCKED.format(host=host, rule=blocked), rule="network.domain_blocked"
            )
        if self.allowed_domains and _matches(host, self.allowed_domains) is None:
            raise NetworkDenied(
                MSG_NOT_ALLOWED.format(host=host, allowed=", ".join(self.allowed_domains)),
                rule="network.domain_not_allowed",
            )
        addresses = [literal] if literal is not None else self._resolve(host, resolver)
        for ip in addresses:
            self._check_address(host, ip)
        return CheckedURL(
            url=str(parsed.copy_with(host=host) if literal is not None else parsed),
            scheme=scheme,
            host=host,
            port=port,
            addresses=tuple(str(ip) for ip in addresses),
        )

    @staticmethod
    def _parse(url: str) -> httpx.URL:
        if not isinstance(url, str) or not url or any(ord(c) < 0x21 or c == "\x7f" for c in url):
            raise NetworkDenied(
                MSG_INVALID.format(url=url, reason="empty, or contains spaces/control characters"),
                rule="network.invalid_url",
            )
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError, UnicodeError) as exc:
            raise NetworkDenied(
                MSG_INVALID.format(url=url, reason=str(exc)), rule="network.invalid_url"
            ) from None
        if parsed.scheme and parsed.scheme not in ("http", "https"):
            raise NetworkDenied(MSG_SCHEME.format(scheme=parsed.scheme), rule="network.scheme")
        if not parsed.is_absolute_url:
            raise NetworkDenied(
                MSG_INVALID.format(url=url, reason="give a full URL such as https://example.com/"),
                rule="network.invalid_url",
            )
        return parsed

    def _resolve(self, host: str, resolver: Resolver | None) -> list[IPAddress]:
        resolve = resolver or self.resolver
        try:
            answers = list(resolve(host))
        except (OSError, UnicodeError, ValueError) as exc:
            raise NetworkDenied(
                MSG_UNRESOLVABLE.format(host=host, reason=str(exc) or type(exc).__name__),
                rule="network.unresolvable",
            ) from None
        out: list[IPAddress] = []
        for answer in answers:
            try:
                out.append(ipaddress.ip_address(str(answer).split("%", 1)[0]))
            except ValueError:
                raise NetworkDenied(
                    MSG_UNRESOLVABLE.format(host=host, reason=f"bad address {answer!r}"),
                    rule="network.unresolvable",
                ) from None
        if not out:
            raise NetworkDenied(
                MSG_UNRESOLVABLE.format(host=host, reason="no addresses"),
                rule="network.unresolvable",
            )
        return list(dict.fromkeys(out))

    @staticmethod
    def _check_metadata(host: str, ip: IPAddress) -> None:
        inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        if ip in METADATA_ADDRESSES or inner in METADATA_ADDRESSES:
            raise NetworkDenied(MSG_METADATA.format(host=host), rule="network.metadata_host")

    def _check_address(self, host: str, ip: IPAddress) -> None:
        self._check_metadata(host, ip)
        if self.allow_private_networks_for_testing:
            return
        if not address_is_public(ip):
            raise NetworkDenied(
                MSG_PRIVATE.format(host=host, address=ip), rule="network.private_address"
            )
