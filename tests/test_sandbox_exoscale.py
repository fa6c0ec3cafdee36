"""The Exoscale simulator: its signature check against an independent signer, and its API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import requests
from exoscale_auth import ExoscaleV2Auth  # PyPI package requests-exoscale-auth

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.exoscale import (
    DEFAULT_ZONE,
    GPU_SMALL,
    INSTANCE_POOL,
    INSTANCE_RUNNING,
    INSTANCE_STOPPED,
    MEMORY_LARGE,
    MSG_BAD_SIGNATURE,
    MSG_EXPIRED,
    MSG_MISSING_AUTH,
    MSG_UNKNOWN_KEY,
    OPERATION_DONE,
    SECURITY_GROUP_DEFAULT,
    SECURITY_GROUP_PUBLIC,
    SECURITY_GROUP_WEB,
    SNAPSHOT_RUNNING,
    SNAPSHOT_STOPPED,
    STANDARD_SMALL,
    TEMPLATE_DEBIAN,
    TEMPLATE_PRIVATE,
    TEMPLATE_UBUNTU,
    TEMPLATE_UBUNTU_2204,
    ExoscaleSimulator,
    SignatureError,
    sign,
    signing_message,
    verify_request,
)
from mcp_cloudops.sandbox.runner import run_sandbox

pytestmark = pytest.mark.anyio


VECTOR_KEY = "EXOxxxxxxxxxxxxxxxxxxxxxxxx"
VECTOR_SECRET = "X" * 43
VECTOR_EXPIRES = 3376684800


class Api:
    """Signs each request with requests-exoscale-auth, then sends the very same bytes with httpx."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self.client = client
        self.base = base

    def prepare(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        key: str = credentials.EXOSCALE_API_KEY,
        secret: str = credentials.EXOSCALE_API_SECRET,
        expires: int | None = None,
    ) -> requests.PreparedRequest:
        prepared = requests.Request(method, self.base + path, json=body, params=params).prepare()
        auth = ExoscaleV2Auth(key, secret)
        if expires is None:
            auth(prepared)
        else:
            auth._sign_request(prepared, expires)
        return prepared

    async def send(self, prepared: requests.PreparedRequest, **overrides: Any) -> httpx.Response:
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body or b""
        request = {"method": prepared.method, "url": prepared.url, "headers": headers, "content": body}
        request.update(overrides)
        return await self.client.request(**request)

    async def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.send(self.prepare(method, path, body, **kwargs))

    async def wait(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Poll GET /operation/{id} until the operation leaves `pending`."""
        while True:
            response = await self(method="GET", path=f"/operation/{operation['id']}")
            assert response.status_code == 200, response.text
            if response.json()["state"] != "pending":
                return response.json()
            await anyio.sleep(0.02)


@asynccontextmanager
async def exoscale(operation_delay: float = 0.05, zone: str = DEFAULT_ZONE) -> AsyncIterator[tuple[Any, Api]]:
    sim = ExoscaleSimulator(operation_delay=operation_delay)
    async with run_sandbox([sim]) as sandbox, httpx.AsyncClient(timeout=5) as client:
        yield sim, Api(client, sandbox.env["EXOSCALE_API_URL"].replace("{zone}", zone))


def test_published_test_vectors() -> None:
    plain = signing_message("GET", "/v2/zone", b"", [], VECTOR_EXPIRES)
    assert sign(VECTOR_SECRET, plain) == "Ntbq/p0HVmA3Zg1HHY+Lq1vjFGi7HeMrrgXDS5jRNlY="
    header = (
        f"EXO2-HMAC-SHA256 credential={VECTOR_KEY},signed-query-args=k1;k2,expires={VECTOR_EXPIRES},"
        "signature=iqOBz13+44L5j0uJclE8hmUhQQcvtCSoPEOXYK6liqY="
    )
    checked = {
        "authorization": header,
        "method": "GET",
        "path": "/v2/zone",
        "body": b"",
        "secrets": {VECTOR_KEY: VECTOR_SECRET},
        "now": 0,
    }
    assert verify_request(raw_query="k1=v1&k2=v2", **checked) == VECTOR_KEY
    with pytest.raises(SignatureError, match=MSG_BAD_SIGNATURE):
        verify_request(raw_query="k1=v1&k2=v3", **checked)
    with pytest.raises(SignatureError, match=MSG_EXPIRED):
        verify_request(raw_query="k1=v1&k2=v2", **{**checked, "now": VECTOR_EXPIRES + 1})


async def test_env_points_at_the_zone_template() -> None:
    with anyio.fail_after(10):
        sim = ExoscaleSimulator()
        async with run_sandbox([sim]) as sandbox:
            env = sandbox.env
    assert env["EXOSCALE_API_URL"].endswith("/{zone}/v2")
    assert env["EXOSCALE_API_URL"].startswith("http://127.0.0.1:")
    assert env["EXOSCALE_API_KEY"] == credentials.EXOSCALE_API_KEY
    assert env["EXOSCALE_API_SECRET"] == credentials.EXOSCALE_API_SECRET


async def test_independently_signed_reads_and_filters() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            listed = await api("GET", "/instance")
            assert listed.status_code == 200
            names = {i["name"]: i for i in listed.json()["instances"]}
            assert set(names) == {"web-1", "db-1"}
            assert names["web-1"]["state"] == "running" and names["db-1"]["state"] == "stopped"
            assert names["db-1"]["snapshots"] == [{"id": SNAPSHOT_STOPPED}]

            filtered = await api("GET", "/instance", params={"labels": "env=prod"})
            assert filtered.status_code == 200, filtered.text
            assert [i["id"] for i in filtered.json()["instances"]] == [INSTANCE_RUNNING]
            assert "signed-query-args=labels" in sim.requests[-1].headers["authorization"]

            by_pool = await api(
                "GET", "/instance", params={"manager-id": INSTANCE_POOL, "manager-type": "instance-pool"}
            )
            assert [i["id"] for i in by_pool.json()["instances"]] == [INSTANCE_STOPPED]
            by_ip = await api("GET", "/instance", params={"ip-address": "194.182.160.10"})
            assert [i["id"] for i in by_ip.json()["instances"]] == [INSTANCE_RUNNING]

            one = await api("GET", f"/instance/{INSTANCE_RUNNING}")
            assert one.json()["instance-type"] == {"id": names["web-1"]["instance-type"]["id"]}
            assert (await api("GET", f"/instance/{INSTANCE_RUNNING}:password")).json() == {
                "password": "web1-initial-pass"
            }
            console = (await api("GET", f"/console/{INSTANCE_RUNNING}")).json()
            assert set(console) == {"url", "host", "path"} and console["url"].endswith(console["path"])

            other_zone = Api(api.client, api.base.replace(DEFAULT_ZONE, "de-fra-1"))
            assert (await other_zone("GET", "/instance")).json() == {"instances": []}
            assert (await other_zone("GET", f"/instance/{INSTANCE_RUNNING}")).status_code == 404


async def test_rejects_missing_unknown_tampered_and_expired_signatures() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            url = f"{api.base}/instance"
            missing = await api.client.get(url)
            assert (missing.status_code, missing.json()) == (403, {"message": MSG_MISSING_AUTH})

            unknown = await api("GET", "/instance", key="EXOnobody", secret="whatever")
            assert (unknown.status_code, unknown.json()) == (403, {"message": MSG_UNKNOWN_KEY})

            wrong_secret = await api("GET", "/instance", secret="not-the-secret")
            assert (wrong_secret.status_code, wrong_secret.json()) == (403, {"message": MSG_BAD_SIGNATURE})

            expired = await api("GET", "/instance", expires=int(time.time()) - 5)
            assert (expired.status_code, expired.json()) == (403, {"message": MSG_EXPIRED})

            signed = api.prepare("PUT", f"/instance/{INSTANCE_RUNNING}", {"name": "web-2"})
            tampered_body = await api.send(signed, content=b'{"name": "evil"}')
            assert (tampered_body.status_code, tampered_body.json()) == (403, {"message": MSG_BAD_SIGNATURE})

            signed = api.prepare("PUT", f"/instance/{INSTANCE_STOPPED}:start")
            retargeted = await api.send(signed, url=signed.url.replace(INSTANCE_STOPPED, INSTANCE_RUNNING))
            assert retargeted.status_code == 403

            signed = api.prepare("GET", "/instance", params={"labels": "env=prod"})
            tampered_query = await api.send(signed, url=signed.url.replace("prod", "staging"))
            assert tampered_query.status_code == 403

            assert sim.instances[INSTANCE_RUNNING].name == "web-1"
            assert list(sim.operations) == [OPERATION_DONE]  # only the seeded one: nothing got through


async def test_stop_start_lifecycle_through_operations() -> None:
    with anyio.fail_after(10):
        async with exoscale(operation_delay=0.2) as (sim, api):
            stopped = await api("PUT", f"/instance/{INSTANCE_RUNNING}:stop")
            assert stopped.status_code == 200
            operation = stopped.json()
            assert operation["state"] == "pending"
            assert operation["reference"] == {
                "id": INSTANCE_RUNNING,
                "link": f"/v2/instance/{INSTANCE_RUNNING}",
                "command": "stop-instance",
            }
            recorded = sim.requests[-1]
            assert recorded.method == "PUT"
            assert recorded.path == f"/{DEFAULT_ZONE}/v2/instance/{INSTANCE_RUNNING}:stop"

            assert (await api("GET", f"/instance/{INSTANCE_RUNNING}")).json()["state"] == "stopping"
            polled = await api("GET", f"/operation/{operation['id']}")
            assert polled.json()["state"] == "pending"
            assert (await api.wait(operation))["state"] == "success"
            assert (await api("GET", f"/instance/{INSTANCE_RUNNING}")).json()["state"] == "stopped"

            again = await api("PUT", f"/instance/{INSTANCE_RUNNING}:stop")
            assert again.status_code == 409 and "message" in again.json()

            started = await api("PUT", f"/instance/{INSTANCE_RUNNING}:start", {"rescue-profile": "netboot"})
            assert started.json()["reference"]["command"] == "start-instance"
            assert (await api.wait(started.json()))["state"] == "success"
            assert sim.instances[INSTANCE_RUNNING].state == "running"
            assert sim.instances[INSTANCE_RUNNING].rescue_profile == "netboot"
            assert sim.recorder.last("PUT").json() == {"rescue-profile": "netboot"}

            bad_profile = await api("PUT", f"/instance/{INSTANCE_STOPPED}:start", {"rescue-profile": "pxe"})
            assert bad_profile.status_code == 400
            busy = await api("PUT", f"/instance/{INSTANCE_RUNNING}:start")
            assert busy.status_code == 409


async def test_create_validates_and_completes() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            good = {"instance-type": {"id": STANDARD_SMALL}, "template": {"id": TEMPLATE_UBUNTU}, "disk-size": 10}
            for body, status in [
                ({"template": {"id": TEMPLATE_UBUNTU}, "disk-size": 10}, 400),
                ({**good, "disk-size": 9}, 400),
                ({**good, "disk-size": 51201}, 400),
                ({**good, "instance-type": "standard.small"}, 400),
                ({**good, "public-ip-assignment": "ipv6"}, 400),
                ({**good, "instance_type": {"id": STANDARD_SMALL}}, 400),
                ({**good, "template": {"id": "00000000-0000-4000-8000-000000000000"}}, 404),
            ]:
                response = await api("POST", "/instance", body)
                assert response.status_code == status, (body, response.text)
                assert isinstance(response.json()["message"], str)
            assert len(sim.instances) == 2

            created = await api("POST", "/instance", {**good, "name": "new-vm", "labels": {"team": "a"}})
            assert created.status_code == 200
            operation = created.json()
            assert operation["reference"]["command"] == "create-instance"
            instance_id = operation["reference"]["id"]
            assert (await api.wait(operation))["state"] == "success"
            instance = (await api("GET", f"/instance/{instance_id}")).json()
            assert (instance["name"], instance["state"], instance["disk-size"]) == ("new-vm", "running", 10)
            assert instance["labels"] == {"team": "a"} and instance["public-ip"]

            quiet = await api("POST", "/instance", {**good, "auto-start": False, "public-ip-assignment": "none"})
            await api.wait(quiet.json())
            quiet_instance = sim.instances[quiet.json()["reference"]["id"]].to_json()
            assert quiet_instance["state"] == "stopped" and "public-ip" not in quiet_instance


async def test_update_protection_delete_and_field_reset() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            path = f"/instance/{INSTANCE_STOPPED}"
            updated = await api("PUT", path, {"name": "db-primary", "labels": {"tier": "1"}})
            assert (await api.wait(updated.json()))["state"] == "success"
            assert (await api("GET", path)).json()["labels"] == {"tier": "1"}

            assert (await api("DELETE", f"{path}/name")).status_code == 400
            reset = await api("DELETE", f"{path}/labels")
            assert reset.json()["reference"]["command"] == "reset-instance-field"
            await api.wait(reset.json())
            assert sim.instances[INSTANCE_STOPPED].labels == {}

            await api.wait((await api("PUT", f"{path}:add-protection")).json())
            assert sim.instances[INSTANCE_STOPPED].protected
            refused = await api("DELETE", path)
            assert refused.status_code == 409 and "protection" in refused.json()["message"]
            await api.wait((await api("PUT", f"{path}:remove-protection")).json())

            deleted = await api("DELETE", path)
            assert deleted.json()["reference"]["command"] == "delete-instance"
            assert (await api.wait(deleted.json()))["state"] == "success"
            gone = await api("GET", path)
            assert (gone.status_code, gone.json()) == (404, {"message": "Instance not found"})


async def test_disk_scale_reset_password_tpm_and_snapshots() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            path = f"/instance/{INSTANCE_STOPPED}"
            assert (await api("PUT", f"{path}:resize-disk", {"disk-size": 50})).status_code == 400
            assert (await api("PUT", f"{path}:resize-disk", {})).status_code == 400
            await api.wait((await api("PUT", f"{path}:resize-disk", {"disk-size": 200})).json())
            assert sim.instances[INSTANCE_STOPPED].disk_size == 200

            assert (await api("PUT", f"{path}:scale", {"instance-type": {"id": MEMORY_LARGE}})).status_code == 400
            running_scale = await api(
                "PUT", f"/instance/{INSTANCE_RUNNING}:scale", {"instance-type": {"id": STANDARD_SMALL}}
            )
            assert running_scale.status_code == 409
            await api.wait((await api("PUT", f"{path}:scale", {"instance-type": {"id": STANDARD_SMALL}})).json())
            assert sim.instances[INSTANCE_STOPPED].instance_type == STANDARD_SMALL

            await api.wait((await api("PUT", f"{path}:reset", {"template": {"id": TEMPLATE_UBUNTU}})).json())
            assert sim.instances[INSTANCE_STOPPED].template == TEMPLATE_UBUNTU
            assert sim.instances[INSTANCE_STOPPED].template != TEMPLATE_DEBIAN

            before = (await api("GET", f"{path}:password")).json()["password"]
            await api.wait((await api("PUT", f"{path}:reset-password")).json())
            assert (await api("GET", f"{path}:password")).json()["password"] != before

            tpm = await api("POST", f"/instance/{INSTANCE_RUNNING}:enable-tpm")
            await api.wait(tpm.json())
            assert sim.instances[INSTANCE_RUNNING].tpm_enabled

            snap = (await api("POST", f"{path}:create-snapshot")).json()
            assert snap["reference"]["command"] == "create-snapshot"
            assert snap["reference"]["link"] == f"/v2/snapshot/{snap['reference']['id']}"
            await api.wait(snap)
            assert {"id": snap["reference"]["id"]} in (await api("GET", path)).json()["snapshots"]

            assert (await api("PUT", f"{path}:explode")).status_code == 404
            assert (await api("GET", f"{path}:stop")).status_code == 405


async def test_revert_snapshot_succeeds_when_stopped_and_fails_when_running() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (_sim, api):
            ok = await api("POST", f"/instance/{INSTANCE_STOPPED}:revert-snapshot", {"id": SNAPSHOT_STOPPED})
            assert ok.json()["reference"]["command"] == "revert-instance-to-snapshot"
            assert (await api.wait(ok.json()))["state"] == "success"

            foreign = await api("POST", f"/instance/{INSTANCE_STOPPED}:revert-snapshot", {"id": SNAPSHOT_RUNNING})
            assert foreign.status_code == 404

            running = await api("POST", f"/instance/{INSTANCE_RUNNING}:revert-snapshot", {"id": SNAPSHOT_RUNNING})
            assert running.status_code == 200
            failed = await api.wait(running.json())
            assert failed["state"] == "failure" and failed["reason"] == "incorrect" and failed["message"]


async def test_injected_rate_limit_errors_and_operation_failure() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            sim.rate_limit_next(retry_after=1)
            limited = await api("GET", "/instance")
            assert (limited.status_code, limited.json()) == (429, {"message": "Too many requests", "retry_after": 1})
            assert (await api("GET", "/instance")).status_code == 200

            sim.fail_next(503, {"message": "Service unavailable"})
            assert (await api("GET", "/instance")).status_code == 503

            sim.fail_next_operation("busy", "Another operation is running")
            stop = await api("PUT", f"/instance/{INSTANCE_RUNNING}:stop")
            failed = await api.wait(stop.json())
            assert (failed["state"], failed["reason"]) == ("failure", "busy")
            assert sim.instances[INSTANCE_RUNNING].state == "running"

            unknown_zone = Api(api.client, api.base.replace(DEFAULT_ZONE, "us-east-1"))
            response = await unknown_zone("GET", "/instance")
            assert response.status_code == 404 and "us-east-1" in response.json()["message"]
            missing_op = await api("GET", "/operation/00000000-0000-4000-8000-000000000000")
            assert (missing_op.status_code, missing_op.json()) == (404, {"message": "Operation not found"})


async def test_operations_settle_lazily_and_on_demand() -> None:
    with anyio.fail_after(10):
        async with exoscale(operation_delay=60) as (sim, api):
            operation = (await api("PUT", f"/instance/{INSTANCE_RUNNING}:reboot")).json()
            await anyio.sleep(0.05)
            assert (await api("GET", f"/operation/{operation['id']}")).json()["state"] == "pending"
            sim.complete_operations()
            assert (await api("GET", f"/operation/{operation['id']}")).json()["state"] == "success"


async def test_official_exoscale_client_drives_the_simulator() -> None:
    """The vendor's own generated client (PyPI `exoscale`) signs and calls; we only check results."""
    from exoscale.api.v2 import Client

    with anyio.fail_after(10):
        sim = ExoscaleSimulator(operation_delay=0.05)
        async with run_sandbox([sim]) as sandbox:
            url = sandbox.env["EXOSCALE_API_URL"].replace("{zone}", DEFAULT_ZONE)
            client = Client(credentials.EXOSCALE_API_KEY, credentials.EXOSCALE_API_SECRET, url=url)

            def scenario() -> tuple[list[str], str, str]:
                prod = [i["name"] for i in client.list_instances(labels="env=prod")["instances"]]
                operation = client.stop_instance(id=INSTANCE_RUNNING)
                while (state := client.get_operation(id=operation["id"])["state"]) == "pending":
                    time.sleep(0.02)
                return prod, state, client.get_instance(id=INSTANCE_RUNNING)["state"]

            assert await anyio.to_thread.run_sync(scenario) == (["web-1"], "success", "stopped")
            assert sim.recorder.last("PUT").path.endswith(f"/instance/{INSTANCE_RUNNING}:stop")


# --- the catalogue routes: where create-instance's ids come from ---------------------------------


async def test_catalogue_lists_what_the_seeded_instances_use() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            types = {t["id"]: t for t in (await api("GET", "/instance-type")).json()["instance-types"]}
            web = sim.instances[INSTANCE_RUNNING]
            assert {web.instance_type, sim.instances[INSTANCE_STOPPED].instance_type} <= set(types)
            medium = types[web.instance_type]
            assert (medium["family"], medium["size"], medium["cpus"], medium["memory"]) == (
                "standard",
                "medium",
                2,
                4 * 1024**3,
            )
            assert medium["authorized"] is True and DEFAULT_ZONE in medium["zones"] and "gpus" not in medium
            assert (types[GPU_SMALL]["gpus"], types[GPU_SMALL]["authorized"]) == (1, False)

            public = {t["id"]: t for t in (await api("GET", "/template")).json()["templates"]}
            assert set(public) == {TEMPLATE_UBUNTU, TEMPLATE_DEBIAN, TEMPLATE_UBUNTU_2204}
            assert web.template in public and public[TEMPLATE_DEBIAN]["default-user"] == "debian"
            assert public[TEMPLATE_UBUNTU]["created-at"].endswith("Z")

            keys = (await api("GET", "/ssh-key")).json()["ssh-keys"]
            assert {"sandbox-key"} | {k["name"] for k in web.ssh_keys} <= {k["name"] for k in keys}
            assert all(len(k["fingerprint"].split(":")) == 16 for k in keys)

            groups = {g["name"]: g for g in (await api("GET", "/security-group")).json()["security-groups"]}
            assert groups["default"]["id"] == SECURITY_GROUP_DEFAULT and groups["web"]["id"] == SECURITY_GROUP_WEB
            assert {r["start-port"] for r in groups["web"]["rules"]} == {80, 443}

            snapshots = {s["id"]: s for s in (await api("GET", "/snapshot")).json()["snapshots"]}
            assert set(snapshots) == {SNAPSHOT_RUNNING, SNAPSHOT_STOPPED}
            assert snapshots[SNAPSHOT_RUNNING]["instance"] == {"id": INSTANCE_RUNNING}
            assert snapshots[SNAPSHOT_RUNNING]["size"] == web.disk_size
            assert (
                snapshots[SNAPSHOT_STOPPED]["state"] == "exported" and snapshots[SNAPSHOT_STOPPED]["export"]["md5sum"]
            )
            one = await api("GET", f"/snapshot/{SNAPSHOT_RUNNING}")
            assert one.json() == snapshots[SNAPSHOT_RUNNING]


async def test_catalogue_filters_zones_and_unknown_parameters() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (_sim, api):

            async def template_ids(**params: str) -> list[str]:
                response = await api("GET", "/template", params=params)
                assert response.status_code == 200, response.text
                return [t["id"] for t in response.json()["templates"]]

            assert await template_ids(visibility="private") == [TEMPLATE_PRIVATE]
            assert await template_ids(visibility="public", family="ubuntu") == [TEMPLATE_UBUNTU, TEMPLATE_UBUNTU_2204]
            assert await template_ids(visibility="private", family="debian") == []

            public = (await api("GET", "/security-group", params={"visibility": "public"})).json()
            assert [g["id"] for g in public["security-groups"]] == [SECURITY_GROUP_PUBLIC]
            assert public["security-groups"][0]["external-sources"]

            for path, params in [
                ("/template", {"visibility": "shared"}),
                ("/security-group", {"visibility": "all"}),
                ("/template", {"name": "ubuntu"}),
                ("/instance-type", {"family": "standard"}),
                ("/snapshot", {"instance-id": INSTANCE_RUNNING}),
                ("/ssh-key", {"name": "sandbox-key"}),
            ]:
                refused = await api("GET", path, params=params)
                assert refused.status_code == 400 and refused.json()["message"], (path, params)

            other_zone = Api(api.client, api.base.replace(DEFAULT_ZONE, "de-fra-1"))
            assert (await other_zone("GET", "/snapshot")).json() == {"snapshots": []}
            assert (await other_zone("GET", f"/snapshot/{SNAPSHOT_RUNNING}")).status_code == 404
            private_elsewhere = await other_zone("GET", "/template", params={"visibility": "private"})
            assert private_elsewhere.json() == {"templates": []}
            assert len((await other_zone("GET", "/ssh-key")).json()["ssh-keys"]) == 2  # account-wide


async def test_create_refuses_ids_the_catalogue_does_not_offer() -> None:
    with anyio.fail_after(10):
        async with exoscale() as (sim, api):
            good = {"instance-type": {"id": STANDARD_SMALL}, "template": {"id": TEMPLATE_UBUNTU}, "disk-size": 10}
            other_zone = Api(api.client, api.base.replace(DEFAULT_ZONE, "de-fra-1"))
            for client, body, status in [
                (api, {**good, "instance-type": {"id": GPU_SMALL}}, 403),
                (other_zone, {**good, "instance-type": {"id": GPU_SMALL}}, 400),
                (other_zone, {**good, "template": {"id": TEMPLATE_PRIVATE}}, 404),
                (api, {**good, "ssh-keys": [{"name": "nobody"}]}, 404),
                (api, {**good, "ssh-key": {"name": "nobody"}}, 404),
                (api, {**good, "security-groups": [{"id": SECURITY_GROUP_PUBLIC}]}, 404),
            ]:
                response = await client("POST", "/instance", body)
                assert response.status_code == status, (body, response.text)
            assert len(sim.instances) == 2

            listed = {
                "ssh-keys": [{"name": "ci-deploy"}],
                "security-groups": [{"id": SECURITY_GROUP_DEFAULT}, {"id": SECURITY_GROUP_WEB}],
                "template": {"id": TEMPLATE_PRIVATE},
            }
            created = await api("POST", "/instance", {**good, **listed})
            assert (await api.wait(created.json()))["state"] == "success"
            instance = sim.instances[created.json()["reference"]["id"]].to_json()
            assert instance["ssh-keys"] == listed["ssh-keys"] and instance["template"] == listed["template"]


async def test_snapshot_is_listed_while_snapshotting_and_goes_with_a_failed_operation() -> None:
    with anyio.fail_after(10):
        async with exoscale(operation_delay=60) as (sim, api):
            path = f"/instance/{INSTANCE_STOPPED}"
            operation = (await api("POST", f"{path}:create-snapshot")).json()
            snapshot_id = operation["reference"]["id"]
            listed = {s["id"]: s for s in (await api("GET", "/snapshot")).json()["snapshots"]}
            assert listed[snapshot_id]["state"] == "snapshotting"
            assert listed[snapshot_id]["instance"] == {"id": INSTANCE_STOPPED}
            assert listed[snapshot_id]["name"].startswith("db-1-") and listed[snapshot_id]["size"] == 100
            early = await api("POST", f"{path}:revert-snapshot", {"id": snapshot_id})
            assert early.status_code == 409

            sim.complete_operations()
            assert (await api("GET", f"/snapshot/{snapshot_id}")).json()["state"] == "ready"

            sim.fail_next_operation()
            failed = (await api("POST", f"{path}:create-snapshot")).json()
            sim.complete_operations()
            assert (await api("GET", f"/operation/{failed['id']}")).json()["state"] == "failure"
            assert failed["reference"]["id"] not in {
                s["id"] for s in (await api("GET", "/snapshot")).json()["snapshots"]
            }
            assert {"id": failed["reference"]["id"]} not in (await api("GET", path)).json()["snapshots"]


async def test_official_exoscale_client_reads_the_catalogue() -> None:
    """The vendor's generated client sends the catalogue requests as its spec says; the simulator answers them."""
    from exoscale.api.v2 import Client

    with anyio.fail_after(10):
        sim = ExoscaleSimulator(operation_delay=0.05)
        async with run_sandbox([sim]) as sandbox:
            url = sandbox.env["EXOSCALE_API_URL"].replace("{zone}", DEFAULT_ZONE)
            client = Client(credentials.EXOSCALE_API_KEY, credentials.EXOSCALE_API_SECRET, url=url)

            def scenario() -> list[int]:
                return [
                    len(client.list_instance_types()["instance-types"]),
                    len(client.list_templates(visibility="private", family="ubuntu")["templates"]),
                    len(client.list_ssh_keys()["ssh-keys"]),
                    len(client.list_security_groups(visibility="public")["security-groups"]),
                    len(client.list_snapshots()["snapshots"]),
                ]

            assert await anyio.to_thread.run_sync(scenario) == [8, 1, 2, 1, 2]
            assert sim.recorder.last("GET").path == f"/{DEFAULT_ZONE}/v2/snapshot"
