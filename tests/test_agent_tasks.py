"""Whole tasks, one per provider, done the way an agent does them: starting with no ids at all.

A tool is only usable if an agent can reach its arguments from what the server returns. Each test
here plays such an agent through the SDK's in-memory client against the sandbox simulators: every
id, name and zone it sends was read from an earlier result (or from the server's instructions),
and the only literals are what an agent chooses itself (a new name, a command, a filter value).
If a tool stops returning a value a later step needs, a test here fails, even when each tool still
passes its own tests. Each task ends by reading state back, so it checks what happened, not only
what the tools said.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ElicitResult
from support import call, refused

from mcp_cloudops.sandbox.runner import Sandbox
from mcp_cloudops.server import build_server
from mcp_cloudops.settings import Settings

pytestmark = pytest.mark.anyio

TASK_SECONDS = 60  # a whole task; the sandbox's operations each take about half a second
DOCKER_TYPES = (1, 2, 4)  # list-portainer-environments' description: Docker local, agent, edge
KUBERNETES_TYPES = (5, 6, 7)  # the same, for Kubernetes
UP = 1  # a Portainer environment's Status when it is up


@pytest.fixture
def asked() -> list[str]:
    """Every confirmation question the user was shown, in order."""
    return []


@pytest.fixture
async def agent(sandbox: Sandbox, asked: list[str]) -> AsyncIterator[Client]:
    """Like conftest's `client`, but able to elicit: its user answers every confirmation yes (and
    each question is recorded in `asked`), so destructive tools run as they would for a person."""

    async def user(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(Settings.from_env(sandbox.env)), elicitation_callback=user) as connected:
        yield connected


def pick(items: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    """The first item whose fields have the wanted values (what an agent reads off a listing)."""
    found = [item for item in items if all(item.get(key) == value for key, value in wanted.items())]
    assert found, f"nothing with {wanted} among {items}"
    return found[0]


def instructed_zones(client: Client, provider: str) -> list[str]:
    """The zones the server's instructions list for `provider`; calls that name none use the first."""
    zones = (client.instructions or "").partition("Zones")[2]
    match = re.search(rf"\b{provider} ([a-z0-9, -]+)[;.]", zones)
    assert match, f"the instructions list no {provider} zones: {client.instructions!r}"
    return match.group(1).split(", ")


async def test_exoscale_instance_from_listed_template_and_type_snapshotted_reverted_and_deleted(
    sandbox: Sandbox, agent: Client, asked: list[str]
) -> None:
    with anyio.fail_after(TASK_SECONDS):
        zone = instructed_zones(agent, "Exoscale")[0]  # where calls without a zone go
        template = pick((await call(agent, "list-templates", family="debian"))["templates"], family="debian")
        types = (await call(agent, "list-instance-types"))["instance-types"]
        instance_type = pick(types, family="standard", size="small", authorized=True)
        assert zone in template["zones"] and zone in instance_type["zones"]
        key = (await call(agent, "list-ssh-keys"))["ssh-keys"][0]
        group = pick((await call(agent, "list-security-groups"))["security-groups"], name="default")

        created = await call(
            agent,
            "create-compute-instance",
            **{
                "instance-type": {"id": instance_type["id"]},
                "template": {"id": template["id"]},
                "disk-size": 20,
                "name": "agent-vm",
                "ssh-keys": [{"name": key["name"]}],
                "security-groups": [{"id": group["id"]}],
                "wait": True,
            },
        )
        vm = created["resource"]
        assert created["done"] and (vm["name"], vm["state"]) == ("agent-vm", "running")
        assert (vm["template"], vm["instance-type"]) == ({"id": template["id"]}, {"id": instance_type["id"]})
        assert [k["name"] for k in vm["ssh-keys"]] == [key["name"]]
        assert [g["id"] for g in vm["security-groups"]] == [group["id"]]

        snapshotted = await call(agent, "create-snapshot-compute-instance", id=vm["id"], wait=True)
        assert snapshotted["done"] and snapshotted["operation"]["state"] == "success"
        stopped = await call(agent, "stop-compute-instance", id=vm["id"], wait=True)
        assert stopped["done"] and stopped["resource"]["state"] == "stopped"

        snapshot = pick((await call(agent, "list-exoscale-snapshots"))["snapshots"], instance={"id": vm["id"]})
        assert snapshot["id"] == snapshotted["operation"]["reference"]["id"]  # the one it just took
        assert (snapshot["state"], snapshot["size"]) == ("ready", vm["disk-size"])

        reverted = await call(
            agent, "revert-snapshot-instance", **{"instance-id": vm["id"], "id": snapshot["id"], "wait": True}
        )
        assert reverted["done"] and reverted["operation"]["state"] == "success"
        reference = reverted["operation"]["reference"]
        assert (reference["id"], reference["command"]) == (vm["id"], "revert-instance-to-snapshot")
        sent = [r for r in sandbox["exoscale"].requests if r.path.endswith(f"/instance/{vm['id']}:revert-snapshot")]
        assert [(r.method, r.json()) for r in sent] == [("POST", {"id": snapshot["id"]})]
        after = await call(agent, "retrieve-compute-instance-details", id=vm["id"])
        assert after["state"] == "stopped" and after["snapshots"] == [{"id": snapshot["id"]}]  # reverting keeps it

        deleted = await call(agent, "delete-compute-instance", id=vm["id"], wait=True)
        assert deleted["done"] and deleted["operation"]["state"] == "success"
        gone = await refused(agent, "retrieve-compute-instance-details", id=vm["id"])
        assert "HTTP 404" in gone and "list them with list-compute-instances" in gone
        assert vm["id"] not in {i["id"] for i in (await call(agent, "list-compute-instances"))["instances"]}
        left = (await call(agent, "list-exoscale-snapshots"))["snapshots"]
        assert snapshot["id"] not in {s["id"] for s in left}  # snapshots go with their instance

    # The user was asked before each destructive step, and shown what it would act on.
    assert len(asked) == 3
    assert "(stop-compute-instance)" in asked[0] and vm["id"] in asked[0]  # it ends what runs
    assert "(revert-snapshot-instance)" in asked[1] and vm["id"] in asked[1] and snapshot["id"] in asked[1]
    assert "(delete-compute-instance)" in asked[2] and vm["id"] in asked[2]


async def test_scaleway_image_made_from_a_listed_snapshot_then_deleted(
    sandbox: Sandbox, agent: Client, asked: list[str]
) -> None:
    with anyio.fail_after(TASK_SECONDS):
        snapshot = pick((await call(agent, "list-scaleway-snapshots"))["snapshots"], state="available")

        created = await call(
            agent,
            "create-instance-image",
            zone=snapshot["zone"],
            name="agent-image",
            root_volume=snapshot["id"],
            arch="x86_64",  # the agent's choice: a snapshot does not say which architecture it holds
            project=snapshot["project"],
        )
        image = created["image"]
        assert (image["name"], image["state"], image["project"], image["zone"]) == (
            "agent-image",
            "available",
            snapshot["project"],
            snapshot["zone"],
        )
        assert image["root_volume"]["id"] == snapshot["id"]

        got = (await call(agent, "get-instance-image", zone=image["zone"], image_id=image["id"]))["image"]
        assert (got["id"], got["root_volume"]["name"]) == (image["id"], snapshot["name"])

        deleted = await call(agent, "delete-instance-image", zone=image["zone"], image_id=image["id"])
        assert deleted["status"] == 204
        gone = await refused(agent, "get-instance-image", zone=image["zone"], image_id=image["id"])
        assert "HTTP 404" in gone and "list them with list-instance-images" in gone
        assert image["id"] not in sandbox["scaleway"].images
        still = (await call(agent, "list-scaleway-snapshots", zone=snapshot["zone"]))["snapshots"]
        assert snapshot["id"] in {s["id"] for s in still}  # deleting an image leaves its snapshot

    assert len(asked) == 1 and "(delete-instance-image)" in asked[0] and image["id"] in asked[0]


async def test_portainer_command_run_in_a_listed_running_docker_container(
    sandbox: Sandbox, agent: Client, asked: list[str]
) -> None:
    with anyio.fail_after(TASK_SECONDS):
        environments = (await call(agent, "list-portainer-environments"))["result"]
        docker = next(e["Id"] for e in environments if e["Type"] in DOCKER_TYPES and e["Status"] == UP)
        containers = (await call(agent, "list-docker-containers", endpointId=docker))["result"]
        container = pick(containers, State="running")

        created = await call(agent, "create-docker-exec", endpointId=docker, id=container["Id"], Cmd=["hostname"])
        run = await call(agent, "execute-websocket", endpointId=docker, id=created["Id"])
        # Docker names a container's host after its id: the command ran in the container picked.
        assert (run["output"], run["exit_code"], run["running"]) == (container["Id"][:12] + "\n", 0, False)
        assert sandbox["portainer"].get_exec(created["Id"]).exit_code == 0

        # Creating never runs anything: a failing command is seen only once execute-websocket starts it.
        for cmd, code, said in [(["cat", "/nope"], 1, "No such file"), (["nosuchtool"], 127, "not found")]:
            failing = await call(agent, "create-docker-exec", endpointId=docker, id=container["Id"], Cmd=cmd)
            run = await call(agent, "execute-websocket", endpointId=docker, id=failing["Id"])
            assert run["exit_code"] == code and said in run["output"]  # stderr too: AttachStderr is always sent

    assert len(asked) == 3 and all("(execute-websocket)" in question for question in asked)
    assert created["Id"] in asked[0]


async def test_portainer_command_run_in_a_listed_running_pod(agent: Client, asked: list[str]) -> None:
    with anyio.fail_after(TASK_SECONDS):
        environments = (await call(agent, "list-portainer-environments"))["result"]
        kubernetes = next(e["Id"] for e in environments if e["Type"] in KUBERNETES_TYPES and e["Status"] == UP)
        namespaces = (await call(agent, "list-kubernetes-namespaces", endpointId=kubernetes))["items"]
        pod = None
        for namespace in namespaces:  # the first namespace with a running pod
            listed = await call(
                agent, "list-kubernetes-pods", endpointId=kubernetes, namespace=namespace["metadata"]["name"]
            )
            pod = next((p for p in listed["items"] if p["status"]["phase"] == "Running"), None)
            if pod is not None:
                break
        assert pod is not None, f"no running pod in {[n['metadata']['name'] for n in namespaces]}"

        run = await call(
            agent,
            "execute-websocket-pod",
            endpointId=kubernetes,
            namespace=pod["metadata"]["namespace"],
            podName=pod["metadata"]["name"],
            containerName=pod["spec"]["containers"][0]["name"],
            command="hostname",
            idle_seconds=0.3,
        )
        # A pod's hostname is its name: the command ran in the pod picked (a TTY ends lines with \r\n).
        assert (run["output"], run["stopped"]) == (pod["metadata"]["name"] + "\r\n", "idle")

    assert len(asked) == 1 and "(execute-websocket-pod)" in asked[0] and pod["metadata"]["name"] in asked[0]


async def test_nirvana_listed_project_followed_to_one_of_its_vm_operations(client: Client) -> None:
    with anyio.fail_after(TASK_SECONDS):
        project: dict[str, Any] | None = None
        page: dict[str, Any] = {}
        while project is None:  # following the cursor, as the description says, until a project has VMs
            projects = await call(client, "list-nirvana-projects", **page)
            project = next((p for p in projects["items"] if p["resources"]["cloud"]["vms"] > 0), None)
            cursor = projects["pagination"]["next_cursor"]
            assert project is not None or cursor, "no project with VMs"
            page = {"cursor": cursor}

        operations = (await call(client, "list-nirvana-operations", project_id=project["id"], kind="vm"))["items"]
        assert operations and {(op["project_id"], op["kind"]) for op in operations} == {(project["id"], "vm")}

        operation = operations[0]
        got = await call(client, "get-nirvana-operation", operation_id=operation["id"])
        assert got == operation
        assert got["status"] in ("pending", "running", "done", "failed", "unknown") and got["resource_id"]


@pytest.fixture(params=["sandbox", "lxd"])
async def incus_agent(request: pytest.FixtureRequest, sandbox: Sandbox, asked: list[str]) -> AsyncIterator[Client]:
    """An agent like `agent`, on the Incus sandbox, then on the real LXD daemon .ci/lxd-up started
    (skipped, saying why, where it could not start one with a running container)."""
    env = sandbox.env
    if request.param == "lxd":
        if not os.environ.get("INCUS_LXD_SOCKET") or not os.environ.get("INCUS_LXD_CONTAINER"):
            why = os.environ.get("INCUS_LXD_UNAVAILABLE") or os.environ.get("INCUS_LXD_CONTAINER_REASON") or "not run"
            pytest.skip(f"no LXD daemon with a running container (.ci/lxd-up: {why})")
        env = {"INCUS_SOCKET": os.environ["INCUS_LXD_SOCKET"]}

    async def user(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(Settings.from_env(env)), elicitation_callback=user) as connected:
        yield connected


async def test_incus_command_in_a_listed_instance_and_a_freeze(incus_agent: Client, asked: list[str]) -> None:
    with anyio.fail_after(TASK_SECONDS):
        instances = (await call(incus_agent, "list-instances"))["result"]
        instance = pick(instances, type="container", status="Running")
        name, project = instance["name"], instance["project"]

        script = "hostname; echo warn >&2; exit 3"
        ran = await call(incus_agent, "exec-instance", name=name, project=project, command=["sh", "-c", script])
        assert (ran["stdout"], ran["stderr"], ran["exit_code"]) == (f"{name}\n", "warn\n", 3)
        assert set(ran) == {"exit_code", "stdout", "stderr", "output_truncated", "operation_id"}
        assert not ran["output_truncated"]
        assert len(asked) == 1 and script in asked[0] and name in asked[0]  # the user saw what runs where

        # Freezing is not destructive: it runs unasked, and the listing shows it.
        frozen = await call(
            incus_agent, "update-instance-state", name=name, project=project, action="freeze", wait=True
        )
        assert frozen["status"] == "Frozen" and frozen["operation_id"]  # the state read back, and the operation
        assert pick((await call(incus_agent, "list-instances"))["result"], name=name)["status"] == "Frozen"
        thawed = await call(
            incus_agent, "update-instance-state", name=name, project=project, action="unfreeze", wait=True
        )
        assert thawed["status"] == "Running" and thawed["operation_id"]
        assert pick((await call(incus_agent, "list-instances"))["result"], name=name)["status"] == "Running"
        assert len(asked) == 1

        # A command that outlives the wait: the operation to follow, and the tool to follow it with.
        slow = await call(incus_agent, "exec-instance", name=name, command=["sleep", "2"], timeout_seconds=1)
        assert not slow["done"] and "wait-operation" in slow["note"]
        ended = await call(incus_agent, "wait-operation", id=slow["operation"]["id"], timeout=10)
        assert (ended["status"], ended["metadata"]["return"]) == ("Success", 0)
