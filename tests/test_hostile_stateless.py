"""`--stateless` keeps confirmation honest (finding 5).

Stateless HTTP forgets the initialize handshake between requests, so a handshake-era client that
declared elicitation looked like one that cannot confirm, and under the default fallback a
destructive call ran unconfirmed. Now such a client is asked where the transport can ask (the
2026-07-28 era carries its capabilities and answers in every request) and refused, with what to
change, where it cannot.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ElicitResult
from support import HttpServer, text_of

from mcp_cloudops.sandbox.exoscale import INSTANCE_STOPPED

pytestmark = pytest.mark.anyio
DELETE = ("delete-compute-instance", {"id": INSTANCE_STOPPED})


@pytest.fixture(scope="module")
def stateless() -> Iterator[HttpServer]:
    with HttpServer.running("--stateless") as server:
        yield server


def declining(asked: list[str]) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="decline")

    return callback


async def still_there(client: Client) -> bool:
    listed = await client.call_tool("list-compute-instances", {})
    return any(item["id"] == INSTANCE_STOPPED for item in listed.structured_content["instances"])


async def test_a_handshake_era_client_is_refused_with_what_to_change(stateless: HttpServer) -> None:
    asked: list[str] = []
    with anyio.fail_after(60):
        async with Client(stateless.url, mode="legacy", elicitation_callback=declining(asked)) as client:
            result = await client.call_tool(*DELETE)
            assert result.is_error, text_of(result)
            assert "--stateless" in text_of(result) and "--confirm-fallback" in text_of(result)
            assert "nothing was changed" in text_of(result)
            assert await still_there(client)


async def test_a_2026_era_client_is_asked(stateless: HttpServer) -> None:
    asked: list[str] = []
    with anyio.fail_after(60):
        async with Client(stateless.url, mode="auto", elicitation_callback=declining(asked)) as client:
            result = await client.call_tool(*DELETE)
            assert result.is_error and "did not confirm" in text_of(result), text_of(result)
            assert len(asked) == 1 and INSTANCE_STOPPED in asked[0]
            assert await still_there(client)
