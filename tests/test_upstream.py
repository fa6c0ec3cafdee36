"""Requests are built from the registry so that no argument can change the route."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from mcp_cloudops.accounts import Account
from mcp_cloudops.registry import load_registry, parse_registry
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.upstream import Response, Upstreams, build_request, encode_segment, fill

REGISTRY = load_registry()
UUID = "2b8f5b1c-7a4e-4c7e-9b1a-0c2d3e4f5a6b"
HOSTILE = ["../x", "a/b", "x?y=1", "%2e%2e", ".", "..", "x#frag", "a b", "ü/../..", "x:reboot"]

BASE, ACCOUNT = "http://127.0.0.1:9/api", Account("p", "default", {})  # a free-form provider's


def request(name: str, args: dict[str, Any], env: dict[str, str] | None = None):
    tool = REGISTRY.by_name[name]
    upstreams = Upstreams(REGISTRY, Settings.from_env(env or {}))
    return upstreams.request_for(tool, args)[1]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_stay_one_segment(value: str) -> None:
    encoded = encode_segment(value)
    assert "/" not in encoded and "?" not in encoded and "#" not in encoded
    assert encoded not in (".", "..")
    url = httpx2.URL(f"http://h/base/{encoded}/tail")
    assert url.raw_path.decode().startswith("/base/") and url.raw_path.decode().endswith("/tail")
    assert url.raw_path.decode().count("/") == 3


def free_form_registry():
    """A tool whose path parameter accepts any string, so only encoding stands between it and the route."""
    return parse_registry(
        {
            "version": 1,
            "providers": {
                "p": {
                    "title": "P",
                    "base_url": "http://127.0.0.1:9/api",
                    "url_env": "P_URL",
                    "auth": {"scheme": "bearer", "secret_env": "P_KEY"},
                }
            },
            "tools": [
                {
                    "name": "get-thing",
                    "provider": "p",
                    "title": "t",
                    "description": "d",
                    "method": "GET",
                    "path": "/things/{name}:show",
                    "query": {"recursion": "1"},
                    "hints": {"readOnly": True, "destructive": False, "idempotent": True, "openWorld": True},
                    "params": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "description": "d",
                            "schema": {"type": "string"},
                        },
                        {"name": "q", "in": "query", "description": "d", "schema": {"type": "boolean"}},
                    ],
                }
            ],
        }
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_free_form_path_values_cannot_escape(value: str) -> None:
    registry = free_form_registry()
    tool = registry.tools[0]
    built = build_request(tool, registry.providers["p"], {"name": value}, BASE, ACCOUNT)
    raw = httpx2.Request("GET", built.url, params=built.params).url.raw_path.decode()
    path = raw.split("?")[0]
    assert path.startswith("/api/things/") and path.endswith(":show") and path.count("/") == 3
    assert raw.endswith("?recursion=1")


def test_fixed_query_becomes_a_real_parameter() -> None:
    built = request("get-operations-2", {"project": "default"}, {"INCUS_SOCKET": "/nonexistent.sock"})
    assert built.url == "http://incus/1.0/operations"
    assert ("recursion", "1") in built.params and ("project", "default") in built.params


def test_exoscale_zone_from_argument_default_and_env() -> None:
    env = {"EXOSCALE_API_KEY": "k", "EXOSCALE_API_SECRET": "s"}
    assert request("stop-compute-instance", {"id": UUID, "zone": "de-fra-1"}, env).url == (
        f"https://api-de-fra-1.exoscale.com/v2/instance/{UUID}:stop"
    )
    assert request("stop-compute-instance", {"id": UUID}, env).url.startswith("https://api-ch-gva-2.")
    assert request("stop-compute-instance", {"id": UUID}, {**env, "EXOSCALE_ZONE": "at-vie-1"}).url.startswith(
        "https://api-at-vie-1."
    )
    with pytest.raises(ConfigError, match="EXOSCALE_ZONE"):
        request("stop-compute-instance", {"id": UUID}, {**env, "EXOSCALE_ZONE": "moon-1"})


def test_scaleway_zone_in_path_and_url_override() -> None:
    built = request(
        "get-instance-image", {"image_id": UUID, "zone": "nl-ams-1"}, {"SCW_API_URL": "http://127.0.0.1:1/"}
    )
    assert built.url == f"http://127.0.0.1:1/instance/v1/zones/nl-ams-1/images/{UUID}"


def test_body_carries_only_given_fields() -> None:
    built = request("scale-compute-instance-new-instance", {"id": UUID, "instance-type": {"id": UUID}})
    assert built.method == "PUT" and built.body == {"instance-type": {"id": UUID}}
    assert request("stop-compute-instance", {"id": UUID}).body is None


def test_fixed_body_fields_are_sent_with_the_agents() -> None:
    env = {"PORTAINER_URL": "http://127.0.0.1:1"}
    built = request("create-docker-exec", {"endpointId": 1, "id": "web", "Cmd": ["ls"], "Tty": False}, env)
    assert (built.method, built.url) == ("POST", "http://127.0.0.1:1/api/endpoints/1/docker/containers/web/exec")
    assert built.body == {"AttachStdout": True, "AttachStderr": True, "Cmd": ["ls"], "Tty": False}
    registry = free_form_registry()  # a tool with fixed fields and no body parameter sends just those
    tool = registry.tools[0].model_copy(update={"method": "POST", "body": {"confirm": True}})
    built = build_request(tool, registry.providers["p"], {"name": "x"}, BASE, ACCOUNT)
    assert built.body == {"confirm": True}


def test_portainer_without_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="PORTAINER_URL"):
        request("attach-websocket", {"endpointId": 1, "id": "abc123"})


def test_fill_encodes_each_value_as_one_segment_and_leaves_other_placeholders() -> None:
    template = "https://api-{zone}.example/v2/instance/{id}:{action}"
    assert fill(template, {"id": "../a b/{zone}", "action": "start"}) == (
        "https://api-{zone}.example/v2/instance/%2E%2E%2Fa%20b%2F%7Bzone%7D:start"
    )  # one pass: a value holding a placeholder is never filled again
    assert fill("/operation/{id}", {"id": 7}) == "/operation/7"


def test_a_response_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_cloudops.upstream as upstream

    calls: list[bytes] = []
    real = upstream.parse_body
    monkeypatch.setattr(upstream, "parse_body", lambda content: calls.append(content) or real(content))
    response = Response(429, {"retry-after": "1"}, b'{"retry_after": 2}')
    assert response.body == {"retry_after": 2} and response.body is response.body
    assert upstream.retry_wait(REGISTRY.providers["exoscale"], response, 1, 10) == 1.0
    assert calls == [b'{"retry_after": 2}']


def test_a_retry_waits_what_the_body_asks_only_where_the_provider_declares_the_field() -> None:
    import mcp_cloudops.upstream as upstream

    response = Response(429, {}, b'{"retry_after": 2}')
    assert upstream.retry_wait(REGISTRY.providers["exoscale"], response, 1, 10) == 2.0
    assert upstream.retry_wait(REGISTRY.providers["scaleway"], response, 1, 10) == upstream.backoff(1)
    assert upstream.retry_wait(REGISTRY.providers["exoscale"], response, 1, 1) is None  # longer than the cap


# --- issue 20, finding 6: an answer's JSON values are bounded, and a big one is read off the event loop -----


def test_a_body_of_too_many_values_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_cloudops.upstream as upstream

    parsed: list[bytes] = []
    real = upstream.parse_body
    monkeypatch.setattr(upstream, "parse_body", lambda content: parsed.append(content) or real(content))
    content = b"[" + b"0," * 10_000 + b"0]"  # 10,002 values
    assert Response(200, {}, content).body == [0] * 10_001  # no bound: parsed
    assert Response(200, {}, content, max_values=10_002).body == [0] * 10_001
    assert Response(200, {}, content, max_values=10_001).too_many
    assert Response(429, {}, content, max_values=10_001).body is None  # a retry reads no field from it
    assert len(parsed) == 2


def nirvana_upstreams(handler: Any, **env: str) -> tuple[Upstreams, Any]:
    """Upstreams whose Nirvana client answers through `handler`, and the tool list-nirvana-projects."""
    upstreams = Upstreams(REGISTRY, Settings.from_env({"NIRVANA_LABS_API_KEY": "k" * 20, **env}))
    upstreams._clients["nirvana", "default"] = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return upstreams, REGISTRY.by_name["list-nirvana-projects"]


@pytest.mark.anyio
async def test_too_many_values_is_an_error_naming_the_narrowing_arguments() -> None:
    answers = {"sent": 0}

    def handler(request: httpx2.Request) -> httpx2.Response:
        answers["sent"] += 1
        return httpx2.Response(200, content=b'{"items":[' + b"{}," * 20_000 + b"{}]}")

    upstreams, tool = nirvana_upstreams(handler, MCP_CLOUDOPS_MAX_RESPONSE_BYTES="320000")
    with pytest.raises(UpstreamError) as raised:
        await upstreams.call(tool, {})
    assert str(raised.value) == (
        "Nirvana Labs answered list-nirvana-projects with more than 20000 JSON values (items and their fields); "
        "mcp-cloudops did not parse it. To get less, narrow the call with cursor, limit."
    )
    assert answers["sent"] == 1  # not retried
    await upstreams.aclose()


@pytest.mark.anyio
async def test_a_big_body_is_counted_and_parsed_on_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import mcp_cloudops.upstream as upstream

    where: list[str] = []
    real = upstream.parse_body
    monkeypatch.setattr(upstream, "parse_body", lambda c: where.append(threading.current_thread().name) or real(c))
    big = {"items": [{"id": str(n)} for n in range(5000)]}  # over OFF_LOOP_BYTES
    bodies = iter([{"items": []}, big])
    upstreams, tool = nirvana_upstreams(lambda request: httpx2.Response(200, json=next(bodies)))
    assert await upstreams.call(tool, {}) == {"items": []}
    assert await upstreams.call(tool, {}) == big
    assert where[0] == threading.current_thread().name and where[1] != where[0]
    await upstreams.aclose()


@pytest.mark.anyio
async def test_a_calls_view_counts_the_bytes_its_upstream_bodies_had() -> None:
    """What says whether a result is shaped on the event loop (shaping.off_loop), without walking it."""
    from mcp_cloudops.accounts import Account

    body = b'{"items":[{"id":"a"},{"id":"b"}]}'
    upstreams, tool = nirvana_upstreams(lambda request: httpx2.Response(200, content=body))
    view = upstreams.using(upstreams.account(REGISTRY.provider_of(tool)))
    assert isinstance(view.account(REGISTRY.provider_of(tool)), Account)
    await view.call(tool, {})
    await view.call(tool, {})
    assert (view.received, upstreams.received) == (2 * len(body), 0)  # each call's view its own
    assert upstreams.using(view.account(REGISTRY.provider_of(tool))).received == 0
    await upstreams.aclose()
