"""The agent-trial harness: a client that knows only what an agent knows, and counts what a task costs.

A `Trial` talks to the server over the SDK's in-memory client, pointed at the sandbox. All it knows is
the tool names tools/list serves (and each tool's input schema, for the choices it offers), the
server's instructions, the natural-language task it was given, and the results of its own calls.
Every argument it sends is checked against that knowledge before the call goes out: each string,
number, list item, dict key and dict value must appear in an earlier result (its text or one of its
values), in the instructions, or in the task's text; booleans, enum values and defaults the tool's
schema offers count too, and so does a string the argument's own description quotes as a choice
(zone "all"). An argument with no such source fails the trial, naming it. So a trial shows
a task can be done from what the tools return, not from what the test's author knows about the
sandbox.

Each trial counts its tool calls, the characters of their results (the text an agent's model reads)
and the questions the user was asked (every one is answered yes); `ROWS` collects one row per trial,
finished or not, for the table the trials module prints.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from mcp_types import ElicitResult

from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

TASK_SECONDS = 30  # one whole trial; the sandbox's operations each take about half a second


@dataclass
class Row:
    """One trial's line in the table."""

    task: str
    calls: int
    characters: int
    questions: int
    finished: bool


ROWS: list[Row] = []


class ProvenanceError(AssertionError):
    """An argument the trial was about to send came from nowhere it knows."""


class ToolFailed(AssertionError):
    """A call returned an error the trial did not expect; `text` is what the agent read."""

    def __init__(self, tool: str, text: str) -> None:
        super().__init__(f"{tool} failed: {text}")
        self.text = text


def _word_bounded(value: str) -> re.Pattern[str]:
    """`value` as a whole: not the middle of a longer word, number or id."""
    before = r"(?<![A-Za-z0-9_])" if re.match(r"\w", value) else ""
    after = r"(?![A-Za-z0-9_])" if re.search(r"\w$", value) else ""
    return re.compile(before + re.escape(value) + after)


def _number_text(value: int | float) -> re.Pattern[str]:
    """A number's decimal text, not part of a longer number."""
    text = repr(value) if isinstance(value, float) else str(value)
    return re.compile(r"(?<![\d.])" + re.escape(text) + r"(?![\d.]*\d)")


def _values(data: Any) -> Iterator[Any]:
    """Every scalar in a JSON value, and every dict key."""
    if isinstance(data, dict):
        for key, item in data.items():
            yield key
            yield from _values(item)
    elif isinstance(data, list):
        for item in data:
            yield from _values(item)
    else:
        yield data


def _leaves(value: Any, schema: dict[str, Any], path: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(path, value, the schema that describes it) for every scalar argument and every key the schema
    does not name itself (a label's key is chosen, an argument's name is not)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key not in properties:
                yield f"{path}[key {key!r}]", key, {}
            sub = properties.get(key, extra if isinstance(extra, dict) else {})
            yield from _leaves(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        for index, item in enumerate(value):
            yield from _leaves(item, items, f"{path}[{index}]")
    else:
        yield path, value, schema


@dataclass
class Trial:
    """One task played by a client that knows only tool names, instructions, the task and results."""

    name: str
    task: str
    client: Client
    schemas: dict[str, dict[str, Any]]
    asked: list[str]
    calls: int = 0
    characters: int = 0
    texts: list[str] = field(default_factory=list)  # the task, the instructions, then each result's text
    seen: list[Any] = field(default_factory=list)  # every value of every structured result so far

    @property
    def instructions(self) -> str:
        return self.client.instructions or ""

    @property
    def questions(self) -> int:
        return len(self.asked)

    async def call(
        self, tool: str, arguments: dict[str, Any] | None = None, /, *, expect_error: bool = False, **more: Any
    ) -> Any:
        """Call `tool` as the agent would and return what it reads: the structured result (a failed call
        fails the trial, quoting the error), or with `expect_error` the error text (a success then fails).
        Arguments with dashes in their names go in `arguments`."""
        args = {**(arguments or {}), **more}
        self.check_provenance(tool, args)
        self.calls += 1
        result = await self.client.call_tool(tool, args)
        text = "".join(getattr(item, "text", "") for item in result.content)
        self.characters += len(text)
        self.texts.append(text)
        structured = result.structured_content
        if structured is None:
            try:
                structured = json.loads(text)
            except ValueError:
                structured = None
        if structured is not None:
            self.seen.extend(_values(structured))
        if expect_error:
            assert result.is_error, f"{tool} succeeded where it should fail: {text[:500]}"
            return text
        if result.is_error:
            raise ToolFailed(tool, text)
        return structured if structured is not None else text

    def check_provenance(self, tool: str, args: dict[str, Any]) -> None:
        """Fail, naming the argument, unless every value in `args` has a source the agent knows."""
        if tool not in self.schemas and not any(_word_bounded(tool).search(text) for text in self.texts):
            raise ProvenanceError(
                f"{self.name}: no tool {tool!r} was listed, or named in the task, the instructions or a result"
            )
        schema = self.schemas.get(tool, {})
        for path, value, described in _leaves(args, schema, ""):
            if not self._known(value, described):
                raise ProvenanceError(
                    f"{self.name}: {tool} argument {path} = {value!r} came from no earlier result, "
                    "the instructions, the task's text or the tool's schema"
                )

    def _known(self, value: Any, schema: dict[str, Any]) -> bool:
        if value in schema.get("enum", ()) or ("default" in schema and value == schema["default"]):
            return True
        if isinstance(value, str) and f'"{value}"' in schema.get("description", ""):
            return True  # a choice the argument's own description spells out, like zone "all"
        if isinstance(value, bool):
            return schema.get("type") == "boolean"
        if value is None:
            return False
        if isinstance(value, int | float):
            if any(type(seen) is type(value) and seen == value for seen in self.seen):
                return True
            pattern = _number_text(value)
            return any(pattern.search(text) for text in self.texts)
        if isinstance(value, str):
            if not value:
                return any(seen == "" for seen in self.seen)
            if value in (seen for seen in self.seen if isinstance(seen, str)):
                return True
            pattern = _word_bounded(value)
            return any(pattern.search(text) for text in self.texts)
        return False


@asynccontextmanager
async def trial(env: dict[str, str], name: str, task: str, *, record: bool = True) -> AsyncIterator[Trial]:
    """A Trial of `task` against a server built from `env` (the sandbox's). With `record`, its row goes
    to ROWS when it ends, finished only if the body ran to its end without an error."""
    asked: list[str] = []

    async def user(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    try:
        async with Client(build_server(Settings.from_env(env)), elicitation_callback=user) as client:
            tools, cursor = [], None
            while True:  # every page of tools/list
                listed = await client.list_tools(cursor=cursor)
                tools.extend(listed.tools)
                cursor = listed.next_cursor
                if not cursor:
                    break
            played = Trial(name, task, client, {tool.name: tool.input_schema for tool in tools}, asked)
            played.texts.extend([task, played.instructions])
            finished = False
            try:
                with anyio.fail_after(TASK_SECONDS):
                    yield played
                finished = True
            finally:
                if record:
                    ROWS.append(Row(name, played.calls, played.characters, played.questions, finished))
    except BaseExceptionGroup as group:
        # The client's task group wraps what failed in the trial: raise that alone, as the test raised it.
        if len(group.exceptions) == 1:
            raise _innermost(group) from None
        raise


def _innermost(error: BaseException) -> BaseException:
    """The one exception nested groups of one wrap."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table, then a line of medians and totals."""
    lines = [
        "| task | calls | result characters | questions asked | finished |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        done = "yes" if row.finished else "no"
        lines.append(f"| {row.task} | {row.calls} | {row.characters} | {row.questions} | {done} |")
    if rows:
        calls = statistics.median(row.calls for row in rows)
        characters = statistics.median(row.characters for row in rows)
        lines.append(
            f"\n{len(rows)} tasks, {sum(row.finished for row in rows)} finished; a task's median: {calls:g} calls, "
            f"{characters:.0f} result characters; {sum(row.questions for row in rows)} questions asked in all."
        )
    return "\n".join(lines)
