"""Exoscale v2 compute-instance simulator, with the catalogue an agent reads its ids from (instance
types, templates, SSH keys, security groups, snapshots), seeded to match the seeded instances.

Every request must carry a valid EXO2-HMAC-SHA256 signature over the path *as sent* (literal
`:action` colon included), so a client that re-encodes the URL after signing fails here the way
it would against the real API. Mutations answer with an operation that turns `success` only
after `operation_delay` seconds; the instance changes state at that moment, not before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_cloudops.sandbox import credentials
from mcp_cloudops.sandbox.base import Simulator, http_error, is_uuid

ZONES = frozenset({"at-vie-1", "at-vie-2", "bg-sof-1", "ch-dk-2", "ch-gva-2", "de-fra-1", "de-muc-1", "hr-zag-1"})
DEFAULT_ZONE = "ch-gva-2"
AUTH_SCHEME = "EXO2-HMAC-SHA256"

# 403 bodies are {"message": <one of these>}. Only the bad-signature text is attested (Exoscale's
# own python client tests use it); the others are our wording.
MSG_MISSING_AUTH = "Missing or unsupported Authorization header (expected EXO2-HMAC-SHA256)"
MSG_MALFORMED_AUTH = "Malformed Authorization header"  # followed by ": <detail>"
MSG_UNKNOWN_KEY = "Invalid API key"
MSG_EXPIRED = "Request signature expired"
MSG_BAD_SIGNATURE = "Invalid request signature"


# --- request signing: pure functions, unit-testable against the published vectors ----------------


class SignatureError(Exception):
    """The request is not authenticated; `message` is the 403 body text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Exo2Authorization:
    credential: str
    signed_query_args: tuple[str, ...]
    expires: int
    signature: str


def parse_authorization(value: str | None) -> Exo2Authorization:
    """Parse `EXO2-HMAC-SHA256 credential=K[,signed-query-args=a;b],expires=T,signature=S`."""
    if not value:
        raise SignatureError(MSG_MISSING_AUTH)
    scheme, _, params = value.strip().partition(" ")
    if scheme != AUTH_SCHEME:
        raise SignatureError(MSG_MISSING_AUTH)
    fields: dict[str, str] = {}
    for element in params.split(","):
        name, sep, val = element.strip().partition("=")  # base64 padding keeps its '='
        if not sep or name not in ("credential", "signed-query-args", "expires", "signature"):
            raise SignatureError(f"{MSG_MALFORMED_AUTH}: unexpected element {element.strip()!r}")
        fields[name] = val
    for required in ("credential", "expires", "signature"):
        if not fields.get(required):
            raise SignatureError(f"{MSG_MALFORMED_AUTH}: missing {required}")
    try:
        expires = int(fields["expires"])
    except ValueError:
        raise SignatureError(f"{MSG_MALFORMED_AUTH}: expires is not a unix timestamp") from None
    signed = fields.get("signed-query-args", "")
    return Exo2Authorization(
        credential=fields["credential"],
        signed_query_args=tuple(signed.split(";")) if signed else (),
        expires=expires,
        signature=fields["signature"],
    )


def signed_query_values(raw_query: str, names: Sequence[str]) -> list[str]:
    """URL-decoded values of the signed args, in the order the header lists them.

    A name with several values contributes nothing: the reference clients never sign those
    values (egoscale omits the name, requests-exoscale-auth lists it but skips the value).
    """
    params = parse_qs(raw_query, keep_blank_values=True)
    return [params[name][0] if len(params.get(name, [])) == 1 else "" for name in names]


def signing_message(method: str, path: str, body: bytes, query_values: Sequence[str], expires: int) -> bytes:
    """The five `\\n`-joined segments: request line, body, query values, headers (none), expires."""
    return b"\n".join(
        [
            f"{method.upper()} {path}".encode(),
            body,
            "".join(query_values).encode(),
            b"",
            str(expires).encode(),
        ]
    )


def sign(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify_request(
    *,
    authorization: str | None,
    method: str,
    path: str,
    raw_query: str,
    body: bytes,
    secrets: Mapping[str, str],
    now: float,
) -> str:
    """Return the API key that signed the request, or raise SignatureError.

    `path` is the path exactly as sent (percent-encoding and `:action` untouched).
    """
    auth = parse_authorization(authorization)
    secret = secrets.get(auth.credential)
    if secret is None:
        raise SignatureError(MSG_UNKNOWN_KEY)
    values = signed_query_values(raw_query, auth.signed_query_args)
    expected = sign(secret, signing_message(method, path, body, values, auth.expires))
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError(MSG_BAD_SIGNATURE)
    if auth.expires < now:
        raise SignatureError(MSG_EXPIRED)
    return auth.credential


# --- catalogue and seed ----------------------------------------------------------------------------

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class InstanceType:
    """A catalogue entry. Scaling stays within a family, as upstream; `authorized` false and `zones`
    are what an account may not use (GPUs need a quota first): creating with them fails."""

    family: str
    size: str
    cpus: int
    memory_mib: int
    gpus: int = 0
    authorized: bool = True
    zones: frozenset[str] = ZONES

    def to_json(self, type_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": type_id,
            "family": self.family,
            "size": self.size,
            "cpus": self.cpus,
            "memory": self.memory_mib * MIB,  # bytes, as upstream
            "authorized": self.authorized,
            "zones": sorted(self.zones),
        }
        if self.gpus:  # the spec's gpus is > 0: CPU-only types have none
            body["gpus"] = self.gpus
        return body


GPU_ZONES = frozenset({"at-vie-2", "ch-gva-2"})
INSTANCE_TYPES: dict[str, InstanceType] = {
    "b6e9d1e8-0000-4000-8000-000000000001": InstanceType("standard", "micro", 1, 512),
    "b6e9d1e8-0000-4000-8000-000000000002": InstanceType("standard", "tiny", 1, 1024),
    "b6e9d1e8-0000-4000-8000-000000000003": InstanceType("standard", "small", 2, 2048),
    "b6e9d1e8-0000-4000-8000-000000000004": InstanceType("standard", "medium", 2, 4096),
    "b6e9d1e8-0000-4000-8000-000000000005": InstanceType("standard", "large", 4, 8192),
    "b6e9d1e8-0000-4000-8000-000000000006": InstanceType("standard", "extra-large", 4, 16384),
    "b6e9d1e8-0000-4000-8000-000000000011": InstanceType("memory", "large", 4, 32768),
    "b6e9d1e8-0000-4000-8000-000000000021": InstanceType("gpua5000", "small", 8, 57344, 1, False, GPU_ZONES),
}
STANDARD_SMALL = "b6e9d1e8-0000-4000-8000-000000000003"
STANDARD_MEDIUM = "b6e9d1e8-0000-4000-8000-000000000004"
STANDARD_LARGE = "b6e9d1e8-0000-4000-8000-000000000005"
MEMORY_LARGE = "b6e9d1e8-0000-4000-8000-000000000011"
GPU_SMALL = "b6e9d1e8-0000-4000-8000-000000000021"  # not authorized: needs a GPU quota first


@dataclass(frozen=True)
class Template:
    """A template (disk image) of the catalogue; a private one exists only in the zones it was registered in."""

    name: str
    family: str
    version: str
    default_user: str
    boot_mode: str
    build: str
    size_gib: int
    created_at: str
    description: str = ""
    visibility: str = "public"
    zones: frozenset[str] = ZONES

    def to_json(self, template_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": template_id,
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "version": self.version,
            "default-user": self.default_user,
            "boot-mode": self.boot_mode,
            "build": self.build,
            "size": self.size_gib * GIB,  # bytes, as upstream
            "created-at": self.created_at,
            "visibility": self.visibility,
            "zones": sorted(self.zones),
            "password-enabled": True,
            "ssh-key-enabled": True,
        }
        if self.visibility == "public":
            body["maintainer"] = "Exoscale"
        return body


TEMPLATES: dict[str, Template] = {
    "a5c1f3c6-0000-4000-8000-000000000001": Template(
        "Linux Ubuntu 24.04 LTS 64-bit", "ubuntu", "24.04", "ubuntu", "uefi", "2025-02-11-6c0b1e", 10,
        "2025-02-12T08:30:00Z",
    ),
    "a5c1f3c6-0000-4000-8000-000000000002": Template(
        "Linux Debian 12 (Bookworm) 64-bit", "debian", "12", "debian", "legacy", "2025-01-28-9a4d27", 10,
        "2025-01-29T10:12:44Z",
    ),
    "a5c1f3c6-0000-4000-8000-000000000003": Template(
        "Linux Ubuntu 22.04 LTS 64-bit", "ubuntu", "22.04", "ubuntu", "legacy", "2025-02-11-3f81d2", 10,
        "2025-02-12T08:41:09Z",
    ),
    "a5c1f3c6-0000-4000-8000-000000000101": Template(
        "web-golden", "ubuntu", "1.3", "ubuntu", "uefi", "2025-03-18", 12, "2025-03-18T16:05:31Z",
        description="Ubuntu 24.04 with nginx, as on web-1", visibility="private",
        zones=frozenset({DEFAULT_ZONE}),
    ),
}  # fmt: skip
TEMPLATE_UBUNTU = "a5c1f3c6-0000-4000-8000-000000000001"
TEMPLATE_DEBIAN = "a5c1f3c6-0000-4000-8000-000000000002"
TEMPLATE_UBUNTU_2204 = "a5c1f3c6-0000-4000-8000-000000000003"
TEMPLATE_PRIVATE = "a5c1f3c6-0000-4000-8000-000000000101"  # registered in DEFAULT_ZONE only

# SSH keys are account-wide (every zone lists them); create-instance takes them by name.
SSH_KEYS: dict[str, str] = {
    "sandbox-key": "3c:9e:51:0a:7d:42:b8:e1:6f:05:c3:94:2a:d7:18:6b",
    "ci-deploy": "a1:07:fe:32:5b:c8:94:0d:e6:71:2f:8a:b3:4c:90:15",
}

SECURITY_GROUP_DEFAULT = "f7a1c2e0-0000-4000-8000-000000000001"
SECURITY_GROUP_WEB = "f7a1c2e0-0000-4000-8000-000000000002"
SECURITY_GROUP_PUBLIC = "f7a1c2e0-0000-4000-8000-000000000101"  # maintained by Exoscale: visibility=public


def _rule(rule_id: int, description: str, protocol: str, network: str, port: int | None = None) -> dict[str, Any]:
    """An ingress rule as upstream shows it: a port range for tcp/udp, an ICMP type/code for icmp (echo request)."""
    rule: dict[str, Any] = {
        "id": f"e3b4d5a6-0000-4000-8000-{rule_id:012d}",
        "description": description,
        "flow-direction": "ingress",
        "protocol": protocol,
        "network": network,
    }
    if port is not None:
        rule.update({"start-port": port, "end-port": port})
    if protocol == "icmp":
        rule["icmp"] = {"type": 8, "code": 0}
    return rule


# Security groups are account-wide too. Private ones hold rules; public ones are lists of Exoscale's source addresses.
SECURITY_GROUPS: dict[str, dict[str, Any]] = {
    SECURITY_GROUP_DEFAULT: {
        "name": "default",
        "description": "Default Security Group",
        "rules": [_rule(1, "SSH", "tcp", "0.0.0.0/0", 22), _rule(2, "ping", "icmp", "0.0.0.0/0")],
        "external-sources": [],
    },
    SECURITY_GROUP_WEB: {
        "name": "web",
        "description": "HTTP and HTTPS from anywhere",
        "rules": [_rule(3, "HTTP", "tcp", "0.0.0.0/0", 80), _rule(4, "HTTPS", "tcp", "0.0.0.0/0", 443)],
        "external-sources": [],
    },
}
PUBLIC_SECURITY_GROUPS: dict[str, dict[str, Any]] = {
    SECURITY_GROUP_PUBLIC: {
        "name": "public-nlb-healthcheck-sources",
        "description": "Source addresses of Exoscale Network Load Balancer health checks",
        "rules": [],
        "external-sources": ["194.182.186.0/26", "2a04:c43:e00:ff00::/56"],
    },
}
VISIBILITIES = ("private", "public")

# Seeded in DEFAULT_ZONE.
INSTANCE_RUNNING = "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000001"  # "web-1", running
INSTANCE_STOPPED = "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000002"  # "db-1", stopped, instance-pool member
SNAPSHOT_STOPPED = "5e0a7c1d-2b3f-4a8e-9d61-7c0e5a000001"  # snapshot of db-1: revert succeeds
SNAPSHOT_RUNNING = "5e0a7c1d-2b3f-4a8e-9d61-7c0e5a000002"  # snapshot of web-1: revert fails (running)
INSTANCE_POOL = "c2f1b0d4-0000-4000-8000-000000000001"
OPERATION_DONE = "0e7a3c2b-6d5f-4a1e-8b9c-0c0e5a000001"  # a finished start of web-1, to try get-exoscale-operation

# The team key's organization (the sandbox's `team` account), seeded in DEFAULT_ZONE too.
TEAM_INSTANCE_RUNNING = "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000101"  # "api-1", running
TEAM_INSTANCE_STOPPED = "8d1d3a4e-7b2c-4f6a-9e10-5a0c0e000102"  # "worker-1", stopped
TEAM_SNAPSHOT_STOPPED = "5e0a7c1d-2b3f-4a8e-9d61-7c0e5a000101"  # snapshot of worker-1: revert succeeds
TEAM_OPERATION_DONE = "0e7a3c2b-6d5f-4a1e-8b9c-0c0e5a000101"  # a finished stop of worker-1
TEAM_TEMPLATE_PRIVATE = "a5c1f3c6-0000-4000-8000-000000000201"
TEAM_TEMPLATES: dict[str, Template] = {
    TEAM_TEMPLATE_PRIVATE: Template(
        "billing-api-golden", "ubuntu", "2.0", "ubuntu", "legacy", "2025-04-01", 10, "2025-04-01T12:00:00Z",
        description="Ubuntu 22.04 with the billing API, as on api-1", visibility="private",
        zones=frozenset({DEFAULT_ZONE}),
    ),
}  # fmt: skip
TEAM_SSH_KEYS: dict[str, str] = {"team-key": "5d:21:9a:c4:0e:7b:33:f8:a2:6c:91:de:04:b7:58:1f"}
TEAM_SECURITY_GROUP = "f7a1c2e0-0000-4000-8000-000000000201"
TEAM_SECURITY_GROUPS: dict[str, dict[str, Any]] = {
    TEAM_SECURITY_GROUP: {
        "name": "default",
        "description": "Default Security Group",
        "rules": [_rule(11, "SSH from the office", "tcp", "203.0.113.0/24", 22)],
        "external-sources": [],
    },
}

CREATE_FIELDS = frozenset(
    {
        "instance-type",
        "template",
        "disk-size",
        "name",
        "labels",
        "ssh-key",
        "ssh-keys",
        "security-groups",
        "anti-affinity-groups",
        "public-ip-assignment",
        "auto-start",
        "user-data",
        "ipv6-enabled",
        "tpm-enabled",
        "secureboot-enabled",
        "deploy-target",
        "application-consistent-snapshot-enabled",
    }
)
UPDATE_FIELDS = frozenset(
    {"name", "labels", "user-data", "public-ip-assignment", "application-consistent-snapshot-enabled"}
)
PUBLIC_IP_ASSIGNMENTS = ("inet4", "dual", "none")
RESCUE_PROFILES = ("netboot", "netboot-efi")


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Instance:
    """Simulator-side state; `protected` is not part of the public shape, as upstream."""

    id: str
    zone: str
    name: str
    state: str
    instance_type: str
    template: str
    disk_size: int
    created_at: str
    public_ip: str | None
    public_ip_assignment: str = "inet4"
    ipv6_address: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    manager: dict[str, str] | None = None
    snapshots: list[str] = field(default_factory=list)
    tpm_enabled: bool = False
    secureboot_enabled: bool = False
    deploy_target: str | None = None
    ssh_keys: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[dict[str, Any]] = field(default_factory=list)
    anti_affinity_groups: list[dict[str, Any]] = field(default_factory=list)
    user_data: str | None = None
    app_consistent_snapshots: bool = False
    protected: bool = False
    password: str | None = None
    rescue_profile: str | None = None

    def to_json(self) -> dict[str, Any]:
        mac = "06:" + ":".join(self.id.replace("-", "")[i : i + 2] for i in range(0, 10, 2))
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "instance-type": {"id": self.instance_type},
            "template": {"id": self.template},
            "disk-size": self.disk_size,
            "labels": dict(self.labels),
            "created-at": self.created_at,
            "public-ip-assignment": self.public_ip_assignment,
            "mac-address": mac,
            "snapshots": [{"id": sid} for sid in self.snapshots],
            "ssh-keys": [dict(k) for k in self.ssh_keys],
            "security-groups": [dict(g) for g in self.security_groups],
            "anti-affinity-groups": [dict(g) for g in self.anti_affinity_groups],
            "elastic-ips": [],
            "private-networks": [],
            "tpm-enabled": self.tpm_enabled,
            "secureboot-enabled": self.secureboot_enabled,
            "application-consistent-snapshot-enabled": self.app_consistent_snapshots,
        }
        optional = {
            "public-ip": self.public_ip,
            "ipv6-address": self.ipv6_address,
            "manager": dict(self.manager) if self.manager else None,
            "deploy-target": {"id": self.deploy_target} if self.deploy_target else None,
            "user-data": self.user_data,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


@dataclass
class Snapshot:
    """An instance disk snapshot. Listed from the moment it is asked for (`snapshotting`), `ready` once
    its operation succeeds; it goes with its instance."""

    id: str
    zone: str
    instance_id: str
    name: str
    size: int
    created_at: str
    state: str = "ready"
    application_consistent: bool = False
    export: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "size": self.size,
            "created-at": self.created_at,
            "instance": {"id": self.instance_id},
            "application-consistent": self.application_consistent,
        }
        if self.export:
            body["export"] = dict(self.export)
        return body


@dataclass
class Operation:
    id: str
    zone: str
    command: str
    reference_id: str
    reference_link: str
    created: float
    effect: Callable[[], None] | None = None
    rollback: Callable[[], None] | None = None
    forced_failure: tuple[str, str] | None = None
    state: str = "pending"
    reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "state": self.state,
            "reference": {"id": self.reference_id, "link": self.reference_link, "command": self.command},
        }
        if self.reason:
            body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        return body


class ApiError(Exception):
    """Turned into `{"message": ...}` with `status` by the endpoint wrapper."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OperationFailed(Exception):
    """Raised by an operation effect: the operation ends in `failure` with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Call:
    """What a handler needs from the request, already authenticated."""

    method: str
    zone: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> dict[str, Any] | None:
        if not self.body.strip():
            return None
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Request body must be a JSON object")
        return data


# --- body validation -------------------------------------------------------------------------------


def _object(body: dict[str, Any] | None, allowed: frozenset[str]) -> dict[str, Any]:
    body = body or {}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown field(s): {', '.join(unknown)}")
    return body


def _required(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if n not in body]
    if missing:
        raise ApiError(400, f"Missing required field(s): {', '.join(missing)}")


def _ref_id(body: dict[str, Any], name: str) -> str:
    ref = body.get(name)
    if not isinstance(ref, dict) or not is_uuid(ref.get("id")):
        raise ApiError(400, f'{name}: expected an object {{"id": <uuid>}}')
    return ref["id"]


def _disk_size(value: Any, name: str = "disk-size") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 10 <= value <= 51200:
        raise ApiError(400, f"{name}: must be an integer between 10 and 51200 (GiB)")
    return value


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(400, "labels: must be an object of string values")
    return dict(value)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise ApiError(400, "name: must be a string of 1 to 255 characters")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{name}: must be a boolean")
    return value


def _user_data(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 32768:
        raise ApiError(400, "user-data: must be a base64 string of 1 to 32768 characters")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "user-data: must be base64 encoded") from None
    return value


def _enum(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ApiError(400, f"{name}: must be one of {', '.join(choices)}")
    return value


def _ref_list(value: Any, name: str, key: str) -> list[dict[str, Any]]:
    ok = isinstance(value, list) and all(isinstance(i, dict) and isinstance(i.get(key), str) for i in value)
    if not ok or (key == "id" and not all(is_uuid(i["id"]) for i in value)):
        raise ApiError(400, f"{name}: expected a list of objects with {key!r}")
    return [{key: i[key]} for i in value]


def _query(call: Call, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters (last value of each), refusing any the vendor's spec does not list for the
    route: a client sending a wrong one fails here instead of being silently ignored."""
    unknown = sorted(set(call.query) - set(allowed))
    if unknown:
        raise ApiError(400, f"Unknown query parameter {unknown[0]!r}")
    return {name: values[-1] for name, values in call.query.items()}


# --- the simulator ---------------------------------------------------------------------------------

Handler = Callable[[Call], Awaitable[Response]]


class ExoscaleSimulator(Simulator):
    """Stand-in for `https://api-{zone}.exoscale.com/v2`: compute instances, their snapshots and
    operations, and the catalogue their ids come from (instance types, templates, SSH keys,
    security groups).

    Test helpers: `rate_limit_next(retry_after)`, `fail_next(status, body)`,
    `fail_next_operation(reason, message)`, `complete_operations()`; state in `instances`,
    `operations`, `snapshots` (snapshot id -> Snapshot), `ssh_keys` (name -> fingerprint),
    `security_groups` (id -> the private group's fields).
    """

    provider: ClassVar[str] = "exoscale"

    def __init__(
        self,
        operation_delay: float = 0.5,
        *,
        key: str = credentials.EXOSCALE_API_KEY,
        secret: str = credentials.EXOSCALE_API_SECRET,
    ) -> None:
        self.operation_delay = operation_delay
        self.key, self.secret = key, secret  # what env() hands the server
        self.secrets: dict[str, str] = {key: secret}  # the keys it knows: another one is 403 "Invalid API key"
        self.instances: dict[str, Instance] = {}
        self.operations: dict[str, Operation] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.templates: dict[str, Template] = dict(TEMPLATES)
        self.ssh_keys: dict[str, str] = dict(SSH_KEYS)
        self.security_groups: dict[str, dict[str, Any]] = {k: dict(v) for k, v in SECURITY_GROUPS.items()}
        self._operation_faults: list[tuple[str, str]] = []
        self._ip_counter = 20
        self._password_counter = 0
        self._seed()
        super().__init__()

    # -- test helpers --

    def rate_limit_next(self, retry_after: float = 1) -> None:
        """The next request (whatever it is) answers 429 like the API gateway does."""
        self.fail_next(429, {"message": "Too many requests", "retry_after": retry_after})

    def fail_next_operation(self, reason: str = "fault", message: str = "Injected operation failure") -> None:
        """The next operation created ends in `state: failure` with this reason, changing nothing."""
        self._operation_faults.append((reason, message))

    def complete_operations(self) -> None:
        """Finish every pending operation now, regardless of `operation_delay`."""
        self._settle(force=True)

    # -- seed --

    def _seed(self) -> None:
        web = Instance(
            id=INSTANCE_RUNNING,
            zone=DEFAULT_ZONE,
            name="web-1",
            state="running",
            instance_type=STANDARD_MEDIUM,
            template=TEMPLATE_UBUNTU,
            disk_size=50,
            created_at="2025-03-14T09:26:53Z",
            public_ip="194.182.160.10",
            labels={"env": "prod", "role": "web"},
            snapshots=[SNAPSHOT_RUNNING],
            ssh_keys=[{"name": "sandbox-key"}],
            password="web1-initial-pass",
        )
        db = Instance(
            id=INSTANCE_STOPPED,
            zone=DEFAULT_ZONE,
            name="db-1",
            state="stopped",
            instance_type=STANDARD_LARGE,
            template=TEMPLATE_DEBIAN,
            disk_size=100,
            created_at="2025-03-15T11:02:17Z",
            public_ip="194.182.160.11",
            labels={"env": "staging", "role": "db"},
            manager={"id": INSTANCE_POOL, "type": "instance-pool"},
            snapshots=[SNAPSHOT_STOPPED],
            tpm_enabled=True,
            password="db1-initial-pass",
        )
        for instance in (web, db):
            self.instances[instance.id] = instance
        self._seed_snapshots()
        self.operations[OPERATION_DONE] = Operation(
            id=OPERATION_DONE,
            zone=DEFAULT_ZONE,
            command="start-instance",
            reference_id=INSTANCE_RUNNING,
            reference_link=f"/v2/instance/{INSTANCE_RUNNING}",
            created=time.monotonic(),
            state="success",
        )

    def _seed_snapshots(self) -> None:
        """One snapshot per seeded instance; db-1's was exported, so it carries a download link."""
        web = Snapshot(
            id=SNAPSHOT_RUNNING,
            zone=DEFAULT_ZONE,
            instance_id=INSTANCE_RUNNING,
            name="web-1-20250320020011",
            size=50,
            created_at="2025-03-20T02:00:11Z",
        )
        db = Snapshot(
            id=SNAPSHOT_STOPPED,
            zone=DEFAULT_ZONE,
            instance_id=INSTANCE_STOPPED,
            name="db-1-20250321020304",
            size=100,
            created_at="2025-03-21T02:03:04Z",
            state="exported",
            export={
                "presigned-url": f"https://sos-{DEFAULT_ZONE}.exo.io/snapshot-export/{SNAPSHOT_STOPPED}.qcow2"
                "?X-Amz-Expires=3600&X-Amz-Signature=0f3c7a9e1b2d4c6a8e0f1a3b5c7d9e1f",
                "md5sum": "9b1e5c0d7a3f42e8b6c1d0e9f8a7b6c5",
            },
        )
        self.snapshots = {snapshot.id: snapshot for snapshot in (web, db)}

    # -- app --

    def build_app(self) -> Starlette:
        prefix = "/{zone}/v2"
        routes = [
            Route(f"{prefix}/instance", self._endpoint(self._instances), methods=["GET", "POST"]),
            Route(
                f"{prefix}/instance/{{target}}",
                self._endpoint(self._instance),
                methods=["GET", "PUT", "POST", "DELETE"],
            ),
            Route(f"{prefix}/instance/{{id}}/{{field}}", self._endpoint(self._reset_field), methods=["DELETE"]),
            Route(f"{prefix}/console/{{id}}", self._endpoint(self._console), methods=["GET"]),
            Route(f"{prefix}/operation/{{id}}", self._endpoint(self._operation), methods=["GET"]),
            Route(f"{prefix}/instance-type", self._endpoint(self._instance_types), methods=["GET"]),
            Route(f"{prefix}/template", self._endpoint(self._templates), methods=["GET"]),
            Route(f"{prefix}/ssh-key", self._endpoint(self._ssh_keys), methods=["GET"]),
            Route(f"{prefix}/security-group", self._endpoint(self._security_groups), methods=["GET"]),
            Route(f"{prefix}/snapshot", self._endpoint(self._snapshots), methods=["GET"]),
            Route(f"{prefix}/snapshot/{{id}}", self._endpoint(self._snapshot), methods=["GET"]),
        ]

        return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler with what every call goes through: zone, signature, settling."""

        async def endpoint(request: Request) -> Response:
            zone = request.path_params["zone"]
            if zone not in ZONES:
                return JSONResponse({"message": f"Unknown zone {zone!r}"}, status_code=404)
            body = await request.body()
            raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
            raw_query = request.scope.get("query_string", b"").decode("latin-1")
            try:
                verify_request(
                    authorization=request.headers.get("authorization"),
                    method=request.method,
                    path=raw_path.decode("latin-1"),
                    raw_query=raw_query,
                    body=body,
                    secrets=self.secrets,
                    now=time.time(),
                )
            except SignatureError as exc:
                return JSONResponse({"message": exc.message}, status_code=403)
            self._settle()
            call = Call(
                method=request.method,
                zone=zone,
                params=dict(request.path_params),
                query=parse_qs(raw_query, keep_blank_values=True),
                body=body,
            )
            try:
                return await handler(call)
            except ApiError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)

        return endpoint

    # -- operations --

    def _settle(self, force: bool = False) -> None:
        now = time.monotonic()
        for op in list(self.operations.values()):
            if op.state != "pending" or (not force and now - op.created < self.operation_delay):
                continue
            try:
                if op.forced_failure:
                    raise OperationFailed(*op.forced_failure)
                if op.effect:
                    op.effect()
            except OperationFailed as exc:
                op.state, op.reason, op.message = "failure", exc.reason, exc.message
                if op.rollback:
                    op.rollback()
            else:
                op.state = "success"

    def _start_operation(
        self,
        zone: str,
        command: str,
        reference_id: str,
        effect: Callable[[], None] | None,
        *,
        rollback: Callable[[], None] | None = None,
        kind: str = "instance",
    ) -> Response:
        """Queue an operation and answer with it (HTTP 200, state pending), as every mutation does."""
        op = Operation(
            id=str(uuid.uuid4()),
            zone=zone,
            command=command,
            reference_id=reference_id,
            reference_link=f"/v2/{kind}/{reference_id}",
            created=time.monotonic(),
            effect=effect,
            rollback=rollback,
            forced_failure=self._operation_faults.pop(0) if self._operation_faults else None,
        )
        self.operations[op.id] = op
        return JSONResponse(op.to_json())

    async def _operation(self, call: Call) -> Response:
        op = self.operations.get(call.params["id"])
        if op is None or op.zone != call.zone:
            raise ApiError(404, "Operation not found")
        return JSONResponse(op.to_json())

    # -- /instance --

    def _find(self, call: Call, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None or instance.zone != call.zone:
            raise ApiError(404, "Instance not found")
        return instance

    async def _instances(self, call: Call) -> Response:
        if call.method == "POST":
            return self._create(call)
        selected = [i for i in self.instances.values() if i.zone == call.zone]
        for name, values in call.query.items():
            selected = [i for i in selected if _matches(i, name, values[-1])]
        return JSONResponse({"instances": [i.to_json() for i in selected]})

    def _create(self, call: Call) -> Response:
        body = _object(call.json(), CREATE_FIELDS)
        _required(body, "instance-type", "template", "disk-size")
        type_id, template_id = _ref_id(body, "instance-type"), _ref_id(body, "template")
        disk_size = _disk_size(body["disk-size"])
        self._usable_type(call.zone, type_id)
        self._template(call.zone, template_id)
        instance_id = str(uuid.uuid4())
        assignment = _enum(body.get("public-ip-assignment", "inet4"), "public-ip-assignment", PUBLIC_IP_ASSIGNMENTS)
        auto_start = _bool(body.get("auto-start", True), "auto-start")
        instance = Instance(
            id=instance_id,
            zone=call.zone,
            name=_name(body["name"]) if "name" in body else f"vm-{instance_id[:8]}",
            state="starting" if auto_start else "stopped",
            instance_type=type_id,
            template=template_id,
            disk_size=disk_size,
            created_at=_now_iso(),
            public_ip=None if assignment == "none" else self._next_ip(),
            public_ip_assignment=assignment,
            labels=_labels(body.get("labels", {})),
            ssh_keys=_ref_list(body.get("ssh-keys", []), "ssh-keys", "name"),
            security_groups=_ref_list(body.get("security-groups", []), "security-groups", "id"),
            anti_affinity_groups=_ref_list(body.get("anti-affinity-groups", []), "anti-affinity-groups", "id"),
            user_data=_user_data(body["user-data"]) if "user-data" in body else None,
            tpm_enabled=_bool(body.get("tpm-enabled", False), "tpm-enabled"),
            secureboot_enabled=_bool(body.get("secureboot-enabled", False), "secureboot-enabled"),
            deploy_target=_ref_id(body, "deploy-target") if "deploy-target" in body else None,
            app_consistent_snapshots=_bool(
                body.get("application-consistent-snapshot-enabled", False),
                "application-consistent-snapshot-enabled",
            ),
        )
        if "ssh-key" in body:
            instance.ssh_keys.append({"name": _ref_list([body["ssh-key"]], "ssh-key", "name")[0]["name"]})
        self._known_keys_and_groups(instance)
        if assignment == "dual" or body.get("ipv6-enabled") is True:
            instance.ipv6_address = f"2a04:c43:e00:1234::{self._ip_counter:x}"
        # Upstream lists a new instance at once, in a transitional state.
        self.instances[instance_id] = instance

        def created() -> None:
            instance.state = "running" if auto_start else "stopped"
            instance.password = self._new_password(instance_id)

        def discard() -> None:
            self.instances.pop(instance_id, None)

        return self._start_operation(call.zone, "create-instance", instance_id, created, rollback=discard)

    async def _instance(self, call: Call) -> Response:
        instance_id, _, action = call.params["target"].partition(":")
        handlers = _ACTIONS.get(action)
        if handlers is None:
            raise ApiError(404, "Not found")
        method_name = handlers.get(call.method)
        if method_name is None:
            raise ApiError(405, "Method not allowed")
        instance = self._find(call, instance_id)
        return getattr(self, method_name)(call, instance)

    def _get(self, call: Call, instance: Instance) -> Response:
        return JSONResponse(instance.to_json())

    def _update(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), UPDATE_FIELDS)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _name(body["name"])
        if "labels" in body:
            changes["labels"] = {} if body["labels"] is None else _labels(body["labels"])
        if "user-data" in body:
            changes["user_data"] = _user_data(body["user-data"])
        if "public-ip-assignment" in body:
            changes["public_ip_assignment"] = _enum(
                body["public-ip-assignment"], "public-ip-assignment", PUBLIC_IP_ASSIGNMENTS
            )
        if "application-consistent-snapshot-enabled" in body:
            changes["app_consistent_snapshots"] = _bool(
                body["application-consistent-snapshot-enabled"], "application-consistent-snapshot-enabled"
            )

        def update() -> None:
            for attr, value in changes.items():
                setattr(instance, attr, value)

        return self._start_operation(call.zone, "update-instance", instance.id, update)

    def _delete(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        if instance.protected:
            raise ApiError(409, "Instance has destruction protection enabled: remove the protection first")
        previous, instance.state = instance.state, "destroying"

        def destroy() -> None:
            self.instances.pop(instance.id, None)
            for snapshot in list(self.snapshots.values()):
                if snapshot.instance_id == instance.id:
                    del self.snapshots[snapshot.id]

        return self._start_operation(
            call.zone,
            "delete-instance",
            instance.id,
            destroy,
            rollback=lambda: setattr(instance, "state", previous),
        )

    def _start(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), frozenset({"rescue-profile"}))
        profile = _enum(body["rescue-profile"], "rescue-profile", RESCUE_PROFILES) if body else None
        if instance.state != "stopped":
            raise ApiError(409, f"Instance is {instance.state}: only a stopped instance can be started")
        return self._transition(call, instance, "start-instance", "starting", "running", profile)

    def _stop(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        if instance.state != "running":
            raise ApiError(409, f"Instance is {instance.state}: only a running instance can be stopped")
        return self._transition(call, instance, "stop-instance", "stopping", "stopped", None)

    def _reboot(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        if instance.state != "running":
            raise ApiError(409, f"Instance is {instance.state}: only a running instance can be rebooted")
        return self._start_operation(call.zone, "reboot-instance", instance.id, None)

    def _transition(
        self, call: Call, instance: Instance, command: str, during: str, after: str, profile: str | None
    ) -> Response:
        """Start/stop: a transitional state while pending, the final one on success."""
        before, instance.state = instance.state, during

        def done() -> None:
            instance.state, instance.rescue_profile = after, profile

        return self._start_operation(
            call.zone, command, instance.id, done, rollback=lambda: setattr(instance, "state", before)
        )

    def _add_protection(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        return self._start_operation(
            call.zone, "add-instance-protection", instance.id, lambda: setattr(instance, "protected", True)
        )

    def _remove_protection(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        return self._start_operation(
            call.zone, "remove-instance-protection", instance.id, lambda: setattr(instance, "protected", False)
        )

    def _reset_password(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())

        def reset() -> None:
            instance.password = self._new_password(instance.id)

        return self._start_operation(call.zone, "reset-instance-password", instance.id, reset)

    def _password(self, call: Call, instance: Instance) -> Response:
        if instance.password is None:
            raise ApiError(404, "No password available for this instance")
        return JSONResponse({"password": instance.password})

    def _resize_disk(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), frozenset({"disk-size"}))
        _required(body, "disk-size")
        size = _disk_size(body["disk-size"])
        if size <= instance.disk_size:
            raise ApiError(400, f"disk-size: the disk can only grow (current size {instance.disk_size} GiB)")
        return self._start_operation(
            call.zone, "resize-instance-disk", instance.id, lambda: setattr(instance, "disk_size", size)
        )

    def _scale(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), frozenset({"instance-type"}))
        _required(body, "instance-type")
        type_id = _ref_id(body, "instance-type")
        if type_id not in INSTANCE_TYPES:
            raise ApiError(404, f"Instance type {type_id} not found")
        if INSTANCE_TYPES[type_id].family != INSTANCE_TYPES[instance.instance_type].family:
            raise ApiError(400, "instance-type: the new Instance Type must be within the same family")
        if instance.state != "stopped":
            raise ApiError(409, f"Instance is {instance.state}: it must be stopped to be scaled")
        return self._start_operation(
            call.zone, "scale-instance", instance.id, lambda: setattr(instance, "instance_type", type_id)
        )

    def _reset(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), frozenset({"template", "disk-size"}))
        template_id = _ref_id(body, "template") if "template" in body else instance.template
        self._template(call.zone, template_id)
        size = _disk_size(body["disk-size"]) if "disk-size" in body else instance.disk_size

        def reset() -> None:
            instance.template, instance.disk_size = template_id, size
            instance.password = self._new_password(instance.id)

        return self._start_operation(call.zone, "reset-instance", instance.id, reset)

    def _create_snapshot(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        snapshot = Snapshot(
            id=str(uuid.uuid4()),
            zone=call.zone,
            instance_id=instance.id,
            name=f"{instance.name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}",
            size=instance.disk_size,
            created_at=_now_iso(),
            state="snapshotting",
            application_consistent=instance.app_consistent_snapshots,
        )
        # Listed at once, in a transitional state, like a new instance.
        self.snapshots[snapshot.id] = snapshot
        instance.snapshots.append(snapshot.id)

        def discard() -> None:
            self.snapshots.pop(snapshot.id, None)
            instance.snapshots.remove(snapshot.id)

        return self._start_operation(
            call.zone,
            "create-snapshot",
            snapshot.id,
            lambda: setattr(snapshot, "state", "ready"),
            rollback=discard,
            kind="snapshot",
        )

    def _enable_tpm(self, call: Call, instance: Instance) -> Response:
        _object(call.json(), frozenset())
        return self._start_operation(
            call.zone, "enable-tpm", instance.id, lambda: setattr(instance, "tpm_enabled", True)
        )

    def _revert_snapshot(self, call: Call, instance: Instance) -> Response:
        body = _object(call.json(), frozenset({"id"}))
        _required(body, "id")
        snapshot_id = body["id"]
        if not is_uuid(snapshot_id):
            raise ApiError(400, "id: must be a snapshot UUID")
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None or snapshot.instance_id != instance.id:
            raise ApiError(404, f"Snapshot {snapshot_id} not found for this instance")
        if snapshot.state not in ("ready", "exported"):
            raise ApiError(409, f"Snapshot is {snapshot.state}: wait for its operation to finish")

        def revert() -> None:
            # Checked when the job runs, as upstream: the operation fails, the call did not.
            if instance.state != "stopped":
                raise OperationFailed("incorrect", "The Compute instance must be stopped to revert a snapshot")

        return self._start_operation(call.zone, "revert-instance-to-snapshot", instance.id, revert)

    async def _reset_field(self, call: Call) -> Response:
        instance = self._find(call, call.params["id"])
        if call.params["field"] != "labels":
            raise ApiError(400, f"Field {call.params['field']!r} cannot be reset (only: labels)")
        return self._start_operation(
            call.zone, "reset-instance-field", instance.id, lambda: setattr(instance, "labels", {})
        )

    async def _console(self, call: Call) -> Response:
        instance = self._find(call, call.params["id"])
        if instance.state != "running":
            raise ApiError(409, f"Instance is {instance.state}: the console needs a running instance")
        host = f"console-proxy-{call.zone}.sandbox.invalid"
        expires = int(time.time()) + 60
        token = hashlib.sha256(f"{instance.id}:{expires}".encode()).hexdigest()[:32]
        path = f"/websockify?id={instance.id}&expires={expires}&signature={token}"
        return JSONResponse({"url": f"wss://{host}{path}", "host": host, "path": path})

    # -- the catalogue: where create-instance's ids come from --

    async def _instance_types(self, call: Call) -> Response:
        """Every type, with the zones it runs in (the same list whatever zone is asked)."""
        _query(call, ())
        return JSONResponse({"instance-types": [t.to_json(type_id) for type_id, t in INSTANCE_TYPES.items()]})

    async def _templates(self, call: Call) -> Response:
        """The zone's templates; public ones unless visibility=private (egoscale documents public as the default)."""
        query = _query(call, ("visibility", "family"))
        visibility = _enum(query.get("visibility", "public"), "visibility", VISIBILITIES)
        family = query.get("family")
        selected = [
            template.to_json(template_id)
            for template_id, template in self.templates.items()
            if template.visibility == visibility
            and call.zone in template.zones
            and (family is None or template.family == family)
        ]
        return JSONResponse({"templates": selected})

    async def _ssh_keys(self, call: Call) -> Response:
        _query(call, ())
        keys = [{"name": name, "fingerprint": fingerprint} for name, fingerprint in self.ssh_keys.items()]
        return JSONResponse({"ssh-keys": keys})

    async def _security_groups(self, call: Call) -> Response:
        """The account's own groups, or with visibility=public the ones Exoscale maintains (as the spec says)."""
        query = _query(call, ("visibility",))
        visibility = _enum(query.get("visibility", "private"), "visibility", VISIBILITIES)
        groups = self.security_groups if visibility == "private" else PUBLIC_SECURITY_GROUPS
        return JSONResponse({"security-groups": [{"id": group_id, **group} for group_id, group in groups.items()]})

    async def _snapshots(self, call: Call) -> Response:
        _query(call, ())
        return JSONResponse({"snapshots": [s.to_json() for s in self.snapshots.values() if s.zone == call.zone]})

    async def _snapshot(self, call: Call) -> Response:
        snapshot = self.snapshots.get(call.params["id"])
        if snapshot is None or snapshot.zone != call.zone:
            raise ApiError(404, "Snapshot not found")
        return JSONResponse(snapshot.to_json())

    def _usable_type(self, zone: str, type_id: str) -> None:
        """Refuse a type the catalogue does not offer this account in this zone, as upstream does."""
        instance_type = INSTANCE_TYPES.get(type_id)
        if instance_type is None:
            raise ApiError(404, f"Instance type {type_id} not found")
        label = f"{instance_type.family}.{instance_type.size}"
        if zone not in instance_type.zones:
            raise ApiError(400, f"instance-type: {label} is not available in {zone}")
        if not instance_type.authorized:
            raise ApiError(403, f"instance-type: {label} needs a quota increase for this organization")

    def _template(self, zone: str, template_id: str) -> Template:
        """A template usable in `zone`: a private one exists only where it was registered."""
        template = self.templates.get(template_id)
        if template is None or zone not in template.zones:
            raise ApiError(404, f"Template {template_id} not found")
        return template

    def _known_keys_and_groups(self, instance: Instance) -> None:
        """SSH keys and security groups are referred to by what list-ssh-keys / list-security-groups show."""
        for key in instance.ssh_keys:
            if key["name"] not in self.ssh_keys:
                raise ApiError(404, f"SSH key {key['name']!r} not found")
        for group in instance.security_groups:
            if group["id"] not in self.security_groups:
                raise ApiError(404, f"Security group {group['id']} not found")

    # -- small helpers --

    def _next_ip(self) -> str:
        self._ip_counter += 1
        return f"194.182.161.{self._ip_counter}"

    def _new_password(self, instance_id: str) -> str:
        self._password_counter += 1
        return hashlib.sha256(f"{instance_id}:{self._password_counter}".encode()).hexdigest()[:16]

    def env(self, address: str) -> dict[str, str]:
        return {
            "EXOSCALE_API_URL": address + "/{zone}/v2",
            "EXOSCALE_API_KEY": self.key,
            "EXOSCALE_API_SECRET": self.secret,
        }


class TeamExoscaleSimulator(ExoscaleSimulator):
    """The sandbox's `team` account: another organization's key, with its own instances (api-1 running,
    worker-1 stopped), snapshots, SSH key, security group and private template; the public catalogue and the
    API's behaviour are the same."""

    def __init__(
        self,
        operation_delay: float = 0.5,
        *,
        key: str = credentials.TEAM_EXOSCALE_API_KEY,
        secret: str = credentials.TEAM_EXOSCALE_API_SECRET,
    ) -> None:
        super().__init__(operation_delay, key=key, secret=secret)

    def _seed(self) -> None:
        public = {k: v for k, v in TEMPLATES.items() if v.visibility == "public"}
        self.templates = {**public, **TEAM_TEMPLATES}
        self.ssh_keys = dict(TEAM_SSH_KEYS)
        self.security_groups = {k: dict(v) for k, v in TEAM_SECURITY_GROUPS.items()}
        for instance in team_instances():
            self.instances[instance.id] = instance
        self.snapshots = {snapshot.id: snapshot for snapshot in team_snapshots()}
        self.operations[TEAM_OPERATION_DONE] = Operation(
            id=TEAM_OPERATION_DONE,
            zone=DEFAULT_ZONE,
            command="stop-instance",
            reference_id=TEAM_INSTANCE_STOPPED,
            reference_link=f"/v2/instance/{TEAM_INSTANCE_STOPPED}",
            created=time.monotonic(),
            state="success",
        )


def team_instances() -> list[Instance]:
    """The team organization's instances, in DEFAULT_ZONE."""
    api = Instance(
        id=TEAM_INSTANCE_RUNNING,
        zone=DEFAULT_ZONE,
        name="api-1",
        state="running",
        instance_type=STANDARD_SMALL,
        template=TEMPLATE_UBUNTU_2204,
        disk_size=20,
        created_at="2025-04-02T07:45:12Z",
        public_ip="185.19.28.40",
        labels={"env": "prod", "team": "billing", "role": "api"},
        ssh_keys=[{"name": "team-key"}],
        security_groups=[{"id": TEAM_SECURITY_GROUP}],
        password="api1-initial-pass",
    )
    worker = Instance(
        id=TEAM_INSTANCE_STOPPED,
        zone=DEFAULT_ZONE,
        name="worker-1",
        state="stopped",
        instance_type=MEMORY_LARGE,
        template=TEMPLATE_DEBIAN,
        disk_size=200,
        created_at="2025-04-03T13:20:05Z",
        public_ip="185.19.28.41",
        labels={"env": "prod", "team": "billing", "role": "worker"},
        snapshots=[TEAM_SNAPSHOT_STOPPED],
        ssh_keys=[{"name": "team-key"}],
        password="worker1-initial-pass",
    )
    return [api, worker]


def team_snapshots() -> list[Snapshot]:
    """worker-1's snapshot: reverting it (worker-1 is stopped) succeeds."""
    return [
        Snapshot(
            id=TEAM_SNAPSHOT_STOPPED,
            zone=DEFAULT_ZONE,
            instance_id=TEAM_INSTANCE_STOPPED,
            name="worker-1-20250410031500",
            size=200,
            created_at="2025-04-10T03:15:00Z",
        )
    ]


# action after the colon ("" for the bare instance) -> HTTP method -> handler method name
_ACTIONS: dict[str, dict[str, str]] = {
    "": {"GET": "_get", "PUT": "_update", "DELETE": "_delete"},
    "start": {"PUT": "_start"},
    "stop": {"PUT": "_stop"},
    "reboot": {"PUT": "_reboot"},
    "add-protection": {"PUT": "_add_protection"},
    "remove-protection": {"PUT": "_remove_protection"},
    "reset-password": {"PUT": "_reset_password"},
    "resize-disk": {"PUT": "_resize_disk"},
    "scale": {"PUT": "_scale"},
    "reset": {"PUT": "_reset"},
    "create-snapshot": {"POST": "_create_snapshot"},
    "enable-tpm": {"POST": "_enable_tpm"},
    "password": {"GET": "_password"},
    "revert-snapshot": {"POST": "_revert_snapshot"},
}


def _matches(instance: Instance, name: str, value: str) -> bool:
    """List filters. `labels` takes `k=v` (or bare `k`) pairs separated by commas, all must match."""
    manager = instance.manager or {}
    if name == "manager-id":
        return manager.get("id") == value
    if name == "manager-type":
        if value != "instance-pool":
            raise ApiError(400, "manager-type: must be instance-pool")
        return manager.get("type") == value
    if name == "ip-address":
        return value in (instance.public_ip, instance.ipv6_address)
    if name == "labels":
        for pair in filter(None, value.split(",")):
            key, sep, expected = pair.partition("=")
            if key not in instance.labels or (sep and instance.labels[key] != expected):
                return False
        return True
    raise ApiError(400, f"Unknown query parameter {name!r}")
