"""Keep credentials out of everything the server says: tool results, errors and log lines.

Two nets: the exact values of every configured secret, and the shapes credentials take on the wire
(an Authorization header, a bearer token, a Portainer key, a token in a URL, a PEM private key),
for secrets we were never told about, such as an upstream echoing a header back.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mcp_cloudops.registry import Registry
from mcp_cloudops.settings import INCUS_ENV, Settings

MASK = "[REDACTED]"
# Keys whose values are credentials whatever they hold (an upstream echoing our headers back).
SENSITIVE_KEYS = frozenset(
    {"authorization", "proxy-authorization", "x-auth-token", "x-api-key", "cookie", "set-cookie"}
)
MIN_SECRET = 6  # shorter values would mask ordinary words

# Each has one group, the prefix kept before the mask. Scoped flags, so they combine into one regex.
PATTERNS = (
    r"(EXO2-HMAC-SHA256\s+credential=)[^\s\"']+",
    r"(?i:(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,})",
    r"(?i:(\bbasic\s+)[A-Za-z0-9+/=]{8,})",
    r"\b(ptr_)[A-Za-z0-9_+/=-]{8,}",
    r"(?i:((?:x-auth-token|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+)",
    r"(?i:([?&](?:token|api_key|apikey|access_token|secret_key)=)[^&\s\"']+)",
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)
_SHAPES = re.compile("|".join(PATTERNS))  # one scan of each string instead of one per pattern
# Every shape holds whitespace, '=', ':' or '_'. Checking for those first is ~9x cheaper than the
# full scan, which a result's ids and names (most of its strings) then skip.
_CUE = re.compile(r"[\s=:_]")
_SHORTEST_SHAPE = len("?token=x")  # no shape matches fewer characters


def _keep_prefix(match: re.Match[str]) -> str:
    return match.group(match.lastindex or 0) + MASK  # lastindex: the one group of the shape that matched


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {value.strip() for value in secrets if value and len(value.strip()) >= MIN_SECRET}
        self.values = sorted(values, key=len, reverse=True)  # longest first: no partial leftovers
        self._too_short = min([*map(len, self.values), _SHORTEST_SHAPE])  # below this, nothing can match

    def text(self, text: str) -> str:
        """Configured values first (whole, even where a shape would stop inside one), then shapes."""
        if len(text) < self._too_short:  # many strings of a result: states, short names
            return text
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        if len(text) < _SHORTEST_SHAPE or not _CUE.search(text):
            return text
        return _SHAPES.sub(_keep_prefix, text)

    def data(self, value: Any) -> Any:
        """The same JSON-like structure with every string redacted (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(str(k)): MASK if str(k).lower() in SENSITIVE_KEYS and value[k] else self.data(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.data(item) for item in value]
        return value


def configured_secrets(registry: Registry, settings: Settings) -> list[str]:
    """Every secret value this server holds: provider keys, the Incus token and key, the HTTP token."""
    names = {name for provider in registry.providers.values() for name in provider.auth.env_names}
    values = [settings.value(name) or "" for name in sorted(names | {INCUS_ENV["token"]})]
    if settings.http_token is not None:
        values.append(settings.http_token.get_secret_value())
    key_path = settings.value(INCUS_ENV["key"])
    if key_path:
        with contextlib.suppress(OSError):  # an unreadable key file fails later, with its own error
            values.extend(line for line in Path(key_path).read_text().splitlines() if "-----" not in line)
    return values


class RedactingFilter(logging.Filter):
    """Rewrites each log record's message through the redactor before any handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self.redactor.text(message), None
        if record.exc_info:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Filter every handler on the root logger (where all records end up), replacing an older filter."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(redactor))
