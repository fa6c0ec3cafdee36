"""mcp-cloudops: one MCP server for Incus, Exoscale, Scaleway, Portainer and Nirvana Labs."""

__version__ = "0.1.0"
