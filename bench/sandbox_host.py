"""The sandbox simulators in a process of their own, so the benchmark's client load and the
upstream share no interpreter (no GIL contention between the two).

Prints one JSON line {"env": {...}, "addresses": {...}, "pid": N} once every simulator listens,
then serves until its stdin closes.

    python bench/sandbox_host.py
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys

import anyio
from anyio.streams.file import FileReadStream

from mcp_cloudops.sandbox.runner import run_sandbox


async def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    async with run_sandbox() as sandbox:
        # The upstream is not what is measured: what it builds at start stays out of the cyclic collector,
        # whose full passes over the simulators' state would otherwise land in some calls' latency.
        gc.freeze()
        print(json.dumps({"env": sandbox.env, "addresses": sandbox.addresses, "pid": os.getpid()}), flush=True)
        async with FileReadStream(sys.stdin.buffer) as stdin:
            while True:
                try:
                    await stdin.receive()
                except anyio.EndOfStream:
                    break


if __name__ == "__main__":
    anyio.run(main)
