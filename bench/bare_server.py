"""The floor: a bare one-tool MCPServer over stdio, nothing but the SDK's own import and start-up.

`python bench/bare_server.py` is what bench/run.py times against `python -m mcp_cloudops serve`.
"""

from mcp.server.mcpserver import MCPServer

mcp = MCPServer(name="bare", log_level="WARNING")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    mcp.run()
