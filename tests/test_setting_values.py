"""The parsers of one setting's text (setting_values.py): each value is taken or refused with what was
expected and how to fix it; the reader collects every refusal, naming the variable and its flag."""

from __future__ import annotations

import pytest

from mcp_cloudops.setting_values import (
    COUNT,
    SECONDS,
    Invalid,
    Reader,
    as_boolean,
    as_port,
    as_secure_url,
    is_loopback,
    state_keys,
    tokens,
)


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("YES", True), ("off", False), ("", False)])
def test_documented_booleans(raw: str, value: bool) -> None:
    assert as_boolean(raw) is value


@pytest.mark.parametrize("raw", ["y", "enabled", "2"])
def test_any_other_word_is_not_a_boolean(raw: str) -> None:
    with pytest.raises(Invalid, match="a boolean"):
        as_boolean(raw)


def test_numbers_are_finite_and_in_range() -> None:
    assert SECONDS("2.5") == 2.5 and COUNT("0") == 0
    for parse, raw in ((SECONDS, "0"), (SECONDS, "inf"), (SECONDS, "25k"), (COUNT, "-1"), (COUNT, "1.5")):
        with pytest.raises(Invalid):
            parse(raw)


def test_ports_and_loopback_hosts() -> None:
    assert as_port("0") == 0 and as_port("8000") == 8000
    with pytest.raises(Invalid, match="a port"):
        as_port("70000")
    assert is_loopback("localhost") and is_loopback("[::1]") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_a_secure_url_is_https_or_loopback_http_without_secrets() -> None:
    parse = as_secure_url("the issuer", "https://sso.example.com")
    assert parse("https://sso.example.com/realms/ops") == "https://sso.example.com/realms/ops"
    assert parse("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for raw in ("http://sso.example.com", "https://user:pw@sso.example.com", "https://sso.example.com/?a=1", "ftp://x"):
        with pytest.raises(Invalid):
            parse(raw)


def test_secret_lists_are_checked_without_being_quoted() -> None:
    assert tokens("a, b").get_secret_value() == "a, b"
    with pytest.raises(Invalid) as refused:
        tokens("good,bad\x07")
    assert "bad" not in str(refused.value.expected)
    with pytest.raises(Invalid, match="32 bytes"):
        state_keys("short")


def test_the_reader_collects_every_problem_naming_the_flag() -> None:
    reader = Reader({"A": "ten", "B": "5", "C": "x"}, {"A": "--a"})
    assert reader.read("A", 1.0, SECONDS) == 1.0 and reader.read("B", 0, COUNT) == 5
    assert reader.read("C", None, SECONDS) is None and reader.read("D", 3, COUNT) == 3
    assert reader.problems == [
        "A='ten' (from --a) is not a number of seconds > 0: set one, or leave the flag out for the default (1)",
        "C='x' is not a number of seconds > 0: set one, or unset it",
    ]
