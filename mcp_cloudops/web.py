"""The streamable HTTP endpoint: DNS-rebinding protection, an optional bearer token, stateless mode."""

from __future__ import annotations

import hmac
from ipaddress import ip_address
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from pydantic import SecretStr

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerToken:
    """Refuses (401) any HTTP request without `Authorization: Bearer <token>`, compared in constant time."""

    def __init__(self, app: ASGIApp, token: SecretStr) -> None:
        self.app = app
        self._expected = token.get_secret_value().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized","message":"send Authorization: Bearer <the server\'s --http-token>"}'
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="mcp-cloudops"'),
                        (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def http_app(server: MCPServer, host: str, token: SecretStr | None, stateless: bool) -> ASGIApp:
    """The ASGI app serving /mcp. Binding beyond loopback needs a token (checked by the caller)."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1", "localhost", "[::1]"] + ([] if is_loopback(host) else [host])
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{name}:*" for name in hosts],
        allowed_origins=[f"http://{name}:*" for name in hosts],
    )
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=security, host=host, stateless_http=stateless
    )
    return BearerToken(app, token) if token is not None else app
