"""Redaction of argument previews: every secret kind hidden, previews safe to display."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tamma_tools.observability.redaction import (
    REDACTED,
    RedactionConfig,
    Redactor,
    arguments_digest,
)

R = Redactor()

SECRET_KEYS = ["password", "token", "secret", "authorization", "api_key", "cookie",
               "Refresh_Token", "X-Api-Key", "db_password", "client_secret", "Set-Cookie"]  # fmt: skip


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_values_of_secret_keys_are_hidden_at_any_depth(key: str) -> None:
    secret = "hunter2-value-XYZ"
    raw = json.dumps({"query": "weather", "auth": {"nested": [{key: secret}]}, key: secret})
    preview = R.preview(raw)
    assert secret not in preview
    assert json.loads(preview) == {
        "query": "weather",
        "auth": {"nested": [{key: REDACTED}]},
        key: REDACTED,
    }


PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n"
    "7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\n"
    "-----END RSA PRIVATE KEY-----"
)
SECRET_VALUES = {
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9abcdefgh",
    "basic": "Basic dXNlcjpwYXNzd29yZA==",
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrSt",
    "github": "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "slack": "xoxb-1234567890-abcdefghij",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "google": "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "pem": PEM,
    "pem_cut_short": PEM[:120],
}


@pytest.mark.parametrize("kind", sorted(SECRET_VALUES))
def test_secret_values_are_hidden_whatever_the_key(kind: str) -> None:
    secret = SECRET_VALUES[kind]
    raw = json.dumps({"note": f"use {secret} for this", "headers": [secret]})
    preview = R.preview(raw)
    assert secret not in preview
    body = secret.split()[-1]  # the credential itself, without a "Bearer " prefix
    assert body[:12] not in preview or kind in ("pem", "pem_cut_short")
    assert "PRIVATE KEY-----\\nMII" not in preview
    assert REDACTED in preview
    assert json.loads(preview)["note"].startswith("use ")


def test_credentials_in_urls_are_hidden() -> None:
    preview = R.preview(json.dumps({"url": "https://admin:s3cr3t-pw@db.internal:5432/x"}))
    assert "s3cr3t-pw" not in preview and "admin:" not in preview
    assert "db.internal" in preview


@pytest.mark.parametrize(
    "raw",
    [
        '{"password": "hunter2-value", "city": "Oslo"',  # truncated JSON
        "{'password': 'hunter2-value', 'city': 'Oslo'}",  # single quotes (repaired later)
        "password=hunter2-value&city=Oslo",
        'token: "hunter2-value" city: Oslo',
    ],
)
def test_secrets_in_text_that_is_not_json_are_hidden(raw: str) -> None:
    preview = R.preview(raw)
    assert "hunter2-value" not in preview
    assert "Oslo" in preview


def test_escaped_keys_and_values_are_not_a_way_around_redaction() -> None:
    raw = '{"pass\\u0077ord": "hunter2-value", "k": "sk\\u002dproj-AbCdEfGhIjKlMnOpQrSt"}'
    preview = R.preview(raw)
    assert "hunter2-value" not in preview and "AbCdEfGhIjKlMnOp" not in preview


def test_double_encoded_arguments_are_redacted_inside() -> None:
    raw = json.dumps(json.dumps({"api_key": "abc-secret-123", "q": 1}))
    assert "abc-secret-123" not in R.preview(raw)


def test_arguments_without_secrets_are_kept_verbatim() -> None:
    raw = '{"city": "Oslo", "days": 5, "fields": ["temp", "wind"]}'
    assert R.preview(raw) == raw


def test_previews_are_capped_and_say_how_much_was_cut() -> None:
    redactor = Redactor(RedactionConfig(max_preview_chars=100))
    preview = redactor.preview(json.dumps({"text": "a" * 5000}))
    assert len(preview) <= 100 + 16
    assert preview.endswith("chars]")
    assert "…[+" in preview


def test_control_and_bidi_characters_are_escaped() -> None:
    raw = "ls \x1b[2J\x1b]0;owned\x07 \u202egnp.exe \u2066x\u2069 \r\n\x00 \x85"
    preview = R.preview(raw)
    assert all(ch.isprintable() for ch in preview)
    for escaped in ("\\u001b", "\\u202e", "\\u2066", "\\u0000", "\\u000d", "\\u0085"):
        assert escaped in preview


def test_configured_extra_keys_and_patterns() -> None:
    redactor = Redactor(RedactionConfig(extra_keys=("ssn",), extra_patterns=(r"\bACME-\d{6}\b",)))
    preview = redactor.preview(json.dumps({"ssn": "078-05-1120", "ref": "order ACME-123456 ok"}))
    assert "078-05-1120" not in preview and "ACME-123456" not in preview
    assert "order" in preview
    # The defaults still apply.
    assert "hunter2-value" not in redactor.preview('{"password": "hunter2-value"}')


def test_digest_is_sha256_of_the_exact_arguments() -> None:
    raw = '{"a": "é", "b": "\ud800"}'  # a lone surrogate survives as the model sent it
    assert arguments_digest(raw) == hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    assert arguments_digest('{"a":1}') != arguments_digest('{"a": 1}')


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
secret_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!#%", min_size=12, max_size=30)


def _insert(value: Any, key: str, secret: str, path: list[int]) -> Any:
    """Put ``{key: secret}`` somewhere inside ``value`` following ``path``."""
    if isinstance(value, dict) and value and path:
        k = sorted(value)[path[0] % len(value)]
        return {**value, k: _insert(value[k], key, secret, path[1:])}
    if isinstance(value, list) and value and path:
        i = path[0] % len(value)
        return [*value[:i], _insert(value[i], key, secret, path[1:]), *value[i + 1 :]]
    return {"wrapper": value, key: secret}


@settings(max_examples=200, deadline=None)
@given(
    value=json_values,
    key=st.sampled_from(SECRET_KEYS),
    prefix=st.text(alphabet="_-xyzXYZ", max_size=4),
    secret=secret_text,
    path=st.lists(st.integers(0, 10), max_size=5),
)
def test_property_a_secret_under_a_secret_key_never_reaches_the_preview(
    value: Any, key: str, prefix: str, secret: str, path: list[int]
) -> None:
    assume(secret not in json.dumps(value))  # the secret must occur only under the key
    # ... and not inside the surrounding text itself (a key name, the redaction marker).
    assume(secret not in json.dumps(_insert(value, prefix + key, "", path)) + "[REDACTED]")
    raw = json.dumps(_insert(value, prefix + key, secret, path))
    preview = Redactor(RedactionConfig(max_preview_chars=100_000)).preview(raw)
    assert secret not in preview


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=2000))
def test_property_any_input_gives_a_printable_capped_preview(raw: str) -> None:
    preview = R.preview(raw)
    assert all(ch.isprintable() or ch == " " for ch in preview)
    assert len(preview) <= R.config.max_preview_chars
