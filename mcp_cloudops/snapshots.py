"""What a client is served, as the reviewed files in tests/snapshots/ hold it: the tool list (in full, under
--read-only, and as a --dynamic-toolsets session starts), the instructions, and the question each tool that
asks puts to a person, asked against the sandbox. One producer per file: `mcp-cloudops generate` writes what
these return and tests/test_mirrors.py fails while a file differs, so a change to tools.yaml, schema.py or
the SDK that alters what a client sees shows in review.

Everything runs in this process: the servers are in memory, the simulators on loopback; no network."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from mcp import Client
from mcp_types import ElicitResult

from mcp_cloudops.confirmation import needed
from mcp_cloudops.registry import Registry
from mcp_cloudops.sandbox.runner import Sandbox, run_sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

ASKING_CALLS = Path(__file__).parent / "sandbox" / "asking_calls.yaml"
# A simulator's attribute, e.g. {incus.seeded[task]}: an id the sandbox makes up (asking_calls.yaml).
FIELD = re.compile(r"\{[a-z_]+(?:\.\w+|\[\w+\])*\}")
# The ids the sandbox and the SDK make up: random UUIDs (v4) and Docker's 64-hex ids.
MADE_UP = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|\b[0-9a-f]{64}\b")
# Any id, as asking_calls.yaml writes some out: those stay as they are in the questions.
ID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|\b[0-9a-f]{64}\b")


class MirrorError(Exception):
    """A mirror cannot be made: what is wrong, and what to do about it."""


def pretty(value: object, *, sort_keys: bool = False) -> str:
    """JSON as the snapshots hold it: indented, UTF-8 as is, one newline at the end."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n"


async def served(
    registry: Registry, env: Mapping[str, str] | None = None, mode: str = "auto"
) -> tuple[list[dict[str, Any]], str]:
    """Each tool exactly as a client receives it, and the instructions, under the settings `env` holds
    (no credentials needed to list)."""
    server = build_server(Settings.from_env(dict(env or {})), registry)
    async with Client(server, mode=mode) as client:
        tools = (await client.list_tools()).tools
        instructions = client.instructions or ""
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools], instructions


async def tool_snapshots(registry: Registry) -> dict[str, str]:
    """tools/list as the current protocol era serves it (the key order is the server's own), the
    instructions (they cost every conversation's context, like the list), the names --read-only serves (a
    tool joining that set is a security decision) and what a --dynamic-toolsets session starts with."""
    tools, instructions = await served(registry)
    read_only, _ = await served(registry, {"MCP_CLOUDOPS_READ_ONLY": "1"})
    dynamic, dynamic_instructions = await served(registry, {"MCP_CLOUDOPS_DYNAMIC_TOOLSETS": "1"})
    return {
        "tools-list.json": pretty(tools),
        "instructions.txt": instructions + "\n",
        "tools-read-only.txt": "".join(f"{tool['name']}\n" for tool in read_only),
        "tools-list-dynamic.json": pretty({"tools": dynamic, "instructions": dynamic_instructions}),
    }


def asking_calls(sandbox: Sandbox, registry: Registry) -> dict[str, dict[str, Any]]:
    """asking_calls.yaml's call of every tool that asks, its made-up ids read from the running sandbox.
    MirrorError when the file and tools.yaml disagree on which tools ask."""
    calls: dict[str, dict[str, Any]] = yaml.safe_load(ASKING_CALLS.read_text(encoding="utf-8"))
    asking = {tool.name for tool in registry.tools if needed(tool)}
    missing, extra = sorted(asking - calls.keys()), sorted(calls.keys() - asking)
    if missing or extra:
        lines = [f"{ASKING_CALLS.name} names no call of {', '.join(missing)}"] if missing else []
        lines += [f"{ASKING_CALLS.name} names {', '.join(extra)}, which never ask"] if extra else []
        raise MirrorError("; ".join(lines) + ": give each tool that asks one call, on a target the sandbox seeds")

    def filled(value: Any) -> Any:
        if isinstance(value, str) and FIELD.fullmatch(value):
            return value.format_map(sandbox.simulators)
        if isinstance(value, dict):
            return {key: filled(item) for key, item in value.items()}
        if isinstance(value, list):
            return [filled(item) for item in value]
        return value

    return {name: filled(arguments) for name, arguments in calls.items()}


async def ask_each(sandbox: Sandbox, registry: Registry) -> dict[str, str]:
    """Each tool that asks, called once as asking_calls.yaml says and declined: the question it asked.
    MirrorError when a call asks no question, or more than one, or goes ahead."""
    asked: list[str] = []

    async def decline(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="decline")

    questions: dict[str, str] = {}
    server = build_server(Settings.from_env(sandbox.env), registry)
    async with Client(server, elicitation_callback=decline) as client:
        for name, arguments in asking_calls(sandbox, registry).items():
            before = len(asked)
            result = await client.call_tool(name, arguments)
            text = result.content[0].text if result.content else ""
            if len(asked) != before + 1:
                raise MirrorError(f"{name} asked {len(asked) - before} questions, not one: {text}")
            if not result.is_error:
                raise MirrorError(f"{name} went ahead although its question was declined: {text}")
            questions[name] = asked[-1]
    return questions


def questions_text(questions: Mapping[str, str]) -> str:
    """The questions as a person reads them, each under its tool's name; the ids the sandbox made up read
    <id> (those asking_calls.yaml writes out stay)."""
    written = set(ID.findall(ASKING_CALLS.read_text(encoding="utf-8")))
    shown = (MADE_UP.sub(lambda m: m.group() if m.group() in written else "<id>", text) for text in questions.values())
    return "\n".join(f"## {name}\n{text}\n" for name, text in zip(questions, shown, strict=True))


async def question_snapshot(registry: Registry) -> dict[str, str]:
    """questions.txt: every question, asked of a sandbox started for it."""
    async with run_sandbox() as sandbox:
        return {"questions.txt": questions_text(await ask_each(sandbox, registry))}


async def snapshots(registry: Registry) -> dict[str, str]:
    """Every file of tests/snapshots/, by name, as `registry` is served now."""
    return await tool_snapshots(registry) | await question_snapshot(registry)
