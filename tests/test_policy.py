"""policy: which tools a server offers (read-only mode, toolsets, allow and deny lists); unknown names refused."""

from __future__ import annotations

import pytest
from mcp import Client

from mcp_cloudops.policy import PolicyError, check_names, enabled, read_only_refusal, select_tools
from mcp_cloudops.registry import Registry, load_registry
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings
from mcp_cloudops.upstream import Upstreams

pytestmark = pytest.mark.anyio
REGISTRY = load_registry()
ALL = [t.name for t in REGISTRY.tools]
READ_ONLY = [t.name for t in REGISTRY.tools if t.hints.readOnly and not t.credential]  # credentials write
SCALEWAY = [t.name for t in REGISTRY.tools if t.provider == "scaleway"]


def names_of(provider: str | None = None, read_only: bool | None = None) -> list[str]:
    return [
        t.name
        for t in REGISTRY.tools
        if (provider is None or t.provider == provider)
        and (read_only is None or (t.hints.readOnly and not t.credential) == read_only)
    ]


SELECTIONS = [
    ("default", {}, ALL),
    ("read-only", {"MCP_CLOUDOPS_READ_ONLY": "1"}, READ_ONLY),
    ("read-only-word", {"MCP_CLOUDOPS_READ_ONLY": "Yes"}, READ_ONLY),
    ("read-only-off", {"MCP_CLOUDOPS_READ_ONLY": "0"}, ALL),
    ("toolset", {"MCP_CLOUDOPS_TOOLSETS": "scaleway"}, SCALEWAY),
    ("toolsets-spaced", {"MCP_CLOUDOPS_TOOLSETS": " nirvana , scaleway ,,"},
     names_of("scaleway") + names_of("nirvana")),
    ("toolset-read-only", {"MCP_CLOUDOPS_TOOLSETS": "exoscale", "MCP_CLOUDOPS_READ_ONLY": "true"},
     names_of("exoscale", read_only=True)),
    ("tools", {"MCP_CLOUDOPS_TOOLS": "get-instance-image,list-instance-images"},
     ["list-instance-images", "get-instance-image"]),  # registry order, not the list's
    ("exclude", {"MCP_CLOUDOPS_EXCLUDE_TOOLS": "delete-compute-instance,execute-websocket"},
     [n for n in ALL if n not in ("delete-compute-instance", "execute-websocket")]),
    ("exclude-wins", {"MCP_CLOUDOPS_TOOLS": "get-instance-image,delete-instance-image",
                      "MCP_CLOUDOPS_EXCLUDE_TOOLS": "delete-instance-image"}, ["get-instance-image"]),
    ("read-only-wins", {"MCP_CLOUDOPS_TOOLS": "get-instance-image,delete-instance-image",
                        "MCP_CLOUDOPS_READ_ONLY": "on"}, ["get-instance-image"]),
    ("all-layers", {"MCP_CLOUDOPS_TOOLSETS": "incus,portainer", "MCP_CLOUDOPS_READ_ONLY": "1",
                    "MCP_CLOUDOPS_EXCLUDE_TOOLS": "get-operations"},
     [n for n in names_of("incus", read_only=True) + names_of("portainer", read_only=True) if n != "get-operations"]),
    ("blank-lists-restrict-nothing", {"MCP_CLOUDOPS_TOOLSETS": " ", "MCP_CLOUDOPS_TOOLS": "",
                                      "MCP_CLOUDOPS_EXCLUDE_TOOLS": " "}, ALL),
]  # fmt: skip


@pytest.mark.parametrize(("env", "expected"), [s[1:] for s in SELECTIONS], ids=[s[0] for s in SELECTIONS])
def test_select_tools(env: dict[str, str], expected: list[str]) -> None:
    settings = Settings.from_env(env)
    selected = [t.name for t in select_tools(REGISTRY, settings)]
    assert selected == [n for n in ALL if n in expected]  # registry order
    assert sorted(selected) == sorted(expected)
    for tool in REGISTRY.tools:
        assert enabled(tool, settings) == (tool.name in expected)


def test_the_tables_cover_both_kinds_of_tool() -> None:
    assert READ_ONLY and len(READ_ONLY) < len(ALL)
    assert "execute-websocket" not in READ_ONLY and "attach-websocket" in READ_ONLY


KNOWN = ", ".join(REGISTRY.providers)  # in tools.yaml's order
REFUSED = [
    ("unknown-toolset", {"MCP_CLOUDOPS_TOOLSETS": "scaleway,aws"}, f"unknown toolset(s) aws; known: {KNOWN}"),
    ("toolset-case", {"MCP_CLOUDOPS_TOOLSETS": "Scaleway"}, f"unknown toolset(s) Scaleway; known: {KNOWN}"),
    ("unknown-tool", {"MCP_CLOUDOPS_TOOLS": "get-instance-imag"},
     "unknown tool(s) get-instance-imag; see `mcp-cloudops list-tools`"),
    ("unknown-excluded", {"MCP_CLOUDOPS_EXCLUDE_TOOLS": "delete-everything,delete-compute-instance"},
     "unknown tool(s) delete-everything; see `mcp-cloudops list-tools`"),
    ("several-unknown", {"MCP_CLOUDOPS_TOOLS": "zz,aa", "MCP_CLOUDOPS_EXCLUDE_TOOLS": "mm"},
     "unknown tool(s) aa, mm, zz; see `mcp-cloudops list-tools`"),
    ("confirm-fallback", {"MCP_CLOUDOPS_CONFIRM_FALLBACK": "maybe"},
     "confirm fallback must be allow or refuse, not 'maybe'"),
]  # fmt: skip


@pytest.mark.parametrize(("env", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_unknown_names_are_refused(env: dict[str, str], message: str) -> None:
    settings = Settings.from_env(env)
    with pytest.raises(PolicyError) as raised:
        check_names(REGISTRY, settings)
    assert str(raised.value) == message
    with pytest.raises(PolicyError):
        select_tools(REGISTRY, settings)
    with pytest.raises(PolicyError):  # a server is never built with a typo in its policy
        build_server(Settings.from_env(env), REGISTRY)


def test_each_toolset_offers_its_providers_tools_and_no_other(registry: Registry) -> None:
    for key in registry.providers:
        settings = Settings.from_env({"MCP_CLOUDOPS_TOOLSETS": key})
        own = [tool.name for tool in registry.tools if tool.provider == key]
        assert own and [tool.name for tool in select_tools(registry, settings)] == own, key


def test_an_unknown_toolset_is_refused_naming_every_provider(registry: Registry) -> None:
    with pytest.raises(PolicyError) as raised:
        check_names(registry, Settings.from_env({"MCP_CLOUDOPS_TOOLSETS": "aws"}))
    assert str(raised.value) == f"unknown toolset(s) aws; known: {', '.join(registry.providers)}"


@pytest.mark.parametrize("name", ["MCP_CLOUDOPS_TOOLS", "MCP_CLOUDOPS_TOOLSETS"])
def test_a_list_of_only_commas_does_not_silently_empty_the_server(name: str) -> None:
    settings = Settings.from_env({name: " , "})
    with pytest.raises(PolicyError):
        select_tools(REGISTRY, settings)


async def test_the_server_offers_only_the_selected_tools() -> None:
    env = {"MCP_CLOUDOPS_TOOLSETS": "scaleway", "MCP_CLOUDOPS_READ_ONLY": "1"}
    async with Client(build_server(Settings.from_env(env), REGISTRY)) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert listed == ["list-instance-images", "get-instance-image", "list-scaleway-snapshots"]
        result = await client.call_tool("delete-instance-image", {"image_id": "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50101"})
        assert result.is_error and result.content[0].text == (
            "delete-instance-image is not offered: this server runs read-only (--read-only, MCP_CLOUDOPS_READ_ONLY), "
            "so nothing that changes things or returns a credential is. Read tools/list for what is offered."
        )
        result = await client.call_tool("list-compute-instances", {"zone": "ch-gva-2"})
        assert result.is_error and result.content[0].text.startswith("list-compute-instances is not offered: this")


async def test_read_only_upstream_layer_refuses_anything_but_get() -> None:
    """Belt and braces: even a mutating tool reaching the upstream layer is not sent in read-only mode."""
    settings = Settings.from_env(
        {"MCP_CLOUDOPS_READ_ONLY": "1", "SCW_API_URL": "http://127.0.0.1:9", "SCW_SECRET_KEY": "k" * 8}
    )
    upstreams = Upstreams(REGISTRY, settings)
    tool = REGISTRY.by_name["delete-instance-image"]
    with pytest.raises(UpstreamError) as raised:
        await upstreams.call(tool, {"image_id": "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50101", "zone": "fr-par-1"})
    assert str(raised.value) == (
        "Read-only mode: mcp-cloudops refuses to send DELETE for delete-instance-image to Scaleway. "
        "Restart the server without --read-only (MCP_CLOUDOPS_READ_ONLY) to allow changes."
    )
    assert upstreams._clients == {}  # no client was even created


@pytest.mark.parametrize(
    ("read_only", "method", "runs_commands", "refused"),
    [(False, "DELETE", True, False), (True, "GET", False, False), (True, "PUT", False, True),
     (True, "GET", True, True)],
)  # fmt: skip
def test_one_read_only_guard_for_requests_and_websockets(
    read_only: bool, method: str, runs_commands: bool, refused: bool
) -> None:
    settings = Settings.from_env({"MCP_CLOUDOPS_READ_ONLY": "1" if read_only else "0"})
    tool = REGISTRY.by_name["execute-websocket"]
    reason = read_only_refusal(settings, tool, REGISTRY.provider_of(tool), method=method, runs_commands=runs_commands)
    assert (reason is not None) == refused
    if reason:
        assert reason.startswith("Read-only mode:") and "--read-only" in reason


@pytest.mark.parametrize(
    "env",
    [{"MCP_CLOUDOPS_TOOLS": "get-websocket-stream"}, {"MCP_CLOUDOPS_EXCLUDE_TOOLS": "wait-operation"}],
)
def test_a_tool_is_offered_only_with_the_tools_its_flow_calls(env: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match=r"get-websocket-stream calls (get-operation-state|wait-operation)"):
        select_tools(REGISTRY, Settings.from_env(env))
    both = Settings.from_env({"MCP_CLOUDOPS_TOOLS": "get-websocket-stream,get-operation-state,wait-operation"})
    assert [t.name for t in select_tools(REGISTRY, both)] == ["get-operation-state", "wait-operation",
                                                               "get-websocket-stream"]  # fmt: skip
