"""``http_request`` through the manager: what the model sees for every success and refusal.

A real HTTP server on loopback stands in for the internet; it is reachable only because the
policy is built with the test-only ``allow_private_networks_for_testing`` switch.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tamma_tools.builtin import register_builtin_tools
from tamma_tools.builtin.http import http_request_tool
from tamma_tools.errors import ExecutionError
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.network import NetworkPolicy, fetch
from tamma_tools.types import CallerContext

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
CTX = CallerContext(permissions={"network:request"})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the timeout test hangs up on a slow reply; that broken pipe is expected


class Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: bytes, ctype: str, **extra: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Set-Cookie", "session=secret")
                for key, value in extra.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers),
                     "body": body.decode()}
                )  # fmt: skip
                if self.path == "/text":
                    self._reply(200, "héllo wörld".encode(), "text/plain; charset=utf-8")
                elif self.path == "/redirect":
                    self._reply(302, b"", "text/plain", Location="/text")
                elif self.path == "/binary":
                    self._reply(200, PNG, "image/png")
                elif self.path == "/big":
                    self._reply(200, b"x" * 50_000, "text/plain")
                elif self.path == "/slow":
                    time.sleep(2)
                    self._reply(200, b"late", "text/plain")
                else:
                    echo = {"method": self.command, "body": body.decode(),
                            "x_test": self.headers.get("X-Test"), "host": self.headers.get("Host")}  # fmt: skip
                    self._reply(201, json.dumps(echo).encode(), "application/json", ETag='"v1"')

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://app.test:{self.port}{path}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _policy(server: Server, **kwargs: Any) -> NetworkPolicy:
    options: dict[str, Any] = {
        "enabled": True,
        "allowed_ports": (server.port,),
        "allow_private_networks_for_testing": True,
        "resolver": lambda host: ["127.0.0.1"],
    }
    options.update(kwargs)
    return NetworkPolicy(**options)


@pytest.fixture
def manager(server: Server) -> Iterator[FunctionCallingManager]:
    cfg = SandboxConfig(enable_network_access=True)
    mgr = FunctionCallingManager(sandbox_config=cfg)
    names = register_builtin_tools(
        mgr, config=cfg, network=_policy(server), include=["http_request"]
    )
    assert names == ["http_request"]
    yield mgr
    mgr.close()


def _args(url: str, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"url": url, "method": None, "headers": None, "body": None,
                            "timeout_s": None, "encoding": None}  # fmt: skip
    args.update(kwargs)
    return args


async def _call(mgr: FunctionCallingManager, args: dict[str, Any], ctx: CallerContext = CTX) -> str:
    call = {"id": "c1", "type": "function",
            "function": {"name": "http_request", "arguments": json.dumps(args)}}  # fmt: skip
    result = await mgr.execute_function_call(call, ctx)
    content = result.to_message()["content"]
    assert isinstance(content, str)
    return content


async def test_get_returns_status_text_body_and_selected_headers(
    manager: FunctionCallingManager, server: Server
) -> None:
    out = json.loads(await _call(manager, _args(server.url("/text"))))
    assert out["status"] == 200
    assert out["body"] == "héllo wörld"
    assert out["body_encoding"] == "text"
    assert out["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert "set-cookie" not in out["headers"]
    assert out["url"] == server.url("/text")
    assert out["truncated"] is False


async def test_redirect_is_followed_and_the_final_url_reported(
    manager: FunctionCallingManager, server: Server
) -> None:
    out = json.loads(await _call(manager, _args(server.url("/redirect"))))
    assert out["status"] == 200
    assert out["url"] == server.url("/text")
    assert out["redirects"] == [server.url("/text")]


async def test_post_sends_body_and_headers_and_keeps_the_host_name(
    manager: FunctionCallingManager, server: Server
) -> None:
    args = _args(server.url("/echo"), method="POST", body='{"a": 1}',
                 headers=[{"name": "X-Test", "value": "yes"}])  # fmt: skip
    out = json.loads(await _call(manager, args))
    assert out["status"] == 201
    echoed = json.loads(out["body"])
    assert echoed == {"method": "POST", "body": '{"a": 1}', "x_test": "yes",
                      "host": f"app.test:{server.port}"}  # fmt: skip
    assert out["headers"]["etag"] == '"v1"'


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_every_method_in_the_enum_works(
    manager: FunctionCallingManager, server: Server, method: str
) -> None:
    out = json.loads(await _call(manager, _args(server.url("/echo"), method=method)))
    assert out["status"] == 201
    if method == "HEAD":
        assert out["body"] == ""
    else:
        assert json.loads(out["body"])["method"] == method


async def test_binary_body_is_a_note_unless_base64_is_asked(
    manager: FunctionCallingManager, server: Server
) -> None:
    out = json.loads(await _call(manager, _args(server.url("/binary"))))
    assert out["body_encoding"] == "omitted"
    assert out["body"].startswith(f"[binary content: {len(PNG)} bytes, type image/png")
    out = json.loads(await _call(manager, _args(server.url("/binary"), encoding="base64")))
    assert base64.b64decode(out["body"]) == PNG


async def test_body_over_the_cap_is_cut_with_a_marker(server: Server) -> None:
    mgr = FunctionCallingManager(sandbox_config=SandboxConfig(enable_network_access=True))
    mgr.register_tool(*http_request_tool(_policy(server), max_response_bytes=1000))
    out = json.loads(await _call(mgr, _args(server.url("/big"))))
    assert out["truncated"] is True
    assert out["body_bytes"] == 1000
    assert out["body"].startswith("x" * 1000)
    assert "[truncated: the response is longer than 1000 bytes" in out["body"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("Host", "internal.example", "header 'Host' cannot be set by a tool call"),
        ("host", "x", "header 'host' cannot be set"),
        ("Transfer-Encoding", "chunked", "header 'Transfer-Encoding' cannot be set"),
        ("Connection", "close", "header 'Connection' cannot be set"),
        ("Upgrade", "h2c", "header 'Upgrade' cannot be set"),
        ("Content-Length", "5", "header 'Content-Length' cannot be set"),
        ("X-Ok", "a\r\nX-Evil: 1", "header 'X-Ok' contains CR, LF or NUL"),
        ("X-Ok", "a\nb", "header 'X-Ok' contains CR, LF or NUL"),
        ("X-Evil\r\nHost", "b", "contains CR, LF or NUL"),
        ("Bad Name", "v", "header name 'Bad Name' is not a valid HTTP token"),
        ("", "v", "header name '' is not a valid HTTP token"),
    ],
)
async def test_refused_headers_are_named_and_nothing_is_sent(
    manager: FunctionCallingManager, server: Server, name: str, value: str, expected: str
) -> None:
    before = len(server.requests)
    args = _args(server.url("/echo"), headers=[{"name": name, "value": value}])
    content = await _call(manager, args)
    assert content.startswith("Error [invalid_arguments]: ")
    assert expected in content
    assert len(server.requests) == before


async def test_body_with_get_and_bad_timeouts_are_argument_errors(
    manager: FunctionCallingManager, server: Server
) -> None:
    content = await _call(manager, _args(server.url("/echo"), body="x"))
    assert (
        content
        == "Error [invalid_arguments]: a GET request cannot carry a body; use POST, PUT or PATCH"
    )
    for bad in (0, -1, 31):
        content = await _call(manager, _args(server.url("/echo"), timeout_s=bad))
        assert (
            content == "Error [invalid_arguments]: timeout_s must be greater than 0 and at most 30"
        )


async def test_method_outside_the_enum_is_a_schema_violation(
    manager: FunctionCallingManager, server: Server
) -> None:
    before = len(server.requests)
    content = await _call(manager, _args(server.url("/echo"), method="TRACE"))
    assert content.startswith("Error [schema_violation]")
    assert len(server.requests) == before


async def test_slow_server_hits_the_requested_timeout(
    manager: FunctionCallingManager, server: Server
) -> None:
    started = time.monotonic()
    content = await _call(manager, _args(server.url("/slow"), timeout_s=0.3))
    assert content.startswith("Error [timeout]: request to ")
    assert "did not finish within 0.3 s" in content
    assert time.monotonic() - started < 1.5


async def test_disabled_network_refuses_and_says_how_to_enable(server: Server) -> None:
    mgr = FunctionCallingManager()
    assert "http_request" in register_builtin_tools(mgr, config=SandboxConfig())
    content = await _call(mgr, _args(server.url("/text")))
    assert content == (
        "Error [network_denied]: network access is disabled in this sandbox; to allow it set "
        "SandboxConfig.enable_network_access=True (and list allowed_domains)"
    )
    mgr.close()


async def test_loopback_is_refused_without_the_testing_switch(server: Server) -> None:
    cfg = SandboxConfig(enable_network_access=True, allowed_ports=(server.port,))
    mgr = FunctionCallingManager(sandbox_config=cfg)
    register_builtin_tools(mgr, config=cfg, include=["http_request"])
    before = len(server.requests)
    content = await _call(mgr, _args(f"http://127.0.0.1:{server.port}/text"))
    assert content.startswith("Error [network_denied]: '127.0.0.1' is or resolves to 127.0.0.1")
    content = await _call(mgr, _args(f"http://localhost:{server.port}/text"))
    assert content.startswith("Error [network_denied]: 'localhost' is or resolves to")
    assert len(server.requests) == before
    mgr.close()


async def test_caller_without_network_permission_is_refused(
    manager: FunctionCallingManager, server: Server
) -> None:
    before = len(server.requests)
    content = await _call(manager, _args(server.url("/text")), CallerContext())
    assert content.startswith("Error [permission_denied]")
    assert len(server.requests) == before


def test_definition_is_truthful() -> None:
    from tamma_tools.builtin.http import HTTP_REQUEST_DEFINITION as d

    assert d.metadata.permissions == ["network:request"] or set(d.metadata.permissions) == {
        "network:request"
    }
    assert d.metadata.open_world is True
    assert d.metadata.isolation == "in_process"
    params = d.function.parameters
    assert params is not None
    assert params["properties"]["method"]["enum"][:7] == [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
    ]  # fmt: skip


# --- TLS: the socket goes to the pinned address, the certificate is checked against the name ---


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(tmp, "app.test")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"tls {self.headers.get('Host')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = _QuietServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], cert
    httpd.shutdown()
    httpd.server_close()


async def test_tls_verifies_the_name_while_dialling_the_pinned_address(
    tls_server: tuple[int, Path],
) -> None:
    port, cert = tls_server
    trust = ssl.create_default_context(cafile=str(cert))
    policy = NetworkPolicy(enabled=True, allowed_ports=(port,),
                           allow_private_networks_for_testing=True,
                           resolver=lambda host: ["127.0.0.1"])  # fmt: skip
    result = await fetch(policy, "GET", f"https://app.test:{port}/", ssl_context=trust)
    assert result.status_code == 200
    assert result.body == f"tls app.test:{port}".encode()
    # The same address under another name fails verification: SNI/hostname use the URL's name.
    with pytest.raises(ExecutionError) as info:
        await fetch(policy, "GET", f"https://other.test:{port}/", ssl_context=trust)
    assert info.value.code == "http_error"
    assert "certificate" in info.value.message.lower() or "hostname" in info.value.message.lower()
