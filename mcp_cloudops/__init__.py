"""mcp-cloudops: one MCP server for Incus, Exoscale, Scaleway, Portainer and Nirvana Labs."""

from __future__ import annotations

DISTRIBUTION = "mcp-cloudops"


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed distribution's metadata: pyproject.toml is its one source.
    Looked up on first use, not at import: metadata lookup costs ~25 ms before `mcp` has warmed it."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version(DISTRIBUTION)
        except PackageNotFoundError:  # a source tree on sys.path, never installed
            found = "0+unknown"
        globals()["__version__"] = found  # looked up once: later reads find the attribute itself
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
