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
through its discovery metadata, fetched by PyJWKClient, cached by IssuerKeys, which keeps them while the issuer
is unreachable), the issuer, the audience (this server's public URL), expiry and not-before; the subject must
name someone. Scopes are read as RFC 6749 3.3 spells them. Which tools they reach is decided per request in
toolsets.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
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
    groups_claim: str = "groups"  # the claim listing the user's groups, for accounts' `group:` users

    @classmethod
    def from_settings(cls, settings: Settings) -> ResourceServer | None:
        if settings.oauth_issuer is None or settings.public_url is None:
            return None
        return cls(
            settings.oauth_issuer,
            settings.public_url,
            settings.oauth_read_scope,
            settings.oauth_write_scope,
            settings.oauth_groups_claim,
        )

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
    import httpx2

    tried = []
    for url in metadata_urls(issuer):
        try:
            response = httpx2.get(url, timeout=timeout, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
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
    """The issuer's signing keys. Its metadata is read once for `jwks_uri`; the key set is fetched then, again
    once it is `lifespan` old, and when a token names a key id the set lacks (a rotation), at most once per
    `cooldown` seconds whatever the outcome: made-up key ids, or an unreachable issuer, cost one request to it
    per cooldown, not one per token. A fetch that fails keeps the keys fetched before, stale or not: while the
    issuer is down, tokens signed with them still pass, and a forged key id cannot lock everyone out."""

    def __init__(
        self,
        issuer: str,
        *,
        timeout: float = FETCH_TIMEOUT,
        cooldown: float = COOLDOWN,
        lifespan: float = KEYS_LIFESPAN,
    ) -> None:
        self.issuer = issuer
        self.timeout = timeout
        self.cooldown = cooldown
        self.lifespan = lifespan
        self._client: jwt.PyJWKClient | None = None  # fetches only: the cache is ours, so a failure evicts nothing
        self._keys: dict[str, jwt.PyJWK] = {}  # by key id, from the last fetch that worked; replaced, never emptied
        self._fetched_at: float | None = None  # the last fetch that worked
        self._tried_at: float | None = None  # the last fetch tried, whatever its outcome: the cooldown counts from it
        self._fetching = threading.Lock()  # one fetch at a time; reads of _keys need no lock (it is replaced whole)

    def signing_key(self, token: str) -> jwt.PyJWK:
        """The published key the token's header names (kid); Refused when there is none. A token that is no
        JWT raises PyJWT's DecodeError, before anything is fetched."""
        import jwt

        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("its header names no key id (kid)")
        if kid not in self._keys:
            with self._fetching:  # waits for a fetch under way, which may bring this key
                if kid not in self._keys and self._may_fetch():
                    self._fetch()
        elif self._stale() and self._fetching.acquire(blocking=False):  # never wait: the key held serves meanwhile
            try:
                if self._stale() and self._may_fetch():
                    self._fetch()
            finally:
                self._fetching.release()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise Refused(f"the issuer's keys could not be fetched (tried at most every {self.cooldown:g} s)")
        raise Refused("it is signed with a key the issuer does not publish")

    def _stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self.lifespan

    def _may_fetch(self) -> bool:
        return self._tried_at is None or time.monotonic() - self._tried_at >= self.cooldown

    def _fetch(self) -> None:
        """Fetch the key set (after discovering where it is, the first time) and keep it; on failure keep the
        keys held and say why, once per try, at WARNING. Called with _fetching held."""
        import jwt

        try:
            client = self._client or self._discover()
            fetched = client.get_signing_keys(refresh=True)
        except Refused as exc:
            reason = str(exc)
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError) as exc:  # unreachable, no JSON, no usable key
            reason = f"cannot fetch the issuer's keys from {self._client.uri if self._client else self.issuer} "
            reason += f"({exc.__cause__ or exc})"
        else:
            self._keys = {key.key_id: key for key in fetched if key.key_id}
            self._fetched_at = time.monotonic()
            return
        finally:
            self._tried_at = time.monotonic()  # from the end of a try: a slow one is not followed by another at once
        held = (
            f"the {len(self._keys)} key(s) fetched before are still used"
            if self._keys
            else "tokens are refused until it works"
        )
        logger.warning("%s; %s (next try in %g s)", reason, held, self.cooldown)

    def _discover(self) -> jwt.PyJWKClient:
        from jwt import PyJWKClient

        from mcp_cloudops import __version__

        uri = discover(self.issuer, self.timeout)
        self._client = PyJWKClient(
            uri, cache_jwk_set=False, timeout=self.timeout, headers={"User-Agent": f"mcp-cloudops/{__version__}"}
        )
        logger.info("the keys of %s are at %s", self.issuer, uri)
        return self._client


# --- tokens --------------------------------------------------------------------------------------------------


SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )


def granted_scopes(claims: dict[str, Any]) -> list[str]:
    """The scopes a token grants: `scope`, space-separated (RFC 9068, Keycloak), or `scp` (Entra ID, Okta), a
    string or a list. Split on U+0020 only, as RFC 6749 3.3 says, and what is no scope-token is dropped:
    str.split() would also split on U+3000 or U+0085, so `tenant:acme<U+3000>cloudops:write`, one scope the
    authorization server granted, would read as the write scope."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return [scope for scope in value.split(" ") if SCOPE_TOKEN.fullmatch(scope)]
        if isinstance(value, list):
            return [scope for scope in value if isinstance(scope, str) and SCOPE_TOKEN.fullmatch(scope)]
    return []


def names_something(value: Any) -> bool:
    """A string a person can read as a name: not blank, no control or invisible character (which forge or
    hide text where it is shown)."""
    return isinstance(value, str) and bool(value.strip()) and value.isprintable()


def groups_of(value: Any) -> list[str]:
    """The groups a token's groups claim names: a list of strings (Keycloak, Entra ID, Okta) or one string;
    anything else names none. Blank or control-character entries are dropped: they could never name a group."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [item for item in items if names_something(item)]


def principal_of(claims: dict[str, Any]) -> str:
    """The token's subject, which sessions and the audit journal are bound to. Refused when it names nobody:
    blank (an empty `sub` would let the journal fall back to the client id, the same for every user of one
    client) or holding control or invisible characters (which forge or hide text where it is shown)."""
    subject = claims["sub"]
    if not names_something(subject):
        raise Refused(
            "its subject (sub) is blank or holds control characters (or other invisible ones): have the "
            "authorization server put the user's id in sub"
        )
    return subject


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
        subject = principal_of(claims)
        return AccessToken(
            token="sha256:" + hashlib.sha256(token.encode()).hexdigest(),  # the principal's id, not the credential
            client_id=str(claims.get("client_id") or claims.get("azp") or subject),
            scopes=granted_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.server.resource,  # the audience was checked: the SDK compares this with the URL too
            subject=subject,
            # The SDK binds sessions to (client_id, iss, sub); groups say which accounts the user may use.
            claims={"iss": claims["iss"], "groups": groups_of(claims.get(self.server.groups_claim))},
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
