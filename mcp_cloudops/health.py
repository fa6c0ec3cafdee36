"""Probes for load balancers and orchestrators on the HTTP app: `GET /healthz` (liveness: the process
serves requests) and `GET /readyz` (readiness: the MCP server is built and its app started; 503 until
then and once it stops).

`Probes` sits in front of everything else (the bearer token, and the DNS-rebinding check inside the
SDK's app), so both answer without a token and whatever the Host header says. That is deliberate: a
load balancer or a Kubernetes kubelet probes with its own Host (often the pod's or the backend's IP,
which no allowed-host list names) and holds no token. Nothing is lost by it: DNS-rebinding protection
keeps a web page from driving the MCP endpoint through a user's browser, and the probes neither act
nor tell anything (a fixed, tiny body: no version, no tool, no setting). Every other path goes on
to the app, token and Host checks included.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LIVE = "/healthz"
READY = "/readyz"
ALIVE_BODY = b'{"status":"ok"}'
READY_BODY = b'{"status":"ready"}'


class Readiness:
    """Whether the MCP app takes requests: not before its lifespan started (the session manager running),
    nor once it began to stop. A reason says which."""

    def __init__(self) -> None:
        self.reason: str | None = "starting"

    @property
    def ready(self) -> bool:
        return self.reason is None

    def started(self) -> None:
        self.reason = None

    def stopping(self) -> None:
        self.reason = "stopping"


class Probes:
    """`app` behind /healthz and /readyz, which answer before any token or Host check. Readiness follows
    the app's lifespan, watched as it passes through (uvicorn runs it before it serves, and at shutdown)."""

    def __init__(self, app: ASGIApp, readiness: Readiness | None = None) -> None:
        self.app = app
        self.readiness = readiness or Readiness()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._watch_receive(receive), self._watch_send(send))
        elif scope["type"] == "http" and scope["path"] in (LIVE, READY):
            await self.probe(scope, send)
        else:
            await self.app(scope, receive, send)

    async def probe(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await reply(send, 405, b'{"status":"use GET"}', scope["method"] == "HEAD", (b"allow", b"GET, HEAD"))
        elif scope["path"] == LIVE:
            await reply(send, 200, ALIVE_BODY, scope["method"] == "HEAD")
        elif self.readiness.ready:
            await reply(send, 200, READY_BODY, scope["method"] == "HEAD")
        else:
            body = b'{"status":"not ready","reason":"%s"}' % (self.readiness.reason or "").encode()
            await reply(send, 503, body, scope["method"] == "HEAD", (b"retry-after", b"1"))

    def _watch_receive(self, receive: Receive) -> Receive:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                self.readiness.stopping()
            return message

        return watched

    def _watch_send(self, send: Send) -> Send:
        async def watched(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.readiness.started()
            await send(message)

        return watched


async def reply(send: Send, status: int, body: bytes, head_only: bool, *headers: tuple[bytes, bytes]) -> None:
    """A whole small JSON response that no cache keeps (a probe's answer is only true now)."""
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


def probes(app: ASGIApp) -> Probes:
    """The entry point: wrap the whole HTTP app (outermost, around the token check) in the probes."""
    return Probes(app)
