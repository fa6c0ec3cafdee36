"""Agent trials: multi-step tasks played against the sandbox by a client that knows only what an agent knows.

Each test is one task, written out as the text an agent would be given. It starts with no ids: every
argument it sends comes from an earlier result, the server's instructions or the task's own words, and
tests/trials.py refuses any other before the call goes out. Each task ends by reading state back, so it
checks what happened, not what a tool said. A task that cannot be finished fails (two did, on sandbox
defects since fixed: a Docker exec's Env, and `kubectl get pods -A`). The last test prints the table: calls,
result characters and questions per task.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from trials import ROWS, ProvenanceError, Trial, table, trial

from mcp_cloudops.sandbox.runner import Sandbox

pytestmark = pytest.mark.anyio

DOCKER_TYPES = (1, 2, 4)  # list-portainer-environments' description: Docker local, agent, edge
KUBERNETES_TYPES = (5, 6, 7)  # the same, for Kubernetes
UP = 1  # a Portainer environment's Status when it is up


@pytest.fixture
def env(sandbox: Sandbox) -> dict[str, str]:
    """What the server needs to reach the sandbox: all a trial gets of it (no simulator state to peek at)."""
    return sandbox.env


def pick(items: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    """The first item whose fields have the wanted values (what an agent reads off a listing)."""
    found = [item for item in items if all(item.get(key) == value for key, value in wanted.items())]
    assert found, f"nothing with {wanted} among {[item.get('name', item.get('id')) for item in items]}"
    return found[0]


async def portainer_environment(agent: Trial, types: tuple[int, ...]) -> int:
    """The Id of the first environment up of one of `types`."""
    environments = (await agent.call("list-portainer-environments"))["result"]
    return next(e["Id"] for e in environments if e["Type"] in types and e["Status"] == UP)


async def nirvana_project(agent: Trial, name: str) -> dict[str, Any]:
    """The Nirvana project called `name`, following the listing's cursor until it shows up."""
    page: dict[str, Any] = {}
    while True:
        listed = await agent.call("list-nirvana-projects", **page)
        found = [project for project in listed["items"] if project["name"] == name]
        if found:
            return found[0]
        cursor = listed["pagination"]["next_cursor"]
        assert cursor, f"no Nirvana project named {name}"
        page = {"cursor": cursor}


def first_zone(agent: Trial, provider: str) -> str:
    """The zone the server's instructions say calls without one go to: the first they list for `provider`."""
    zones = agent.instructions.partition("Zones")[2]
    match = re.search(rf"\b{provider} ([a-z0-9-]+)[,;.]", zones)
    assert match, f"the instructions list no {provider} zone: {agent.instructions!r}"
    return match.group(1)


# -- Exoscale ------------------------------------------------------------------------------------


async def test_exoscale_label_added_then_filtered_on(env: dict[str, str]) -> None:
    task = (
        "Add the label owner=trials to the Exoscale instance named web-1, keeping its other labels, then list "
        "the instances filtered by owner=trials and check web-1 is the only one."
    )
    async with trial(env, "Exoscale: add a label, filter the listing by it", task) as agent:
        web = pick((await agent.call("list-compute-instances"))["instances"], name="web-1")
        labels = {**web["labels"], "owner": "trials"}  # update replaces every label: send the old ones too
        updated = await agent.call("update-compute-instance", id=web["id"], labels=labels, wait=True)
        assert updated["done"] and updated["resource"]["labels"] == labels

        filtered = (await agent.call("list-compute-instances", labels="owner=trials"))["instances"]
        assert [(i["id"], i["labels"]) for i in filtered] == [(web["id"], labels)]
        assert agent.questions == 0


async def test_exoscale_running_instance_moved_to_the_next_size_of_its_family(env: dict[str, str]) -> None:
    task = (
        "Move the running Exoscale instance web-1 to the next larger size of its own instance-type family, "
        "and leave it running again."
    )
    async with trial(env, "Exoscale: scale a running instance up one size", task) as agent:
        web = pick((await agent.call("list-compute-instances"))["instances"], name="web-1")
        assert web["state"] == "running"
        types = (await agent.call("list-instance-types"))["instance-types"]
        current = pick(types, id=web["instance-type"]["id"])
        larger = [
            t for t in types if t["family"] == current["family"] and t["memory"] > current["memory"] and t["authorized"]
        ]
        target = min(larger, key=lambda t: (t["memory"], t["cpus"]))

        # The description says "a stopped instance": stop, scale, start.
        stopped = await agent.call("stop-compute-instance", id=web["id"], wait=True)
        assert stopped["resource"]["state"] == "stopped"
        await agent.call(
            "scale-compute-instance-new-instance", {"instance-type": {"id": target["id"]}}, id=web["id"], wait=True
        )
        await agent.call("start-compute-instance", id=web["id"], wait=True)

        after = await agent.call("retrieve-compute-instance-details", id=web["id"])
        assert (after["instance-type"], after["state"]) == ({"id": target["id"]}, "running")
        assert agent.questions == 1  # stopping ends what runs in it


async def test_exoscale_destruction_protection_refuses_a_delete_until_lifted(env: dict[str, str]) -> None:
    task = (
        "Protect the Exoscale instance web-1 against deletion and make sure a delete of it is refused, "
        "then lift the protection again, leaving web-1 in place."
    )
    async with trial(env, "Exoscale: protection refuses a delete", task) as agent:
        web = pick((await agent.call("list-compute-instances"))["instances"], name="web-1")
        await agent.call("set-instance-destruction-protection", id=web["id"], wait=True)

        refused = await agent.call("delete-compute-instance", id=web["id"], wait=True, expect_error=True)
        assert "HTTP 409" in refused and "protection" in refused

        await agent.call("remove-instance-destruction-protection", id=web["id"], wait=True)
        after = await agent.call("retrieve-compute-instance-details", id=web["id"])
        assert (after["name"], after["state"]) == ("web-1", web["state"])
        assert agent.questions == 2  # the delete (the user said yes: protection refused it) and the removal


async def test_exoscale_console_url_of_a_listed_instance(env: dict[str, str]) -> None:
    task = "Get a console URL for the Exoscale instance web-1, and check it leads to web-1 in web-1's own zone."
    async with trial(env, "Exoscale: console URL (a credential)", task) as agent:
        web = pick((await agent.call("list-compute-instances"))["instances"], name="web-1")
        zone = first_zone(agent, "Exoscale")  # the listing named no zone: it listed the first
        console = await agent.call("retrieve-signed-url-valid-60", id=web["id"], zone=zone)
        assert console["url"].startswith("wss://") and console["url"].endswith(console["path"])
        assert zone in console["host"] and f"id={web['id']}" in console["path"]
        assert agent.questions == 1  # handing out a credential is asked


async def test_exoscale_labels_reset_then_one_put_back(env: dict[str, str]) -> None:
    task = (
        "Clear all labels of the Exoscale instance db-1, then give it back only its role label, and check that "
        "this is the only label it has."
    )
    async with trial(env, "Exoscale: reset labels, put one back", task) as agent:
        db = pick((await agent.call("list-compute-instances"))["instances"], name="db-1")
        role = {"role": db["labels"]["role"]}  # noted before the reset removes it

        cleared = await agent.call("reset-instance-field", id=db["id"], field="labels", wait=True)
        assert cleared["done"] and not cleared["resource"]["labels"]
        await agent.call("update-compute-instance", id=db["id"], labels=role, wait=True)

        assert (await agent.call("retrieve-compute-instance-details", id=db["id"]))["labels"] == role
        assert agent.questions == 1


async def test_exoscale_instance_reinstalled_from_the_newest_ubuntu_template(env: dict[str, str]) -> None:
    task = (
        "Reinstall the stopped Exoscale instance db-1 from the newest Ubuntu template, keeping its disk size, "
        "and check it is now built from that template."
    )
    async with trial(env, "Exoscale: reinstall from the newest Ubuntu", task) as agent:
        db = pick((await agent.call("list-compute-instances"))["instances"], name="db-1")
        templates = (await agent.call("list-templates"))["templates"]
        ubuntus = [t for t in templates if t["family"] == "ubuntu"]
        newest = max(ubuntus, key=lambda t: tuple(int(n) for n in t["version"].split(".")))
        assert newest["id"] != db["template"]["id"]

        await agent.call("reset-compute-instance-base-target", id=db["id"], template={"id": newest["id"]}, wait=True)
        after = await agent.call("retrieve-compute-instance-details", id=db["id"])
        assert (after["template"], after["disk-size"]) == ({"id": newest["id"]}, db["disk-size"])
        assert agent.questions == 1  # it wipes the disk


# -- Scaleway ------------------------------------------------------------------------------------


async def test_scaleway_image_renamed_then_found_by_its_new_name_in_every_zone(env: dict[str, str]) -> None:
    task = (
        "Rename the private Scaleway image app-golden-2025-03 to app-golden-archived, then find it under its "
        "new name among the images of every zone."
    )
    async with trial(env, "Scaleway: rename an image, find it", task) as agent:
        listed = (await agent.call("list-instance-images", zone="all", name="app-golden-2025-03"))["images"]
        image = pick(listed, name="app-golden-2025-03", public=False)

        renamed = await agent.call(
            "update-image-2", zone=image["zone"], image_id=image["id"], name="app-golden-archived"
        )
        assert renamed["image"]["name"] == "app-golden-archived"

        found = (await agent.call("list-instance-images", zone="all", name="app-golden-archived"))["images"]
        assert [(i["id"], i["zone"], i["tags"]) for i in found] == [(image["id"], image["zone"], image["tags"])]
        old = (await agent.call("list-instance-images", zone="all", name="app-golden-2025-03"))["images"]
        assert image["id"] not in {i["id"] for i in old}
        assert agent.questions == 0


async def test_scaleway_latest_public_ubuntu_release_in_a_zone(env: dict[str, str]) -> None:
    task = (
        "Find the latest Ubuntu release among the public x86_64 images of the Scaleway zone fr-par-2 (their "
        "names start with Ubuntu and the version) and read that image's details."
    )
    async with trial(env, "Scaleway: latest public Ubuntu in a zone", task) as agent:
        images: list[dict[str, Any]] = []
        page: dict[str, Any] = {}
        while True:  # every page, though the first usually holds them all
            listed = await agent.call(
                "list-instance-images", zone="fr-par-2", public=True, arch="x86_64", name="Ubuntu", **page
            )
            images += listed["images"]
            if not listed["images"] or len(images) >= listed["total_count"]:
                break
            page = {"page": listed["next_page"]}

        releases = {}
        for image in images:
            version = re.match(r"Ubuntu (\d+)\.(\d+)\b", image["name"])
            if version:
                releases[(int(version[1]), int(version[2]))] = image
        latest = releases[max(releases)]

        got = (await agent.call("get-instance-image", zone="fr-par-2", image_id=latest["id"]))["image"]
        assert (got["id"], got["arch"], got["public"], got["state"]) == (latest["id"], "x86_64", True, "available")
        assert got["name"].startswith("Ubuntu 24.04")
        assert agent.questions == 0


async def test_scaleway_private_image_published_in_its_zone(env: dict[str, str]) -> None:
    task = (
        "Make the private Scaleway image edge-proxy public, changing nothing else about it, and check it is "
        "listed among the public images of its own zone and no longer among the private ones."
    )
    async with trial(env, "Scaleway: publish a private image", task) as agent:
        image = pick((await agent.call("list-instance-images", zone="all", name="edge-proxy"))["images"], public=False)

        await agent.call("update-image-2", zone=image["zone"], image_id=image["id"], public=True)

        public = await agent.call("list-instance-images", zone=image["zone"], public=True, name=image["name"])
        assert image["id"] in {i["id"] for i in public["images"]}
        private = await agent.call("list-instance-images", zone=image["zone"], public=False, name=image["name"])
        assert image["id"] not in {i["id"] for i in private["images"]}
        after = (await agent.call("get-instance-image", zone=image["zone"], image_id=image["id"]))["image"]
        unchanged = ("name", "arch", "tags", "root_volume", "extra_volumes", "project")
        assert {k: after[k] for k in unchanged} == {k: image[k] for k in unchanged} and after["public"] is True
        assert agent.questions == 0


# -- Incus ---------------------------------------------------------------------------------------


async def test_incus_stopped_container_started_read_and_stopped(env: dict[str, str]) -> None:
    task = (
        "Start the stopped Incus container, read its OS release with cat /etc/os-release, check it is the "
        "release the instance listing gives, then stop the container again."
    )
    async with trial(env, "Incus: start, read the OS release, stop", task) as agent:
        listed = (await agent.call("list-instances"))["result"]
        container = pick(listed, type="container", status="Stopped")
        name, project = container["name"], container["project"]

        started = await agent.call("update-instance-state", name=name, project=project, action="start")
        assert started["status"] == "Running"
        ran = await agent.call("exec-instance", name=name, project=project, command=["cat", "/etc/os-release"])
        assert ran["exit_code"] == 0
        release = dict(line.split("=", 1) for line in ran["stdout"].splitlines() if "=" in line)
        assert container["config"]["image.release"] in release["PRETTY_NAME"]
        assert release["ID"] == container["config"]["image.os"].lower()

        stopped = await agent.call("update-instance-state", name=name, project=project, action="stop")
        assert stopped["status"] == "Stopped"
        assert pick((await agent.call("list-instances"))["result"], name=name)["status"] == "Stopped"
        assert agent.questions == 2  # the command, and the stop


async def test_incus_cancellable_operation_cancelled(env: dict[str, str]) -> None:
    task = "Cancel the running Incus operation that can be cancelled, and confirm it ended as cancelled."
    async with trial(env, "Incus: cancel a running operation", task) as agent:
        running = (await agent.call("get-operations-2"))["running"]
        operation = pick(running, may_cancel=True)

        await agent.call("cancel-operation", id=operation["id"])  # returns nothing: read the state back

        state = await agent.call("get-operation-state", id=operation["id"])
        assert (state["status"], state["status_code"]) == ("Cancelled", 401)
        grouped = await agent.call("get-operations")
        assert f"/1.0/operations/{operation['id']}" in grouped["cancelled"]
        assert agent.questions == 1


async def test_incus_pending_exec_connected_and_its_exit_code_read_back(env: dict[str, str]) -> None:
    task = (
        "An Incus exec is waiting for its streams to be connected: connect to it, report what the command "
        "printed and its exit code, and check the operation's own record agrees."
    )
    async with trial(env, "Incus: connect a waiting exec", task) as agent:
        running = (await agent.call("get-operations-2"))["running"]
        waiting = pick(running, **{"class": "websocket"})
        instance = waiting["resources"]["instances"][0].rsplit("/", 1)[1]

        streamed = await agent.call("get-websocket-stream", id=waiting["id"])
        assert streamed["exit_code"] == 0 and streamed["stderr"] == ""
        assert streamed["stdout"].split()[:2] == ["Linux", instance]  # `uname -a`: the instance's name

        state = await agent.call("get-operation-state", id=waiting["id"])
        assert (state["status"], state["metadata"]["return"]) == ("Success", streamed["exit_code"])
        assert state["metadata"]["command"] == waiting["metadata"]["command"]
        assert agent.questions == 1


# -- Portainer -----------------------------------------------------------------------------------


async def test_portainer_live_output_of_a_named_container(env: dict[str, str]) -> None:
    task = (
        "Watch the live output of the Docker container named ticker for 2 seconds and check its ticks keep counting up."
    )
    async with trial(env, "Portainer: watch a container's output", task) as agent:
        docker = await portainer_environment(agent, DOCKER_TYPES)
        containers = (await agent.call("list-docker-containers", endpointId=docker))["result"]
        ticker = next(c for c in containers if "/ticker" in c["Names"])

        watched = await agent.call("attach-websocket", endpointId=docker, id=ticker["Id"], max_seconds=2)
        ticks = [int(n) for n in re.findall(r"tick (\d+)", watched["output"])]
        assert len(ticks) >= 2 and ticks == list(range(ticks[0], ticks[0] + len(ticks)))
        assert watched["stopped"] == "deadline"
        assert agent.questions == 0  # attaching only reads


async def test_portainer_stdin_sent_through_cat_in_a_compose_service(env: dict[str, str]) -> None:
    task = (
        "In the Docker container of the Compose service web (project shop), run cat with stdin attached, "
        "send it this line and check the same line comes back:\nhello trials\n"
    )
    async with trial(env, "Portainer: stdin through a Docker exec", task) as agent:
        docker = await portainer_environment(agent, DOCKER_TYPES)
        containers = (await agent.call("list-docker-containers", endpointId=docker))["result"]
        web = next(
            c
            for c in containers
            if c["Labels"].get("com.docker.compose.project") == "shop"
            and c["Labels"].get("com.docker.compose.service") == "web"
        )
        assert web["State"] == "running"

        created = await agent.call("create-docker-exec", endpointId=docker, id=web["Id"], Cmd=["cat"], AttachStdin=True)
        run = await agent.call("execute-websocket", endpointId=docker, id=created["Id"], stdin="hello trials\n")
        assert "hello trials" in run["output"].splitlines()
        assert agent.questions == 1


async def test_portainer_ls_in_the_running_pod_of_a_namespace(env: dict[str, str]) -> None:
    task = (
        "In the Kubernetes environment, run ls / in the running pod of the kube-system namespace (its first "
        "container) and check the root holds an etc directory."
    )
    async with trial(env, "Portainer: ls in a kube-system pod", task) as agent:
        kubernetes = await portainer_environment(agent, KUBERNETES_TYPES)
        namespaces = (await agent.call("list-kubernetes-namespaces", endpointId=kubernetes))["items"]
        namespace = next(n["metadata"]["name"] for n in namespaces if n["metadata"]["name"] == "kube-system")
        pods = (await agent.call("list-kubernetes-pods", endpointId=kubernetes, namespace=namespace))["items"]
        pod = next(p for p in pods if p["status"]["phase"] == "Running")

        listed = await agent.call(
            "execute-websocket-pod",
            endpointId=kubernetes,
            namespace=namespace,
            podName=pod["metadata"]["name"],
            containerName=pod["spec"]["containers"][0]["name"],
            command="ls /",
        )
        assert "etc" in listed["output"].split()
        assert agent.questions == 1


async def test_portainer_exec_sees_the_environment_it_was_given(env: dict[str, str]) -> None:
    task = (
        "In the Docker container of the Compose service web (project shop), run sh -c 'echo $APP_MODE' with "
        "the environment variable APP_MODE=maintenance, and check it prints maintenance and exits 0."
    )
    async with trial(env, "Portainer: an exec's environment", task) as agent:
        docker = await portainer_environment(agent, DOCKER_TYPES)
        containers = (await agent.call("list-docker-containers", endpointId=docker))["result"]
        web = next(c for c in containers if c["Labels"].get("com.docker.compose.service") == "web")

        created = await agent.call(
            "create-docker-exec",
            endpointId=docker,
            id=web["Id"],
            Cmd=["sh", "-c", "echo $APP_MODE"],
            Env=["APP_MODE=maintenance"],
        )
        run = await agent.call("execute-websocket", endpointId=docker, id=created["Id"])
        assert run["exit_code"] == 0
        assert run["output"].splitlines() == ["maintenance"], f"the exec printed {run['output']!r}"


async def test_portainer_kubectl_shell_lists_the_pods_of_every_namespace(env: dict[str, str]) -> None:
    task = (
        "Open a kubectl shell on the Kubernetes environment, run the line below in it, and check it shows "
        "every pod the namespace and pod listings show:\nkubectl get pods -A\n"
    )
    async with trial(env, "Portainer: kubectl get pods -A", task) as agent:
        kubernetes = await portainer_environment(agent, KUBERNETES_TYPES)
        namespaces = (await agent.call("list-kubernetes-namespaces", endpointId=kubernetes))["items"]
        pods = set()
        for namespace in namespaces:
            name = namespace["metadata"]["name"]
            listed = await agent.call("list-kubernetes-pods", endpointId=kubernetes, namespace=name)
            pods |= {(name, p["metadata"]["name"]) for p in listed["items"]}

        shell = await agent.call(
            "execute-websocket-kubectl-shell-pod", endpointId=kubernetes, stdin="kubectl get pods -A\n"
        )
        rows = {tuple(line.split()[:2]) for line in shell["output"].splitlines()}
        missing = sorted(pods - rows)
        assert not missing, f"kubectl get pods -A left out {missing}: {shell['output']!r}"


# -- Nirvana Labs --------------------------------------------------------------------------------


async def test_nirvana_failed_operation_of_a_named_project_read(env: dict[str, str]) -> None:
    task = (
        "Find the failed operations of the Nirvana project named production and read the failed one: what "
        "kind of resource it was on and which change it tried."
    )
    async with trial(env, "Nirvana: read a project's failed operation", task) as agent:
        project = await nirvana_project(agent, "production")
        failed = (await agent.call("list-nirvana-operations", project_id=project["id"], status="failed"))["items"]
        assert failed and {op["status"] for op in failed} == {"failed"}

        operation = await agent.call("get-nirvana-operation", operation_id=failed[0]["id"])
        assert operation == failed[0] and operation["project_id"] == project["id"]
        assert operation["kind"] and operation["details"]["changes"]  # what it tried: {field: {from, to}}
        assert agent.questions == 0


async def test_nirvana_every_operation_on_a_resized_volume(env: dict[str, str]) -> None:
    task = (
        "In the Nirvana project production, find a volume whose size an update operation changed, and list "
        "every operation made on that volume."
    )
    async with trial(env, "Nirvana: one volume's operation history", task) as agent:
        project = await nirvana_project(agent, "production")
        updates = await agent.call("list-nirvana-operations", project_id=project["id"], kind="volume", type="update")
        resized = next(op for op in updates["items"] if "size" in ((op["details"] or {}).get("changes") or {}))

        history = await agent.call(
            "list-nirvana-operations", project_id=project["id"], resource_id=resized["resource_id"]
        )
        assert resized["id"] in {op["id"] for op in history["items"]}
        assert {(op["resource_id"], op["kind"]) for op in history["items"]} == {(resized["resource_id"], "volume")}
        assert history["pagination"]["total_count"] == len(history["items"])
        assert agent.questions == 0


async def test_nirvana_operations_counted_page_by_page(env: dict[str, str]) -> None:
    task = (
        "Count the operations of the Nirvana project staging by reading every page of 10, and check the count "
        "matches the total the listing reports."
    )
    async with trial(env, "Nirvana: count operations over pages", task) as agent:
        project = await nirvana_project(agent, "staging")
        seen: list[str] = []
        page: dict[str, Any] = {}
        while True:
            listed = await agent.call("list-nirvana-operations", project_id=project["id"], limit=10, **page)
            seen += [op["id"] for op in listed["items"]]
            assert len(listed["items"]) <= 10
            cursor = listed["pagination"]["next_cursor"]
            if not cursor:
                break
            page = {"cursor": cursor}
        assert len(seen) == len(set(seen)) == listed["pagination"]["total_count"]
        assert agent.calls > 2  # it took more than one page
        assert agent.questions == 0


# -- the harness itself, and the table -----------------------------------------------------------


async def test_harness_refuses_an_argument_no_result_gave(env: dict[str, str]) -> None:
    """An id the agent never read is refused before the call goes out; the same id once listed is not."""
    invented = "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000001"  # web-1's id, but no result has said so yet
    async with trial(env, "harness", "Show the details of web-1.", record=False) as agent:
        with pytest.raises(ProvenanceError, match=r"retrieve-compute-instance-details argument id = "):
            await agent.call("retrieve-compute-instance-details", id=invented)
        with pytest.raises(ProvenanceError, match=r"argument zone = 'xx-nowhere-1'"):
            await agent.call("list-compute-instances", zone="xx-nowhere-1")
        with pytest.raises(ProvenanceError, match="no tool 'list-everything'"):
            await agent.call("list-everything")
        assert agent.calls == 0

        pick((await agent.call("list-compute-instances"))["instances"], id=invented)
        assert (await agent.call("retrieve-compute-instance-details", id=invented))["name"] == "web-1"
        assert agent.calls == 2 and agent.characters > 0


def test_zz_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last (pytest keeps a module's order): the table of every trial above, printed even when
    output is captured."""
    with capsys.disabled():
        print("\n\nAgent trials (tests/test_agent_trials.py)\n" + table(ROWS) + "\n")
    assert len(ROWS) >= 10
    assert sum(row.finished for row in ROWS) >= 10
