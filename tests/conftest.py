"""Shared fixtures: the sandbox simulators on loopback, and a server pointed at them."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import pytest
from mcp import Client
from registries import REGISTRIES

from mcp_cloudops.registry import Registry
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """tools.yaml's parse is cached (registry_cache): in this session's own folder, never the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncio, for every async test and fixture; session-wide so that module-scoped async fixtures (one
    sandbox and server for a whole module) may use it too."""
    return "asyncio"


@pytest.fixture(scope="session", params=list(REGISTRIES))
def registry(request: pytest.FixtureRequest) -> Registry:
    """Each registry the registry-wide checks run over (registries.py): tools.yaml, and tools.yaml with a sixth
    provider. A check taking it must derive every provider, tool and variable it expects from it."""
    return REGISTRIES[request.param]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[Client]:
    """An in-memory MCP client talking to a server whose providers all point at the sandbox."""
    async with Client(build_server(Settings.from_env(sandbox.env))) as connected:
        yield connected


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log line of the server, at DEBUG: tests check none carries a secret."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="mcp_cloudops")
    return caplog
