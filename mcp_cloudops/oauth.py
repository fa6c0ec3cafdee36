"""OAuth 2.1 resource server (the MCP authorization specification): HTTP clients present access tokens that
one authorization server issued for this server.

The SDK's pieces do the protocol: BearerAuthBackend reads the bearer token and asks a TokenVerifier,
AuthContextMiddleware makes the token available to tools (get_access_token), RequireAuthMiddleware answers
401 with `WWW-Authenticate: Bearer resource_metadata="..."`, and its ProtectedResourceMetadata handler
serves the RFC 9728 metadata that names the authorization server and the scopes. They are composed here
rather than through MCPServer(auth=...), which would publish only its required scopes (a client reading the
metadata would never ask for the write scope), only at the path-suffixed URL, and could not refuse a token
that has neither scope.

JwtVerifier is our TokenVerifier: PyJWT checks the signature against the issuer's published keys (found
through its discovery metadata, cached by PyJWKClient), the issuer, the audience (this server's public URL),
expiry and not-before. Which tools a token's scopes reach is decided per request in toolsets.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_cloudops.setting_values import is_loopback
from mcp_cloudops.settings import ISSUER_ENV

if TYPE_CHECKING:
    import jwt
    from mcp.server.auth.provider import AccessToken, TokenVerifier

    from mcp_cloudops.settings import Settings

logger = logging.getLogger("mcp_cloudops.oauth")

# Public-key algorithms only: a symmetric one would let anyone who holds the key (or a confused verifier
# fed the public key as an HMAC secret) mint tokens.
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]  # sub: sessions and the audit journal are bound to it
LEEWAY = 30  # seconds of clock difference tolerated between this server and the issuer for exp, nbf and iat
FETCH_TIMEOUT = 5.0  # seconds for the issuer's metadata and keys: a slow issuer must not hold requests long
KEYS_LIFESPAN = 300.0  # seconds the key set is cached before it is fetched again
COOLDOWN = 30.0  # at most one fetch this often after a failure, or for a key id the cached set lacks
WELL_KNOWN = "/.well-known/oauth-protected-resource"


class Refused(Exception):
    """Why a token is not accepted, on one line for the log (never the token itself)."""


@dataclass(frozen=True)
class ResourceServer:
    """What the OAuth mode needs: who issues tokens, the URL they must be for, and the two scopes."""

    issuer: str
    resource: str  # this server's MCP URL as clients reach it: the tokens' audience, and the RFC 8707 resource
    read_scope: str
    write_scope: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ResourceServer | None:
        if settings.oauth_issuer is None or settings.public_url is None:
            return None
        return cls(settings.oauth_issuer, settings.public_url, settings.oauth_read_scope, settings.oauth_write_scope)

    @property
    def scopes(self) -> list[str]:
        return [self.read_scope, self.write_scope]

    @property
    def metadata_url(self) -> str:
        """Where this resource's RFC 9728 metadata is: the well-known path with the resource's path after it."""
        from mcp.server.auth.routes import build_resource_metadata_url
        from pydantic import AnyHttpUrl

        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))


# --- the issuer's keys ---------------------------------------------------------------------------------------


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order the MCP specification tries them: RFC 8414
    (/.well-known/oauth-authorization-server) and OpenID Connect discovery, the well-known path inserted
    before the issuer's path, then OpenID's appended form (Keycloak's https://host/realms/R/.well-known/...)."""
    parts = urlsplit(issuer)
    root, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    if not path:
        return [f"{root}/.well-known/oauth-authorization-server", f"{root}/.well-known/openid-configuration"]
    return [
        f"{root}/.well-known/oauth-authorization-server{path}",
        f"{root}/.well-known/openid-configuration{path}",
        f"{root}{path}/.well-known/openid-configuration",
    ]


def jwks_uri_of(issuer: str, metadata: Any, source: str) -> str:
    """The `jwks_uri` of the issuer's metadata, once the metadata is shown to be this issuer's (RFC 8414 3.3:
    its `issuer` must be the configured one exactly, or tokens would carry another and all be refused)."""
    if not isinstance(metadata, dict):
        raise Refused(f"{source} is not a JSON object: check {ISSUER_ENV}")
    if metadata.get("issuer") != issuer:
        raise Refused(
            f"{source} names the issuer {metadata.get('issuer')!r}, not {issuer!r}: set {ISSUER_ENV} to the "
            "issuer exactly as the authorization server spells it"
        )
    uri = metadata.get("jwks_uri")
    if not isinstance(uri, str) or not uri:
        raise Refused(f"{source} has no jwks_uri: this server checks JWT access tokens against published keys")
    parts = urlsplit(uri)
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))):
        raise Refused(f"the jwks_uri of {source}, {uri!r}, is not https:// (http:// only on loopback)")
    return uri


def discover(issuer: str, timeout: float = FETCH_TIMEOUT) -> str:
    """The issuer's key set URL, from the first of its metadata documents that answers."""
    import httpx

    tried = []
    for url in metadata_urls(issuer):
        try:
            response = httpx.get(url, timeout=timeout, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise Refused(f"cannot reach the authorization server at {url} ({type(exc).__name__}): "
                          f"check {ISSUER_ENV} and that it is up") from None  # fmt: skip
        if response.status_code == 200:
            try:
                metadata = response.json()
            except ValueError:
                metadata = None
            return jwks_uri_of(issuer, metadata, url)
        tried.append(f"{url} ({response.status_code})")
    raise Refused(f"no authorization server metadata at {', '.join(tried)}: check {ISSUER_ENV}")


class IssuerKeys:
    """The issuer's signing keys: its metadata is read once for `jwks_uri`; PyJWKClient then caches the key
    set (KEYS_LIFESPAN) and fetches it again for a key id it lacks (a rotation), at most every COOLDOWN
    seconds. After a failure nothing is fetched for COOLDOWN seconds either: tokens with made-up key ids, or
    an unreachable issuer, cost one request to it per COOLDOWN, not one per token."""

    def __init__(self, issuer: str, *, timeout: float = FETCH_TIMEOUT, cooldown: float = COOLDOWN) -> None:
        self.issuer = issuer
        self.timeout = timeout
        self.cooldown = cooldown
        self._client: jwt.PyJWKClient | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()  # one discovery at a time; PyJWKClient has its own lock

    def signing_key(self, token: str) -> jwt.PyJWK:
        """The published key the token's header names (kid); Refused when there is none."""
        from jwt import PyJWKClientConnectionError, PyJWKClientError

        client = self.client()
        try:
            return client.get_signing_key_from_jwt(token)
        except PyJWKClientConnectionError as exc:
            self.failed(f"cannot fetch the issuer's keys from {client.uri} ({exc.__cause__ or exc})")
            raise Refused(f"the issuer's keys could not be fetched from {client.uri}") from None
        except PyJWKClientError:
            raise Refused("it is signed with a key the issuer does not publish") from None

    def client(self) -> jwt.PyJWKClient:
        from jwt import PyJWKClient

        from mcp_cloudops import __version__

        with self._lock:
            if self._failed_at is not None and time.monotonic() - self._failed_at < self.cooldown:
                raise Refused(f"the issuer's keys are unavailable (retried at most every {self.cooldown:g} s)")
            if self._client is None:
                try:
                    uri = discover(self.issuer, self.timeout)
                except Refused as exc:
                    self.failed(str(exc))
                    raise
                self._client = PyJWKClient(
                    uri,
                    lifespan=KEYS_LIFESPAN,
                    timeout=self.timeout,
                    cooldown_duration=self.cooldown,
                    headers={"User-Agent": f"mcp-cloudops/{__version__}"},
                )
                logger.info("the keys of %s are at %s", self.issuer, uri)
            self._failed_at = None
            return self._client

    def failed(self, reason: str) -> None:
        """Remember a failure (nothing is fetched for `cooldown` seconds) and say it once, at WARNING."""
        self._failed_at = time.monotonic()
        logger.warning("%s; tokens are refused until it works (next try in %g s)", reason, self.cooldown)


# --- tokens --------------------------------------------------------------------------------------------------


def granted_scopes(claims: dict[str, Any]) -> list[str]:
    """The scopes a token grants: `scope`, space-separated (RFC 9068, Keycloak), or `scp` (Entra ID, Okta)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [scope for scope in value if isinstance(scope, str)]
    return []


def refusal(exc: Exception, server: ResourceServer) -> str:
    """What is wrong with a token PyJWT refused, as the operator can act on it."""
    import jwt

    reasons: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "it has expired"),
        (jwt.ImmatureSignatureError, "it is not valid yet (nbf or iat is in the future)"),
        (jwt.InvalidAudienceError, f"its audience (aud) is not {server.resource}: have the authorization server "
                                   "put this server's MCP_CLOUDOPS_PUBLIC_URL in it"),
        (jwt.InvalidIssuerError, f"its issuer (iss) is not {server.issuer}"),
        (jwt.MissingRequiredClaimError, f"it lacks a claim ({exc})"),
        (jwt.InvalidSignatureError, "its signature does not verify"),
        (jwt.InvalidAlgorithmError, "it is signed with another algorithm than its key's"),
        (jwt.DecodeError, "it is not a well-formed JWT"),
    ]  # fmt: skip
    return next((reason for kind, reason in reasons if isinstance(exc, kind)), f"it is invalid ({str(exc)[:200]})")


class JwtVerifier:
    """The SDK's TokenVerifier for JWT access tokens (RFC 9068) signed by the configured issuer."""

    def __init__(self, server: ResourceServer, keys: IssuerKeys | None = None) -> None:
        self.server = server
        self.keys = keys or IssuerKeys(server.issuer)
        stripped = server.resource.rstrip("/")
        self.audiences = [stripped, stripped + "/"]  # one trailing slash either way is the same resource

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's principal and scopes, or None (the SDK answers 401). Never raises: an error here would
        be a 500. Key fetches block, so the check runs on a worker thread."""
        import anyio

        try:
            return await anyio.to_thread.run_sync(self.verify, token)
        except Refused as exc:
            logger.info("refused an access token: %s", exc)
        except Exception:  # a bug of ours or a library's: refuse, and keep the traceback for the log
            logger.exception("an access token could not be checked")
        return None

    def verify(self, token: str) -> AccessToken:
        """Check signature, issuer, audience and times; Refused says which failed."""
        import jwt
        from mcp.server.auth.provider import AccessToken

        try:
            key = self.keys.signing_key(token)  # reads the header's kid: a token that is no JWT fails here
            if key.algorithm_name not in ALGORITHMS:
                raise Refused(f"the issuer's key {key.key_id!r} is for {key.algorithm_name}, not a public-key one")
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audiences,
                issuer=self.server.issuer,
                leeway=LEEWAY,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise Refused(refusal(exc, self.server)) from None
        subject = str(claims["sub"])
        return AccessToken(
            token="sha256:" + hashlib.sha256(token.encode()).hexdigest(),  # the principal's id, not the credential
            client_id=str(claims.get("client_id") or claims.get("azp") or subject),
            scopes=granted_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.server.resource,  # the audience was checked: the SDK compares this with the URL too
            subject=subject,
            claims={"iss": claims["iss"]},  # the SDK binds sessions to (client_id, iss, sub)
        )


# --- the HTTP side -------------------------------------------------------------------------------------------


async def send_json(send: Send, status: int, body: dict[str, str], challenge: str) -> None:
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                    (b"www-authenticate", challenge.encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})


class ScopeGate:
    """403 insufficient_scope for an authenticated token that has neither scope: it can do nothing here, and
    the challenge tells the client which scope to ask for. Which tools each scope reaches is toolsets.py's."""

    def __init__(self, app: ASGIApp, server: ResourceServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        granted = set(getattr(scope.get("user"), "scopes", None) or ())
        if granted & set(self.server.scopes):
            await self.app(scope, receive, send)
            return
        description = f"this server needs the scope {self.server.read_scope} (or {self.server.write_scope})"
        challenge = (
            f'Bearer error="insufficient_scope", scope="{self.server.read_scope}", '
            f'error_description="{description}", resource_metadata="{self.server.metadata_url}"'
        )
        await send_json(send, 403, {"error": "insufficient_scope", "error_description": description}, challenge)


def metadata_app(server: ResourceServer) -> ASGIApp:
    """RFC 9728 protected-resource metadata at the well-known path with the resource's path after it
    (/.well-known/oauth-protected-resource/mcp) and at the bare well-known path, for clients that look there.
    The SDK's model, handler and CORS wrapper; the model is given strings, which it keeps as written: an
    issuer normalised to a trailing slash would no longer be the issuer (RFC 8414 compares them exactly)."""
    from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
    from mcp.server.auth.routes import cors_middleware
    from mcp.shared.auth import ProtectedResourceMetadata
    from starlette.routing import Route, Router

    metadata = ProtectedResourceMetadata.model_validate({
        "resource": server.resource,
        "authorization_servers": [server.issuer],
        "scopes_supported": server.scopes,
        "resource_name": "mcp-cloudops",
    })  # fmt: skip
    endpoint = cors_middleware(ProtectedResourceMetadataHandler(metadata).handle, ["GET", "OPTIONS"])
    paths = dict.fromkeys([urlsplit(server.metadata_url).path, WELL_KNOWN])  # one, when the resource has no path
    return Router(routes=[Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths])


class OAuthGuard:
    """The HTTP app behind OAuth: the metadata is public; every other HTTP request needs a valid access token
    with one of the two scopes. Lifespan (and websocket) scopes go straight to the app, as with BearerToken:
    the SDK's app serves no websocket."""

    def __init__(self, app: ASGIApp, server: ResourceServer, verifier: TokenVerifier | None = None) -> None:
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
        from pydantic import AnyHttpUrl
        from starlette.middleware.authentication import AuthenticationMiddleware

        self.app = app
        self.metadata = metadata_app(server)
        backend = BearerAuthBackend(verifier or JwtVerifier(server), resource_server_url=AnyHttpUrl(server.resource))
        required = RequireAuthMiddleware(ScopeGate(app, server), [], AnyHttpUrl(server.metadata_url))
        self.guarded = AuthenticationMiddleware(AuthContextMiddleware(required), backend=backend)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].startswith(WELL_KNOWN):
            await self.metadata(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)
