"""Where log records go: stderr, one line each, through the redaction filter build_server installs.

Logging is ours to set, not the SDK's: MCPServer() would put a rich handler on the root logger, which
costs ~20 ms of imports at every start and prints records over several lines.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from types import ModuleType


def configure_logging(level: str = "INFO") -> None:
    """Logs to stderr at `level` (MCP_CLOUDOPS_LOG_LEVEL, checked by Settings); other libraries at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mcp_cloudops").setLevel(level)
    # httpx2 (our upstream client, and the SDK's) logs every request URL at INFO; URLs are not for logs.
    for name in ("httpx2", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def sdk_logging_skipped(sdk_module: ModuleType, level: str) -> Iterator[None]:
    """While MCPServer() runs, its module's configure_logging step does what ours does, and only where
    nothing has set a handler yet (as logging.basicConfig would): the records still reach stderr, and
    through the redaction filter, when the server is built without the CLI (`mcp dev`, an embedding)."""
    original = getattr(sdk_module, "configure_logging", None)
    if original is None:  # an SDK that no longer configures logging there
        yield
        return

    def ours(*_args: object, **_kwargs: object) -> None:
        if not logging.getLogger().handlers:
            configure_logging(level)

    sdk_module.configure_logging = ours  # type: ignore[attr-defined]
    try:
        yield
    finally:
        sdk_module.configure_logging = original  # type: ignore[attr-defined]
