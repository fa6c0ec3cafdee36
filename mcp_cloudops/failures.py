"""A failed exchange, classified by whether the request may have reached the upstream.

Could not connect (DNS, refused, connect timeout, TLS handshake, no socket): nothing was sent, so
a retry is safe. Sent, then no complete answer (read timeout, dropped connection, protocol error):
for a write the outcome is unknown, and retrying may do it twice, so the agent is told which tool
shows the state; a read is simply retried (upstream.py), then reported.
"""

from __future__ import annotations

import socket
import ssl

import httpx2

from mcp_cloudops.accounts import INCUS_ENV, INCUS_SOCKET_HOST
from mcp_cloudops.redaction import Redactor
from mcp_cloudops.registry_models import Provider, ToolSpec
from mcp_cloudops.results import UpstreamError, one_line

# httpx failures raised before any byte of the request left this machine.
_NOT_SENT_HTTP = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.LocalProtocolError,
    httpx2.ProxyError,
)
# OS-level failures of opening a connection (websockets raise these directly).
_NOT_SENT_OS = (ConnectionRefusedError, FileNotFoundError, socket.gaierror, ssl.SSLError)


def may_have_arrived(exc: BaseException) -> bool:
    """Whether the upstream may have received (and acted on) the request before `exc`."""
    return not isinstance(exc, _NOT_SENT_HTTP + _NOT_SENT_OS)


def over_socket(url: str) -> bool:
    return httpx2.URL(url).host == httpx2.URL(INCUS_SOCKET_HOST).host


def where(url: str) -> str:
    """The host a failure happened at, for messages: never the path or query (they may carry secrets)."""
    return "its unix socket" if over_socket(url) else httpx2.URL(url).host or "the unix socket"


def address_settings(provider: Provider, url: str) -> str:
    """The variables that say where `provider` is: over Incus's unix socket, INCUS_SOCKET first."""
    if provider.auth.scheme == "incus" and over_socket(url):
        return f"{INCUS_ENV['socket']} (is Incus running, and may this user use its socket?) or {provider.url_env}"
    return provider.url_env


def _why(exc: BaseException, redactor: Redactor) -> str:
    detail = one_line(str(exc), 120, redactor)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def cannot_reach(provider: Provider, url: str, exc: BaseException, redactor: Redactor) -> UpstreamError:
    """Nothing was sent: where (the host, never the path or query) and why, redacted, then what to check."""
    return UpstreamError(
        f"Cannot reach {provider.title} at {where(url)} ({_why(exc, redactor)}); nothing was sent, so retrying "
        f"is safe. Check {address_settings(provider, url)} and the network, then retry."
    )


def no_answer(
    tool: ToolSpec, provider: Provider, url: str, exc: BaseException, redactor: Redactor, tries: int = 1
) -> UpstreamError:
    """The request went out and no complete answer came back."""
    what = "did not answer in time" if isinstance(exc, (httpx2.TimeoutException, TimeoutError)) else "gave no answer"
    head = f"{provider.title} {what} ({where(url)}, {_why(exc, redactor)}) for {tool.name}."
    if tool.mutating:
        check = f" with {tool.state_lookup}" if tool.state_lookup else ""
        return UpstreamError(
            f"{head} The request was sent, so the outcome is unknown: read the state{check} before retrying "
            "(a retry may do it twice).",
            unknown=True,
        )
    tried = f" after {tries} tries" if tries > 1 else ""
    if what == "gave no answer":  # dropped, not slow: also how a server turns away a TLS client certificate
        return UpstreamError(
            f"{head[:-1]}{tried}: the connection was dropped. Retry; if it keeps happening, check "
            f"{provider.url_env} and the credentials (an untrusted TLS client certificate is dropped this way)."
        )
    return UpstreamError(f"{head[:-1]}{tried}. Retry, or narrow the request.")


def transport_failure(
    tool: ToolSpec, provider: Provider, url: str, exc: BaseException, redactor: Redactor, tries: int = 1
) -> UpstreamError:
    """The one error for an exchange that failed below HTTP, over HTTP or a websocket."""
    if may_have_arrived(exc):
        return no_answer(tool, provider, url, exc, redactor, tries)
    return cannot_reach(provider, url, exc, redactor)
