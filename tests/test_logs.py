"""Logging is ours to set: one stderr line per record, redacted, without the SDK's rich handler."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

from mcp.server.mcpserver import server as sdk_server

from mcp_cloudops.logs import configure_logging
from mcp_cloudops.redaction import RedactingFilter
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

SECRET = "EXOsecretkeyvalue1234567890"


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger as a process that never configured logging has it (pytest's own handlers join
    it once a test runs, so this is entered in the test's body); restored afterwards."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = []
    try:
        yield root
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_configure_logging_writes_one_line_per_record_to_stderr() -> None:
    with bare_root() as root:
        configure_logging("DEBUG")
        [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    assert logging.getLogger("mcp_cloudops").level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.WARNING  # its INFO lines carry URLs


def test_a_server_built_without_the_cli_logs_redacted_to_stderr() -> None:
    with bare_root() as root:
        build_server(Settings.from_env({"EXOSCALE_API_KEY": "EXOkey1234567890", "EXOSCALE_API_SECRET": SECRET}))
        [handler] = root.handlers
    assert type(handler) is logging.StreamHandler  # not the SDK's RichHandler
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    record = logging.LogRecord("mcp_cloudops", logging.WARNING, __file__, 1, "key %s", (SECRET,), None)
    handler.filter(record)
    assert SECRET not in record.getMessage()
    assert sdk_server.configure_logging.__module__ == "mcp.server.mcpserver.utilities.logging"  # put back


def test_a_configured_root_is_left_as_it_is() -> None:
    mine = logging.StreamHandler()
    with bare_root() as root:
        root.addHandler(mine)
        build_server(Settings.from_env({}))
        assert root.handlers == [mine]
    assert any(isinstance(f, RedactingFilter) for f in mine.filters)


def test_a_start_never_imports_rich() -> None:
    probe = "import sys; from mcp_cloudops.server import build_server; build_server(); print('rich' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-c", probe], env=dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert run.stdout.strip() == "False", run.stderr
