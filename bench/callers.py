"""The two ways to make each compared call: an MCP tool call, or the same upstream request made
directly. Each times and checks one call (errors counted, never hidden), so per-call and throughput
compare exactly the same requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from common import ERRORS
from sandbox import Sandbox


def expect(tool: str, op_id: str) -> str:
    return op_id if tool == "get-nirvana-operation" else '"instances"'


class Caller:
    """One way to make each compared call, returning elapsed ms (errors counted, never hidden)."""

    def __init__(self, label: str, op_id: str) -> None:
        self.label = label
        self.op_id = op_id

    async def call(self, tool: str) -> float:
        start = time.perf_counter()
        try:
            why = await self._call(tool)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - start) * 1000
        if why:
            ERRORS.add(f"{self.label} {tool}", why)
        return elapsed

    async def _call(self, tool: str) -> str:
        raise NotImplementedError


class McpCaller(Caller):
    def __init__(self, label: str, op_id: str, client: Any, tool_name: Callable[[str], str]) -> None:
        super().__init__(label, op_id)
        self.client = client
        self.tool_name = tool_name

    async def _call(self, tool: str) -> str:
        args = {"operation_id": self.op_id} if tool == "get-nirvana-operation" else {}
        result = await self.client.call_tool(self.tool_name(tool), args)
        text = "".join(getattr(c, "text", "") for c in result.content)
        if result.is_error or expect(tool, self.op_id) not in text:
            return f"tool error: {text[:200]}"
        return ""


class DirectCaller(Caller):
    """The same upstream request made directly, pooled and authenticated as ours are: with httpx2 (what
    mcp-cloudops, the SDK and the peer use upstream) or httpx 0.28 (what we used before), to show the
    library's share."""

    def __init__(self, label: str, op_id: str, sandbox: Sandbox, lib: str = "httpx2") -> None:
        from pydantic import SecretStr

        from mcp_cloudops.auth import ExoscaleV2Auth, exo2_authorization

        super().__init__(label, op_id)
        self.lib = lib
        self.key, self.secret = sandbox.env["EXOSCALE_API_KEY"], sandbox.env["EXOSCALE_API_SECRET"]
        self.sign = exo2_authorization
        headers = {"Accept": "application/json"}
        bearer = {"Authorization": f"Bearer {sandbox.env['NIRVANA_LABS_API_KEY']}"}
        if lib == "httpx2":
            import httpx2

            timeout = httpx2.Timeout(30.0, connect=5.0)
            auth = ExoscaleV2Auth(SecretStr(self.key), SecretStr(self.secret))
            self.nirvana: Any = httpx2.AsyncClient(base_url=sandbox.nirvana, headers=headers | bearer, timeout=timeout)
            self.exoscale: Any = httpx2.AsyncClient(
                base_url=sandbox.exoscale_zone_url, auth=auth, timeout=timeout, headers=headers
            )
        else:
            import httpx

            timeout1 = httpx.Timeout(30.0, connect=5.0)
            self.nirvana = httpx.AsyncClient(base_url=sandbox.nirvana, headers=headers | bearer, timeout=timeout1)
            self.exoscale = httpx.AsyncClient(base_url=sandbox.exoscale_zone_url, timeout=timeout1, headers=headers)
        self.exo_path = "/" + sandbox.exoscale_zone_url.split("/", 3)[3] + "/instance"

    async def _call(self, tool: str) -> str:
        if tool == "get-nirvana-operation":
            response = await self.nirvana.get(f"/v1/operations/{self.op_id}")
        elif self.lib == "httpx2":
            response = await self.exoscale.get("/instance")
        else:  # ExoscaleV2Auth is an httpx2.Auth: for httpx, sign the same way, by hand
            sig = self.sign(self.key, self.secret, "GET", self.exo_path, "", b"", int(time.time()) + 600)
            response = await self.exoscale.get("/instance", headers={"Authorization": sig})
        ok = response.status_code == 200 and expect(tool, self.op_id) in response.text
        return "" if ok else f"HTTP {response.status_code}: {response.text[:120]}"

    async def aclose(self) -> None:
        await self.nirvana.aclose()
        await self.exoscale.aclose()
