"""Nirvana Labs operations simulator (`GET /v1/operations`, `GET /v1/operations/{id}`), with the
project listing (`GET /v1/projects`) an agent starts from to learn the `project_id` operations need.

Listing is cursor-paginated with opaque cursors that only make sense with the query they came
from (SDKs resend the same query plus `cursor`), so a client that drops `project_id` or a filter
while paging is told so instead of silently mixing result sets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator, http_error

KINDS = ("vm", "volume", "vpc", "firewall_rule", "nks_cluster", "nks_node_pool")
STATUSES = ("pending", "running", "done", "failed", "unknown")
TYPES = ("create", "update", "delete", "restart")
SORTS = {
    "created_at": ("created_at", False),
    "created_at:asc": ("created_at", False),
    "-created_at": ("created_at", True),
    "created_at:desc": ("created_at", True),
    "updated_at": ("updated_at", False),
    "updated_at:asc": ("updated_at", False),
    "-updated_at": ("updated_at", True),
    "updated_at:desc": ("updated_at", True),
}
DEFAULT_SORT = "-created_at"  # newest first
_FILTERS = ("kind", "status", "type", "resource_id", "created_at_min", "created_at_max")
PROJECT_SORTS = {**SORTS, "name": ("name", False), "name:asc": ("name", False), "name:desc": ("name", True)}
_PROJECT_FILTERS = ("name", "tags")
DEFAULT_LIMIT, MAX_LIMIT = 10, 100

PROJECT_MAIN = "b7f3e2a0-5d1c-4e8f-9a6b-0000000000a1"  # 36 seeded operations
PROJECT_OTHER = "b7f3e2a0-5d1c-4e8f-9a6b-0000000000a2"  # 24 seeded operations
SEED_COUNT = 60
_SEED_STATUSES = {60: "running", 59: "pending", 13: "failed", 37: "failed", 58: "running"}  # others: done
SeedProject = tuple[str, str, list[str], tuple[int, int]]
# The API key's projects, oldest first: (id, name, tags, (dedicated, flex) RPC nodes); only the first two have
# operations, and their cloud resource counts are derived from them (resource_counts).
SEED_PROJECTS: tuple[SeedProject, ...] = (
    (PROJECT_MAIN, "production", ["prod"], (0, 0)),
    (PROJECT_OTHER, "staging", ["staging"], (0, 0)),
    ("b7f3e2a0-5d1c-4e8f-9a6b-0000000000a3", "rpc-mainnet", ["prod", "blockchain"], (2, 3)),
    ("b7f3e2a0-5d1c-4e8f-9a6b-0000000000a4", "ci", ["ci"], (0, 0)),
    ("b7f3e2a0-5d1c-4e8f-9a6b-0000000000a5", "sandbox-alice", [], (0, 0)),
    ("b7f3e2a0-5d1c-4e8f-9a6b-0000000000a6", "sandbox-bob", [], (0, 1)),
    ("b7f3e2a0-5d1c-4e8f-9a6b-0000000000a7", "archive-2024", ["archive"], (0, 0)),
)
# The team key's (the sandbox's `team` account): other projects, and operations numbered 101..118, so that
# their ids and resources are none of the default key's.
TEAM_PROJECT_MAIN = "c8a4f3b1-6e2d-4f90-8b7c-0000000000b1"
TEAM_PROJECT_OTHER = "c8a4f3b1-6e2d-4f90-8b7c-0000000000b2"
TEAM_PROJECTS: tuple[SeedProject, ...] = (
    (TEAM_PROJECT_MAIN, "team-payments", ["team", "prod"], (0, 0)),
    (TEAM_PROJECT_OTHER, "team-analytics", ["team"], (0, 0)),
    ("c8a4f3b1-6e2d-4f90-8b7c-0000000000b3", "team-rpc", ["team", "blockchain"], (1, 2)),
)
TEAM_NUMBERS = range(101, 119)
_TEAM_STATUSES = {118: "running", 117: "pending", 107: "failed"}  # others: done
# Operation kind -> the project's resources.cloud counter it adds to (firewall rules are not counted).
_CLOUD_COUNTERS = {
    "nks_cluster": "nks_clusters",
    "nks_node_pool": "nks_node_pools",
    "vm": "vms",
    "volume": "volumes",
    "vpc": "vpcs",
}


def operation_id(n: int) -> str:
    """Seeded operations are numbered 1..60: `0b5e7a00-0000-4000-8000-0000000000NN`."""
    return f"0b5e7a00-0000-4000-8000-{n:012d}"


OPERATION_RUNNING = operation_id(60)  # PROJECT_MAIN's newest, running
OPERATION_PENDING = operation_id(59)  # PROJECT_OTHER's newest, pending
OPERATION_FAILED = operation_id(13)  # PROJECT_OTHER, failed
OPERATION_DONE = operation_id(1)  # PROJECT_MAIN's oldest, done

_EPOCH = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
_NAMESPACE = uuid.UUID("0b5e7a00-5ca1-4e00-8000-000000000000")
_CHANGES: dict[str, dict[str, dict[str, Any]]] = {
    "vm": {"cpu_config.vcpu": {"from": 2, "to": 4}, "memory_config.size": {"from": 4, "to": 8}},
    "volume": {"size": {"from": 100, "to": 250}},
    "vpc": {"name": {"from": "vpc-staging", "to": "vpc-prod"}},
    "firewall_rule": {"destination_ports": {"from": ["22"], "to": ["22", "443"]}},
    "nks_cluster": {"name": {"from": "cluster-a", "to": "cluster-b"}},
    "nks_node_pool": {"node_count": {"from": 3, "to": 5}},
}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_operations(
    numbers: Sequence[int] = range(1, SEED_COUNT + 1),
    projects: tuple[str, str] = (PROJECT_MAIN, PROJECT_OTHER),
    statuses: Mapping[int, str] = _SEED_STATUSES,
) -> list[dict[str, Any]]:
    """Deterministic operations numbered `numbers` (by default the 60 of the default key), oldest first,
    spread over two `projects` and every kind; other numbers give other ids and resources."""
    operations = []
    for n in numbers:
        kind = KINDS[n % len(KINDS)]
        op_type = TYPES[n % len(TYPES)]
        status = statuses.get(n, "done")
        created = _EPOCH + timedelta(minutes=37 * n)
        finished = status in ("done", "failed")
        changes: dict[str, Any] | None = None
        if op_type == "update":
            changes = {"changes": _CHANGES[kind]}
        elif op_type == "create":
            changes = {"changes": {"name": {"from": "", "to": f"{kind.replace('_', '-')}-{n}"}}}
        operations.append(
            {
                "id": operation_id(n),
                "created_at": _iso(created),
                "details": changes,
                "kind": kind,
                "project_id": projects[0] if n % 5 < 3 else projects[1],
                "resource_id": str(uuid.uuid5(_NAMESPACE, f"{kind}/{n // 3}")),
                "status": status,
                "type": op_type,
                "updated_at": _iso(created + timedelta(seconds=95 if finished else 5)),
            }
        )
    return operations


def resource_counts(operations: Sequence[dict[str, Any]], project_id: str) -> dict[str, Any]:
    """A project's `resources`, counted from its operations (resources acted on and not deleted), so
    the counts an agent reads in a project agree with what list-nirvana-operations shows for it."""
    mine = [op for op in operations if op["project_id"] == project_id]
    deleted = {op["resource_id"] for op in mine if op["type"] == "delete"}
    live: dict[str, set[str]] = {counter: set() for counter in _CLOUD_COUNTERS.values()}
    for op in mine:
        if op["kind"] in _CLOUD_COUNTERS and op["resource_id"] not in deleted:
            live[_CLOUD_COUNTERS[op["kind"]]].add(op["resource_id"])
    return {"connect_connections": 0, **{counter: len(ids) for counter, ids in live.items()}}


def seed_projects(
    operations: Sequence[dict[str, Any]], seeded: Sequence[SeedProject] = SEED_PROJECTS
) -> list[dict[str, Any]]:
    """The `seeded` projects, oldest first, all created before the first operation."""
    projects = []
    for n, (project_id, name, tags, (dedicated, flex)) in enumerate(seeded):
        created = _EPOCH - timedelta(days=70 - 9 * n, hours=n)
        projects.append(
            {
                "id": project_id,
                "created_at": _iso(created),
                "name": name,
                "resources": {
                    "blockchain": {"rpc_nodes_dedicated": dedicated, "rpc_nodes_flex": flex},
                    "cloud": resource_counts(operations, project_id),
                },
                "tags": list(tags),
                "updated_at": _iso(created + timedelta(days=2, minutes=13 * n)),
            }
        )
    return projects


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- pure pieces: query parsing and cursors ---------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    project_id: str | None  # None when listing projects
    limit: int
    cursor: str | None
    filters: tuple[tuple[str, str], ...]  # operations: kind, status, type, resource_id, created_at_min/max
    sort: str
    collection: str = "operations"  # or "projects": a cursor from one never pages the other

    def fingerprint(self) -> str:
        """What a cursor is bound to: everything but `limit` and `cursor` itself."""
        material = json.dumps([self.collection, self.project_id, self.filters, self.sort])
        return hashlib.sha256(material.encode()).hexdigest()[:12]


def _timestamp(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an RFC 3339 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_common(params: dict[str, str], allowed: set[str], sorts: dict[str, Any]) -> tuple[int, str]:
    """The checks every listing shares, so both answer a bad query alike; returns (limit, sort)."""
    unknown = sorted(set(params) - {"cursor", "limit", "sort", *allowed})
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")
    limit_text = params.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer between 1 and {MAX_LIMIT}")
    sort = params.get("sort", DEFAULT_SORT)
    if sort not in sorts:
        raise BadRequest(f"sort must be one of {', '.join(sorts)}")
    return int(limit_text), sort


def parse_list_query(pairs: Sequence[tuple[str, str]]) -> ListQuery:
    params = dict(pairs)
    limit, sort = _check_common(params, {"project_id", *_FILTERS}, SORTS)
    if not params.get("project_id"):
        raise BadRequest("project_id is required")
    for name, choices in (("kind", KINDS), ("status", STATUSES), ("type", TYPES)):
        if name in params and params[name] not in choices:
            raise BadRequest(f"{name} must be one of {', '.join(choices)}")
    for name in ("created_at_min", "created_at_max"):
        if name in params:
            _timestamp(params[name], name)
    return ListQuery(
        project_id=params["project_id"],
        limit=limit,
        cursor=params.get("cursor") or None,
        filters=tuple(sorted((k, v) for k, v in params.items() if k in _FILTERS)),
        sort=sort,
    )


def parse_project_query(pairs: Sequence[tuple[str, str]]) -> ListQuery:
    """`GET /v1/projects`: cursor, limit, sort (also by name), name (a substring), tags (comma-separated, all)."""
    params = dict(pairs)
    limit, sort = _check_common(params, set(_PROJECT_FILTERS), PROJECT_SORTS)
    return ListQuery(
        project_id=None,
        limit=limit,
        cursor=params.get("cursor") or None,
        filters=tuple(sorted((k, v) for k, v in params.items() if k in _PROJECT_FILTERS and v)),
        sort=sort,
        collection="projects",
    )


def encode_cursor(query: ListQuery, offset: int) -> str:
    raw = json.dumps({"o": offset, "f": query.fingerprint()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: ListQuery) -> int:
    """Offset encoded in `query.cursor` (0 without one); BadRequest if forged or from another query."""
    if query.cursor is None:
        return 0
    try:
        padded = query.cursor + "=" * (-len(query.cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, fingerprint = data["o"], data["f"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise BadRequest("invalid cursor") from None
    if not isinstance(offset, int) or offset < 0 or fingerprint != query.fingerprint():
        raise BadRequest("invalid cursor")
    return offset


def select(operations: Sequence[dict[str, Any]], query: ListQuery) -> list[dict[str, Any]]:
    """The operations the query asks for, in the requested order."""
    filters = dict(query.filters)
    low = _timestamp(filters["created_at_min"], "created_at_min") if "created_at_min" in filters else None
    high = _timestamp(filters["created_at_max"], "created_at_max") if "created_at_max" in filters else None
    chosen = []
    for op in operations:
        created = _timestamp(op["created_at"], "created_at")
        if (
            op["project_id"] == query.project_id
            and all(op[k] == v for k, v in filters.items() if k in ("kind", "status", "type", "resource_id"))
            and (low is None or created >= low)
            and (high is None or created <= high)
        ):
            chosen.append(op)
    key, descending = SORTS[query.sort]
    return sorted(chosen, key=lambda op: (op[key], op["id"]), reverse=descending)


def select_projects(projects: Sequence[dict[str, Any]], query: ListQuery) -> list[dict[str, Any]]:
    """The projects whose name holds `name` (any case) and that carry every tag in `tags`, in order."""
    filters = dict(query.filters)
    name = filters.get("name", "").lower()
    tags = [tag for tag in filters.get("tags", "").split(",") if tag]
    chosen = [p for p in projects if name in p["name"].lower() and all(tag in p["tags"] for tag in tags)]
    key, descending = PROJECT_SORTS[query.sort]
    return sorted(chosen, key=lambda p: (p[key], p["id"]), reverse=descending)


def paginate(operations: Sequence[dict[str, Any]], query: ListQuery) -> dict[str, Any]:
    return page(select(operations, query), query)


def page(selected: Sequence[dict[str, Any]], query: ListQuery) -> dict[str, Any]:
    """The page the query's cursor points at, as every Nirvana listing answers: {items, pagination}."""
    offset = decode_cursor(query)
    end = offset + query.limit
    return {
        "items": selected[offset:end],
        "pagination": {
            "next_cursor": encode_cursor(query, end) if end < len(selected) else None,
            "previous_cursor": encode_cursor(query, max(0, offset - query.limit)) if offset > 0 else None,
            "total_count": len(selected),
        },
    }


# --- the simulator ---------------------------------------------------------------------------------


class NirvanaSimulator(Simulator):
    """Stand-in for `https://api.nirvanalabs.io` (operations, and the projects they belong to).

    Test helpers: `rate_limit_next(retry_after)`, `fail_next(status, body, retry_after)`,
    `add_operation(**fields)`, `set_status(id, status)`; state in `operations` and `projects` (id -> JSON).
    """

    provider: ClassVar[str] = "nirvana"
    main_project: ClassVar[str] = PROJECT_MAIN  # where add_operation puts an operation by default

    def __init__(self, *, api_key: str = credentials.NIRVANA_LABS_API_KEY) -> None:
        self.api_key = api_key  # the only bearer token accepted: another key is 401, as upstream
        self.operations: dict[str, dict[str, Any]] = {op["id"]: op for op in self._seed_operations()}
        self.projects: dict[str, dict[str, Any]] = {
            p["id"]: p for p in self._seed_projects(list(self.operations.values()))
        }
        super().__init__()

    def _seed_operations(self) -> list[dict[str, Any]]:
        return seed_operations()

    def _seed_projects(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return seed_projects(operations)

    def rate_limit_next(self, retry_after: int = 1) -> None:
        self.fail_next(429, {"message": "Too many requests"}, retry_after)

    def add_operation(self, **fields: Any) -> dict[str, Any]:
        """Add an operation (defaults: a pending vm create in `main_project`, created now)."""
        now = _iso(datetime.now(UTC))
        op = {
            "id": str(uuid.uuid4()),
            "created_at": now,
            "details": None,
            "kind": "vm",
            "project_id": self.main_project,
            "resource_id": str(uuid.uuid4()),
            "status": "pending",
            "type": "create",
            "updated_at": now,
            **fields,
        }
        self.operations[op["id"]] = op
        return op

    def set_status(self, op_id: str, status: str) -> None:
        assert status in STATUSES, status
        self.operations[op_id].update(status=status, updated_at=_iso(datetime.now(UTC)))

    def build_app(self) -> Starlette:
        routes = [
            Route("/v1/operations", self._endpoint(self._list), methods=["GET"]),
            Route("/v1/operations/{operation_id}", self._endpoint(self._get), methods=["GET"]),
            Route("/v1/projects", self._endpoint(self._list_projects), methods=["GET"]),
        ]

        return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    def _endpoint(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return JSONResponse({"message": "missing bearer token"}, status_code=401)
            if token != self.api_key:
                return JSONResponse({"message": "invalid API key"}, status_code=401)
            try:
                return await handler(request)
            except BadRequest as exc:
                return JSONResponse({"message": exc.message}, status_code=400)

        return endpoint

    async def _list(self, request: Request) -> Response:
        query = parse_list_query(parse_qsl(request.url.query, keep_blank_values=True))
        return JSONResponse(paginate(list(self.operations.values()), query))

    async def _list_projects(self, request: Request) -> Response:
        query = parse_project_query(parse_qsl(request.url.query, keep_blank_values=True))
        return JSONResponse(page(select_projects(list(self.projects.values()), query), query))

    async def _get(self, request: Request) -> Response:
        op = self.operations.get(request.path_params["operation_id"])
        if op is None:
            return JSONResponse({"message": "operation not found"}, status_code=404)
        return JSONResponse(op)

    def env(self, address: str) -> dict[str, str]:
        return {"NIRVANA_LABS_BASE_URL": address, "NIRVANA_LABS_API_KEY": self.api_key}


class TeamNirvanaSimulator(NirvanaSimulator):
    """The sandbox's `team` account: another API key, whose projects (TEAM_PROJECTS) and operations (numbered
    TEAM_NUMBERS) are none of the default key's; the API behaves the same."""

    main_project: ClassVar[str] = TEAM_PROJECT_MAIN

    def __init__(self, *, api_key: str = credentials.TEAM_NIRVANA_LABS_API_KEY) -> None:
        super().__init__(api_key=api_key)

    def _seed_operations(self) -> list[dict[str, Any]]:
        return seed_operations(TEAM_NUMBERS, (TEAM_PROJECT_MAIN, TEAM_PROJECT_OTHER), _TEAM_STATUSES)

    def _seed_projects(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return seed_projects(operations, TEAM_PROJECTS)
