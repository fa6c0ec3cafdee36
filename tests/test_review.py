"""review.py: what a call naming it only by id runs, read from the upstream for the confirmation question."""

from __future__ import annotations

import pytest

from mcp_cloudops.registry import load_registry
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.review import what_runs
from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.settings import Settings
from mcp_cloudops.upstream import Upstreams

pytestmark = pytest.mark.anyio


async def test_the_fields_are_picked_by_dotted_path(sandbox: Sandbox) -> None:
    registry = load_registry()
    upstreams = Upstreams(registry, Settings.from_env(sandbox.env))
    try:
        portainer = sandbox["portainer"]
        runs = await what_runs(
            upstreams, registry.by_name["execute-websocket"], {"endpointId": 1, "id": portainer.exec_id}
        )
        assert runs["command"] == "echo" and runs["arguments"] == ["hello from web"]
        assert runs["container"] == portainer.container_id and runs["privileged"] is False
        op = sandbox["incus"].seeded["exec"]
        runs = await what_runs(upstreams, registry.by_name["get-websocket-stream"], {"id": op})
        assert runs["command"] == ["uname", "-a"] and runs["instance"] == ["/1.0/instances/c1"]
    finally:
        await upstreams.aclose()


async def test_an_unreadable_one_says_nothing_ran_and_where_ids_come_from(sandbox: Sandbox) -> None:
    registry = load_registry()
    upstreams = Upstreams(registry, Settings.from_env(sandbox.env))
    try:
        with pytest.raises(UpstreamError) as caught:
            await what_runs(upstreams, registry.by_name["execute-websocket"], {"endpointId": 1, "id": "ab" * 32})
    finally:
        await upstreams.aclose()
    message = str(caught.value)
    assert message.startswith("execute-websocket was refused and nothing was run") and "HTTP 404" in message
    assert "create-docker-exec" in message
