"""Hostile inputs aimed at redaction and the output cap: work that grows faster than the input (one
call stalling every client), secrets cut in half by a trim, and secrets echoed in an encoded form.

Each test reproduces a finding of the red-team run "Hostile agents and hostile upstreams" (2, 3, 7, 12),
or finding 10 of issue 20 (a secret echoed in another case that folds to more or fewer characters).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import quote, quote_plus

import anyio
import httpx2
import pytest
from fakes import (
    REGISTRY,
    UUID,
    Hostile,
    HostileExoscale,
    HostilePortainer,
    HostileScaleway,
    answering,
    denying,
    serving,
)
from mcp import Client
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from support import assert_nothing_leaked, text_of

from mcp_cloudops import upstream, websocket
from mcp_cloudops.redaction import MASK, Redactor
from mcp_cloudops.sandbox import credentials, exoscale
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.schema import ArgumentError, ArgumentValidator, input_schema
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings
from mcp_cloudops.shaping import cap, dumps

pytestmark = pytest.mark.anyio

ERROR_MAX = 2000  # characters of any error text (redaction.ERROR_MAX)
PEM_BEGIN = "-----BEGIN PRIVATE KEY-----"
MIB = 1 << 20


def cpu_seconds(work: Callable[[], Any]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def assert_no_fragment(text: str, secret: str, size: int = 10) -> None:
    """Not even `size` characters in a row of `secret`: half a key is a key an attacker can finish.
    (10, not 8: "nirvana-" also begins "nirvana-operation", in the tool's name.)"""
    for start in range(len(secret) - size + 1):
        assert secret[start : start + size] not in text, (secret[start : start + size], text)


# --- fakes -------------------------------------------------------------------------------------------


# --- finding 2: redaction in linear time; error messages capped ------------------------------------


def pem_names(total: int) -> dict[str, int]:
    """Unknown argument names shaped like PEM BEGIN markers without an END, `total` characters of names."""
    names: dict[str, int] = {}
    size = 0
    while size < total:
        name = f"{PEM_BEGIN}{len(names)}"
        names[name] = 1
        size += len(name)
    return names


async def test_a_mebibyte_of_pem_argument_names_is_cheap_and_stalls_no_other_client(sandbox: Sandbox) -> None:
    server = build_server(Settings.from_env(sandbox.env), REGISTRY)
    arguments = pem_names(MIB)
    async with Client(server) as hostile, Client(server) as other:
        await other.list_tools()  # both sessions up before the clock starts
        outcome: dict[str, Any] = {}

        async def attack() -> None:
            started = time.process_time()
            outcome["result"] = await hostile.call_tool("list-instance-images", arguments)
            outcome["cpu"] = time.process_time() - started

        async with anyio.create_task_group() as tg:
            tg.start_soon(attack)
            await anyio.sleep(0.01)  # the hostile call is on its way
            started = time.monotonic()
            listed = await other.list_tools()
            outcome["waited"] = time.monotonic() - started
    assert listed.tools and outcome["waited"] < 0.5, outcome["waited"]
    assert outcome["cpu"] < 0.6, outcome["cpu"]  # 36 s of CPU at 446 KiB before the fix
    text = text_of(outcome["result"])
    assert outcome["result"].is_error and len(text) <= ERROR_MAX, len(text)
    assert text.startswith("Invalid arguments for list-instance-images: unknown argument ")
    assert f"and {len(arguments) - 5} more; allowed: " in text  # five names, then a count


def test_an_unknown_argument_error_names_a_few_shortened_names() -> None:
    tool = REGISTRY.by_name["list-instance-images"]
    validator = ArgumentValidator(input_schema(tool, REGISTRY.provider_of(tool)))
    names = {f"{'n' * 100}{i:02d}": 1 for i in range(12)}
    with pytest.raises(ArgumentError) as caught:
        validator.validate(names)
    message = str(caught.value)
    assert message.count("'nnnn") == 5 and "and 7 more; allowed: zone, organization, project" in message
    assert len(message) < 600 and "n" * 41 not in message  # each name shortened to 40 characters


@pytest.mark.parametrize(
    "unit",
    [
        f"{PEM_BEGIN}1 ",  # a BEGIN without an END, many times over
        "-----BEGIN " + "A" * 60 + " ",  # a long key type that never says PRIVATE KEY
        "Bearer  ",  # shapes whose prefix recurs without the token that completes them
        "x-api-key: ",
        "?token=&",
        "EXO2-HMAC-SHA256  ",
        "ptr_ptr_",
        "1111111-2222-4333-8444-55555555555 ",  # almost the configured secret, over and over
    ],
    ids=["pem", "pem-long-type", "bearer", "x-api-key", "token", "exo2", "ptr", "near-secret"],
)
def test_redaction_of_a_hostile_mebibyte_is_linear(unit: str) -> None:
    redactor = Redactor([credentials.SCW_SECRET_KEY, credentials.NIRVANA_LABS_API_KEY])
    text = unit * (MIB // len(unit))
    assert cpu_seconds(lambda: redactor.text(text)) < 0.5  # minutes before the fix, for "pem"
    assert cpu_seconds(lambda: redactor.data({"a": [text, {"b": text}]})) < 0.9
    assert cpu_seconds(lambda: redactor.cut(text, ERROR_MAX)) < 0.05  # bounded by the cut, not the input


def test_a_pem_key_without_its_end_is_masked_through_its_body() -> None:
    """A cut key is still a key: masked from its BEGIN marker through the key characters after it."""
    text = f"key: {PEM_BEGIN}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nMIIEowIBAAKCAQEA"
    assert Redactor().text(text) == f"key: {PEM_BEGIN}{MASK}"
    pair = f"{PEM_BEGIN}\nAAAA\n-----END PRIVATE KEY-----"
    assert Redactor().text(f"{pair} and {PEM_BEGIN} {PEM_BEGIN}\nBBBB") == f"{PEM_BEGIN}{MASK} and {PEM_BEGIN}{MASK}"
    quoted = f"names '{PEM_BEGIN}1', '{PEM_BEGIN}2'; allowed: zone"
    assert Redactor().text(quoted) == f"names '{PEM_BEGIN}{MASK}', '{PEM_BEGIN}{MASK}'; allowed: zone"


async def test_an_upstream_body_full_of_pem_markers_is_cheap(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    big = f"{PEM_BEGIN}1 " * (MIB // (len(PEM_BEGIN) + 2))
    async with serving(sim) as (_, client):
        for status in (200, 400):
            sim.behave = answering(json.dumps({"message": big, "log": big}), status)
            started = time.process_time()
            result = await client.call_tool("get-nirvana-operation", {"operation_id": UUID})
            assert time.process_time() - started < 0.6
            text = text_of(result)
            assert result.is_error == (status == 400) and len(text) <= (ERROR_MAX if result.is_error else 25_000)
            assert "1 -----BEGIN" not in text  # masked from the first marker on


# --- finding 3: the output cap in linear time --------------------------------------------------------


def test_cap_of_many_long_strings_is_linear() -> None:
    """A 640 KiB body of 2,500 strings of 250 characters: 12-14 s of CPU before the fix."""
    data = {f"field{n:04d}": chr(ord("a") + n % 26) * 250 for n in range(2500)}
    tool = REGISTRY.by_name["get-nirvana-operation"]
    result: dict[str, Any] = {}
    assert cpu_seconds(lambda: result.update(cap(data, 25_000, tool))) < 0.25
    assert len(dumps(result)) <= 25_000 and result["truncated"]["note"].startswith("Result cut to fit 25000")


def test_cap_of_a_ten_mebibyte_nested_body_is_linear() -> None:
    item = {"id": UUID, "tags": ["a", "b"], "meta": {"description": "d" * 300, "log": ["l" * 250] * 4}}
    data = {
        "items": [item] * 2500,
        "groups": {f"g{n}": [item] * 10 for n in range(400)},
        "config": {f"key{n}": {"value": "v" * 260, "note": "n" * 210} for n in range(6000)},
    }
    assert len(dumps(data)) > 10 * MIB
    tool = REGISTRY.by_name["list-instance-images"]
    result: dict[str, Any] = {}
    assert cpu_seconds(lambda: result.update(cap(data, 25_000, tool))) < 0.8
    assert len(dumps(result)) <= 25_000


# --- finding 7: redact before trimming --------------------------------------------------------------


def straddling(secret: str, limit: int) -> str:
    """Text whose `limit`-th character falls in the middle of `secret`."""
    return "x" * (limit - len(secret) // 2) + secret + " was refused"


@pytest.mark.parametrize(
    ("sim_class", "secret", "tool", "arguments", "body", "media_type"),
    [
        (
            HostileScaleway,
            credentials.SCW_SECRET_KEY,
            "get-instance-image",
            {"image_id": UUID},
            json.dumps({"message": straddling(credentials.SCW_SECRET_KEY, 500)}),
            "application/json",
        ),
        (
            HostileScaleway,
            credentials.SCW_SECRET_KEY,
            "get-instance-image",
            {"image_id": UUID},
            straddling(credentials.SCW_SECRET_KEY, 200),  # text/plain: its first line, 200 characters
            "text/plain",
        ),
        (
            Hostile,
            credentials.NIRVANA_LABS_API_KEY,
            "get-nirvana-operation",
            {"operation_id": UUID},
            json.dumps({"message": straddling(credentials.NIRVANA_LABS_API_KEY, 500)}),
            "application/json",
        ),
    ],
    ids=["scaleway-json", "scaleway-text", "nirvana-json"],
)
async def test_a_secret_across_the_message_cut_leaks_no_half(
    logs: pytest.LogCaptureFixture,
    sim_class: type[Hostile],
    secret: str,
    tool: str,
    arguments: dict[str, Any],
    body: str,
    media_type: str,
) -> None:
    sim = sim_class()
    async with serving(sim) as (_, client):
        sim.behave = answering(body, 400, media_type)
        result = await client.call_tool(tool, arguments)
        assert result.is_error and "returned HTTP 400" in text_of(result)
        assert "Fix the arguments the message names and call again." in text_of(result)  # the next step survives
        assert_no_fragment(text_of(result), secret)
        assert_nothing_leaked([sim], result, logs.text)


async def test_a_secret_across_the_cut_of_a_websocket_refusal_leaks_no_half(logs: pytest.LogCaptureFixture) -> None:
    sim = HostilePortainer()
    sim.behave_ws = denying(JSONResponse({"message": straddling(credentials.PORTAINER_API_KEY, 500)}, status_code=403))
    arguments = {"endpointId": 1, "id": "ffffffffffff", "max_seconds": 2, "idle_seconds": 0.5}
    async with serving(sim) as (_, client):
        result = await client.call_tool("attach-websocket", arguments)
        assert result.is_error and "returned HTTP 403" in text_of(result)
        assert_no_fragment(text_of(result), credentials.PORTAINER_API_KEY)
        assert_nothing_leaked([sim], result, logs.text)


async def test_a_secret_across_the_cut_of_a_connection_error_leaks_no_half(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = "connection refused by proxy " + "x" * 82 + credentials.SCW_SECRET_KEY + " (check the proxy)"

    async def refuse(*_: Any) -> None:
        raise httpx2.ConnectError(said)

    def refuse_websocket(*_: Any) -> None:
        raise ConnectionRefusedError(said)

    monkeypatch.setattr(upstream.Upstreams, "_exchange", refuse)
    monkeypatch.setattr(websocket, "_open", refuse_websocket)
    sim, portainer = HostileScaleway(), HostilePortainer()
    async with serving(sim, portainer, retries="0") as (_, client):
        result = await client.call_tool("get-instance-image", {"image_id": UUID})
        assert result.is_error and text_of(result).startswith("Cannot reach Scaleway")
        assert_no_fragment(text_of(result), credentials.SCW_SECRET_KEY)
        arguments = {"endpointId": 1, "id": "ffffffffffff", "max_seconds": 2, "idle_seconds": 0.5}
        result = await client.call_tool("attach-websocket", arguments)
        assert result.is_error and text_of(result).startswith("Cannot reach Portainer")
        assert_no_fragment(text_of(result), credentials.SCW_SECRET_KEY)
        assert_nothing_leaked([sim, portainer], result, logs.text)


def test_cut_redacts_first_then_trims_then_masks_a_fragment_at_the_cut() -> None:
    secret = credentials.SCW_SECRET_KEY
    redactor = Redactor([secret])
    whole = redactor.cut(straddling(secret, 500), 500)
    assert len(whole) <= 500 and whole.endswith("…") and "11111111" not in whole
    # A text that already holds only the first half (an upstream that cut it itself) at our cut.
    half = "x" * 480 + secret[:20]
    assert redactor.cut(half + "y" * 100, 500) == "x" * 480 + MASK + "…"
    assert redactor.cut(half[:-13] + "y" * 100, 500).endswith("x" * 480 + secret[:7] + "y" * 12 + "…")  # 7 < 8
    assert redactor.cut("short", 500) == "short"
    assert redactor.cut("x" * 3000, ERROR_MAX) == "x" * (ERROR_MAX - 1) + "…"


def test_the_error_cap_is_a_stated_constant() -> None:
    from mcp_cloudops import redaction

    assert redaction.ERROR_MAX == ERROR_MAX


# --- finding 12: encoded forms of a configured secret ------------------------------------------------

ODD_SECRET = "k3y/with+odd=chars&more~~~>>>???"  # its base64 holds '+' and '/', its URL forms differ


def b64_forms(raw: bytes) -> dict[str, str]:
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {"b64": std, "b64-unpadded": std.rstrip("="), "b64url": url, "b64url-unpadded": url.rstrip("=")}


def encoded_forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "upper": secret.upper(),
        "lower": secret.lower(),
        "swapcase": secret.swapcase(),
        "quote": quote(secret, safe=""),
        "quote-lower-hex": quote(secret, safe="").replace("%2F", "%2f"),
        "quote-path": quote(secret),
        "quote-plus": quote_plus(secret),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        **b64_forms(raw),
        **{f"{name}-in-basic": value for name, value in b64_forms(b"user:" + raw + b"\n").items()},
        **{f"{name}-after-2": value for name, value in b64_forms(b"ab" + raw).items()},
    }


FORMS = [(secret, name, form) for secret in (ODD_SECRET, credentials.SCW_SECRET_KEY)
         for name, form in encoded_forms(secret).items()]  # fmt: skip


@pytest.mark.parametrize(("secret", "name", "form"), FORMS, ids=[f"{s[:4]}-{n}" for s, n, _ in FORMS])
def test_an_encoded_form_of_a_configured_secret_is_masked(secret: str, name: str, form: str) -> None:
    redactor = Redactor([secret, "other-secret-value"])
    for text in (form, f"echo {form} end", f'{{"v":"{form}"}}', f"a{form}b"):
        masked = redactor.text(text)
        assert MASK in masked, (name, masked)
        core = form[8:-8] if "basic" in name or "after" in name else form[:-3]
        assert core not in masked, (name, masked)
        assert_no_fragment(masked, form, size=12)
    if "basic" not in name and "after" not in name:  # a whole form is masked whole, keys too
        assert redactor.data({form: [form]}) == {MASK: [MASK]}


def test_ordinary_text_near_a_secret_is_left_alone() -> None:
    redactor = Redactor([credentials.SCW_SECRET_KEY])
    for text in ("11111111-2222-4333-8444-000000000000", "the quick brown fox", "MTExMTEx", "3131313131"):
        assert redactor.text(text) == text


async def test_an_upstream_echoing_base64_of_the_key_is_masked(logs: pytest.LogCaptureFixture) -> None:
    sim = Hostile()
    key = credentials.NIRVANA_LABS_API_KEY.encode()
    encoded = {
        "b64": base64.b64encode(key).decode(),
        "basic": base64.b64encode(b"user:" + key).decode(),
        "hex": key.hex().upper(),
        "url": quote(credentials.NIRVANA_LABS_API_KEY.upper()),
    }

    async def echo(sim: Hostile, request: Request) -> Response:
        return JSONResponse({"id": UUID, "echo": encoded, "text": f"auth {encoded['b64']} ok"})

    async with serving(sim) as (_, client):
        sim.behave = echo
        result = await client.call_tool("get-nirvana-operation", {"operation_id": UUID})
        assert not result.is_error, text_of(result)
        said = text_of(result)
        for value in encoded.values():
            assert value[4:-4] not in said
        assert result.structured_content["echo"]["b64"] == MASK
        assert_nothing_leaked([sim], result, logs.text)


# --- finding 10 of issue 20: a secret echoed in another case ------------------------------------------

EXO_SECRET = credentials.EXOSCALE_API_SECRET  # "sandbox-secret-" and 28 "s"
NIRVANA_KEY = credentials.NIRVANA_LABS_API_KEY  # "nirvana-sandbox-key-000000000000"
LIGATURE_SECRET = "office-staff-flag-0123456789"  # "ffi", "st", "ff" and "fl" each have a one-character ligature
KELVIN = "\u212a"  # KELVIN SIGN, whose lower case is "k"
# A secret, a name, and the secret as an upstream may echo it in another case: ſ (long s) and K (Kelvin)
# fold to one ASCII letter, ß and the ligatures to two or three, İ and ı are Turkish upper and lower i.
FOLDED = [
    (EXO_SECRET, "long-s", EXO_SECRET.replace("s", "ſ")),
    (EXO_SECRET, "one-long-s", EXO_SECRET.replace("-s", "-ſ", 1)),
    (EXO_SECRET, "sharp-s", EXO_SECRET.replace("ss", "ß")),  # 29 characters for the secret's 43
    (EXO_SECRET, "capital-sharp-s", EXO_SECRET.upper().replace("SS", "ẞ")),
    (EXO_SECRET, "sharp-s-at-both-ends", "ß" + EXO_SECRET[1:-1] + "ß"),  # the secret begins and ends inside a ß
    (NIRVANA_KEY, "kelvin", NIRVANA_KEY.replace("k", KELVIN)),
    (NIRVANA_KEY, "turkish-upper", NIRVANA_KEY.upper().replace("I", "İ").replace("K", KELVIN)),
    (NIRVANA_KEY, "dotless-i", NIRVANA_KEY.replace("i", "ı")),
    (LIGATURE_SECRET, "ligatures", "oﬃce-ﬆaﬀ-ﬂag-0123456789"),
    (LIGATURE_SECRET, "fi-ligature", "ofﬁce-staff-flag-0123456789"),
    ("ffffffff", "ligatures-only", "ﬀﬀﬀﬀ"),  # half the secret's length
    ("straße-geheim-0123", "sharp-s-secret", "straße-geheim-0123"),  # a secret that is not ASCII, as it is
    ("straße-geheim-0123", "sharp-s-secret-upper", "STRASSE-GEHEIM-0123"),
    ("μυστικός-κωδικός-42", "final-sigma", "μυστικός-κωδικός-42"),
    ("μυστικός-κωδικός-42", "final-sigma-upper", "ΜΥΣΤΙΚΌΣ-ΚΩΔΙΚΌΣ-42"),
    ("μυστικός-κωδικός-42", "final-sigma-as-sigma", "μυστικόσ-κωδικόσ-42"),
]


def folded(text: str) -> str:
    """`text` as a reader who ignores case sees it: ſ is s, ß is ss, K is k, ﬃ is ffi, İ and ı are i."""
    return text.replace("İ", "i").replace("ı", "i").casefold()


@pytest.mark.parametrize(("secret", "name", "variant"), FOLDED, ids=[name for _, name, _ in FOLDED])
def test_a_secret_in_another_case_is_masked_whole(secret: str, name: str, variant: str) -> None:
    """Found in the case-folded text, masked in the original: the spans differ when a character folds
    to two (ß) or three (ﬃ), and a match that begins or ends inside one masks all of it."""
    redactor = Redactor([secret, "other-secret-value"])
    texts = (variant, f"echo {variant} end", f"İstanbul: {variant}", f'{{"v":"{variant}"}}', f"a{variant}b")
    for text in (*texts, f"{variant}\n{variant}", f"Straße {variant}."):
        assert redactor.text(text) == text.replace(variant, MASK), (name, text)
    assert redactor.data({variant: [variant, f"key {variant}"]}) == {MASK: [MASK, f"key {MASK}"]}


CUT_FOLDED = [row for row in FOLDED if row[1] in {"long-s", "sharp-s", "sharp-s-at-both-ends", "kelvin", "ligatures"}]


@pytest.mark.parametrize(("secret", "name", "variant"), CUT_FOLDED, ids=[name for _, name, _ in CUT_FOLDED])
def test_a_secret_in_another_case_at_a_cut_leaks_no_piece(secret: str, name: str, variant: str) -> None:
    redactor = Redactor([secret])
    whole = redactor.cut(straddling(variant, 500), 500)
    assert len(whole) <= 500 and MASK in whole, whole
    assert_no_fragment(folded(whole), folded(secret))
    half = "x" * 480 + variant[:20]  # its first 20 characters, 19 of them before our cut
    assert redactor.cut(half + "y" * 100, 500) == "x" * 480 + MASK + "…"
    assert redactor.cut(half + "…", ERROR_MAX) == "x" * 480 + MASK + "…"  # a cut the upstream made


@pytest.mark.parametrize(
    "unit",
    [
        EXO_SECRET.replace("ss", "ß") + " ",  # the variant, over and over: every occurrence masked
        "ß" + EXO_SECRET[1:-1] + "ßx",
        "ß",
        "ﬃ",
        "İ",
        f"ſ{KELVIN}ßı ",
    ],
    ids=["sharp-s-variant", "sharp-s-at-both-ends", "sharp-s", "ffi", "dotted-i", "mixed"],
)
def test_redaction_of_a_mebibyte_in_other_cases_is_linear(unit: str) -> None:
    redactor = Redactor([EXO_SECRET, NIRVANA_KEY, LIGATURE_SECRET])
    text = unit * (MIB // len(unit))
    masked: list[str] = []
    assert cpu_seconds(lambda: masked.append(redactor.text(text))) < 0.5
    assert cpu_seconds(lambda: redactor.data({"a": [text, {"b": text}]})) < 0.9
    assert cpu_seconds(lambda: redactor.cut(text, ERROR_MAX)) < 0.05
    for secret in (EXO_SECRET, NIRVANA_KEY, LIGATURE_SECRET):
        assert folded(secret) not in folded(masked[0])


async def test_an_upstream_echoing_a_secret_in_another_case_leaks_it_nowhere(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a result (values and keys), an error message (also across its cut) and a log line (the
    traceback of a crash whose message quotes the upstream's body)."""
    variants = {name: variant for _, name, variant in FOLDED if name in {"long-s", "sharp-s", "capital-sharp-s",
                "sharp-s-at-both-ends", "kelvin", "turkish-upper", "ligatures"}}  # fmt: skip
    every = " ".join(variants.values())
    body = {"id": exoscale.INSTANCE_RUNNING, "echo": variants, "text": f"auth {every} ok", variants["sharp-s"]: 1}

    async def echo(sim: Hostile, request: Request) -> Response:
        return JSONResponse(body)

    def crash(*_: Any) -> NoReturn:
        raise RuntimeError(f"cannot shape {body}")  # a bug of ours, quoting what the upstream said

    sim, nirvana = HostileExoscale(), Hostile()  # Nirvana's key and an HTTP token are configured secrets too
    tool, arguments = "retrieve-compute-instance-details", {"id": exoscale.INSTANCE_RUNNING}
    results = []
    async with serving(sim, nirvana, http_token=LIGATURE_SECRET) as (_, client):
        sim.behave = echo
        results.append(result := await client.call_tool(tool, arguments))
        assert not result.is_error, text_of(result)
        assert result.structured_content["echo"] == dict.fromkeys(variants, MASK)
        assert result.structured_content["text"] == f"auth {' '.join([MASK] * len(variants))} ok"
        for message in (f"key {every} refused", straddling(variants["sharp-s"], 500)):
            sim.behave = answering(json.dumps({"message": message}), 400)
            results.append(result := await client.call_tool(tool, arguments))
            assert result.is_error and "returned HTTP 400" in text_of(result) and MASK in text_of(result)
        monkeypatch.setattr(upstream, "payload", crash)
        sim.behave = echo
        results.append(result := await client.call_tool(tool, arguments))
        assert result.is_error and "internal error" in text_of(result)
    assert "crashed (error id" in logs.text and "RuntimeError: cannot shape" in logs.text, logs.text
    assert MASK in logs.text
    for result in results:
        said = text_of(result) + json.dumps(result.structured_content, ensure_ascii=False) + logs.text
        for name, variant in variants.items():
            assert variant not in said, name
        for secret in (EXO_SECRET, NIRVANA_KEY, LIGATURE_SECRET):
            assert_no_fragment(folded(said), folded(secret))
        assert_nothing_leaked([sim, nirvana], result, logs.text)
