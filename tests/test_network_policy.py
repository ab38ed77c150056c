"""Network policy: refused URLs never reach a socket, and every refusal names its rule.

A real listener on 127.0.0.1 counts connections: every URL in the table that the policy refuses
is also sent through ``fetch``, and the listener must never see a connection
(research/sandbox.md §2.10: plain ``requests`` reached it with 12 of 15 URL forms).
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.errors import NetworkDenied, ResourceLimitExceeded, TammaToolsError
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.network import NetworkPolicy, address_is_public, fetch

PUBLIC = "93.184.216.34"
NAMES: dict[str, list[str]] = {
    "good.example": [PUBLIC],
    "xn--mnchen-3ya.example": [PUBLIC],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example": ["127.0.0.1"],
    "mixed.example": [PUBLIC, "127.0.0.1"],
    "v6local.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "meta.example": ["169.254.169.254"],
    "cgnat.example": ["100.64.1.1"],
    "evil.example": ["127.0.0.1"],
    "example.com": [PUBLIC],
    "sub.example.com": [PUBLIC],
    "bad.example.com": [PUBLIC],
    "x.bad.example.com": [PUBLIC],
    "notexample.com": [PUBLIC],
}


def resolver(host: str) -> list[str]:
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[host]


@dataclass
class Listener:
    port: int
    hits: list[str]
    connections: list[int]


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 100_000 if self.path == "/big" else b"hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.hits: list[str] = []
        self.connections: list[int] = []

    def verify_request(self, request: object, client_address: object) -> bool:
        self.connections.append(1)
        return True


def _serve(host: str) -> Iterator[Listener]:
    server = _Server((host, 0))
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Listener(server.server_address[1], server.hits, server.connections)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def listener() -> Iterator[Listener]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def second_listener() -> Iterator[Listener]:
    yield from _serve("127.0.0.1")


def strict_policy(port: int, **kw: object) -> NetworkPolicy:
    return NetworkPolicy(enabled=True, allowed_ports=(80, 443, port), resolver=resolver, **kw)  # type: ignore[arg-type]


# (url template, expected rule or "ok"); "{port}" is the loopback listener's port.
URLS: list[tuple[str, str]] = [
    ("http://127.0.0.1:{port}/", "network.private_address"),
    ("http://localhost:{port}/", "network.private_address"),
    ("http://LOCALHOST:{port}/", "network.private_address"),
    ("http://localhost.:{port}/", "network.private_address"),
    ("http://2130706433:{port}/", "network.private_address"),
    ("http://017700000001:{port}/", "network.private_address"),
    ("http://0x7f.1:{port}/", "network.private_address"),
    ("http://0x7f000001:{port}/", "network.private_address"),
    ("http://127.1:{port}/", "network.private_address"),
    ("http://127.0.1:{port}/", "network.private_address"),
    ("http://0:{port}/", "network.private_address"),
    ("http://0.0.0.0:{port}/", "network.private_address"),
    ("http://[::1]:{port}/", "network.private_address"),
    ("http://[::]:{port}/", "network.private_address"),
    ("http://[::ffff:127.0.0.1]:{port}/", "network.private_address"),
    ("http://[::ffff:7f00:1]:{port}/", "network.private_address"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/", "network.private_address"),
    ("http://[::127.0.0.1]:{port}/", "network.private_address"),
    ("http://[::ffff:0:7f00:1]:{port}/", "network.private_address"),  # IPv4-translated
    ("http://[64:ff9b::7f00:1]:{port}/", "network.private_address"),
    ("http://[64:ff9b::a00:1]/", "network.private_address"),
    ("http://[2002:7f00:1::]:{port}/", "network.private_address"),
    ("http://[2002:c0a8:101::1]/", "network.private_address"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "network.private_address"),
    ("http://[fe80::1]/", "network.private_address"),
    ("http://[fc00::1]/", "network.private_address"),
    ("http://[fd12:3456::1]/", "network.private_address"),
    ("http://[fec0::1]/", "network.private_address"),
    ("http://[ff02::1]/", "network.private_address"),
    ("http://[2001:db8::1]/", "network.private_address"),
    ("http://10.0.0.1/", "network.private_address"),
    ("http://172.16.5.4/", "network.private_address"),
    ("http://172.31.255.255/", "network.private_address"),
    ("http://192.168.1.1/", "network.private_address"),
    ("http://100.64.0.1/", "network.private_address"),
    ("http://169.254.1.1/", "network.private_address"),
    ("http://224.0.0.1/", "network.private_address"),
    ("http://239.255.255.250/", "network.private_address"),
    ("http://240.0.0.1/", "network.private_address"),
    ("http://255.255.255.255/", "network.private_address"),
    ("http://192.0.2.1/", "network.private_address"),
    ("http://198.51.100.7/", "network.private_address"),
    ("http://203.0.113.9/", "network.private_address"),
    ("http://198.18.0.1/", "network.private_address"),
    ("http://127。0。0。1:{port}/", "network.private_address"),  # U+3002 dots
    ("http://internal.example:{port}/", "network.private_address"),
    ("http://mixed.example:{port}/", "network.private_address"),
    ("http://v6local.example:{port}/", "network.private_address"),
    ("http://mapped.example:{port}/", "network.private_address"),
    ("http://cgnat.example/", "network.private_address"),
    ("http://169.254.169.254/latest/meta-data/", "network.metadata_host"),
    ("http://[::ffff:169.254.169.254]/", "network.metadata_host"),
    ("http://[::ffff:a9fe:a9fe]/", "network.metadata_host"),
    ("http://[fd00:ec2::254]/", "network.metadata_host"),
    ("http://2852039166/", "network.metadata_host"),  # 169.254.169.254 as one number
    ("http://meta.example/", "network.metadata_host"),
    ("http://metadata.google.internal/computeMetadata/v1/", "network.metadata_host"),
    ("http://METADATA.GOOGLE.INTERNAL./", "network.metadata_host"),
    ("http://metadata/", "network.metadata_host"),
    ("http://instance-data/", "network.metadata_host"),
    ("http://a@127.0.0.1:{port}/", "network.userinfo"),
    ("http://user:pw@good.example/", "network.userinfo"),
    ("http://good.example@127.0.0.1:{port}/", "network.userinfo"),
    ("http://127.0.0.1:{port}\\@good.example/", "network.userinfo"),
    ("file:///etc/passwd", "network.scheme"),
    ("gopher://127.0.0.1:{port}/_GET", "network.scheme"),
    ("ftp://good.example/", "network.scheme"),
    ("dict://127.0.0.1:{port}/", "network.scheme"),
    ("ws://good.example/", "network.scheme"),
    ("http://good.example:8080/", "network.port"),
    ("http://good.example:22/", "network.port"),
    ("https://good.example:0/", "network.port"),
    ("http://nxdomain.example/", "network.unresolvable"),
    ("not a url", "network.invalid_url"),
    ("", "network.invalid_url"),
    ("http://", "network.invalid_url"),
    ("//good.example/", "network.invalid_url"),
    ("http://exa mple.com/", "network.invalid_url"),
    ("http://good.example/\r\nHost: x", "network.invalid_url"),
    ("http://[fe80::1%25eth0]/", "network.invalid_url"),
    ("http://good.example/", "ok"),
    ("https://good.example/a?b=c", "ok"),
    ("https://GOOD.example./path", "ok"),
    ("HTTP://good.example/", "ok"),
    ("https://good.example:80/", "ok"),
    ("http://münchen.example/", "ok"),
    ("http://93.184.216.34/", "ok"),
    ("http://[2606:4700:4700::1111]/", "ok"),
]


@pytest.mark.parametrize(("template", "expected"), URLS)
async def test_url_table(listener: Listener, template: str, expected: str) -> None:
    url = template.replace("{port}", str(listener.port))
    policy = strict_policy(listener.port)
    if expected == "ok":
        checked = policy.check_url(url)
        assert checked.addresses and all(address_is_public(a) for a in checked.addresses)
        assert checked.host == checked.host.lower() and not checked.host.endswith(".")
        return
    with pytest.raises(NetworkDenied) as info:
        policy.check_url(url)
    assert info.value.rule == expected, info.value.message
    assert info.value.code == "network_denied"
    with pytest.raises(NetworkDenied) as sent:
        await fetch(policy, "GET", url, timeout_s=2)
    assert sent.value.rule == expected
    assert listener.connections == [] and listener.hits == []


def test_url_table_is_big_enough() -> None:
    assert len(URLS) >= 50
    assert len({rule for _, rule in URLS}) >= 8


def test_host_normalisation() -> None:
    policy = NetworkPolicy(enabled=True, resolver=resolver)
    assert policy.check_url("https://GOOD.example./").host == "good.example"
    assert policy.check_url("http://münchen.example/").host == "xn--mnchen-3ya.example"
    assert policy.check_url("http://good.example/").port == 80
    assert policy.check_url("https://good.example/").port == 443


def test_disabled_policy_refuses_and_says_how_to_enable() -> None:
    for policy in (NetworkPolicy(), NetworkPolicy.from_config(SandboxConfig())):
        with pytest.raises(NetworkDenied) as info:
            policy.check_url("https://good.example/")
        assert info.value.rule == "network.disabled"
        assert "enable_network_access" in info.value.message


def test_domain_allow_and_block_lists_match_subdomains() -> None:
    policy = NetworkPolicy(
        enabled=True,
        allowed_domains=("Example.COM.",),
        blocked_domains=("bad.example.com",),
        resolver=resolver,
    )
    assert policy.check_url("https://example.com/").host == "example.com"
    assert policy.check_url("https://sub.example.com/").host == "sub.example.com"
    for url, rule in (
        ("https://notexample.com/", "network.domain_not_allowed"),
        ("https://good.example/", "network.domain_not_allowed"),
        ("https://bad.example.com/", "network.domain_blocked"),
        ("https://x.bad.example.com/", "network.domain_blocked"),
        ("https://BAD.example.com./", "network.domain_blocked"),
    ):
        with pytest.raises(NetworkDenied) as info:
            policy.check_url(url)
        assert info.value.rule == rule, url
    with pytest.raises(NetworkDenied) as info:
        policy.check_url("https://notexample.com/")
    assert "allowed domains are: example.com" in info.value.message


def test_from_config_carries_every_setting() -> None:
    config = SandboxConfig(
        enable_network_access=True,
        allowed_domains=("example.com",),
        blocked_domains=("bad.example.com",),
        allowed_ports=(443,),
    )
    policy = NetworkPolicy.from_config(config)
    assert policy.enabled and policy.allowed_ports == (443,)
    with pytest.raises(NetworkDenied) as info:
        policy.check_url("http://example.com/", resolver=resolver)
    assert info.value.rule == "network.port"


# --- connections ---------------------------------------------------------------------------


async def test_loopback_reachable_only_with_the_test_switch(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/"
    with pytest.raises(NetworkDenied):
        await fetch(strict_policy(listener.port), "GET", url)
    assert listener.connections == []
    testing = strict_policy(listener.port, allow_private_networks_for_testing=True)
    result = await fetch(testing, "GET", url)
    assert result.status_code == 200 and result.body == b"hello"
    assert len(listener.connections) == 1  # the counter really counts


async def test_metadata_refused_even_with_the_test_switch() -> None:
    testing = NetworkPolicy(enabled=True, allow_private_networks_for_testing=True)
    with pytest.raises(NetworkDenied) as info:
        testing.check_url("http://169.254.169.254/latest/meta-data/")
    assert info.value.rule == "network.metadata_host"


async def test_dns_rebinding_connects_to_the_checked_address(listener: Listener) -> None:
    """The first answer is public, later ones loopback: the socket must go to the first."""
    calls: list[str] = []

    def rebinding(host: str) -> list[str]:
        calls.append(host)
        return [PUBLIC] if len(calls) == 1 else ["127.0.0.1"]

    policy = NetworkPolicy(enabled=True, allowed_ports=(listener.port,), resolver=rebinding)
    with pytest.raises(TammaToolsError):  # the public address does not answer on this port
        await fetch(policy, "GET", f"http://rebind.example:{listener.port}/", timeout_s=1.5)
    assert calls == ["rebind.example"]  # resolved once
    assert listener.connections == []  # never re-resolved to loopback


async def test_redirects_to_forbidden_targets_are_refused(
    listener: Listener, second_listener: Listener
) -> None:
    """An allowed (test-switch) server redirects; every hop is checked again."""
    policy = NetworkPolicy(
        enabled=True,
        allowed_ports=(listener.port,),
        blocked_domains=("evil.example",),
        allow_private_networks_for_testing=True,
        resolver=resolver,
    )
    base = f"http://127.0.0.1:{listener.port}"
    targets = {
        f"http://127.0.0.1:{second_listener.port}/": "network.port",
        f"http://evil.example:{listener.port}/": "network.domain_blocked",
        "http://169.254.169.254/latest/meta-data/": "network.metadata_host",
        "file:///etc/passwd": "network.scheme",
        f"http://user@127.0.0.1:{listener.port}/": "network.userinfo",
    }
    for target, rule in targets.items():
        with pytest.raises(NetworkDenied) as info:
            await fetch(policy, "GET", f"{base}/redirect/{target}")
        assert info.value.rule == rule, target
    assert second_listener.connections == []
    assert listener.hits == [f"/redirect/{t}" for t in targets]  # only the first hop was sent


async def test_redirects_are_followed_within_the_limit(listener: Listener) -> None:
    policy = strict_policy(listener.port, allow_private_networks_for_testing=True)
    base = f"http://127.0.0.1:{listener.port}"
    result = await fetch(policy, "GET", f"{base}/redirect//redirect/{base}/")
    assert result.status_code == 200 and result.body == b"hello"
    assert len(result.redirects) == 2
    with pytest.raises(NetworkDenied) as info:
        await fetch(policy, "GET", f"{base}/loop", max_redirects=5)
    assert info.value.rule == "network.too_many_redirects"
    assert listener.hits.count("/loop") == 6


async def test_response_body_is_capped(listener: Listener) -> None:
    policy = strict_policy(listener.port, allow_private_networks_for_testing=True)
    url = f"http://127.0.0.1:{listener.port}/big"
    result = await fetch(policy, "GET", url, max_response_bytes=1000)
    assert result.truncated and len(result.body) == 1000
    whole = await fetch(policy, "GET", url, max_response_bytes=200_000)
    assert not whole.truncated and len(whole.body) == 100_000


async def test_proxy_environment_is_ignored(listener: Listener, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{listener.port}")
    policy = NetworkPolicy(enabled=True, resolver=resolver)
    with pytest.raises(TammaToolsError):
        await fetch(policy, "GET", "http://192.0.2.1/")
    assert listener.connections == []


# --- properties ----------------------------------------------------------------------------

_IPV4 = st.integers(min_value=0, max_value=2**32 - 1)


def _forms(n: int) -> list[str]:
    a, b, c, d = n.to_bytes(4, "big")
    return [
        f"{a}.{b}.{c}.{d}",
        str(n),
        hex(n),
        f"0{n:o}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{hex(a)}.{hex(b)}.{hex(c)}.{hex(d)}",
        f"[::ffff:{a}.{b}.{c}.{d}]",
        f"[64:ff9b::{a:02x}{b:02x}:{c:02x}{d:02x}]",
        f"[2002:{a:02x}{b:02x}:{c:02x}{d:02x}::1]",
    ]


def _decide(policy: NetworkPolicy, form: str) -> str:
    try:
        policy.check_url(f"http://{form}/")
    except NetworkDenied as exc:
        return exc.rule
    return "ok"


@settings(max_examples=300, deadline=None)
@given(n=_IPV4)
def test_every_spelling_of_an_ipv4_address_gets_the_same_decision(n: int) -> None:
    """Legacy and mapped spellings decide exactly like dotted quad; NAT64 and 6to4 spellings
    may be stricter (the whole ranges are refused) but never more lenient."""
    policy = NetworkPolicy(enabled=True, resolver=resolver)
    forms = _forms(n)
    dotted = _decide(policy, forms[0])
    for form in forms[1:8]:
        assert _decide(policy, form) == dotted, (forms[0], form)
    if dotted != "ok":
        for form in forms[8:]:
            assert _decide(policy, form) != "ok", (forms[0], form)
    private = ("127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/8", "169.254.0.0/16")
    if any(ipaddress.IPv4Address(n) in ipaddress.ip_network(net) for net in private):
        assert dotted != "ok"


@settings(max_examples=300, deadline=None)
@given(host=st.text(max_size=40), port=st.integers(min_value=-5, max_value=70000))
def test_any_host_string_is_refused_or_public(host: str, port: int) -> None:
    policy = NetworkPolicy(enabled=True, resolver=resolver)
    try:
        checked = policy.check_url(f"http://{host}:{port}/")
    except NetworkDenied as exc:
        assert exc.rule.startswith("network.")
        return
    assert all(address_is_public(a) for a in checked.addresses)


# --- policy.client(): the same rules for callers that use httpx directly --------------------


async def test_client_enforces_the_policy_on_every_request(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/"
    async with strict_policy(listener.port).client() as client:
        for form in (url, f"http://0x7f.1:{listener.port}/", f"http://[::1]:{listener.port}/"):
            with pytest.raises(NetworkDenied) as info:
                await client.get(form)
            assert info.value.rule == "network.private_address"
    assert listener.connections == []
    testing = strict_policy(listener.port, allow_private_networks_for_testing=True)
    async with testing.client() as client:
        response = await client.get(f"http://0x7f.1:{listener.port}/")
        assert response.status_code == 200 and response.text == "hello"
        redirect = await client.get(f"{url}redirect//")
        assert redirect.status_code == 302  # never followed by the client itself


async def test_client_pins_the_checked_address(listener: Listener) -> None:
    calls: list[str] = []

    def rebinding(host: str) -> list[str]:
        calls.append(host)
        return [PUBLIC] if len(calls) == 1 else ["127.0.0.1"]

    policy = NetworkPolicy(enabled=True, allowed_ports=(listener.port,), resolver=rebinding)
    async with policy.client(timeout_s=1.5) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://rebind.example:{listener.port}/")
    assert calls == ["rebind.example"]
    assert listener.connections == []


async def test_client_caps_the_response(listener: Listener, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.1:9")  # ignored: trust_env=False
    testing = strict_policy(listener.port, allow_private_networks_for_testing=True)
    async with testing.client(max_response_bytes=1000) as client:
        with pytest.raises(ResourceLimitExceeded):
            await client.get(f"http://127.0.0.1:{listener.port}/big")
        small = await client.get(f"http://127.0.0.1:{listener.port}/")
        assert small.content == b"hello"
