"""The floor: a bare MCPServer whose two tools make the same upstream calls as ours, with the same HTTP
client, pooled and authenticated the same way, and return the upstream's JSON as it came: no registry, no
validation, no redaction, no shaping, no journal. What is left between it and mcp-cloudops is what those cost.

    floor_server.py serve --port P     # streamable HTTP, for bench/per_call.py and bench/throughput.py
    (or `build(env)`, in the benchmark's own process, for the in-memory path)

Environment: the sandbox's (NIRVANA_LABS_BASE_URL, NIRVANA_LABS_API_KEY, EXOSCALE_API_URL with {zone},
EXOSCALE_API_KEY, EXOSCALE_API_SECRET).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mcp_cloudops.auth import ExoscaleV2Auth  # the same signer our tools use


def build(env: Mapping[str, str]) -> MCPServer:
    timeout = httpx2.Timeout(30.0, connect=5.0)
    headers = {"Accept": "application/json", "User-Agent": "floor"}
    nirvana = httpx2.AsyncClient(
        base_url=env["NIRVANA_LABS_BASE_URL"],
        headers=headers | {"Authorization": f"Bearer {env['NIRVANA_LABS_API_KEY']}"},
        timeout=timeout,
    )
    auth = ExoscaleV2Auth(SecretStr(env["EXOSCALE_API_KEY"]), SecretStr(env["EXOSCALE_API_SECRET"]))
    exoscale = httpx2.AsyncClient(
        base_url=env["EXOSCALE_API_URL"].replace("{zone}", "ch-gva-2"), auth=auth, headers=headers, timeout=timeout
    )
    server = MCPServer(name="floor", log_level="WARNING")

    @server.tool(name="get-nirvana-operation")
    async def get_nirvana_operation(operation_id: str) -> dict[str, Any]:
        """Get one Nirvana Labs operation."""
        return (await nirvana.get(f"/v1/operations/{operation_id}")).json()

    @server.tool(name="list-compute-instances")
    async def list_compute_instances() -> dict[str, Any]:
        """List the Exoscale instances of ch-gva-2."""
        return (await exoscale.get("/instance")).json()

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = build(os.environ)
    server.run(transport="streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
