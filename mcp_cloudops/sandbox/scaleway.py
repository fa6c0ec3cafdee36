"""Scaleway Instance API simulator: images (`/instance/v1/zones/{zone}/images`) and the snapshot
listing (`/instance/v1/zones/{zone}/snapshots`) that create-image's `root_volume` is chosen from.

Page-based listing with the total only in `X-Total-Count` and navigation in `Link`, and the
instance API's legacy error bodies (`invalid_request_error` with `fields`, `unknown_resource`),
which differ from the newer Scaleway APIs: clients that handle only one style break here first.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator, http_error, is_uuid

ZONES = (
    "fr-par-1",
    "fr-par-2",
    "fr-par-3",
    "nl-ams-1",
    "nl-ams-2",
    "nl-ams-3",
    "pl-waw-1",
    "pl-waw-2",
    "pl-waw-3",
    "it-mil-1",
)
ARCHES = ("x86_64", "arm", "arm64")
DEFAULT_PER_PAGE, MAX_PER_PAGE = 50, 100

SCALEWAY_ORGANIZATION = "51b656e3-4865-41e8-adbc-0c45bdd780db"  # owns the public images upstream
SANDBOX_ORGANIZATION = "5a4db0c5-0000-4000-8000-000000000001"  # the sandbox key's organization...
SANDBOX_PROJECT = SANDBOX_ORGANIZATION  # ...whose default project shares its id, as upstream
SANDBOX_PROJECT_2 = "5a4db0c5-0000-4000-8000-000000000002"
PROJECTS = (SANDBOX_PROJECT, SANDBOX_PROJECT_2)

# Snapshots usable as root_volume / extra_volumes (all in SANDBOX_PROJECT); the first and the last back
# the private images' root volumes. More are seeded per zone (SNAPSHOTS_PER_ZONE), nightly backups.
SNAPSHOT_FR_PAR_1 = "3c0f5b2a-1d4e-4f60-8a7b-5a4db0c50001"
SNAPSHOT_FR_PAR_1_DATA = "3c0f5b2a-1d4e-4f60-8a7b-5a4db0c50002"
SNAPSHOT_NL_AMS_1 = "3c0f5b2a-1d4e-4f60-8a7b-5a4db0c50003"
SNAPSHOTS_PER_ZONE = {"fr-par-1": 30, "nl-ams-1": 4, "pl-waw-1": 2}  # the three above included; others: none
# (id, zone, name, name of the server volume it was taken of, GB, tags): the snapshots images were made from.
MadeSnapshot = tuple[str, str, str, str, int, list[str]]
_MADE_SNAPSHOTS: tuple[MadeSnapshot, ...] = (
    (SNAPSHOT_FR_PAR_1, "fr-par-1", "app-root-snapshot", "app-1-root", 20, ["golden"]),
    (SNAPSHOT_FR_PAR_1_DATA, "fr-par-1", "app-data-snapshot", "app-1-data", 50, []),
    (SNAPSHOT_NL_AMS_1, "nl-ams-1", "edge-root-snapshot", "edge-1-root", 10, ["golden"]),
)
# (name of the server volume snapshotted nightly, project, GB, volume type, tags), taken in turn per zone.
BackedUpVolume = tuple[str, str, int, str, list[str]]
_BACKED_UP_VOLUMES: tuple[BackedUpVolume, ...] = (
    ("web-1-root", SANDBOX_PROJECT, 20, "l_ssd", ["nightly", "web"]),
    ("web-2-root", SANDBOX_PROJECT, 20, "l_ssd", ["nightly", "web"]),
    ("db-1-data", SANDBOX_PROJECT, 100, "b_ssd", ["nightly", "db", "prod"]),
    ("ci-runner-root", SANDBOX_PROJECT_2, 40, "l_ssd", ["ci"]),
)

# Private images in SANDBOX_PROJECT.
IMAGE_PRIVATE = "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50101"  # fr-par-1, deletable
IMAGE_IN_USE = "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50102"  # fr-par-1, used by a server: DELETE -> 409
IMAGE_PRIVATE_ARM = "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50103"  # fr-par-1, arm64, project 2
IMAGE_PRIVATE_AMS = "9e6a1f40-7c2d-4b8e-a1f3-5a4db0c50104"  # nl-ams-1
SERVER_USING_IMAGE = "0b7c2e91-4f3a-4d6b-9c8e-5a4db0c50201"
# (id, zone, name, arch, project, tags, the snapshot its root volume is)
PrivateImage = tuple[str, str, str, str, str, list[str], str]
_PRIVATE_IMAGES: tuple[PrivateImage, ...] = (
    (IMAGE_PRIVATE, "fr-par-1", "app-golden-2025-04", "x86_64", SANDBOX_PROJECT, ["golden", "app"], SNAPSHOT_FR_PAR_1),
    (IMAGE_IN_USE, "fr-par-1", "app-golden-2025-03", "x86_64", SANDBOX_PROJECT, ["golden", "app", "prod"],
     SNAPSHOT_FR_PAR_1),
    (IMAGE_PRIVATE_ARM, "fr-par-1", "ci-runner-arm", "arm64", SANDBOX_PROJECT_2, ["ci"], SNAPSHOT_FR_PAR_1),
    (IMAGE_PRIVATE_AMS, "nl-ams-1", "edge-proxy", "x86_64", SANDBOX_PROJECT, ["edge"], SNAPSHOT_NL_AMS_1),
)  # fmt: skip

# The team key's organization (the sandbox's `team` account): its own project, snapshots and private images;
# the public images are Scaleway's, the same for every key.
TEAM_ORGANIZATION = "7e4a0c5b-0000-4000-8000-000000000001"
TEAM_PROJECT = TEAM_ORGANIZATION
TEAM_SNAPSHOT_FR_PAR_1 = "4d1a6c3b-2e5f-4071-9b8c-7e4a0c5b0001"
TEAM_SNAPSHOT_FR_PAR_2 = "4d1a6c3b-2e5f-4071-9b8c-7e4a0c5b0002"
TEAM_IMAGE_PRIVATE = "af7b2051-8d3e-4c9f-b204-7e4a0c5b0101"  # fr-par-1, deletable
TEAM_IMAGE_PRIVATE_PAR_2 = "af7b2051-8d3e-4c9f-b204-7e4a0c5b0102"  # fr-par-2
TEAM_SNAPSHOTS_PER_ZONE = {"fr-par-1": 6, "fr-par-2": 3}
_TEAM_MADE_SNAPSHOTS: tuple[MadeSnapshot, ...] = (
    (TEAM_SNAPSHOT_FR_PAR_1, "fr-par-1", "billing-root-snapshot", "billing-api-1-root", 20, ["golden"]),
    (TEAM_SNAPSHOT_FR_PAR_2, "fr-par-2", "reports-root-snapshot", "reports-1-root", 30, ["golden"]),
)
_TEAM_BACKED_UP_VOLUMES: tuple[BackedUpVolume, ...] = (
    ("billing-api-1-root", TEAM_PROJECT, 20, "l_ssd", ["nightly", "billing"]),
    ("billing-db-1-data", TEAM_PROJECT, 200, "b_ssd", ["nightly", "billing", "db"]),
)
_TEAM_PRIVATE_IMAGES: tuple[PrivateImage, ...] = (
    (TEAM_IMAGE_PRIVATE, "fr-par-1", "billing-api-2025-05", "x86_64", TEAM_PROJECT, ["golden", "billing"],
     TEAM_SNAPSHOT_FR_PAR_1),
    (TEAM_IMAGE_PRIVATE_PAR_2, "fr-par-2", "reports-worker", "x86_64", TEAM_PROJECT, ["reports"],
     TEAM_SNAPSHOT_FR_PAR_2),
)  # fmt: skip

PUBLIC_IMAGES_PER_ZONE = {"fr-par-1": 60, "fr-par-2": 20, "nl-ams-1": 20, "pl-waw-1": 10}  # others: 2
_DISTRIBUTIONS = (
    "Ubuntu 24.04 Noble Numbat",
    "Ubuntu 22.04 Jammy Jellyfish",
    "Debian 12 Bookworm",
    "Debian 11 Bullseye",
    "Rocky Linux 9",
    "AlmaLinux 9",
    "Fedora 41",
    "CentOS Stream 9",
    "Docker on Ubuntu 24.04",
    "GPU OS 12",
)
_NAMESPACE = uuid.UUID("5a4db0c5-5ca1-4e00-8000-000000000000")
_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_GB = 1_000_000_000

DENIED = {"message": "authentication is denied", "method": "api_key", "type": "denied_authentication"}
WRITABLE = frozenset({"name", "arch", "extra_volumes", "tags", "public"})
READ_ONLY = frozenset({"creation_date", "modification_date", "default_bootscript", "from_server", "state", "zone"})


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class ApiError(Exception):
    """Answered as `body` with `status`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def validation_error(fields: dict[str, list[str]]) -> ApiError:
    return ApiError(400, {"type": "invalid_request_error", "message": "Validation Error", "fields": fields})


def not_found(resource_id: str, resource: str = "") -> ApiError:
    prefix = f"{resource} " if resource else ""
    return ApiError(404, {"type": "unknown_resource", "message": f'{prefix}"{resource_id}" not found'})


def _forbidden() -> ApiError:
    return ApiError(
        403,
        {
            "type": "permissions_denied",
            "message": "insufficient permissions",
            "details": [{"resource": "instance_image", "action": "write"}],
        },
    )


# --- pure pieces: list parameters, filtering, pagination ------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    organization: str | None = None
    project: str | None = None
    name: str | None = None
    public: bool | None = None
    arch: str | None = None
    tags: tuple[str, ...] = ()
    base_volume_id: str | None = None


IMAGE_FILTERS = frozenset({"page", "per_page", "organization", "project", "name", "public", "arch", "tags"})
SNAPSHOT_FILTERS = frozenset({"page", "per_page", "organization", "project", "name", "base_volume_id", "tags"})


def parse_list_query(pairs: Sequence[tuple[str, str]], allowed: frozenset[str] = IMAGE_FILTERS) -> ListQuery:
    """Validate the list query string; all problems are reported at once, per field.

    `allowed` is what the listed collection takes: anything else is an extra key, as upstream.
    """
    values = dict(pairs)
    errors: dict[str, list[str]] = {}
    parsed: dict[str, Any] = {}
    for name, value in values.items():
        if name not in allowed:
            errors[name] = ["extra keys not allowed"]
        elif name in ("page", "per_page"):
            if not value.isdigit():
                errors[name] = ["expected int"]
            elif int(value) < 1:
                errors[name] = ["value must be at least 1"]
            elif name == "per_page" and int(value) > MAX_PER_PAGE:
                errors[name] = [f"value must be at most {MAX_PER_PAGE}"]
            else:
                parsed[name] = int(value)
        elif name == "public":
            if value not in ("true", "false"):
                errors[name] = ["expected boolean"]
            else:
                parsed[name] = value == "true"
        elif name in ("organization", "project", "base_volume_id"):
            if not is_uuid(value):
                errors[name] = [f"{value} is not a valid UUID."]
            else:
                parsed[name] = value
        elif name == "arch":
            if value not in ARCHES:
                errors[name] = [f"value must be one of {list(ARCHES)}"]
            else:
                parsed[name] = value
        elif name == "tags":
            parsed[name] = tuple(t for t in value.split(",") if t)
        else:  # name
            parsed[name] = value
    if errors:
        raise validation_error(errors)
    return ListQuery(**parsed)


def matches(item: dict[str, Any], query: ListQuery) -> bool:
    """Whether an image or snapshot passes the filters: `name` is a case-insensitive substring, `tags`
    must all be present (a filter the collection does not take is refused by parse_list_query)."""
    return (
        (query.organization is None or item["organization"] == query.organization)
        and (query.project is None or item["project"] == query.project)
        and (query.name is None or query.name.lower() in item["name"].lower())
        and (query.public is None or item["public"] == query.public)
        and (query.arch is None or item["arch"] == query.arch)
        and (query.base_volume_id is None or (item.get("base_volume") or {}).get("id") == query.base_volume_id)
        and all(tag in item["tags"] for tag in query.tags)
    )


def link_header(path: str, pairs: Sequence[tuple[str, str]], page: int, per_page: int, total: int) -> str:
    """RFC 8288 `Link` with first/previous/next/last; other query parameters are carried over."""
    last = max(1, math.ceil(total / per_page))
    rest = [(k, v) for k, v in pairs if k not in ("page", "per_page")]
    rels = [("first", 1)]
    if page > 1:
        rels.append(("previous", min(page - 1, last)))
    if page < last:
        rels.append(("next", page + 1))
    rels.append(("last", last))
    return ",".join(
        f'<{path}?{urlencode([("page", n), ("per_page", per_page), *rest])}>; rel="{rel}"' for rel, n in rels
    )


# --- body validation (voluptuous-style messages, as the instance API answers) ----------------------


def _check_body(body: Any, allowed: frozenset[str], errors: dict[str, list[str]]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation_error({"body": ["expected a JSON object"]})
    for key in sorted(set(body) - allowed):
        errors[key] = ["extra keys not allowed"]
    return body


def _check_fields(body: dict[str, Any], errors: dict[str, list[str]], snapshot_ok: Callable[[str], bool]) -> None:
    """Type-check the writable image fields present in `body`, recording problems in `errors`."""
    if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
        errors["name"] = ["expected a non-empty str"]
    if "arch" in body and body["arch"] not in ARCHES:
        errors["arch"] = [f"value must be one of {list(ARCHES)}"]
    if "public" in body and not isinstance(body["public"], bool):
        errors["public"] = ["expected bool"]
    if "tags" in body and not (isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])):
        errors["tags"] = ["expected a list of str"]
    volumes = body.get("extra_volumes")
    if volumes is None:
        return
    if not isinstance(volumes, dict):
        errors["extra_volumes"] = ["expected dict"]
        return
    for index, volume in volumes.items():
        where = f"extra_volumes.{index}"
        if not (index.isdigit() and 1 <= int(index) <= 14):
            errors[where] = ["volume index must be 1 to 14"]
        elif not isinstance(volume, dict) or "id" not in volume:
            errors[f"{where}.id"] = ["required key not provided"]
        elif not is_uuid(volume["id"]):
            errors[f"{where}.id"] = [f"{volume['id']} is not a valid UUID."]
        elif not snapshot_ok(volume["id"]):
            raise not_found(volume["id"], "Snapshot")


# --- listing ---------------------------------------------------------------------------------------


def _page(request: Request, key: str, items: Sequence[dict[str, Any]], allowed: frozenset[str]) -> Response:
    """One page of `items` that pass the query's filters as {key: [...]}: the total only in X-Total-Count,
    the way to other pages only in Link, as every instance API listing answers."""
    pairs = parse_qsl(request.url.query, keep_blank_values=True)
    query = parse_list_query(pairs, allowed)
    selected = [item for item in items if matches(item, query)]
    start = (query.page - 1) * query.per_page
    headers = {
        "X-Total-Count": str(len(selected)),
        "Link": link_header(request.url.path, pairs, query.page, query.per_page, len(selected)),
    }
    return JSONResponse({key: selected[start : start + query.per_page]}, headers=headers)


# --- the simulator ---------------------------------------------------------------------------------


class ScalewaySimulator(Simulator):
    """Stand-in for `https://api.scaleway.com` (Instance images, and snapshots to list).

    Test helpers: `rate_limit_next(retry_after)`, `fail_next(status, body)`; state in `images` and
    `snapshots` (id -> public JSON) and `images_in_use` (image id -> server id).
    """

    provider: ClassVar[str] = "scaleway"
    # What the key's organization owns; a subclass seeds another organization (TeamScalewaySimulator).
    organization: ClassVar[str] = SANDBOX_ORGANIZATION
    projects: ClassVar[tuple[str, ...]] = PROJECTS
    made_snapshots: ClassVar[tuple[MadeSnapshot, ...]] = _MADE_SNAPSHOTS
    backed_up_volumes: ClassVar[tuple[BackedUpVolume, ...]] = _BACKED_UP_VOLUMES
    snapshots_per_zone: ClassVar[dict[str, int]] = SNAPSHOTS_PER_ZONE
    private_images: ClassVar[tuple[PrivateImage, ...]] = _PRIVATE_IMAGES
    servers_using_images: ClassVar[dict[str, str]] = {IMAGE_IN_USE: SERVER_USING_IMAGE}

    def __init__(self, *, secret_key: str = credentials.SCW_SECRET_KEY) -> None:
        self.secret_key = secret_key  # the only X-Auth-Token accepted: another is 401, as upstream
        self.images: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.images_in_use: dict[str, str] = dict(self.servers_using_images)
        self._seed()
        super().__init__()

    def rate_limit_next(self, retry_after: int = 1) -> None:
        self.fail_next(429, {"message": "Too many requests", "type": "too_many_requests"}, retry_after)

    # -- seed --

    def _seed(self) -> None:
        for zone_index, zone in enumerate(ZONES):
            count = PUBLIC_IMAGES_PER_ZONE.get(zone, 2)
            catalogue = [
                (build, name, arch) for build in range(3) for name in _DISTRIBUTIONS for arch in ("x86_64", "arm64")
            ]
            for n, (build, name, arch) in enumerate(catalogue[:count]):
                key = f"{zone}/{name}/{arch}/{build}"
                created = _EPOCH + timedelta(days=30 * build + zone_index, minutes=7 * n)
                self._add_image(
                    image_id=str(uuid.uuid5(_NAMESPACE, "image/" + key)),
                    zone=zone,
                    name=name,
                    arch=arch,
                    owner=SCALEWAY_ORGANIZATION,
                    project=SCALEWAY_ORGANIZATION,
                    public=True,
                    root={
                        "id": str(uuid.uuid5(_NAMESPACE, "root/" + key)),
                        "name": "",
                        "size": 0,
                        "volume_type": "sbs_snapshot",
                    },
                    created=created,
                )
        self._seed_snapshots()
        self._seed_private_images()

    def _seed_private_images(self) -> None:
        """The organization's own images, each made from one of its snapshots."""
        for n, (image_id, zone, name, arch, project, tags, snapshot) in enumerate(self.private_images):
            self._add_image(
                image_id=image_id,
                zone=zone,
                name=name,
                arch=arch,
                owner=self.organization,
                project=project,
                public=False,
                root=self._volume(snapshot),
                created=_EPOCH + timedelta(days=90 + n),
                tags=tags,
            )

    def _seed_snapshots(self) -> None:
        """The snapshots the private images were made from, then nightly backups of a few server volumes:
        all the key's organization's (the public images' snapshots are Scaleway's, so never listed)."""
        for snapshot_id, zone, name, volume, gigabytes, tags in self.made_snapshots:
            self._add_snapshot(
                snapshot_id=snapshot_id,
                zone=zone,
                name=name,
                volume=volume,
                project=self.projects[0],
                size=gigabytes * _GB,
                volume_type="l_ssd",
                tags=tags,
                created=_EPOCH + timedelta(days=80),
            )
        for zone_index, zone in enumerate(ZONES):
            already = sum(1 for snapshot in self.snapshots.values() if snapshot["zone"] == zone)
            for n in range(self.snapshots_per_zone.get(zone, 0) - already):
                volume, project, gigabytes, volume_type, tags = self.backed_up_volumes[n % len(self.backed_up_volumes)]
                night, turn = divmod(n, len(self.backed_up_volumes))
                created = _EPOCH + timedelta(days=60 + night, hours=17 + zone_index, minutes=5 * turn)
                name = f"{volume}-{created:%Y-%m-%d}"
                self._add_snapshot(
                    snapshot_id=str(uuid.uuid5(_NAMESPACE, f"snapshot/{zone}/{name}")),
                    zone=zone,
                    name=name,
                    volume=volume,
                    project=project,
                    size=gigabytes * _GB,
                    volume_type=volume_type,
                    tags=tags,
                    created=created,
                )

    def _add_snapshot(
        self,
        *,
        snapshot_id: str,
        zone: str,
        name: str,
        volume: str,
        project: str,
        size: int,
        volume_type: str,
        tags: list[str],
        created: datetime,
    ) -> None:
        """A snapshot of the server volume named `volume`, as the instance API lists it."""
        self.snapshots[snapshot_id] = {
            "id": snapshot_id,
            "name": name,
            "organization": self.organization,
            "project": project,
            "tags": list(tags),
            "volume_type": volume_type,
            "size": size,
            "state": "available",
            "base_volume": {"id": str(uuid.uuid5(_NAMESPACE, f"volume/{zone}/{volume}")), "name": volume},
            "creation_date": _timestamp(created),
            "modification_date": _timestamp(created),
            "error_reason": None,
            "zone": zone,
        }

    def _add_image(
        self,
        *,
        image_id: str,
        zone: str,
        name: str,
        arch: str,
        owner: str,
        project: str,
        public: bool,
        root: dict[str, Any],
        created: datetime,
        tags: list[str] | None = None,
        extra_volumes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        image = {
            "id": image_id,
            "name": name,
            "arch": arch,
            "creation_date": _timestamp(created),
            "modification_date": _timestamp(created),
            "default_bootscript": None,
            "extra_volumes": extra_volumes or {},
            "from_server": "",
            "organization": owner,
            "project": project,
            "public": public,
            "root_volume": root,
            "state": "available",
            "tags": list(tags or []),
            "zone": zone,
        }
        self.images[image_id] = image
        return image

    def _volume(self, snapshot_id: str) -> dict[str, Any]:
        snapshot = self.snapshots[snapshot_id]
        return {k: snapshot[k] for k in ("id", "name", "size", "volume_type")}

    # -- app --

    def build_app(self) -> Starlette:
        base = "/instance/v1/zones/{zone}/images"
        routes = [
            Route(base, self._endpoint(self._collection), methods=["GET", "POST"]),
            Route(base + "/{image_id}", self._endpoint(self._item), methods=["GET", "PATCH", "PUT", "DELETE"]),
            Route("/instance/v1/zones/{zone}/snapshots", self._endpoint(self._snapshot_list), methods=["GET"]),
        ]

        return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    def _endpoint(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            # Upstream checks the zone before the token (seen on a token-less request).
            if request.path_params["zone"] not in ZONES:
                return JSONResponse({"message": "Unknown zone in path"}, status_code=400)
            token = request.headers.get("x-auth-token")
            if token != self.secret_key:
                reason = "not_found" if is_uuid(token) else "invalid_argument"
                return JSONResponse({**DENIED, "reason": reason}, status_code=401)
            try:
                return await handler(request)
            except ApiError as exc:
                return JSONResponse(exc.body, status_code=exc.status)

        return endpoint

    async def _body(self, request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except ValueError:
            raise validation_error({"body": ["invalid JSON"]}) from None

    def _visible(self, zone: str) -> list[dict[str, Any]]:
        """Public images plus the key's organization's, newest first."""
        images = [
            i
            for i in self.images.values()
            if i["zone"] == zone and (i["public"] or i["organization"] == self.organization)
        ]
        return sorted(images, key=lambda i: (i["creation_date"], i["id"]), reverse=True)

    def _snapshot_in(self, zone: str) -> Callable[[str], bool]:
        return lambda snapshot_id: self.snapshots.get(snapshot_id, {}).get("zone") == zone

    def _own_snapshots(self, zone: str) -> list[dict[str, Any]]:
        """The key's organization's snapshots in `zone`, newest first (ordered like the images)."""
        snapshots = [s for s in self.snapshots.values() if s["zone"] == zone and s["organization"] == self.organization]
        return sorted(snapshots, key=lambda s: (s["creation_date"], s["id"]), reverse=True)

    async def _collection(self, request: Request) -> Response:
        zone = request.path_params["zone"]
        if request.method == "POST":
            return await self._create(request, zone)
        return _page(request, "images", self._visible(zone), IMAGE_FILTERS)

    async def _snapshot_list(self, request: Request) -> Response:
        return _page(request, "snapshots", self._own_snapshots(request.path_params["zone"]), SNAPSHOT_FILTERS)

    async def _create(self, request: Request, zone: str) -> Response:
        errors: dict[str, list[str]] = {}
        allowed = WRITABLE | {"root_volume", "organization", "project"}
        body = _check_body(await self._body(request), allowed, errors)
        for required in ("name", "root_volume", "arch"):
            if required not in body:
                errors[required] = ["required key not provided"]
        if "root_volume" in body and not is_uuid(body["root_volume"]):
            errors["root_volume"] = [f"{body['root_volume']} is not a valid UUID."]
        owner_keys = [k for k in ("project", "organization") if k in body]
        if not owner_keys:
            errors["project"] = ["required key not provided"]
        elif len(owner_keys) == 2:
            errors["organization"] = ["two or more values in the same group of exclusion 'project'"]
        for key in owner_keys:
            if not is_uuid(body[key]):
                errors[key] = [f"{body[key]} is not a valid UUID."]
        _check_fields(body, errors, self._snapshot_in(zone))
        if errors:
            raise validation_error(errors)
        project = body.get("project") or body["organization"]
        if project not in self.projects:
            raise _forbidden()
        if not self._snapshot_in(zone)(body["root_volume"]):
            raise not_found(body["root_volume"], "Snapshot")
        now = datetime.now(UTC)
        image = self._add_image(
            image_id=str(uuid.uuid4()),
            zone=zone,
            name=body["name"],
            arch=body["arch"],
            owner=self.organization,
            project=project,
            public=body.get("public", False),
            root=self._volume(body["root_volume"]),
            created=now,
            tags=body.get("tags"),
            extra_volumes=self._extra_volumes(body.get("extra_volumes")),
        )
        return JSONResponse({"image": image}, status_code=201)

    def _extra_volumes(self, volumes: dict[str, Any] | None) -> dict[str, Any]:
        return {index: self._volume(v["id"]) for index, v in (volumes or {}).items()}

    def _find(self, request: Request) -> dict[str, Any]:
        image_id = request.path_params["image_id"]
        if not is_uuid(image_id):
            raise validation_error({"image_id": [f"{image_id} is not a valid UUID."]})
        image = next((i for i in self._visible(request.path_params["zone"]) if i["id"] == image_id), None)
        if image is None:
            raise not_found(image_id)
        return image

    async def _item(self, request: Request) -> Response:
        image = self._find(request)
        if request.method == "GET":
            return JSONResponse({"image": image})
        if image["organization"] != self.organization:
            raise _forbidden()
        if request.method == "DELETE":
            server = self.images_in_use.get(image["id"])
            if server:
                message = f"Image is in use by server {server}. You cannot delete it."
                raise ApiError(409, {"type": "conflict", "message": message})
            del self.images[image["id"]]
            return Response(status_code=204)
        body = await self._body(request)
        changes = self._patch(body, image) if request.method == "PATCH" else self._put(body, image)
        image.update(changes, modification_date=_timestamp(datetime.now(UTC)))
        return JSONResponse({"image": image})

    def _patch(self, body: Any, image: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        body = _check_body(body if body is not None else {}, WRITABLE, errors)
        _check_fields(body, errors, self._snapshot_in(image["zone"]))
        if errors:
            raise validation_error(errors)
        changes = {k: v for k, v in body.items() if k != "extra_volumes"}
        if "extra_volumes" in body:
            changes["extra_volumes"] = self._extra_volumes(body["extra_volumes"])
        return changes

    def _put(self, body: Any, image: dict[str, Any]) -> dict[str, Any]:
        """Full replacement: the whole image must be sent back; identity fields may not change.

        `id` travels in the path (the body may repeat it); unsent `tags` are reset to none.
        """
        errors: dict[str, list[str]] = {}
        identity = ("id", "root_volume", "organization", "project")
        body = _check_body(body, WRITABLE | READ_ONLY | frozenset(identity), errors)
        for required in ("name", "arch", "root_volume", "extra_volumes", "public", "project"):
            if required not in body and not (required == "project" and "organization" in body):
                errors[required] = ["required key not provided"]
        root = body.get("root_volume")
        if isinstance(root, dict):
            root = root.get("id")
        if "id" in body and body["id"] != image["id"]:
            errors["id"] = ["does not match the image in the path"]
        if "root_volume" in body and root != image["root_volume"]["id"]:
            errors["root_volume"] = ["the root volume of an image cannot be changed"]
        for key in ("organization", "project"):
            if key in body and body[key] != image[key]:
                errors[key] = [f"the {key} of an image cannot be changed"]
        _check_fields(body, errors, self._snapshot_in(image["zone"]))
        if errors:
            raise validation_error(errors)
        return {
            "name": body["name"],
            "arch": body["arch"],
            "public": body["public"],
            "tags": list(body.get("tags", [])),
            "extra_volumes": self._extra_volumes(body["extra_volumes"]),
        }

    def env(self, address: str) -> dict[str, str]:
        return {"SCW_API_URL": address, "SCW_SECRET_KEY": self.secret_key}


class TeamScalewaySimulator(ScalewaySimulator):
    """The sandbox's `team` account: another secret key, whose organization (TEAM_ORGANIZATION) has its own
    project, snapshots and private images; Scaleway's public images and the API's behaviour are the same."""

    organization: ClassVar[str] = TEAM_ORGANIZATION
    projects: ClassVar[tuple[str, ...]] = (TEAM_PROJECT,)
    made_snapshots: ClassVar[tuple[MadeSnapshot, ...]] = _TEAM_MADE_SNAPSHOTS
    backed_up_volumes: ClassVar[tuple[BackedUpVolume, ...]] = _TEAM_BACKED_UP_VOLUMES
    snapshots_per_zone: ClassVar[dict[str, int]] = TEAM_SNAPSHOTS_PER_ZONE
    private_images: ClassVar[tuple[PrivateImage, ...]] = _TEAM_PRIVATE_IMAGES
    servers_using_images: ClassVar[dict[str, str]] = {}

    def __init__(self, *, secret_key: str = credentials.TEAM_SCW_SECRET_KEY) -> None:
        super().__init__(secret_key=secret_key)
