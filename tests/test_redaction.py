"""redaction: configured secret values and the shapes credentials take on the wire are masked in
text, in JSON-like data, and in log records (messages, arguments and tracebacks)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SECRETS

from mcp_cloudops.redaction import (
    _CUE,
    KEYWORDS,
    MASK,
    PATTERNS,
    RedactingFilter,
    Redactor,
    configured_secrets,
    install_log_redaction,
)
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.sandbox import credentials
from mcp_cloudops.settings import Settings

REGISTRY = load_registry()
PEM_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1b2c3d4e5f6g7h8i9j0\nk1l2m3n4o5p6q7r8s9t0u1v2w3x4y5z6\n"
    "-----END RSA PRIVATE KEY-----"
)


# --- configured values ---------------------------------------------------------------------------------


def test_configured_values_are_masked_wherever_they_appear() -> None:
    redactor = Redactor(SECRETS)
    for secret in SECRETS:
        for text in (secret, f"key={secret};", f"prefix{secret}suffix", f"{secret} and {secret}"):
            masked = redactor.text(text)
            assert secret not in masked and MASK in masked
    assert redactor.text(f"id {credentials.SCW_SECRET_KEY} not found") == f"id {MASK} not found"


def test_longer_secrets_are_masked_before_the_shorter_ones_inside_them() -> None:
    redactor = Redactor(["abcdef", "abcdef-0123456789"])
    assert redactor.text("token abcdef-0123456789.") == f"token {MASK}."  # no '-0123456789' leftover


def test_overlapping_secrets_are_masked_as_one() -> None:
    redactor = Redactor(["abcdef-01", "ef-0123456789"])
    assert redactor.text("key abcdef-0123456789.") == f"key {MASK}."  # neither half left


def test_configured_values_are_masked_in_any_case() -> None:
    redactor = Redactor([credentials.NIRVANA_LABS_API_KEY])
    assert redactor.text(f"key {credentials.NIRVANA_LABS_API_KEY.upper()} refused") == f"key {MASK} refused"


def test_short_and_blank_values_are_ignored_and_values_are_stripped() -> None:
    redactor = Redactor(["", "   ", "abc", "12345", "  padded-secret  "])
    assert redactor.values == ["padded-secret"]
    assert redactor.text("abc 12345 padded-secret") == f"abc 12345 {MASK}"


# --- shapes of credentials we were never told about ----------------------------------------------------

SHAPES = [
    (
        "exo2-header",
        "Authorization: EXO2-HMAC-SHA256 credential=EXOabc123,signed-query-args=a;b,expires=1700000000,signature=c2ln",
        "Authorization: EXO2-HMAC-SHA256 credential=[REDACTED]",
    ),
    ("bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "Authorization: Bearer [REDACTED]"),
    ("bearer-lowercase", "authorization: bearer abcdefgh12345678", "authorization: bearer [REDACTED]"),
    ("basic", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"),
    ("bearer-in-sentence", "sent 'Bearer tok_ABCDEFGH+/=' to api", "sent 'Bearer [REDACTED]' to api"),
    ("portainer-key", "key ptr_AbCdEfGh0123456789+/= rejected", "key ptr_[REDACTED] rejected"),
    ("x-auth-token-header", "X-Auth-Token: 0b1c2d3e-aaaa-bbbb", "X-Auth-Token: [REDACTED]"),
    ("x-auth-token-json", '{"X-Auth-Token": "0b1c2d3e-aaaa-bbbb", "a": 1}', '{"X-Auth-Token": "[REDACTED]", "a": 1}'),
    ("x-auth-token-json-compact", '{"x-auth-token":"tok"}', '{"x-auth-token":"[REDACTED]"}'),
    ("x-api-key-header", "X-API-Key: some-api-key-value", "X-API-Key: [REDACTED]"),
    ("x-api-key-assignment", "x-api-key=some-api-key-value&b=1", "x-api-key=[REDACTED]"),  # more, not less
    ("x-api-key-python-repr", "{'X-API-Key': 'abc123'}", "{'X-API-Key': '[REDACTED]'}"),
    ("token-in-url", "GET https://h/x?token=abc123&page=2", "GET https://h/x?token=[REDACTED]&page=2"),
    ("api-key-in-url", "https://h/x?page=1&api_key=abc123", "https://h/x?page=1&api_key=[REDACTED]"),
    ("access-token-in-url", "https://h/cb?access_token=zz.yy", "https://h/cb?access_token=[REDACTED]"),
    ("secret-key-in-url", "https://h/?secret_key=s3cr3t#frag", "https://h/?secret_key=[REDACTED]"),
    ("apikey-in-url", "https://h/?APIKEY=s3cr3t", "https://h/?APIKEY=[REDACTED]"),
    ("pem-private-key", f"key:\n{PEM_KEY}\nend", "key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]\nend"),
    (
        "pem-pkcs8",
        "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----[REDACTED]",
    ),
    (
        "pem-without-end",  # a key cut short is still a key: masked through its body
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nx1b2c3d4",
        "key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]",
    ),
    (
        "pem-openssh",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED]",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_credential_shapes_are_masked(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_shape_needs_a_cue_character(pattern: str) -> None:
    """The fast path skips strings without whitespace, '=', ':' or '_': no shape may match one."""
    for _, text, _ in SHAPES:
        for match in re.finditer(pattern, text):
            assert _CUE.search(match.group(0)), (pattern, match.group(0))
    assert sum(1 for _, text, _ in SHAPES if re.search(pattern, text)), f"no example of {pattern}"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_shape_holds_a_keyword(pattern: str) -> None:
    """Strings without any of KEYWORDS skip the full scan: no shape may match one."""
    for _, text, _ in SHAPES:
        for match in re.finditer(pattern, text):
            assert any(keyword in match.group(0).casefold() for keyword in KEYWORDS), (pattern, match.group(0))


@pytest.mark.parametrize(
    "text",
    [
        "Bearer short",  # too short to be a token
        "the bearer of bad news",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",  # public, not a key
        "https://h/x?page=2&per_page=50&tokens_used=3",
        "ptr_short",
        "instance 8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000001 is running",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor(["unrelated-secret"]).text(text) == text


def test_data_is_redacted_in_every_string_and_key_keeping_its_shape() -> None:
    secret = credentials.NIRVANA_LABS_API_KEY
    redactor = Redactor([secret])
    data = {
        "id": 7,
        "ok": True,
        "none": None,
        "ratio": 1.5,
        "echo": {"authorization": f"Bearer {secret}", secret: "as a key"},
        "list": [secret, {"nested": [f"x {secret} y"]}, 3],
        "url": "https://h/?token=abc",
    }
    assert redactor.data(data) == {
        "id": 7,
        "ok": True,
        "none": None,
        "ratio": 1.5,
        "echo": {"authorization": MASK, MASK: "as a key"},
        "list": [MASK, {"nested": [f"x {MASK} y"]}, 3],
        "url": f"https://h/?token={MASK}",
    }
    assert secret not in json.dumps(redactor.data(data))


def test_credential_headers_echoed_as_a_json_object_are_masked() -> None:
    echoed = {"headers": {"X-Auth-Token": "unknown-token-0123456789", "X-API-Key": "unknown-api-key-0123456789"}}
    said = json.dumps(Redactor().data(echoed))
    assert "unknown-token-0123456789" not in said and "unknown-api-key-0123456789" not in said


# --- which values the server holds ---------------------------------------------------------------------


def keys_env(registry: Registry) -> dict[str, str]:
    """Every provider's key variables (tools.yaml `auth`), each set to a value of its own."""
    keys = (name for provider in registry.providers.values() for name in provider.auth.env_names)
    return {name: f"{name.lower()}-value-0123456789" for name in keys}


def test_every_providers_keys_are_secrets_the_server_holds(registry: Registry) -> None:
    env = keys_env(registry)
    assert env and set(env.values()) <= set(configured_secrets(registry, Settings.from_env(env)))


def test_configured_secrets_are_every_credential_the_server_holds(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text(
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIabcdefghijklmnop\nqrstuvwxyz0123456789\n"
        "-----END EC PRIVATE KEY-----\n"
    )
    env = keys_env(REGISTRY) | {
        "INCUS_TOKEN": "incus-oidc-token-123",
        "INCUS_CLIENT_KEY": str(key),
        "MCP_CLOUDOPS_HTTP_TOKEN": "http-token-456, http-token-789",  # one per agent: each a secret
        "PORTAINER_URL": "http://127.0.0.1:9",  # not a secret
    }
    values = configured_secrets(REGISTRY, Settings.from_env(env))
    expected = {*keys_env(REGISTRY).values(), "incus-oidc-token-123", "http-token-456", "http-token-789"}
    assert expected <= set(values)
    assert "MHcCAQEEIabcdefghijklmnop" in values and "qrstuvwxyz0123456789" in values  # the key's body lines
    assert not any("-----" in value for value in values)
    assert "http://127.0.0.1:9" not in values
    missing = Settings.from_env({"INCUS_CLIENT_KEY": str(tmp_path / "missing")})
    assert [value for value in configured_secrets(REGISTRY, missing) if value] == []  # unreadable: skipped


# --- the log filter ------------------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def collected() -> Iterator[tuple[logging.Logger, Collect]]:
    logger = logging.getLogger("mcp_cloudops.test_redaction")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_log_filter_redacts_messages_arguments_and_tracebacks(collected: tuple[logging.Logger, Collect]) -> None:
    logger, handler = collected
    secret = credentials.SCW_SECRET_KEY
    handler.addFilter(RedactingFilter(Redactor([secret])))
    logger.info("token %s refused by %s", secret, "api")
    logger.warning(f"headers {{'X-Auth-Token': '{secret}', 'Authorization': 'Bearer abcdefgh1234'}}")
    try:
        raise RuntimeError(f"upstream said: key {secret} invalid")
    except RuntimeError:
        logger.exception("call failed")
    text = "\n".join(handler.lines)
    assert secret not in text and "abcdefgh1234" not in text
    assert handler.lines[0] == f"INFO mcp_cloudops.test_redaction: token {MASK} refused by api"
    assert "Traceback" in text and f"upstream said: key {MASK} invalid" in text  # the traceback stays, masked


def test_install_log_redaction_filters_root_handlers_once() -> None:
    root = logging.getLogger()
    handler = Collect()
    before = {h: list(h.filters) for h in root.handlers}
    root.addHandler(handler)
    logger = logging.getLogger("mcp_cloudops.test_redaction.root")
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        install_log_redaction(Redactor(["first-secret-value"]))
        install_log_redaction(Redactor(["second-secret-value"]))  # replaces, never stacks
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("a %s b %s", "first-secret-value", "second-secret-value")
        assert handler.lines == [f"WARNING mcp_cloudops.test_redaction.root: a first-secret-value b {MASK}"]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for h, filters in before.items():
            h.filters[:] = filters


def test_a_presigned_url_loses_its_signature() -> None:
    url = "https://sos-ch-gva-2.exo.io/b/snap.qcow2?X-Amz-Credential=EXOabc&X-Amz-Signature=0a1b2c3d4e5f&X-Amz-Expires=3600"
    masked = Redactor().text(url)
    assert "0a1b2c3d4e5f" not in masked and f"X-Amz-Signature={MASK}&X-Amz-Expires=3600" in masked


def test_a_result_with_nothing_to_redact_is_returned_as_it_is() -> None:
    """One pass over all of a result's strings decides; only a result that may hold something is copied and
    redacted string by string (issue 23: redaction was the server's largest share of a call)."""
    secret = "s3cr3t-token-value-123"
    redactor = Redactor([secret])
    clean = {"instances": [{"name": "web-1", "state": "running", "labels": {"env": "prod"}}], "n": 2}
    assert redactor.data(clean) is clean
    for dirty in (
        {"items": [{"note": f"echo {secret}"}]},  # a configured secret
        {"items": [{"note": secret.upper()}]},  # in another case
        {"log": "Authorization: Bearer abcdefghijklmnop"},  # a credential's shape
        {"Authorization": "hunter22"},  # a sensitive key with a value
    ):
        redacted = redactor.data(dirty)
        assert redacted is not dirty
        assert not {secret, "abcdefghijklmnop", "hunter22"} & set(re.split(r"[\s'\"]+", str(redacted)))
        assert secret.lower() not in str(redacted).lower()


@pytest.mark.parametrize(
    "secrets",
    [["s3cr3t-token-value-123"], ['quo"ted-secret'], ["back\\slash-secret"], ["ünïcode-sécret"], ["tab\tsecret"]],
    ids=["plain", "quote", "backslash", "non-ascii", "control"],
)
def test_clean_json_answers_no_wherever_the_walk_does(secrets: list[str]) -> None:
    """The call path asks a result's JSON text (made for the agent anyway) instead of walking it: never "clean"
    where the walk finds something, whatever characters a secret has that JSON escapes."""
    from mcp_cloudops.shaping import dumps

    redactor = Redactor(secrets)
    secret = secrets[0]
    cases = [
        {"instances": [{"name": "web-1", "state": "running"}], "n": 2},
        {"items": [{"note": f"echo {secret}"}]},
        {"items": [{"note": secret.upper()}]},
        {secret: 1},
        {"note": json.dumps(secret)},  # the escaped form, as a string of the result
        {"log": "Authorization: Bearer abcdefghijklmnop"},
        {"Authorization": "hunter22"},
        {"headers": {"X-Auth-Token": ""}},  # a sensitive key even without a value: told no, walked (time only)
        {"ſtate": "ǅ", "n": [1, 2.5, None, True]},
    ]
    for value in cases:
        said = redactor.clean_json(dumps(value), value)
        assert not said or redactor.clean(value), value
    assert redactor.clean_json(dumps(cases[0]), cases[0])  # and a clean result is told clean
