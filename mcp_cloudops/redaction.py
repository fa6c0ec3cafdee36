"""Keep credentials out of everything the server says: tool results, errors and log lines.

Two nets: every configured secret, in the forms an upstream may echo it (exact, any case, base64,
hex, URL- or JSON-escaped), and the shapes credentials take on the wire (an Authorization header, a
bearer token, a Portainer key, a token in a URL, a PEM private key), for secrets we were never told
about, such as an upstream echoing a header back. Secrets are found in the text case-folded (ſ, ß, K,
ﬁ stand for s, ss, k, fi) and masked where they came from in the original, whose length may differ.

Every scan is linear in its input (str.find and regexes that never rescan), because what is
redacted comes from agents and upstreams: one quadratic pattern let one request stall every client.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from mcp_cloudops.accounts import secret_values
from mcp_cloudops.registry import Registry
from mcp_cloudops.settings import Settings

MASK = "[REDACTED]"
CUT = "…"  # ends a trimmed text
# Keys whose values are credentials whatever they hold (an upstream echoing our headers back).
SENSITIVE_KEYS = frozenset(
    {"authorization", "proxy-authorization", "x-auth-token", "x-api-key", "cookie", "set-cookie"}
)
_QUOTED_SENSITIVE_KEYS = tuple(f'"{key}":' for key in SENSITIVE_KEYS)  # as a key in JSON text
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what JSON text shows escaped (shaping.dumps keeps non-ASCII)
MIN_SECRET = 6  # shorter values would mask ordinary words
MIN_FRAGMENT = 8  # characters of a secret left before a cut that are masked: half a key is a key
ERROR_MAX = 2000  # characters of any error text the agent reads, like the output cap for results
READ_MARGIN = 4096  # characters past a cut that cut() still reads, so a match across the cut is seen whole

# Each has one group, the prefix kept before the mask. Scoped flags, so they combine into one regex.
PATTERNS = (
    r"(EXO2-HMAC-SHA256\s+credential=)[^\s\"']+",
    r"(?i:(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,})",
    r"(?i:(\bbasic\s+)[A-Za-z0-9+/=]{8,})",
    r"\b(ptr_)[A-Za-z0-9_+/=-]{8,}",
    r"(?i:((?:x-auth-token|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+)",
    # A token in a URL; a presigned URL's signature (S3-style, e.g. an Exoscale snapshot export) is one.
    r"(?i:([?&](?:token|api_key|apikey|access_token|secret_key|x-amz-signature|signature)=)[^&\s\"']+)",
)
_SHAPES = re.compile("|".join(PATTERNS))  # one scan of each string instead of one per pattern
# PEM keys are paired by scanning, not by a lazy `[\s\S]*?`: that rescans to the end of the text for
# every BEGIN without an END (2.3 s at 110 KiB, 36 s at 446 KiB).
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z ]{0,40}PRIVATE KEY-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,-]*")  # base64 lines, and headers such as "Proc-Type: 4,ENCRYPTED"
# Every shape holds whitespace, '=', ':' or '_'. Checking for those first is ~9x cheaper than the
# full scan, which a result's ids and names (most of its strings) then skip.
_CUE = re.compile(r"[\s=:_]")
# And every shape holds one of these words (in lower case): prose without them skips the full scan,
# which costs ~100 ns a character (a second for a 10 MiB body).
KEYWORDS = ("exo2-hmac-sha256", "bearer", "basic", "ptr_", "x-auth-token", "x-api-key", "token=", "api_key=",
            "apikey=", "secret_key=", "signature=", "private key-----")  # fmt: skip
_SHORTEST_SHAPE = len("?token=x")  # no shape matches fewer characters
# Case folding makes up to three characters of one (ß: "ss", ﬃ: "ffi"), so a span found in the folded
# text is mapped back through a shadow of it: the characters that continue a fold are _GOES_ON.
_MOST_FOLDED = 3  # the most characters Unicode's full case folding makes of one
_GOES_ON = "\ufdd0"  # a noncharacter; one in the text itself is shadowed by "a"
_TURKISH_I = ("İ", "ı")  # Turkish upper i and lower I: "i" to us, though casefold keeps them apart


def _fold_char(char: str) -> str:
    return "i" if char in _TURKISH_I else char.casefold()


def _shadow_of(char: str) -> str:
    """One character per character `char` folds to: the first any but _GOES_ON, the others _GOES_ON."""
    size = len(_fold_char(char))
    return "a" + _GOES_ON * (size - 1) if size > 1 or char == _GOES_ON else char


@functools.cache
def _shadow_table() -> dict[int, str]:
    """Every folding longer than one character lies in the Basic Multilingual Plane (~100 of them):
    scanning it costs ~6 ms, so only the first text whose folding is longer pays it, not every start.
    _origins checks, and handles one beyond."""
    return {
        ord(char): "a" + _GOES_ON * (len(fold) - 1)
        for char in map(chr, range(0x10000))
        if len(fold := char.casefold()) > 1 and char not in _TURKISH_I  # İ folds to "i" here
    } | {ord(_GOES_ON): "a"}


def _keep_prefix(match: re.Match[str]) -> str:
    return match.group(match.lastindex or 0) + MASK  # lastindex: the one group of the shape that matched


def _mask_pem(text: str) -> str:
    """Each private key from its BEGIN marker through the next END marker; with no END after it (a
    cut key is still a key), through the key characters that follow. One pass over the text: each
    search starts past the last, and once no END is left none is looked for again."""
    if "PRIVATE KEY-----" not in text:
        return text
    parts, pos = [], 0
    end = _PEM_END.search(text)  # the first END marker not yet behind us; None: none is left
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        if end is not None and end.start() < begin.end():
            end = _PEM_END.search(text, begin.end())
        parts += [text[pos : begin.end()], MASK]
        body = end or _PEM_BODY.match(text, begin.end())  # the star always matches
        pos = body.end() if body else begin.end()
    return "".join([*parts, text[pos:]])


def _base64_forms(raw: bytes) -> set[str]:
    """Base64 of `raw` (standard and URL-safe, with and without padding), and the part that stays
    the same when `raw` sits inside a longer encoded text (a Basic credential, a JSON blob): after
    0, 1 or 2 other bytes, the groups of 3 bytes all of `raw`."""
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms |= {whole, whole.rstrip("=")}
        for before in (0, 1, 2):
            first, last = (before + 2) // 3, (before + len(raw)) // 3  # whole groups of `raw` only
            inner = encode(bytes(before) + raw).decode()[4 * first : 4 * last]
            if len(inner) >= MIN_FRAGMENT:
                forms.add(inner)
    return forms


def encoded_forms(value: str) -> set[str]:
    """The ways an upstream may echo a secret back; upper and lower case are matched anyway."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), raw.hex(), json.dumps(value)[1:-1]}
    return forms | _base64_forms(raw)


def _fold(text: str) -> str:
    """`text` case-folded (ſ: s, K: k, ß: ss, ﬁ: fi, ς and Σ: σ, İ and ı: i), the way every form is:
    an upstream may echo a secret in any case. May be longer than `text`: see _origins."""
    if text.isascii():  # most texts: one character for one
        return text.lower()
    if _TURKISH_I[0] in text or _TURKISH_I[1] in text:
        text = text.replace(_TURKISH_I[0], "i").replace(_TURKISH_I[1], "i")
    return text.casefold()


def _origins(text: str, folded: str, positions: list[int]) -> list[int]:
    """For each of the ascending `positions` in `folded` (= _fold(text)), the index in `text` of the
    character it came from. One pass over the text, whatever the number of positions."""
    if len(folded) == len(text):  # no character folded to more than one
        return positions
    shadow = text.translate(_shadow_table())
    if len(shadow) != len(folded):  # a longer folding beyond the table, in a later Unicode
        shadow = "".join(map(_shadow_of, text))
    origins, counted, going_on = [], 0, 0  # going_on: characters that continue a fold, before `counted`
    for position in positions:
        going_on += shadow.count(_GOES_ON, counted, position + 1)
        counted = position + 1
        origins.append(position - going_on)
    return origins


def _unfolded(text: str, folded: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of `folded` (sorted by start) as spans of `text`: a span that begins or ends inside the
    folding of a character (one "s" of the "ss" of a ß) takes that whole character."""
    if len(folded) == len(text):
        return spans
    merged: list[tuple[int, int]] = []  # overlapping spans as one, so their ends ascend too
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    origins = _origins(text, folded, [at for start, end in merged for at in (start, end - 1)])
    return [(origins[n], origins[n + 1] + 1) for n in range(0, len(origins), 2)]


def _find_all(text: str, needle: str) -> Iterable[tuple[int, int]]:
    at = text.find(needle)
    while at != -1:
        yield at, at + len(needle)
        at = text.find(needle, at + 1)


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span masked, overlapping spans as one (sorted by start)."""
    parts, pos = [], 0
    for start, end in spans:
        if start >= pos:
            parts += [text[pos:start], MASK]
            pos = end
        else:
            pos = max(pos, end)
    return "".join([*parts, text[pos:]])


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {value.strip() for value in secrets if value and len(value.strip()) >= MIN_SECRET}
        self.values = sorted(values, key=len, reverse=True)
        # Every form, case-folded, shortest first: a string is only searched for those that fit.
        forms, needles = set(), set()
        for value in self.values:
            own = sorted({_fold(form) for form in encoded_forms(value) if len(form) >= MIN_SECRET}, key=len)
            forms.update(own)
            needles.update(form for n, form in enumerate(own) if not any(shorter in form for shorter in own[:n]))
        # Forms are found through needles first: a form that holds a shorter form (the padded base64
        # holds the unpadded one) is found through that one.
        self._forms = sorted(sorted(forms), key=len)
        self._needles = sorted(sorted(needles), key=len)
        self._unspaced = not re.search(r"\s", "".join(self._forms))
        self._form_sizes = [len(form) for form in self._forms]
        # The needles that fit in a text of each length (the last entry: in any longer text too).
        sizes = [len(needle) for needle in self._needles]
        self._fitting = [tuple(self._needles[: bisect_right(sizes, size)]) for size in range(max(sizes, default=0) + 1)]
        self._most = len(self._fitting) - 1
        self._longest = self._form_sizes[-1] if self._forms else 0
        self._too_short = min([*self._form_sizes[:1], _SHORTEST_SHAPE])  # below this, nothing can match
        # A result's JSON text holds each of its strings as it is but for the characters JSON escapes: searching
        # the text is searching the strings when no needle has such a character (else clean_json walks).
        self._json_plain = not any(_JSON_ESCAPED.search(needle) for needle in self._needles)
        self._json_probes = (*self._needles, *KEYWORDS, *_QUOTED_SENSITIVE_KEYS)

    def text(self, text: str) -> str:
        """Configured secrets in every form first (whole, even where a shape would stop inside one), then shapes."""
        size = len(text)
        if size < self._too_short and (text.isascii() or size * _MOST_FOLDED < self._too_short):
            return text  # many strings of a result: states, short names (a short "ﬃ" may fold long enough)
        # Case-folded, not lowered: the regexes' IGNORECASE also takes "ſ" for "s", and "ß" is "ss".
        folded = _fold(text)
        size = len(folded)
        if self._unspaced and " " in folded:  # prose: a form can only lie inside one of its words
            size = max(map(len, folded.split()))
        for needle in self._fitting[size] if size < self._most else self._fitting[-1]:
            if needle in folded:
                text = self._mask_secrets(text, folded)
                folded = _fold(text)
                break
        if len(text) < _SHORTEST_SHAPE or not _CUE.search(text):
            return text
        if not any(keyword in folded for keyword in KEYWORDS):
            return text
        return _SHAPES.sub(_keep_prefix, _mask_pem(text))

    def _mask_secrets(self, text: str, folded: str) -> str:
        """Every form of every secret, found in `folded` (= _fold(text)) and masked where it came from in
        `text`: masking exactly what was found (rare: most texts hold none)."""
        forms = self._forms[: bisect_right(self._form_sizes, len(folded))]
        spans = sorted(span for form in forms for span in _find_all(folded, form))
        return _masked(text, _unfolded(text, folded, spans))

    def data(self, value: Any) -> Any:
        """The same JSON-like structure with every string redacted (keys too); `value` itself when nothing in
        it could need redacting (most results), which one pass over all its strings at once tells."""
        return value if self.clean(value) else self._data(value)

    def clean(self, value: Any) -> bool:
        """Whether no string of `value` can hold a secret's form or a credential's shape, and no key is a
        sensitive one with a value: every string is joined and folded once, and searched for what text()
        searches each for first (the needles of every secret's forms, the keywords every shape needs). A
        match that only spans two joined strings makes it answer no, which costs time, never a secret."""
        strings: list[str] = []
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                strings.append(item)
            elif isinstance(item, dict):
                for key, inner in item.items():
                    name = str(key)
                    if inner and name.lower() in SENSITIVE_KEYS:
                        return False
                    strings.append(name)
                    stack.append(inner)
            elif isinstance(item, list):
                stack.extend(item)
        folded = _fold("\x00".join(strings))
        return not any(needle in folded for needle in self._needles) and not any(k in folded for k in KEYWORDS)

    def clean_json(self, text: str, value: Any) -> bool:
        """clean(value), told from `text`, value's JSON (shaping.dumps), in one search of C-speed string
        operations instead of a walk: the call path serializes the result for the agent anyway. A key from
        SENSITIVE_KEYS anywhere makes it answer no, even with an empty value: time, never a secret."""
        if not self._json_plain:
            return self.clean(value)
        return not any(map(_fold(text).__contains__, self._json_probes))

    def _data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(str(k)): MASK if str(k).lower() in SENSITIVE_KEYS and value[k] else self._data(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._data(item) for item in value]
        return value

    def reads(self, limit: int) -> int:
        """How many characters of a text cut(text, limit) reads: a match across the cut still fits whole."""
        return limit + max(READ_MARGIN, 2 * self._longest)

    def cut(self, text: str, limit: int = ERROR_MAX) -> str:
        """`text` redacted, then trimmed to `limit` characters: redacting first masks a secret across the
        cut whole, where trimming first left its first half. A fragment of a secret (at least
        MIN_FRAGMENT characters) left before any cut, ours or one made earlier and marked CUT, is
        masked too. Reads at most reads(limit) characters: the work is bounded by the limit."""
        read = self.reads(limit)
        shown = self._mask_fragments(self.text(text[:read] + (CUT if len(text) > read else "")))
        return shown if len(shown) <= limit else self._trim(shown, limit)

    def _trim(self, text: str, limit: int) -> str:
        room = max(0, limit - len(CUT))
        head, masked = text[:room], False
        while (start := self._fragment_start(head)) < len(head):
            head, masked = text[: min(start, max(0, room - len(MASK)))], True
        return head + (MASK if masked else "") + CUT

    def _mask_fragments(self, text: str) -> str:
        """A fragment of a secret before each CUT mark: a trim made before redaction may have left one."""
        if not self._forms or CUT not in text:
            return text
        spans = []
        for at, _ in _find_all(text, CUT):
            window = max(0, at - self._longest)
            start = window + self._fragment_start(text[window:at])
            if start < at:
                spans.append((start, at))
        return _masked(text, spans)

    def _fragment_start(self, text: str) -> int:
        """Where the longest tail of `text` that begins a secret form (at least MIN_FRAGMENT characters)
        starts; len(text) if none does. Found case-folded, like whole forms."""
        tail = text[-self._longest :] if self._longest else ""  # a fragment folds to no fewer characters
        folded = _fold(tail)
        best = len(folded)
        for form in self._forms:
            at = folded.find(form[:MIN_FRAGMENT])
            while -1 < at < best:
                if form.startswith(folded[at:]):
                    best = at
                    break
                at = folded.find(form[:MIN_FRAGMENT], at + 1)
        if best == len(folded):
            return len(text)
        return len(text) - len(tail) + _origins(tail, folded, [best])[0]


def configured_secrets(registry: Registry, settings: Settings) -> list[str]:
    """Every secret value this server holds: every account's keys, Incus tokens and client keys, the HTTP
    tokens, the requestState keys."""
    values = secret_values(settings.accounts_for(registry), registry)
    for listed in (settings.http_token, settings.state_keys):  # comma-separated: each one a secret
        if listed is not None:
            values += [value.strip() for value in listed.get_secret_value().split(",")]
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
