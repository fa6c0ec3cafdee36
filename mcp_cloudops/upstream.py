"""Registry tool + validated arguments -> one upstream HTTP request -> payload or UpstreamError.

Request building is pure (`build_request`); sending goes through one pooled httpx.AsyncClient per
provider, created on first use so a provider without credentials costs nothing until called.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from mcp_cloudops.auth import ExoscaleV2Auth, HeaderAuth, bearer, incus_ssl_context
from mcp_cloudops.registry import Provider, Registry, ToolSpec
from mcp_cloudops.results import UpstreamError, error_text, parse_body, payload
from mcp_cloudops.settings import ConfigError, Settings

logger = logging.getLogger("mcp_cloudops.upstream")

INCUS_SOCKET_HOST = "http://incus"  # placeholder authority for requests sent over the unix socket


@dataclass(frozen=True)
class UpstreamRequest:
    """Everything needed to send one call; the URL path is already percent-encoded."""

    method: str
    url: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, Any] | None = None


def encode_segment(value: Any) -> str:
    """Percent-encode a path value so it stays one segment: no '/', '?', '#', '%' or dot-segment survives."""
    return quote(str(value), safe="").replace(".", "%2E")


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(query_value(item) for item in value)
    return str(value)


def resolve_zone(tool: ToolSpec, provider: Provider, args: dict[str, Any], settings: Settings) -> str | None:
    zone_params = tool.params_in("zone")
    if not zone_params:
        return None
    zone = args.get(zone_params[0].name) or settings.default_zone(provider)
    if zone not in provider.zones:
        raise ConfigError(
            f"{provider.zone_env} is set to {zone!r}, which is not a {provider.title} zone; "
            f"use one of {', '.join(provider.zones)}"
        )
    return zone


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def zone_values(tool: ToolSpec, provider: Provider, args: dict[str, Any], settings: Settings) -> dict[str, str]:
    zone = resolve_zone(tool, provider, args, settings)
    return {"zone": encode_segment(zone)} if zone is not None else {}


def build_request(
    tool: ToolSpec, provider: Provider, args: dict[str, Any], base_url: str, settings: Settings
) -> UpstreamRequest:
    """The request for one call. Pure: the same inputs always give the same request."""
    zone = zone_values(tool, provider, args, settings)
    values = {p.name: encode_segment(args[p.name]) for p in tool.params_in("path")} | zone
    url = fill(base_url, zone) + fill(tool.path, values)
    params = list(tool.query.items())
    params += [(p.name, query_value(args[p.name])) for p in tool.params_in("query") if p.name in args]
    body_params = [p for p in tool.params_in("body") if p.name in args]
    body = {p.name: args[p.name] for p in body_params} if body_params else None
    return UpstreamRequest(method=tool.method, url=url, params=params, body=body)


def where(url: str) -> str:
    """The host a failure happened at, for messages: never the path or query (they may carry secrets)."""
    parsed = httpx.URL(url)
    return parsed.host or "the unix socket"


class Upstreams:
    """One pooled client per provider, shared by every tool call of a server."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._users = 0

    def base_url(self, provider: Provider) -> str:
        if provider.auth.scheme == "incus":
            endpoint = self.settings.incus(provider)
            return endpoint.url or INCUS_SOCKET_HOST
        return self.settings.base_url(provider)

    def base_for(self, tool: ToolSpec, args: dict[str, Any]) -> str:
        """The provider's base URL for this call, its zone filled in from the arguments."""
        provider = self.registry.provider_of(tool)
        return fill(self.base_url(provider), zone_values(tool, provider, args, self.settings))

    def _new_client(self, provider: Provider) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        headers = {"User-Agent": "mcp-cloudops", "Accept": "application/json"}
        auth = provider.auth
        if auth.scheme == "incus":
            endpoint = self.settings.incus(provider)
            if endpoint.socket is not None:
                transport = httpx.AsyncHTTPTransport(uds=endpoint.socket, limits=limits)
                return httpx.AsyncClient(transport=transport, timeout=timeout, headers=headers)
            return httpx.AsyncClient(
                verify=incus_ssl_context(endpoint),
                auth=bearer(endpoint.token) if endpoint.token else None,
                timeout=timeout,
                limits=limits,
                headers=headers,
            )
        client_auth: httpx.Auth
        if auth.scheme == "exoscale-v2":
            client_auth = ExoscaleV2Auth(
                self.settings.secret(auth.key_env or ""), self.settings.secret(auth.secret_env or "")
            )
        elif auth.scheme == "bearer":
            client_auth = bearer(self.settings.secret(auth.secret_env or ""))
        else:
            client_auth = HeaderAuth(auth.header or "", self.settings.secret(auth.secret_env or ""))
        return httpx.AsyncClient(auth=client_auth, timeout=timeout, limits=limits, headers=headers)

    def client(self, provider: Provider) -> httpx.AsyncClient:
        if provider.key not in self._clients:
            self._clients[provider.key] = self._new_client(provider)
        return self._clients[provider.key]

    def header_auth(self, provider: Provider) -> dict[str, str]:
        """Auth headers for a websocket handshake (which httpx does not carry)."""
        auth = provider.auth
        if auth.scheme == "header":
            return {auth.header or "": self.settings.secret(auth.secret_env or "").get_secret_value()}
        if auth.scheme == "bearer":
            return {"Authorization": bearer(self.settings.secret(auth.secret_env or "")).header_value()}
        if auth.scheme == "incus" and (token := self.settings.incus(provider).token) is not None:
            return {"Authorization": bearer(token).header_value()}
        return {}

    def request_for(self, tool: ToolSpec, args: dict[str, Any]) -> tuple[Provider, UpstreamRequest]:
        provider = self.registry.provider_of(tool)
        return provider, build_request(tool, provider, args, self.base_url(provider), self.settings)

    async def call(self, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
        """Send the tool's request and return its payload; UpstreamError/ConfigError say what failed."""
        provider, request = self.request_for(tool, args)
        return await self.send(tool, provider, request)

    async def send(self, tool: ToolSpec, provider: Provider, request: UpstreamRequest) -> dict[str, Any]:
        """Send one request on the tool's behalf; errors are worded for the agent calling `tool`."""
        client = self.client(provider)
        started = time.perf_counter()
        try:
            response = await client.request(request.method, request.url, params=request.params, json=request.body)
        except httpx.TimeoutException:
            raise UpstreamError(
                f"{provider.title} did not answer in time ({where(request.url)}) for {tool.name}. "
                + (
                    "The outcome is unknown: read the resource's state before retrying."
                    if tool.mutating
                    else "Retry, or narrow the request."
                )
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamError(
                f"Cannot reach {provider.title} at {where(request.url)} ({type(exc).__name__}: {str(exc)[:120]}). "
                f"Check {provider.url_env} and the network, then retry."
            ) from None
        logger.info(
            "%s -> %s %s (%.0f ms)",
            tool.name,
            provider.key,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        body = parse_body(response.content)
        if response.is_redirect:
            raise UpstreamError(
                f"{provider.title} answered {tool.name} with a redirect (HTTP {response.status_code}), which is not "
                f"followed. Check {provider.url_env}: it should be the API's own address."
            )
        if response.status_code >= 400:
            raise UpstreamError(error_text(tool, provider, response.status_code, body, response.text))
        if body is None and response.content.strip():
            raise UpstreamError(
                f"{provider.title} answered {tool.name} with HTTP {response.status_code} but a body that is not "
                f"JSON ({len(response.content)} bytes). Check {provider.url_env} points at the API."
            )
        return payload(provider, response.status_code, {k.lower(): v for k, v in response.headers.items()}, body)

    async def acquire(self) -> None:
        self._users += 1

    async def release(self) -> None:
        """Close the pooled clients when the last session using them ends."""
        self._users -= 1
        if self._users <= 0:
            clients, self._clients = self._clients, {}
            for client in clients.values():
                await client.aclose()
