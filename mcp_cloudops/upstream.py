"""Registry tool + validated arguments -> one upstream HTTP request -> payload or UpstreamError.

Request building is pure (`build_request`); sending goes through one pooled httpx2.AsyncClient per
provider account, created on first use so an account without credentials costs nothing until called.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

import anyio
import httpx2

from mcp_cloudops import metrics
from mcp_cloudops.accounts import INCUS_SOCKET_HOST, Account, Accounts
from mcp_cloudops.audit import saw_status
from mcp_cloudops.auth import credential, handshake_headers, incus_ssl_context
from mcp_cloudops.failures import transport_failure
from mcp_cloudops.policy import read_only_refusal
from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry import Registry
from mcp_cloudops.registry_checks import PLACEHOLDER
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.results import (
    UpstreamError,
    failed_with,
    parse_body,
    payload,
    retry_after,
    too_many_values,
    values_allowed,
)
from mcp_cloudops.settings import ConfigError, Settings
from mcp_cloudops.shaping import narrowing_hint

logger = logging.getLogger("mcp_cloudops.upstream")


RETRY_STATUSES = frozenset({429, 502, 503, 504})
ERROR_BODY_MAX = 65536  # bytes of an error body read to quote it
OFF_LOOP_BYTES = 65536  # a body this big is counted and parsed on a worker thread, while the loop serves others


@dataclass(frozen=True)
class Response:
    """An upstream answer, fully read (within the size cap)."""

    status_code: int
    headers: dict[str, str]
    content: bytes
    max_values: int | None = None  # a body holding more JSON values is never parsed (results.values_allowed)

    @cached_property
    def too_many(self) -> bool:
        """Whether the body holds more than max_values JSON values: then it reads as no JSON at all."""
        return self.max_values is not None and too_many_values(self.content, self.max_values)

    @cached_property
    def body(self) -> Any:
        """The body as JSON, or None; parsed once, however many readers (retry wait, result) ask."""
        return None if self.too_many else parse_body(self.content)

    def read(self) -> Response:
        """This response with its body counted and parsed: on a worker thread for a big one, so that later
        readers, on the event loop, find it done."""
        _ = self.body
        return self


def backoff(attempt: int) -> float:
    return min(0.25 * 2 ** (attempt - 1), 2.0)


def retry_wait(provider: Provider, response: Response, attempt: int, cap: float) -> float | None:
    """Seconds to wait before retrying: what the upstream asks (results.retry_after), else backoff.
    None when it asks for longer than the cap: better to tell the agent."""
    asked = retry_after(response.headers, response.body, provider.retry_after_field)
    if asked is None:
        return backoff(attempt)
    return asked if asked <= cap else None


@dataclass(frozen=True)
class UpstreamRequest:
    """Everything needed to send one call; the URL path is already percent-encoded."""

    method: str
    url: str
    params: list[tuple[str, str]] = field(default_factory=list)
    body: dict[str, Any] | None = None

    @property
    def query(self) -> list[tuple[str, str]] | None:
        """The params as httpx should get them: None when there are none, else it parses the URL again."""
        return self.params or None


def encode_segment(value: Any) -> str:
    """Percent-encode a path value so it stays one segment: no '/', '?', '#', '%' or dot-segment survives."""
    return quote(str(value), safe="").replace(".", "%2E")


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(query_value(item) for item in value)
    return str(value)


def resolve_zone(tool: ToolSpec, provider: Provider, args: dict[str, Any], account: Account) -> str | None:
    zone_params = tool.params_in("zone")
    if not zone_params:
        return None
    zone = args.get(zone_params[0].name) or account.default_zone(provider)
    if zone not in provider.zones:
        raise ConfigError(
            f"{provider.zone_env} is set to {zone!r} in {account.where}, which is not a zone of {provider.title}; "
            f"use one of {', '.join(provider.zones)}"
        )
    return zone


def fill(template: str, values: Mapping[str, Any]) -> str:
    """`template` with each {name} that `values` holds replaced by the value percent-encoded as one
    segment (the one way a path is built); other placeholders stay, e.g. {zone} of a base URL."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return encode_segment(values[name]) if name in values else match.group(0)

    return PLACEHOLDER.sub(value, template)


def zone_values(tool: ToolSpec, provider: Provider, args: dict[str, Any], account: Account) -> dict[str, str]:
    zone = resolve_zone(tool, provider, args, account)
    return {"zone": zone} if zone is not None else {}


def query_of(tool: ToolSpec, args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The call's own query arguments, as they travel."""
    return [(p.name, query_value(args[p.name])) for p in tool.params_in("query") if p.name in args]


def build_request(
    tool: ToolSpec, provider: Provider, args: dict[str, Any], base_url: str, account: Account
) -> UpstreamRequest:
    """The request for one call. Pure: the same inputs always give the same request."""
    args = {**args, **account.project_for(tool, provider, args)}
    zone = zone_values(tool, provider, args, account)
    values = {p.name: args[p.name] for p in tool.params_in("path")} | zone
    url = fill(base_url, zone) + fill(tool.path, values)
    params = list(tool.query.items()) + query_of(tool, args)
    given = {p.name: args[p.name] for p in tool.params_in("body") if p.name in args}
    body = {**tool.body, **given} if tool.body or given else None  # the registry keeps the two apart
    return UpstreamRequest(method=tool.method, url=url, params=params, body=body)


class Upstreams:
    """One pooled client per provider account, shared by every tool call of a server. A call sees them
    through `using(account)`: every request it makes (polls, waits, steps, read-backs) then goes to the
    account it named, and other providers' to their defaults."""

    def __init__(
        self, registry: Registry, settings: Settings, redactor: Redactor | None = None, accounts: Accounts | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.redactor = redactor or Redactor()  # masks upstream words before they are cut to length
        self.accounts = accounts if accounts is not None else settings.accounts_for(registry)
        self.chosen: Mapping[str, Account] = {}  # provider key -> the account this call uses
        self.received = 0  # bytes of upstream bodies this call's view read: how heavy its result can be
        self._clients: dict[tuple[str, str], httpx2.AsyncClient] = {}

    def using(self, account: Account) -> Upstreams:
        """These upstreams for a call that uses `account` of its provider (the pooled clients are shared)."""
        view = copy.copy(self)
        view.chosen = {**self.chosen, account.provider: account}
        view.received = 0
        return view

    def account(self, provider: Provider) -> Account:
        """The account a request to `provider` uses: the call's, else the provider's default."""
        return self.chosen.get(provider.key) or self.accounts.resolve(provider, None)

    def base_url(self, provider: Provider) -> str:
        account = self.account(provider)
        if provider.auth.scheme == "incus":
            return account.incus(provider).url or INCUS_SOCKET_HOST
        return account.base_url(provider)

    def base_for(self, tool: ToolSpec, args: dict[str, Any]) -> str:
        """The provider's base URL for this call, its zone filled in from the arguments."""
        provider = self.registry.provider_of(tool)
        return fill(self.base_url(provider), zone_values(tool, provider, args, self.account(provider)))

    def reading(self, tool: ToolSpec, args: dict[str, Any], path: str, *, with_query: bool = False) -> UpstreamRequest:
        """A GET made on a call's behalf (a target, a read-back, a diagnosis): `path` filled from the call's
        arguments and zone; `with_query`, also the call's query arguments, with the account's default project
        where the call names none, as the call itself sends them."""
        provider = self.registry.provider_of(tool)
        account = self.account(provider)
        args = {**args, **account.project_for(tool, provider, args)}
        zone = zone_values(tool, provider, args, account)
        url = fill(self.base_url(provider), zone) + fill(path, {**args, **zone})
        return UpstreamRequest("GET", url, query_of(tool, args) if with_query else [])

    def _new_client(self, provider: Provider, account: Account) -> httpx2.AsyncClient:
        connect, read = self.settings.timeouts(provider)
        timeout = httpx2.Timeout(read, connect=connect)
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        headers = {"User-Agent": "mcp-cloudops", "Accept": "application/json"}
        auth = credential(provider, account)
        if provider.auth.scheme == "incus":
            endpoint = account.incus(provider)
            if endpoint.socket is not None:  # the socket's file permissions are the credential
                transport = httpx2.AsyncHTTPTransport(uds=endpoint.socket, limits=limits)
                return httpx2.AsyncClient(transport=transport, timeout=timeout, headers=headers)
            return httpx2.AsyncClient(
                verify=incus_ssl_context(endpoint), auth=auth, timeout=timeout, limits=limits, headers=headers
            )
        return httpx2.AsyncClient(auth=auth, timeout=timeout, limits=limits, headers=headers)

    def client(self, provider: Provider) -> httpx2.AsyncClient:
        account = self.account(provider)
        key = (provider.key, account.name)
        if key not in self._clients:
            self._clients[key] = self._new_client(provider, account)
        return self._clients[key]

    def header_auth(self, provider: Provider) -> dict[str, str]:
        """Auth headers for a websocket handshake (which httpx does not carry)."""
        return handshake_headers(credential(provider, self.account(provider)))

    def request_for(self, tool: ToolSpec, args: dict[str, Any]) -> tuple[Provider, UpstreamRequest]:
        provider = self.registry.provider_of(tool)
        account = self.account(provider)
        return provider, build_request(tool, provider, args, self.base_url(provider), account)

    async def call(self, tool: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
        """Send the tool's request and return its payload; UpstreamError/ConfigError say what failed."""
        provider, request = self.request_for(tool, args)
        return await self.send(tool, provider, request)

    async def send(self, tool: ToolSpec, provider: Provider, request: UpstreamRequest) -> dict[str, Any]:
        """Send one request on the tool's behalf; errors are worded for the agent calling `tool`.

        Only idempotent reads are retried (timeouts, connection failures, 429, 502-504), a bounded
        number of times, honouring Retry-After up to a cap. A write is never resent: its outcome
        after a timeout is unknown, and the error says how to check.
        """
        account = self.account(provider)
        if refusal := read_only_refusal(self.settings, tool, provider, method=request.method, account=account):
            raise UpstreamError(refusal)
        retryable = tool.hints.readOnly and request.method == "GET"
        attempts = 1 + (self.settings.retries if retryable else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = await self._exchange(tool, provider, request)
            except (httpx2.TimeoutException, httpx2.TransportError) as exc:
                metrics.upstream(provider.key, None, self.account(provider).name)
                if attempt < attempts:
                    await anyio.sleep(backoff(attempt))
                    continue
                raise transport_failure(tool, provider, request.url, exc, self.redactor, attempt) from None
            if attempt < attempts and response.status_code in RETRY_STATUSES:
                wait = retry_wait(provider, response, attempt, self.settings.retry_after_cap)
                if wait is not None:
                    await anyio.sleep(wait)
                    continue
            return self._result(tool, provider, response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, tool: ToolSpec, provider: Provider, request: UpstreamRequest) -> Response:
        """One HTTP exchange, reading at most max_response_bytes of the body; a big body is counted (at most
        results.values_allowed JSON values are parsed) and parsed on a worker thread."""
        client = self.client(provider)
        cap = self.settings.max_response_bytes
        started = time.perf_counter()
        async with client.stream(request.method, request.url, params=request.query, json=request.body) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > cap:
                    raise UpstreamError(
                        f"{provider.title} answered {tool.name} with more than {cap} bytes; mcp-cloudops stopped "
                        "reading. Narrow the request (filters, a smaller page) and call again."
                    )
        elapsed = (time.perf_counter() - started) * 1000
        self.received += len(body)
        # DEBUG: a line for every exchange cost a tenth of our per-call time; metrics count them, the journal
        # keeps writes, failures are logged at INFO.
        logger.debug("%s -> %s %s (%.0f ms)", tool.name, provider.key, response.status_code, elapsed)
        saw_status(response.status_code)
        metrics.upstream(provider.key, response.status_code, self.account(provider).name)
        headers = {k.lower(): v for k, v in response.headers.items()}
        answer = Response(response.status_code, headers, bytes(body), values_allowed(cap))
        return await anyio.to_thread.run_sync(answer.read) if len(body) >= OFF_LOOP_BYTES else answer

    async def download(
        self, tool: ToolSpec, provider: Provider, request: UpstreamRequest, limit: int
    ) -> tuple[bytes, bool]:
        """The first `limit` bytes of a file the upstream serves as it is (a command's output), and whether
        there was more. Never parsed: the bytes are the answer. Not retried: a read is cheap to ask again."""
        try:
            async with self.client(provider).stream(request.method, request.url, params=request.query) as response:
                metrics.upstream(provider.key, response.status_code, self.account(provider).name)
                if response.status_code >= 300:
                    content = bytearray()
                    async for chunk in response.aiter_bytes():
                        content.extend(chunk)
                        if len(content) > ERROR_BODY_MAX:
                            break
                    headers = {k.lower(): v for k, v in response.headers.items()}
                    self._result(tool, provider, Response(response.status_code, headers, bytes(content)))  # raises
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > limit:
                        break
                self.received += len(data)
                return bytes(data[:limit]), len(data) > limit
        except (httpx2.TimeoutException, httpx2.TransportError) as exc:
            metrics.upstream(provider.key, None, self.account(provider).name)
            raise transport_failure(tool, provider, request.url, exc, self.redactor) from None

    def _result(self, tool: ToolSpec, provider: Provider, response: Response) -> dict[str, Any]:
        if 300 <= response.status_code < 400:
            raise UpstreamError(
                f"{provider.title} answered {tool.name} with a redirect (HTTP {response.status_code}), which is not "
                f"followed. Check {provider.url_env}: it should be the API's own address."
            )
        if response.status_code >= 400:
            text = response.content.decode("utf-8", errors="replace")
            raise failed_with(
                tool, provider, response.status_code, response.body, text, response.headers, self.redactor
            )
        if response.too_many:
            then = (
                f"It answered HTTP {response.status_code}: the change was made, do not repeat it; read the state "
                f"with {tool.state_lookup}."
                if tool.mutating
                else f"To get less, {narrowing_hint(tool)}."
            )
            raise UpstreamError(
                f"{provider.title} answered {tool.name} with more than {response.max_values} JSON values (items "
                f"and their fields); mcp-cloudops did not parse it. {then}"
            )
        body = response.body
        if body is None and response.content.strip():
            raise UpstreamError(
                f"{provider.title} answered {tool.name} with HTTP {response.status_code} but a body that is not "
                f"JSON ({len(response.content)} bytes). Check {provider.url_env} points at the API."
            )
        return payload(provider, response.status_code, response.headers, body)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()
