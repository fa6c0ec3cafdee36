"""One tool call once its arguments are checked (calls.py): operation secrets hidden from whoever may not
write, a wait that never outlasts the server's cap, a failure the upstream does not explain diagnosed or
left as it was, and a journaled call recorded however it ends. `dispatch` is driven directly, against
hand-made upstreams on loopback whose every answer the test chooses; the same behaviours through an MCP
client are in test_hostile_operation_secrets.py, test_operations.py, test_next_steps.py and test_audit.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from fakes import REGISTRY, UUID, Hostile, HostileExoscale, HostileIncus, HostilePortainer, HostileScaleway
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_cloudops.audit import Journal
from mcp_cloudops.calls import HIDDEN, dispatch, hide_secrets, shows_secrets
from mcp_cloudops.redaction import Redactor
from mcp_cloudops.results import UpstreamError
from mcp_cloudops.sandbox.base import Simulator
from mcp_cloudops.sandbox.runner import run_sandbox
from mcp_cloudops.settings import Settings
from mcp_cloudops.upstream import Upstreams

pytestmark = pytest.mark.anyio

SHOW = {"MCP_CLOUDOPS_SHOW_OPERATION_SECRETS": "1"}
READ_ONLY = {"MCP_CLOUDOPS_READ_ONLY": "1"}
OAUTH = {"MCP_CLOUDOPS_OAUTH_ISSUER": "https://issuer.example", "MCP_CLOUDOPS_PUBLIC_URL": "https://mcp.example/mcp"}


# --- hide_secrets ------------------------------------------------------------------------------------------


def test_hiding_keeps_the_shape() -> None:
    data = {"running": [{"metadata": {"fds": {"0": "a" * 64, "control": "b" * 64}, "secret": "", "n": 1}}]}
    assert hide_secrets(data, frozenset({"fds", "secret"})) == {
        "running": [{"metadata": {"fds": {"0": HIDDEN, "control": HIDDEN}, "secret": "", "n": 1}}]
    }


@pytest.mark.parametrize(
    ("data", "hidden"),
    [
        ({"a": {"b": [{"secret": "s"}]}}, {"a": {"b": [{"secret": HIDDEN}]}}),  # at any depth, in lists too
        ({"secret": ["s", "", 3, None, True]}, {"secret": [HIDDEN, "", 3, None, True]}),  # only non-empty text
        ({"secret": {"inner": {"deeper": "s"}}}, {"secret": {"inner": {"deeper": HIDDEN}}}),  # all of it
        ({"secrets": "s", "Secret": "s"}, {"secrets": "s", "Secret": "s"}),  # the key exactly, nothing like it
        ([{"secret": "s"}, "secret"], [{"secret": HIDDEN}, "secret"]),  # a value that reads "secret" is no key
        ("s", "s"),
        (None, None),
    ],
)
def test_hiding_takes_every_string_under_a_secret_key_and_nothing_else(data: Any, hidden: Any) -> None:
    before = json.dumps(data)
    assert hide_secrets(data, frozenset({"secret"})) == hidden
    assert json.dumps(data) == before  # a copy: the upstream's answer is left as it came


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({}, False),
        (SHOW, True),
        ({**SHOW, **READ_ONLY}, False),  # --read-only wins over the flag
        ({**SHOW, **OAUTH}, False),  # an OAuth endpoint, and no token with the write scope in this request
    ],
    ids=["default", "shown", "read-only", "oauth-without-write-scope"],
)
def test_secrets_are_shown_only_when_asked_and_only_to_a_caller_that_may_write(
    env: dict[str, str], shown: bool
) -> None:
    assert shows_secrets(Settings.from_env(env)) is shown


# --- dispatch ----------------------------------------------------------------------------------------------


class Progress:
    """The tool Context as dispatch uses it: the progress it reports, kept in order."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.reports.append((progress, total, message))


@asynccontextmanager
async def upstreams_for(*sims: Simulator, **settings: str) -> AsyncIterator[Upstreams]:
    """Upstreams pointed at `sims` on loopback, with MCP_CLOUDOPS_<NAME> from `settings`; closed on exit."""
    async with run_sandbox(list(sims)) as sandbox:
        env = {**sandbox.env, **{f"MCP_CLOUDOPS_{name.upper()}": value for name, value in settings.items()}}
        upstreams = Upstreams(REGISTRY, Settings.from_env(env))
        try:
            yield upstreams
        finally:
            await upstreams.aclose()


async def dispatched(
    upstreams: Upstreams,
    tool: str,
    args: dict[str, Any],
    journal: Journal | None = None,
    progress: Progress | None = None,
) -> Any:
    """`tool` dispatched as the server does once its arguments are checked (and its defaults filled in)."""
    ctx = progress or Progress()
    with anyio.fail_after(30):
        return await dispatch(upstreams, REGISTRY.by_name[tool], args, ctx, journal)  # type: ignore[arg-type]


def answering_json(body: Any, status: int = 200) -> Any:
    async def answer(sim: Hostile, request: Request) -> Response:
        return JSONResponse(body, status_code=status)

    return answer


async def test_a_plain_call_is_the_upstreams_answer_and_reports_no_progress() -> None:
    """A provider that declares no operation secrets keeps a field that happens to be called `secret`."""
    sim = HostileScaleway()
    answer = {"image": {"id": UUID, "name": "golden", "secret": "not-an-operation-secret"}}
    sim.behave = answering_json(answer)
    progress = Progress()
    async with upstreams_for(sim) as upstreams:
        result = await dispatched(
            upstreams, "get-instance-image", {"image_id": UUID, "zone": "fr-par-1"}, None, progress
        )
    assert result == answer and progress.reports == []
    assert [(r.method, r.path) for r in sim.requests] == [("GET", f"/instance/v1/zones/fr-par-1/images/{UUID}")]


INCUS_OPERATION = {
    "type": "sync",
    "status": "Success",
    "metadata": {"id": UUID, "status": "Running", "metadata": {"fds": {"0": "f" * 64, "control": "c" * 64}}},
}


@pytest.mark.parametrize(
    ("env", "shown"),
    [({}, False), (SHOW, True), ({**SHOW, **READ_ONLY}, False)],
    ids=["default", "shown", "read-only"],
)
async def test_a_providers_operation_secrets_are_hidden_unless_shown_to_a_writer(
    env: dict[str, str], shown: bool
) -> None:
    sim = HostileIncus()
    sim.behave = answering_json(INCUS_OPERATION)
    settings = {name.removeprefix("MCP_CLOUDOPS_").lower(): value for name, value in env.items()}
    async with upstreams_for(sim, **settings) as upstreams:
        result = await dispatched(upstreams, "get-operation-state", {"id": UUID})
    fds = result["metadata"]["fds"]
    assert fds == ({"0": "f" * 64, "control": "c" * 64} if shown else {"0": HIDDEN, "control": HIDDEN})
    assert result["status"] == "Running"  # the rest of the operation as it came


async def answer_pending(sim: Hostile, request: Request) -> Response:
    """Exoscale: every call and every poll says the operation is still pending."""
    return JSONResponse({"id": UUID, "state": "pending", "reference": {"id": UUID, "link": f"/v2/instance/{UUID}"}})


async def test_a_wait_never_outlasts_the_servers_cap_and_reports_progress() -> None:
    sim = HostileExoscale()
    sim.behave = answer_pending
    progress = Progress()
    async with upstreams_for(sim, max_wait="1") as upstreams:
        started = time.monotonic()
        args = {"id": UUID, "wait": True, "timeout_seconds": 300}
        result = await dispatched(upstreams, "stop-compute-instance", args, None, progress)
    assert time.monotonic() - started < 5  # the call asked for 300 s: MCP_CLOUDOPS_MAX_WAIT=1 wins
    assert result["done"] is False and result["operation"]["state"] == "pending"
    assert "get-exoscale-operation" in result["note"]  # how to keep following it
    assert progress.reports and all(total == 1 for _, total, _ in progress.reports)


def portainer_environment(kind: int, failing: int = 404) -> Any:
    """Portainer whose Docker listing fails with `failing`, and whose environment 2 reads as Type `kind`."""

    async def answer(sim: Hostile, request: Request) -> Response:
        if request.url.path == "/api/endpoints/2":
            return JSONResponse({"Id": 2, "Name": "k8s", "Type": kind})
        return JSONResponse({"message": "page not found"}, status_code=failing)

    return answer


async def test_a_failure_the_diagnosis_explains_names_the_cause() -> None:
    sim = HostilePortainer()
    sim.behave = portainer_environment(5)
    async with upstreams_for(sim) as upstreams:
        with pytest.raises(UpstreamError) as raised:
            await dispatched(upstreams, "list-docker-containers", {"endpointId": 2})
    error = raised.value
    assert str(error) == (
        f"{error.head} Environment 2 is a Kubernetes environment (Type 5), and this tool needs a Docker one "
        "(Type 1, 2 or 4): pick one from list-portainer-environments."
    )
    assert error.head.startswith("Portainer CE returned HTTP 404 for list-docker-containers: page not found.")
    assert error.status == 404


@pytest.mark.parametrize(
    ("kind", "failing", "reads"),
    [(1, 404, 1), (5, 403, 0)],
    ids=["every-check-passes", "a-status-the-diagnosis-does-not-cover"],
)
async def test_a_failure_nothing_explains_stands_as_the_upstream_said_it(kind: int, failing: int, reads: int) -> None:
    sim = HostilePortainer()
    sim.behave = portainer_environment(kind, failing)
    async with upstreams_for(sim, retries="0") as upstreams:
        with pytest.raises(UpstreamError) as raised:
            await dispatched(upstreams, "list-docker-containers", {"endpointId": 2})
    assert str(raised.value).startswith(f"Portainer CE returned HTTP {failing} for list-docker-containers")
    assert "Environment 2 is" not in str(raised.value)
    assert [r.path for r in sim.requests].count("/api/endpoints/2") == reads


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def stall(sim: Hostile, request: Request) -> Response:
    await anyio.sleep(30)
    return JSONResponse({})


async def test_a_journaled_call_cut_short_is_recorded_as_unknown(tmp_path: Path) -> None:
    """The client went away (or a bug of ours): whether the write happened is not known, and the journal says so."""
    sim, path = HostileExoscale(), tmp_path / "audit.jsonl"
    sim.behave = stall
    journal = Journal(path, Redactor())
    try:
        async with upstreams_for(sim) as upstreams:
            with anyio.move_on_after(1):
                await dispatched(upstreams, "stop-compute-instance", {"id": UUID}, journal)
    finally:
        journal.close()
    sent, outcome = records(path)
    assert (sent["event"], sent["tool"], outcome["event"]) == ("sent", "stop-compute-instance", "outcome")
    assert (outcome["call"], outcome["outcome"], outcome["error"]) == (
        sent["call"],
        "unknown",
        "ended by CancelledError",
    )


async def test_a_journaled_wait_that_ends_unfinished_is_recorded_pending_with_its_operation(tmp_path: Path) -> None:
    sim, path = HostileExoscale(), tmp_path / "audit.jsonl"
    sim.behave = answer_pending
    journal = Journal(path, Redactor())
    try:
        async with upstreams_for(sim, max_wait="0.5") as upstreams:
            args = {"id": UUID, "wait": True, "timeout_seconds": 60}
            result = await dispatched(upstreams, "stop-compute-instance", args, journal)
    finally:
        journal.close()
    assert result["done"] is False
    _, outcome = records(path)
    assert (outcome["outcome"], outcome["operation"]) == ("pending", UUID)
