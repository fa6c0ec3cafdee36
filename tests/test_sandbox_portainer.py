"""The Portainer simulator behaves like Portainer CE: auth before the upgrade, Docker exec runs,
pod sessions that stay open, and the errors Portainer really sends."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.portainer import SANDBOX_JWT, PortainerSimulator
from mcp_cloudops.sandbox.runner import run_sandbox

pytestmark = pytest.mark.anyio

KEY = {"X-API-Key": credentials.PORTAINER_API_KEY}


class Portainer:
    def __init__(self, sim: PortainerSimulator, url: str, client: httpx.AsyncClient) -> None:
        self.sim, self.url, self.client = sim, url, client

    def ws(self, route: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        ws_url = self.url.replace("http://", "ws://") + f"/api/websocket/{route}?{urlencode(params)}"
        return connect(ws_url, additional_headers=KEY if headers is None else headers, proxy=None, close_timeout=1)


@asynccontextmanager
async def portainer(**options: Any) -> AsyncIterator[Portainer]:
    sim = PortainerSimulator(**options)
    async with run_sandbox([sim]) as sandbox:
        url = sandbox.env["PORTAINER_URL"]
        assert sandbox.env["PORTAINER_API_KEY"] == credentials.PORTAINER_API_KEY
        async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=10) as client:
            yield Portainer(sim, url, client)


async def read_to_close(ws: ClientConnection) -> str:
    """Every text frame until the server ends the connection."""
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, str)
            assert len(frame.encode()) <= 2048
            frames.append(frame)
    return "".join(frames)


async def read_until(ws: ClientConnection, marker: str) -> str:
    text = ""
    while marker not in text:
        text += await ws.recv()
    return text


async def still_open(ws: ClientConnection, seconds: float = 0.4) -> bool:
    """True if nothing arrives and the socket stays open for `seconds`."""
    with anyio.move_on_after(seconds):
        await ws.recv()
        return False
    return True


async def eventually(check: Callable[[], bool]) -> None:
    while not check():
        await anyio.sleep(0.02)


async def refused(context: Any) -> httpx.Response:
    with pytest.raises(InvalidStatus) as excinfo:
        async with context:
            pass
    return excinfo.value.response


async def test_auth_is_checked_before_the_upgrade() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            params = {"endpointId": 1, "id": api.sim.exec_id}
            wrong_key = {"X-API-Key": "ptr_wrong"}
            key_as_bearer = {"Authorization": f"Bearer {credentials.PORTAINER_API_KEY}"}
            for headers in [{}, wrong_key, key_as_bearer]:
                response = await refused(api.ws("exec", headers=headers, **params))
                assert response.status_code == 401
                assert json.loads(response.body) == {
                    "message": "A valid authorisation token is missing",
                    "details": "Unauthorized",
                }
            assert not api.sim.get_exec(api.sim.exec_id).started

            response = await api.client.get("/api/endpoints", headers={"X-API-Key": ""})
            assert response.status_code == 401
            response = await api.client.get("/api/endpoints", headers={"Authorization": f"Bearer {SANDBOX_JWT}"})
            assert [(e["Id"], e["Type"]) for e in response.json()] == [(1, 1), (2, 5)]

            async with api.ws("exec", headers={}, token=SANDBOX_JWT, **params) as ws:
                assert await read_to_close(ws) == "hello from web\n"


async def test_bad_parameters_are_refused_before_the_upgrade() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            cases = [
                ("exec", {"endpointId": 1}, 400, "Invalid query parameter: id"),
                (
                    "exec",
                    {"endpointId": 1, "id": "web"},
                    400,
                    "Invalid query parameter: id (must be hexadecimal identifier)",
                ),
                ("attach", {"endpointId": "one", "id": "abc"}, 400, "Invalid query parameter: endpointId"),
                ("attach", {"endpointId": 9, "id": "abc"}, 404, "Unable to find the environment"),
                ("pod", {"endpointId": 2, "namespace": "default", "podName": "web-0"}, 400, "Invalid query parameter"),
                ("kubernetes-shell", {}, 400, "Invalid query parameter: endpointId"),
                ("kubernetes-shell", {"endpointId": 1}, 500, "Unable to create Kubernetes client"),
            ]
            for route, params, status, message in cases:
                response = await refused(api.ws(route, **params))
                body = json.loads(response.body)
                assert response.status_code == status, (route, params)
                assert set(body) == {"message", "details"}
                assert body["message"].startswith(message)


async def test_non_interactive_exec_run() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            web = api.sim.container_id
            body = {"AttachStdout": True, "AttachStderr": True, "Tty": False, "Cmd": ["sh", "-c", "echo out; exit 3"]}
            response = await api.client.post(f"/api/endpoints/1/docker/containers/{web}/exec", json=body)
            assert response.status_code == 201
            exec_id = response.json()["Id"]
            assert re.fullmatch(r"[0-9a-f]{64}", exec_id)

            inspect = (await api.client.get(f"/api/endpoints/1/docker/exec/{exec_id}/json")).json()
            assert (inspect["Running"], inspect["ExitCode"], inspect["ContainerID"]) == (False, None, web)
            assert inspect["ProcessConfig"] == {
                "entrypoint": "sh",
                "arguments": ["-c", "echo out; exit 3"],
                "privileged": False,
                "tty": False,
                "user": "",
            }

            async with api.ws("exec", endpointId=1, id=exec_id) as ws:
                assert await read_to_close(ws) == "out\n"
                assert ws.close_code == 1006  # Portainer drops the connection: no close frame, no exit code

            inspect = (await api.client.get(f"/api/endpoints/1/docker/exec/{exec_id}/json")).json()
            assert (inspect["Running"], inspect["ExitCode"]) == (False, 3)

            # An exec runs once; an unknown one is only found out after the upgrade.
            for ref in [exec_id, "ab" * 32]:
                async with api.ws("exec", endpointId=1, id=ref) as ws:
                    assert await read_to_close(ws) == ""


async def test_exec_output_is_merged_in_frames_of_at_most_2048_bytes() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            seq = api.sim.create_exec(1, "web", ["seq", "3000"])
            async with api.ws("exec", endpointId=1, id=seq) as ws:
                output = await read_to_close(ws)
            assert output == "".join(f"{n}\n" for n in range(1, 3001))

            missing = api.sim.create_exec(1, "web", ["nosuchtool"])
            async with api.ws("exec", endpointId=1, id=missing) as ws:
                assert "executable file not found" in await read_to_close(ws)
            assert api.sim.get_exec(missing).exit_code == 127


async def test_exec_stdin_and_early_close() -> None:
    with anyio.fail_after(10):
        async with portainer(disconnect_grace=0.1) as api:
            cat = api.sim.create_exec(1, api.sim.container_id, ["cat"], attach_stdin=True)
            async with api.ws("exec", endpointId=1, id=cat) as ws:
                await ws.send("first\n")
                assert await ws.recv() == "first\n"
                await ws.send("second\n")
                assert await ws.recv() == "second\n"
            await eventually(lambda: not api.sim.get_exec(cat).running)
            assert api.sim.get_exec(cat).exit_code == 0  # closing the socket ends stdin

            endless = api.sim.create_exec(1, "web", ["yes"])
            async with api.ws("exec", endpointId=1, id=endless) as ws:
                received = 0
                while received < 20_000:
                    received += len(await ws.recv())
            await eventually(lambda: not api.sim.get_exec(endless).running)
            assert api.sim.get_exec(endless).exit_code in (137, 141)  # SIGPIPE, or killed after the grace

            shell = api.sim.shell_exec_id
            async with api.ws("exec", endpointId=1, id=shell) as ws:
                await ws.send("x" * 3000)
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1009


async def test_pod_exec_stays_open_after_the_command() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            params = {"endpointId": 2, "namespace": "default", "podName": "web-0", "containerName": "web"}
            async with api.ws("pod", command="echo hi there", **params) as ws:
                assert await read_until(ws, "\r\n") == "hi there\r\n"
                assert await still_open(ws)

            async with api.ws("pod", command="ls", **{**params, "podName": "nope"}) as ws:
                assert await read_to_close(ws) == ""

            response = await refused(api.ws("pod", command="ls", **{**params, "endpointId": 1}))
            assert response.status_code == 500


async def test_kubernetes_shell_answers_each_line() -> None:
    with anyio.fail_after(10):
        async with portainer() as api, api.ws("kubernetes-shell", endpointId=2) as ws:
            assert await ws.recv() == "$ "
            await ws.send("kubectl get pods\r")
            text = await read_until(ws, "\r\n$ ")
            assert text.startswith("kubectl get pods\r\n")  # the terminal's echo
            assert "web-0   1/1     Running" in text
            await ws.send("exit\n")
            await read_until(ws, "\r\n")
            assert await still_open(ws)


async def test_attach_streams_live_output_then_idles() -> None:
    with anyio.fail_after(10):
        async with portainer(tick_interval=0.05) as api:
            async with api.ws("attach", endpointId=1, id=api.sim.container_id) as ws:
                frames = [await ws.recv() for _ in range(3)]
                assert all(frame.startswith("\x01\x00\x00\x00\x00\x00\x00") for frame in frames)
                assert frames[1].endswith('"GET /health HTTP/1.1" 200 615\n')
                assert await still_open(ws)

            async with api.ws("attach", endpointId=1, id=api.sim.container_ids["ticker"][:12]) as ws:
                assert await ws.recv() == "tick 1\r\n"

            async with api.ws("attach", endpointId=1, id=api.sim.container_ids["db"]) as ws:
                assert await read_to_close(ws) == ""


async def test_docker_routes_and_errors() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            running = (await api.client.get("/api/endpoints/1/docker/containers/json")).json()
            assert [c["Names"] for c in running] == [["/web"], ["/ticker"]]
            everything = (await api.client.get("/api/endpoints/1/docker/containers/json?all=1")).json()
            assert {c["State"] for c in everything} == {"running", "exited"}

            db = api.sim.container_ids["db"]
            response = await api.client.post(f"/api/endpoints/1/docker/containers/{db}/exec", json={"Cmd": ["ls"]})
            assert (response.status_code, response.json()) == (409, {"message": f"Container {db} is not running"})
            response = await api.client.post("/api/endpoints/1/docker/containers/nope/exec", json={"Cmd": ["ls"]})
            assert (response.status_code, response.json()) == (404, {"message": "No such container: nope"})
            response = await api.client.post("/api/endpoints/1/docker/containers/web/exec", json={"Cmd": []})
            assert response.status_code == 400
            response = await api.client.get("/api/endpoints/7/docker/exec/abc/json")
            assert response.status_code == 404
            assert (
                response.json()["message"]
                == "Unable to find an environment with the specified identifier inside the database"
            )

            # A plain HTTP GET on a websocket route is not an upgrade.
            response = await api.client.get("/api/websocket/exec", params={"endpointId": 1, "id": "abc"})
            assert response.status_code == 400


async def test_the_recorder_sees_handshakes_and_requests() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            await api.client.get("/api/endpoints")
            async with api.ws("exec", endpointId=1, id=api.sim.exec_id) as ws:
                await read_to_close(ws)
            first, handshake = api.sim.requests[0], api.sim.requests[-1]
            assert (first.method, first.path, first.websocket) == ("GET", "/api/endpoints", False)
            assert handshake.websocket and handshake.path == "/api/websocket/exec"
            assert handshake.query == {"endpointId": ["1"], "id": [api.sim.exec_id]}
            assert handshake.headers["x-api-key"] == credentials.PORTAINER_API_KEY


async def test_environments_are_searched_counted_and_paged_like_portainer() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            api.sim.endpoints[2].status = 2  # down

            async def listed(**params: Any) -> tuple[list[int], str]:
                response = await api.client.get("/api/endpoints", params=params)
                assert response.status_code == 200
                return [e["Id"] for e in response.json()], response.headers["X-Total-Count"]

            assert await listed() == ([1, 2], "2")
            assert await listed(search="K8S") == ([2], "1")  # lower-cased, in the name
            assert await listed(search="docker.sock") == ([1], "1")  # in the URL
            assert await listed(search="down") == ([2], "1")
            assert await listed(limit=1) == ([1], "2")  # the count is before the page is cut
            assert await listed(start=2, limit=1) == ([2], "2")  # start counts from 1...
            assert await listed(start=0, limit=1) == ([1], "2")  # ...and 0 is the first too
            assert await listed(start=5, limit=1) == ([], "2")
            assert await listed(**{"types[]": [5, 6, 7]}) == ([2], "1")
            response = await api.client.get("/api/endpoints", params={"types[]": "docker"})
            assert (response.status_code, response.json()["message"]) == (400, "Invalid query parameters")

            full = (await api.client.get("/api/endpoints")).json()[0]
            assert full["Snapshots"][0]["DockerSnapshotRaw"]["Containers"][0]["Names"] == ["/web"]
            lean = (await api.client.get("/api/endpoints", params={"excludeSnapshots": "true"})).json()[0]
            assert lean["Snapshots"] is None and (lean["Id"], lean["Type"], lean["Status"]) == (1, 1, 1)


async def test_containers_are_filtered_like_docker() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:

            async def names(filters: Any) -> list[str]:
                params = {"all": "1", "filters": json.dumps(filters)}
                response = await api.client.get("/api/endpoints/1/docker/containers/json", params=params)
                assert response.status_code == 200, response.text
                return [c["Names"][0] for c in response.json()]

            assert await names({"name": ["^/w"]}) == ["/web"]
            assert await names({"status": ["exited"]}) == ["/db"]
            assert await names({"label": ["com.docker.compose.project=shop"]}) == ["/web", "/db"]
            assert await names({"label": ["com.docker.compose.service=db"], "status": ["running"]}) == []
            assert await names({"name": {"tick": True}}) == ["/ticker"]  # the legacy form
            assert await names({"id": [api.sim.container_ids["db"][:12]]}) == ["/db"]
            web = (await api.client.get("/api/endpoints/1/docker/containers/json")).json()[0]
            assert web["Labels"]["com.docker.compose.service"] == "web"

            for filters, message in [
                ("{not json", "invalid filter"),
                (json.dumps({"colour": ["red"]}), "invalid filter 'colour'"),
                (json.dumps({"status": ["sleeping"]}), "invalid filter 'status=sleeping'"),
            ]:
                response = await api.client.get("/api/endpoints/1/docker/containers/json", params={"filters": filters})
                assert (response.status_code, response.json()) == (400, {"message": message})


async def test_pods_are_listed_and_paged_like_the_kubernetes_api() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            pods = "/api/endpoints/2/kubernetes/api/v1/namespaces/{}/pods"
            answer = (await api.client.get(pods.format("default"))).json()
            assert (answer["kind"], answer["apiVersion"]) == ("PodList", "v1")
            assert [p["metadata"]["name"] for p in answer["items"]] == ["web-0", "web-1"]
            assert answer["items"][0]["spec"]["containers"][0]["name"] == "web"
            assert answer["items"][0]["status"]["phase"] == "Running"
            assert "continue" not in answer["metadata"]
            assert (await api.client.get(pods.format("nowhere"))).json()["items"] == []  # no such namespace: none

            first = (await api.client.get(pods.format("default"), params={"limit": 1})).json()
            assert [p["metadata"]["name"] for p in first["items"]] == ["web-0"]
            assert first["metadata"]["remainingItemCount"] == 1
            params = {"limit": 1, "continue": first["metadata"]["continue"]}
            second = (await api.client.get(pods.format("default"), params=params)).json()
            assert [p["metadata"]["name"] for p in second["items"]] == ["web-1"] and "continue" not in second[
                "metadata"
            ]

            response = await api.client.get(pods.format("kube-system"), params=params)  # another list's token
            assert (response.status_code, response.json()["kind"], response.json()["reason"]) == (
                400,
                "Status",
                "BadRequest",
            )
            response = await api.client.get("/api/endpoints/1/kubernetes/api/v1/namespaces/default/pods")
            assert (response.status_code, response.json()) == (404, {"message": "page not found"})  # Docker's answer
            response = await api.client.get("/api/endpoints/9/kubernetes/api/v1/namespaces/default/pods")
            assert response.status_code == 404 and response.json()["message"].startswith(
                "Unable to find an environment"
            )
            response = await api.client.get(pods.format("default"), headers={"X-API-Key": "ptr_wrong"})
            assert response.status_code == 401


async def test_an_exec_relays_only_the_streams_it_was_created_with() -> None:
    with anyio.fail_after(10):
        async with portainer() as api:
            create = "/api/endpoints/1/docker/containers/web/exec"
            bare = (await api.client.post(create, json={"Cmd": ["echo", "lost"]})).json()["Id"]
            body = {
                "Cmd": ["echo", "kept"],
                "AttachStdout": True,
                "AttachStderr": True,
                "User": "nginx",
                "Env": ["A=1"],
            }
            attached = (await api.client.post(create, json=body)).json()["Id"]

            inspect = (await api.client.get(f"/api/endpoints/1/docker/exec/{bare}/json")).json()
            assert (inspect["OpenStdout"], inspect["OpenStderr"]) == (False, False)  # Docker's default
            inspect = (await api.client.get(f"/api/endpoints/1/docker/exec/{attached}/json")).json()
            assert (inspect["OpenStdout"], inspect["ProcessConfig"]["user"]) == (True, "nginx")

            async with api.ws("exec", endpointId=1, id=bare) as ws:
                assert await read_to_close(ws) == ""
            async with api.ws("exec", endpointId=1, id=attached) as ws:
                assert await read_to_close(ws) == "kept\n"
            assert api.sim.get_exec(bare).exit_code == api.sim.get_exec(attached).exit_code == 0

            response = await api.client.post(create, json={"Cmd": ["ls"], "Env": "A=1"})
            assert response.status_code == 400


async def test_what_docker_or_kubernetes_refuse_drops_the_socket_after_the_upgrade() -> None:
    """As Portainer does: it upgrades, then Docker or Kubernetes refuse, and the socket drops with no status."""
    with anyio.fail_after(10):
        async with portainer() as api:
            pod = {"endpointId": 2, "namespace": "default", "podName": "nope-0", "containerName": "web"}
            sessions = [
                api.ws("attach", endpointId=1, id="ab" * 32),  # "No such container"
                api.ws("exec", endpointId=1, id="ab" * 32),  # "No such exec instance"
                api.ws("pod", command="ls", **pod),  # pods "nope-0" not found
            ]
            for session in sessions:
                async with session as ws:
                    assert await read_to_close(ws) == ""
                    assert ws.close_code == 1006
