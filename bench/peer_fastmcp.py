"""The comparison peer: FastMCP.from_openapi over the same endpoints (run with bench/.venv-fastmcp).

Tools come from bench/openapi-nirvana.json (2 operations) and bench/openapi-exoscale.json (the 21
Exoscale operations mcp-cloudops exposes, trimmed from the exoscale wheel), named as our tools are
(`mcp_names`). What a user gets from `from_openapi`, with these deliberate settings:

- `show_banner=False` on run (no banner, no PyPI update check: fair start-up timing offline);
- the upstream base URLs and credentials come from the environment (below), as ours do;
- FastMCP has no request signing: the Exoscale client gets a small EXO2-HMAC-SHA256 `httpx2.Auth`
  written here (what a user would have to add), so the same signed Exoscale call can be compared;
- `validate_output` is False by default (`--validate-output` for FastMCP's default): with it,
  generated output schemas carry OpenAPI 3.0's boolean exclusiveMinimum, which the `mcp` client
  rejects as invalid JSON Schema (bench/README.md, "Why the peer is set up this way").

Environment: PEER_NIRVANA_URL, NIRVANA_LABS_API_KEY, PEER_EXOSCALE_URL (zone already filled in,
e.g. http://127.0.0.1:PORT/ch-gva-2/v2), EXOSCALE_API_KEY, EXOSCALE_API_SECRET. Unset URLs point at
a closed port (fine for start-up and tools/list).

    peer_fastmcp.py serve [--transport stdio|http] [--port P] [--validate-output]
    peer_fastmcp.py tools [--validate-output]       # tools/list result as compact JSON on stdout
    peer_fastmcp.py inmem                            # in-memory latency blocks (JSON lines on stdin/stdout)
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
import httpx2
from fastmcp import FastMCP
from fastmcp.server.providers.openapi import OpenAPIProvider

HERE = Path(__file__).resolve().parent
CLOSED = "http://127.0.0.1:9"


class Exo2Auth(httpx2.Auth):
    """EXO2-HMAC-SHA256, as Exoscale documents it (FastMCP has no signing of its own)."""

    requires_request_body = True

    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret

    def auth_flow(self, request: httpx2.Request):  # type: ignore[no-untyped-def]
        raw_query = request.url.query.decode("ascii")
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        names = [n for n, _ in pairs]
        query = sorted((n, v) for n, v in pairs if names.count(n) == 1)
        expires = int(time.time()) + 600
        path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        message = b"\n".join(
            [f"{request.method} {path}".encode(), request.content, "".join(v for _, v in query).encode(), b"",
             str(expires).encode()]
        )  # fmt: skip
        digest = hmac.new(self.secret.encode(), message, hashlib.sha256).digest()
        parts = [f"EXO2-HMAC-SHA256 credential={self.key}"]
        if query:
            parts.append("signed-query-args=" + ";".join(n for n, _ in query))
        parts += [f"expires={expires}", "signature=" + base64.standard_b64encode(digest).decode()]
        request.headers["Authorization"] = ",".join(parts)
        yield request


def clients() -> tuple[httpx2.AsyncClient, httpx2.AsyncClient]:
    env = os.environ
    timeout = httpx2.Timeout(30.0, connect=5.0)
    nirvana = httpx2.AsyncClient(
        base_url=env.get("PEER_NIRVANA_URL", CLOSED),
        headers={"Authorization": f"Bearer {env.get('NIRVANA_LABS_API_KEY', '')}"},
        timeout=timeout,
    )
    exoscale = httpx2.AsyncClient(
        base_url=env.get("PEER_EXOSCALE_URL", CLOSED),
        auth=Exo2Auth(env.get("EXOSCALE_API_KEY", ""), env.get("EXOSCALE_API_SECRET", "")),
        timeout=timeout,
    )
    return nirvana, exoscale


def load(name: str) -> dict[str, Any]:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def build(validate_output: bool = False) -> FastMCP:
    nirvana_doc, exoscale_doc = load("openapi-nirvana.json"), load("openapi-exoscale.json")
    exo_names = exoscale_doc.pop("x-mcp-names", {})
    nirvana_client, exoscale_client = clients()
    server = FastMCP.from_openapi(
        openapi_spec=nirvana_doc, client=nirvana_client, name="fastmcp-openapi-peer", validate_output=validate_output
    )
    server.add_provider(
        OpenAPIProvider(
            openapi_spec=exoscale_doc, client=exoscale_client, mcp_names=exo_names, validate_output=validate_output
        )
    )
    return server


async def tools_json(validate_output: bool) -> str:
    from mcp import Client

    server = build(validate_output)
    async with Client(server._mcp_server, mode="legacy") as client:  # the same SDK client we use for ours
        result = await client.list_tools()
    return json.dumps(result.model_dump(by_alias=True, exclude_none=True, mode="json"), separators=(",", ":"))


async def inmem() -> None:
    """In-memory latency, interleaved: MCP tool call vs the same GET with httpx2, for both tools.

    Long-lived: each stdin line {"n": N, "warmup": W, "op_id": ID} runs one block and answers one
    JSON line {"samples_ms": {tool: {"mcp": [...], "direct": [...]}}, "errors": [...]}, so the
    caller can alternate blocks with its own. Ends at EOF.
    """
    from mcp import Client

    server = build(False)
    nirvana_direct, exoscale_direct = clients()
    gc.freeze()  # as bench/inmem_host.py does after building ours or the floor
    async with Client(server._mcp_server, mode="legacy") as client, nirvana_direct, exoscale_direct:
        await client.list_tools()
        print(json.dumps({"ready": True}), flush=True)
        while line := await anyio.to_thread.run_sync(sys.stdin.readline):
            job = json.loads(line)
            op_id = job["op_id"]
            calls = {
                "get-nirvana-operation": (
                    {"operation_id": op_id},
                    op_id,
                    lambda op_id=op_id: nirvana_direct.get(f"/v1/operations/{op_id}"),
                ),
                "list-compute-instances": ({}, "instances", lambda: exoscale_direct.get("/instance")),
            }
            samples: dict[str, dict[str, list[float]]] = {name: {"mcp": [], "direct": []} for name in calls}
            errors: list[str] = []
            for i in range(job["warmup"] + job["n"]):
                for name, (args, marker, direct) in calls.items():
                    order = ("mcp", "direct") if i % 2 == 0 else ("direct", "mcp")
                    for kind in order:
                        start = time.perf_counter()
                        try:
                            if kind == "mcp":
                                result = await client.call_tool(name.replace("-", "_"), args)
                                text = "".join(getattr(c, "text", "") for c in result.content)
                                why = "" if not result.is_error and marker in text else f"tool error: {text[:200]}"
                            else:
                                response = await direct()
                                ok = response.status_code == 200 and marker in response.text
                                why = "" if ok else f"HTTP {response.status_code}"
                        except Exception as exc:  # counted, reported, never hidden
                            why = f"{type(exc).__name__}: {exc}"[:200]
                        elapsed = (time.perf_counter() - start) * 1000
                        if why:
                            errors.append(f"{kind} {name}: {why}")
                        if i >= job["warmup"]:
                            samples[name][kind].append(elapsed)
            print(json.dumps({"samples_ms": samples, "errors": errors}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--validate-output", action="store_true")
    tools = sub.add_parser("tools")
    tools.add_argument("--validate-output", action="store_true")
    sub.add_parser("inmem")
    args = ap.parse_args()

    if args.command == "serve":
        server = build(args.validate_output)
        if args.transport == "stdio":
            server.run(transport="stdio", show_banner=False)
        else:
            server.run(transport="http", host="127.0.0.1", port=args.port, show_banner=False, log_level="warning")
        return 0
    if args.command == "tools":
        print(anyio.run(tools_json, args.validate_output))
        return 0
    anyio.run(inmem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
